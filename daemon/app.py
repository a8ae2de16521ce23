"""Wiring: which flows the daemon runs, which platform clients they use and
which scheduled jobs they need, all from the configuration.

Each platform module offers `wiring(cfg) -> Wiring` (flows, services, jobs);
a platform whose section is absent from the config is simply not wired.
"""
from __future__ import annotations

from bridge.engine.flow import Registry
from daemon.config import Config
# Wiring and HttpMount live in daemon/wiring.py (the platform modules build them); named here too.
from daemon.wiring import HttpMount, Wiring, http_servers  # noqa: F401


def build(cfg: Config) -> Wiring:
    w = Wiring()
    if cfg.testplatform.url:
        from bridge.testflow.client import TestPlatformClient
        from bridge.testflow.flows import TestChargeFlow, TestNoopFlow
        w.flows += [TestChargeFlow(settle_seconds=cfg.testplatform.settle_seconds), TestNoopFlow()]
        w.services["testplatform"] = TestPlatformClient(cfg.testplatform.url, cfg.testplatform.timeout)
    if cfg.platforms.get("offline"):
        from daemon.wiring_offline import wiring as offline_wiring
        w.merge(offline_wiring(cfg))
    if cfg.platforms.get("mobilepay"):
        from daemon.wiring_mobilepay import wiring as mobilepay_wiring
        w.merge(mobilepay_wiring(cfg, w.services))
    return w


def build_registry(cfg: Config, wiring: Wiring | None = None) -> Registry:
    reg = Registry()
    for flow in (wiring or build(cfg)).flows:
        reg.register(flow)
    return reg


def build_services(cfg: Config) -> dict:
    return build(cfg).services


def build_daemon(cfg: Config):
    """The Daemon with everything the configuration asks for."""
    from daemon.service import Daemon

    w = build(cfg)
    return Daemon(cfg, build_registry(cfg, w), w.services, extra_jobs=w.jobs,
                  servers=w.servers + http_servers(cfg, w.mounts))
