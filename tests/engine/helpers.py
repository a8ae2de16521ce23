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
    r.register(TestChargeFlow())
    r.register(TestNoopFlow())
    return r


def runner(store: Store, platform_url: str, lease: float = 30.0, timeout: float = 1.0) -> Runner:
    settings = RunnerSettings(lease_seconds=lease, backoff=Backoff(base=0.01, cap=0.05, jitter=0.0),
                              persist_timeout=2.0)
    return Runner(store, registry(), settings, {"testplatform": TestPlatformClient(platform_url, timeout)})


def drain(store: Store, run: Runner, owner: str = "t", max_rounds: int = 200) -> None:
    """Claim and run rows until none is due (retries are ~10-50 ms away)."""
    idle = 0
    for _ in range(max_rounds):
        rows = store.claim(owner, 30, limit=10)
        if not rows:
            idle += 1
            if idle > 5:
                return
            time.sleep(0.06)
            continue
        idle = 0
        for row in rows:
            run.run(row, owner)


def states(store: Store) -> dict:
    return {int(r[0]): r[1] for r in store.query("SELECT id, state FROM mi_outbox ORDER BY id")}
