"""PostgreSQL stops and starts while the daemon works: it reconnects and finishes."""
from __future__ import annotations

import os
import subprocess
import time

import pytest

from bridge.db.store import Store
from bridge.testflow.platform import RunningTestPlatform
from tests.conftest import make_database

from .daemonproc import DaemonProcess, wait_until_final

pytestmark = pytest.mark.slow


def pg_ctl(action: str) -> None:
    ctl = os.environ.get("MIBRIDGE_TEST_PG_CTL")
    if not ctl:
        msg = "MIBRIDGE_TEST_PG_CTL not set: this test restarts the server .ci/run started"
        if os.environ.get("MIBRIDGE_REQUIRE_SERVERS") == "1":
            pytest.fail(msg)
        pytest.skip(msg)
    subprocess.run(f"{ctl} {action}", shell=True, check=True, stdout=subprocess.DEVNULL, timeout=60)


@pytest.fixture
def restartable_db_url(tmp_path):
    """A database on the server this test restarts: .ci/run gives it a server of its
    own (MIBRIDGE_TEST_PG_RESTART_URL), so the tests running beside it in other
    workers keep theirs.  Without one, the usual server (run this test alone then)."""
    url, drop = make_database("postgresql", tmp_path,
                              admin_url=os.environ.get("MIBRIDGE_TEST_PG_RESTART_URL") or None)
    yield url
    drop()


def test_daemon_rides_out_a_database_restart(restartable_db_url, tmp_path):
    db_url = restartable_db_url
    platform = RunningTestPlatform(timeout_delay=0.5)
    store = Store(db_url)
    daemon = None
    try:
        keys = [f"INV-{i}" for i in range(30)]
        for k in keys:
            store.enqueue("test.charge", k, {"patient_id": "P", "total_amount": "3.00"})
        # Slow the platform down so calls are in flight when the database goes.
        import httpx
        httpx.post(platform.url + "/__faults__", json={"path": "/notify", "fault": "timeout", "times": 8})
        daemon = DaemonProcess(tmp_path, db_url, platform.url, workers=3, lease=3, timeout=2.0)
        # The database goes once the daemon is at work (its first charge booked), not after a
        # fixed second: a daemon still starting on a loaded machine met a database that was
        # already down, and never lost one under its feet.
        deadline = time.monotonic() + 60
        while not platform.platform.state()["charges"] and time.monotonic() < deadline:
            assert daemon.proc.poll() is None, daemon.tail()
            time.sleep(0.05)
        assert platform.platform.state()["charges"], daemon.tail()
        pg_ctl("stop -m fast -w")
        time.sleep(3.0)
        pg_ctl("start -w")
        store.close()
        counts = wait_until_final(store, 90, daemon)
        assert counts == {"done": len(keys)}, daemon.tail()
        assert platform.platform.state()["charges"] == {k: 1 for k in keys}
        assert "retrying" in daemon.log.read_text() or "unavailable" in daemon.log.read_text()
    finally:
        if daemon is not None:
            assert daemon.terminate() == 0, daemon.tail()
        store.close()
        platform.stop()
