"""Wiring: which flows the daemon runs and which platform clients they use,
from the configuration."""
from __future__ import annotations

from bridge.engine.flow import Registry
from daemon.config import Config


def build_registry(cfg: Config) -> Registry:
    reg = Registry()
    if cfg.testplatform.url:
        from bridge.testflow.flows import TestChargeFlow, TestNoopFlow
        reg.register(TestChargeFlow(settle_seconds=cfg.testplatform.settle_seconds))
        reg.register(TestNoopFlow())
    return reg


def build_services(cfg: Config) -> dict:
    services: dict = {}
    if cfg.testplatform.url:
        from bridge.testflow.client import TestPlatformClient
        services["testplatform"] = TestPlatformClient(cfg.testplatform.url, cfg.testplatform.timeout)
    return services
