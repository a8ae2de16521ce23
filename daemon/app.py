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
    elif cfg.platforms.get("identity") is not None:
        from daemon.config import ConfigError
        raise ConfigError("[identity] needs [offline]: the lookups and the kiosk call 1101, 2001 and 22xx "
                          "through the offline gateway")
    if cfg.platforms.get("mobilepay"):
        from daemon.wiring_mobilepay import wiring as mobilepay_wiring
        w.merge(mobilepay_wiring(cfg, w.services))
    if cfg.platforms.get("regions") is not None:
        # After [offline]: the 1901 refresh uses its client.
        from daemon.regions import wiring as regions_wiring
        w.merge(regions_wiring(cfg, w.services))
    if cfg.platforms.get("wechatpay") or cfg.platforms.get("alipay"):
        from daemon.wiring_channels import wiring as channels_wiring
        w.merge(channels_wiring(cfg, w.services))
    if cfg.platforms.get("reconciliation") is not None:
        # Last: the daily job uses the clients the platforms above wired.
        from daemon.reconcile_job import wiring as reconcile_wiring
        w.merge(reconcile_wiring(cfg, w.services))
    w.merge(operations_wiring(cfg))
    return w


def operations_wiring(cfg: Config) -> Wiring:
    """[metrics] (/metrics, /healthz, /readyz) and [console]: each on its own
    listener, or on one when both name the same address."""
    w = Wiring()
    if cfg.metrics.enabled:
        def make_health(daemon):
            from daemon.metrics import HealthApp
            return HealthApp(daemon.metrics, daemon.readiness), None
        for path in ("/metrics", "/healthz", "/readyz"):
            w.mounts.append(HttpMount(cfg.metrics.listen, path, make_health))
    if cfg.console.enabled:
        from daemon.console import check
        check(cfg)          # a missing secret or password hash stops the start, with its name

        def make_console(daemon):
            from daemon.console import make_app
            return make_app(cfg, daemon), None
        w.mounts.append(HttpMount(cfg.console.listen, "/", make_console))
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
