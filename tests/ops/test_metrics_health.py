"""Metrics and health: /metrics scraped from a real daemon (and checked by
promtool where Debian's prometheus package provides it), /healthz and /readyz,
a second daemon on a port that is taken, platform outages at WARNING
(rate-limited), JSON logs and systemd's notify protocol."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bridge.db.store import InboxRow, Store
from bridge.engine import events
from bridge.testflow.platform import RunningTestPlatform
from tests.engine.daemonproc import DaemonProcess, wait_until_final


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def samples(text: str) -> dict:
    """{(name, frozenset(labels)): value} of an exposition."""
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def wait_http(url: str, timeout: float = 30.0) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return httpx.get(url, timeout=2)
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _daemon_with_metrics(tmp_path, db_url):
    platform = RunningTestPlatform()
    port = free_port()
    extra = f'\n[metrics]\nenabled = true\nlisten = "127.0.0.1:{port}"\ncache_seconds = 0\n'
    proc = DaemonProcess(tmp_path, db_url, platform.url, extra=extra)
    return proc, f"http://127.0.0.1:{port}", platform


@pytest.fixture
def daemon_with_metrics(tmp_path, sqlite_url):
    proc, base, platform = _daemon_with_metrics(tmp_path, sqlite_url)
    yield proc, base, platform
    proc.terminate()
    platform.stop()


@pytest.fixture
def daemon_with_metrics_every_db(tmp_path, db_url):
    """The same on every database: the figures read on scrape are SQL of each dialect."""
    proc, base, platform = _daemon_with_metrics(tmp_path, db_url)
    yield proc, base, platform
    proc.terminate()
    platform.stop()


def test_metrics_are_scraped_from_a_real_daemon_and_pass_promtool(daemon_with_metrics_every_db, db_url, tmp_path):
    proc, base, platform = daemon_with_metrics_every_db
    store = Store(db_url)
    for n in range(3):
        store.enqueue("test.charge", f"INV-M{n}", {"patient_id": "P", "total_amount": "1.00"})
    assert wait_until_final(store, 60, proc) == {"done": 3}
    # A held row, as a person would meet it.
    held = store.enqueue("test.noop", "NOOP-H", {})
    store.execute("UPDATE mi_outbox SET state = 'held', last_error_code = 'UNKNOWN_KIND' WHERE id = :i",
                  {"i": held})
    job = ("mibridge_job_runs_total", frozenset({("task", "lease-recovery"), ("result", "ok")}))
    deadline = time.monotonic() + 60
    while True:         # the lease-recovery job runs every [daemon] recovery_interval
        r = wait_http(base + "/metrics")
        got = samples(r.text)
        if job in got or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    assert got[("mibridge_requests", frozenset({("kind", "test.charge"), ("state", "done")}))] == 3
    assert got[("mibridge_held_requests", frozenset({("reason", "UNKNOWN_KIND")}))] == 1
    assert ("mibridge_oldest_pending_age_seconds", frozenset()) in got
    assert ("mibridge_oldest_in_doubt_age_seconds", frozenset()) in got
    assert got[("mibridge_database_up", frozenset())] == 1
    assert got[("mibridge_platform_calls_total", frozenset({("interface", "charge"), ("outcome", "ok")}))] >= 3
    assert got[("mibridge_platform_call_duration_seconds_count", frozenset({("interface", "charge")}))] >= 3
    assert got[("mibridge_claim_duration_seconds_count", frozenset())] >= 3
    assert got[("mibridge_claimed_rows_total", frozenset())] >= 3
    assert got[("mibridge_job_runs_total", frozenset({("task", "lease-recovery"), ("result", "ok")}))] >= 1
    assert got[("mibridge_ready", frozenset())] == 1
    (tmp_path / "metrics.txt").write_text(r.text)
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian's prometheus package provides it); the exposition "
                    "was parsed by prometheus_client instead")
    check = subprocess.run([promtool, "check", "metrics"], input=r.text, capture_output=True, text=True,
                           timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    store.close()


def test_healthz_and_readyz(daemon_with_metrics):
    proc, base, _ = daemon_with_metrics
    assert wait_http(base + "/healthz").text == "ok\n"
    deadline = time.monotonic() + 60
    while True:
        r = httpx.get(base + "/readyz", timeout=5)
        if r.status_code == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert r.status_code == 200 and r.text.startswith("ready\n") and "database: ok" in r.text
    assert httpx.post(base + "/metrics", timeout=5).status_code == 405


def test_a_second_daemon_on_a_port_that_is_taken_says_so(daemon_with_metrics, tmp_path, sqlite_url):
    db_url = sqlite_url
    proc, base, platform = daemon_with_metrics
    wait_http(base + "/healthz")
    port = base.rsplit(":", 1)[1]
    second = DaemonProcess(tmp_path, db_url, platform.url, name="second",
                           extra=f'\n[metrics]\nenabled = true\nlisten = "127.0.0.1:{port}"\n')
    rc = second.wait_exit(60)
    out = (tmp_path / "second.stderr").read_text()
    assert rc == 1
    assert f"cannot listen on 127.0.0.1:{port}" in out and "Traceback" not in out, out
    assert len([l for l in out.splitlines() if l.strip()]) == 1, out
    # The first daemon is unharmed.
    assert httpx.get(base + "/healthz", timeout=5).status_code == 200


def test_readyz_says_not_ready_when_the_database_cannot_be_reached(tmp_path):
    from daemon.config import Config
    from daemon.metrics import HealthApp, Metrics
    from daemon.service import Daemon
    from bridge.engine.flow import Registry

    cfg = Config()
    cfg.database.url = f"sqlite:///{tmp_path / 'missing' / 'nothing.db'}"
    cfg.metrics.enabled = True
    d = Daemon(cfg, Registry())
    ready, checks = d.readiness()
    assert not ready and checks["database"].startswith("unreachable") and "worker" in checks["workers"]
    app = HealthApp(d.metrics, d.readiness)
    status = {}
    body = b"".join(app({"PATH_INFO": "/readyz", "REQUEST_METHOD": "GET"},
                        lambda s, h: status.setdefault("s", s)))
    assert status["s"].startswith("503") and b"not ready" in body
    status.clear()
    body = b"".join(app({"PATH_INFO": "/metrics", "REQUEST_METHOD": "GET"}, lambda s, h: status.setdefault("s", s)))
    got = samples(body.decode())
    assert got[("mibridge_database_up", frozenset())] == 0 and got[("mibridge_ready", frozenset())] == 0
    d.metrics.close()


def test_engine_events_fill_the_counters(tmp_path):
    from daemon.metrics import Metrics

    m = Metrics(lambda: Store(f"sqlite:///{tmp_path / 'none.db'}"))
    m.subscribe()
    try:
        events.emit("call", interface="6202", outcome="unknown", seconds=1.2, transient=False, message="timeout")
        events.emit("notice", interface="6302", verdict="refused", reason="signature")
        events.emit("heartbeat", renewed=False)
        events.emit("rescue", rows=2)
        events.emit("job", job="purge", result="failed", seconds=None)
        got = samples(m.exposition().decode())
    finally:
        m.close()
    assert got[("mibridge_platform_calls_total", frozenset({("interface", "6202"), ("outcome", "unknown")}))] == 1
    assert got[("mibridge_platform_call_duration_seconds_bucket",
                frozenset({("interface", "6202"), ("le", "2.5")}))] == 1
    assert got[("mibridge_notices_total", frozenset({("interface", "6302"), ("verdict", "refused")}))] == 1
    assert got[("mibridge_lease_renewals_total", frozenset({("result", "lost")}))] == 1
    assert got[("mibridge_lease_rescues_total", frozenset())] == 2
    assert got[("mibridge_job_runs_total", frozenset({("task", "purge"), ("result", "failed")}))] == 1
    # Unsubscribed: nothing more is counted.
    events.emit("rescue", rows=5)
    assert samples(m.exposition().decode())[("mibridge_lease_rescues_total", frozenset())] == 2


def test_a_platform_outage_is_one_warning_per_interface_per_minute_with_a_count(capsys):
    from loguru import logger

    from daemon import logs

    logs.setup("INFO")
    now = [0.0]
    outage = logs.OutageLog(60.0, clock=lambda: now[0])
    # 32 "Connection refused" in 4 minutes (the log), and a timeout on another interface.
    for i in range(32):
        now[0] = i * 7.5
        outage.on_call("6201", "not_sent", "not sent: ConnectError: [Errno 111] Connection refused")
    outage.on_call("9001", "unknown", "transport error after sending: ReadTimeout: timed out")
    outage.on_call("6201", "rejected", "the platform said no")        # a refusal is not an outage
    now[0] = 300.0
    outage.on_call("6201", "ok", None)
    err = capsys.readouterr().err
    lines = [l for l in err.splitlines() if "platform 6201" in l]
    assert all("| WARNING |" in l for l in lines), lines
    assert 3 <= len(lines) <= 6, lines                   # not 32
    counted = sum(int(l.split("still cannot be reached: ")[1].split()[0]) for l in lines if "still" in l)
    assert 1 + counted <= 32 and "answers again after 32 failed call(s)" in err
    assert any("platform 9001 cannot be reached" in l for l in err.splitlines())
    logger.remove()


def test_json_logs_for_log_shippers(tmp_path):
    from loguru import logger

    from daemon import logs

    path = tmp_path / "j.log"
    logs.setup("INFO", str(path), format="json")
    logger.info("patient phone 13812345678 paid")
    logger.remove()
    rec = json.loads(path.read_text().splitlines()[0])
    assert rec["record"]["level"]["name"] == "INFO"
    assert "13812345678" not in path.read_text() and "138****5678" in rec["record"]["message"]


def test_sd_notify_sends_ready_and_watchdog_to_the_notify_socket(tmp_path, monkeypatch):
    from daemon import sdnotify

    assert sdnotify.notify("READY=1") is False          # not under systemd: nothing to do
    path = str(tmp_path / "notify.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    try:
        monkeypatch.setenv("NOTIFY_SOCKET", path)
        assert sdnotify.notify("READY=1", "STATUS=running")
        assert s.recv(1024) == b"READY=1\nSTATUS=running"
        monkeypatch.setenv("WATCHDOG_USEC", "20000000")
        monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
        assert sdnotify.watchdog_interval() == 10.0
        monkeypatch.setenv("WATCHDOG_PID", "1")          # meant for another process
        assert sdnotify.watchdog_interval() is None
    finally:
        s.close()


def test_a_listener_that_cannot_start_stops_the_start_before_any_worker_or_job(tmp_path, sqlite_url):
    """The listeners are bound first: a port that is taken claims no row and runs no job."""
    from bridge.engine.flow import Registry
    from daemon.config import Config
    from daemon.http_server import ListenError
    from daemon.service import Daemon

    cfg = Config()
    cfg.database.url = sqlite_url
    started = []

    def ok_server(daemon):
        started.append("ok")
        return lambda: started.append("stopped")

    def taken(daemon):
        raise ListenError("cannot listen on 127.0.0.1:1: Address already in use")
    d = Daemon(cfg, Registry(), servers=[ok_server, taken])
    with pytest.raises(ListenError):
        d.start()
    assert d._threads == [] and d.scheduler is None and not d.heartbeat._thread.is_alive()
    assert started == ["ok", "stopped"]          # the one that did start is closed again


def test_the_daemon_serves_the_console_and_metrics_on_one_listener(tmp_path, sqlite_url, monkeypatch):
    """[console] and [metrics] on the same address: one listener serves both; the
    console inside the daemon shows its scheduled tasks with their last runs."""
    import re as _re

    from tests.ops.helpers import _HASHES, PASSWORDS

    port = free_port()
    env = {"MI_CONSOLE_SECRET": "s" * 40, "MI_HASH_OLGA": _HASHES["olga"]}
    extra = (f'\n[metrics]\nenabled = true\nlisten = "127.0.0.1:{port}"\n'
             f'\n[console]\nenabled = true\nlisten = "127.0.0.1:{port}"\nsecret_key_env = "MI_CONSOLE_SECRET"\n'
             f'[[console.users]]\nname = "olga"\nrole = "operator"\npassword_hash_env = "MI_HASH_OLGA"\n')
    proc = DaemonProcess(tmp_path, sqlite_url, None, extra=extra, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        assert wait_http(base + "/healthz").status_code == 200
        with httpx.Client(base_url=base, timeout=10) as c:
            login = c.get("/login")
            token = _re.search(r'name="csrf_token" value="([^"]+)"', login.text).group(1)
            r = c.post("/login", data={"name": "olga", "password": PASSWORDS["olga"], "csrf_token": token})
            assert r.status_code == 302, r.text
            # Until lease recovery (every 0.5 s here) shows a last run.  Only its own row is read:
            # the purge row below it (nightly) says "not run yet" for the whole test.
            deadline = time.monotonic() + 60
            while True:
                page = c.get("/").text
                row = _re.search(r"<tr><td>lease recovery</td>(.*?)</tr>", page)
                if row and "outcome-ok" in row.group(1) or time.monotonic() > deadline:
                    break
                time.sleep(0.3)
            assert row and "not run yet" not in row.group(1) and ">ok<" in row.group(1), page[-2000:]
            assert "purge" in page
        assert "mibridge_requests" in httpx.get(base + "/metrics", timeout=5).text or \
            "mibridge_database_up" in httpx.get(base + "/metrics", timeout=5).text
    finally:
        proc.terminate()


def test_the_console_refuses_to_start_without_its_secret(tmp_path, sqlite_url):
    extra = ('\n[console]\nenabled = true\nsecret_key_env = "MI_NOT_SET_ANYWHERE"\n'
             '[[console.users]]\nname = "olga"\nrole = "operator"\npassword_hash_env = "MI_NOT_SET_EITHER"\n')
    proc = DaemonProcess(tmp_path, sqlite_url, None, name="nosecret", extra=extra)
    rc = proc.wait_exit(60)
    out = (tmp_path / "nosecret.stderr").read_text()
    assert rc == 2 and "MI_NOT_SET_EITHER is not set" in out and "Traceback" not in out, out
