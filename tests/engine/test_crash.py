"""Crash matrix: a real daemon killed with SIGKILL at each point of a request's
life, then a fresh daemon.  Nothing may be lost, and the unsafe remote call
(the test platform books a NEW charge on every request) must never repeat."""
from __future__ import annotations

import pytest

from bridge.db.store import Store
from bridge.engine.crashpoints import POINTS
from bridge.testflow.platform import RunningTestPlatform

from .daemonproc import DaemonProcess, wait_until_final

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("point", POINTS)
def test_sigkill_then_restart_loses_nothing_and_never_charges_twice(db_url, tmp_path, point):
    platform = RunningTestPlatform()
    store = Store(db_url)
    try:
        keys = [f"INV-{point}-{i}" for i in range(4)]
        for i, k in enumerate(keys):
            store.enqueue("test.charge", k, {"patient_id": f"P{i}", "total_amount": f"{10 + i}.50"},
                          serial_key=f"VISIT-{i % 2}")
        crashing = DaemonProcess(tmp_path, db_url, platform.url, name="crashing", crash_at=point)
        rc = crashing.wait_exit(30)
        assert rc == -9, f"expected SIGKILL at {point}, got exit {rc}; log:\n{crashing.tail()}"

        fresh = DaemonProcess(tmp_path, db_url, platform.url, name="fresh")
        try:
            counts = wait_until_final(store, 60, fresh)
        finally:
            assert fresh.terminate() == 0, fresh.tail()
        assert counts == {"done": len(keys)}, (counts, fresh.tail())
        # Exactly one charge per request on the remote side: nothing repeated, nothing lost.
        assert platform.platform.state()["charges"] == {k: 1 for k in keys}
        # Exactly one result row per request for the HIS, with the platform's charge id.
        inbox = store.query("SELECT business_key, COUNT(*), MAX(order_id) FROM mi_inbox "
                            "WHERE result_type = 'charge' GROUP BY business_key")
        assert {r[0]: int(r[1]) for r in inbox} == {k: 1 for k in keys}
        # Every call the dead daemon began is in the journal, its outcome recorded
        # or left open (NULL) for auditors; none vanished.
        assert store.query("SELECT COUNT(*) FROM mi_journal WHERE interface = 'charge'")[0][0] >= len(keys)
    finally:
        store.close()
        platform.stop()


def test_sigterm_lets_in_flight_calls_finish_and_leaves_the_rest_pending(db_url, tmp_path):
    import time

    import httpx

    platform = RunningTestPlatform(timeout_delay=1.5)
    store = Store(db_url)
    try:
        keys = [f"INV-T{i}" for i in range(6)]
        for k in keys:
            store.enqueue("test.charge", k, {"patient_id": "P", "total_amount": "2.00"})
        # Every charge takes 1.5 s: the 2 workers are mid-call when SIGTERM arrives.
        httpx.post(platform.url + "/__faults__", json={"path": "/charge", "fault": "timeout", "times": 100})
        d = DaemonProcess(tmp_path, db_url, platform.url, name="term", workers=2, lease=10, timeout=5.0)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and platform.platform.state()["calls"] < 2:
            time.sleep(0.05)
        assert d.terminate(30) == 0, d.tail()
        states = {r[0]: r[1] for r in store.query("SELECT business_key, state FROM mi_outbox")}
        done = [k for k, s in states.items() if s == "done"]
        # The rows in flight finished (charge and notify); nothing else was started.
        assert len(done) == 2, states
        assert all(s in ("done", "pending") for s in states.values()), states
        assert store.query("SELECT COUNT(*) FROM mi_outbox WHERE lease_owner IS NOT NULL")[0][0] == 0
        fresh = DaemonProcess(tmp_path, db_url, platform.url, name="after", workers=2, lease=10, timeout=5.0)
        try:
            assert wait_until_final(store, 60, fresh) == {"done": len(keys)}
        finally:
            assert fresh.terminate() == 0
        assert platform.platform.state()["charges"] == {k: 1 for k in keys}
    finally:
        store.close()
        platform.stop()
