"""Shared pieces for the engine tests: a registry with the test flows, a
runner on a real Store, and a real test platform over HTTP."""
from __future__ import annotations

import time

from bridge.db.store import Store
from bridge.engine.backoff import Backoff
from bridge.engine.flow import Registry
from bridge.engine.runner import Runner, RunnerSettings
from bridge.testflow.client import TestPlatformClient
from bridge.testflow.flows import TestChargeFlow, TestNoopFlow


def registry() -> Registry:
    r = Registry()
    r.register(TestChargeFlow(settle_seconds=2.0))
    r.register(TestNoopFlow())
    return r


def runner(store: Store, platform_url: str, lease: float = 30.0, timeout: float = 1.0) -> Runner:
    settings = RunnerSettings(lease_seconds=lease, backoff=Backoff(base=0.01, cap=0.05, jitter=0.0),
                              persist_timeout=2.0)
    return Runner(store, registry(), settings, {"testplatform": TestPlatformClient(platform_url, timeout)})


def drain(store: Store, run: Runner, owner: str = "t", timeout: float = 20.0,
          blocked_ok: bool = False) -> None:
    """Claim and run rows until none is pending or in doubt (retries and
    resolutions are scheduled a few ms to ~2 s ahead).  blocked_ok: rows that
    wait behind a held row of their serial key may stay pending."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = store.claim(owner, 30, limit=10)
        for row in rows:
            run.run(row, owner)
        if not rows:
            open_rows = store.query("SELECT COUNT(*) FROM mi_outbox WHERE state IN ('pending', 'in_doubt')")[0][0]
            if not open_rows:
                return
            if blocked_ok and not store.query("SELECT COUNT(*) FROM mi_outbox WHERE state = 'in_doubt'")[0][0]:
                time.sleep(0.3)
                if not store.claim(owner, 30, limit=1):
                    return
                raise AssertionError("a row became due while draining with blocked_ok")
            time.sleep(0.05)
    raise AssertionError(f"rows still open after {timeout}s")


def states(store: Store) -> dict:
    return {int(r[0]): r[1] for r in store.query("SELECT id, state FROM mi_outbox ORDER BY id")}
