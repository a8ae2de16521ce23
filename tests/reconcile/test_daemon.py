"""[reconciliation] in the daemon's configuration, and the daily job through the daemon's
scheduler (a real daemon process, the simulator over HTTP)."""
from __future__ import annotations

import time

import pytest

from bridge.db.store import Store
from bridge.simulator import SimulatorConfig, start_simulator
from daemon.config import ConfigError, load
from tests.conftest import make_database
from tests.engine.daemonproc import DaemonProcess
from tests.facepay_flows.conftest import SECRET_ENV, daemon_toml


def _cfg(tmp_path, text: str):
    p = tmp_path / "m.toml"
    p.write_text(text)
    return load(p)


def test_the_section_is_checked_like_every_other(tmp_path):
    from daemon.reconcile_job import parts

    with pytest.raises(ConfigError) as ei:
        _cfg(tmp_path, "[reconciliation]\ncentre_qurey = 'all'\n")
    assert "[reconciliation] centre_qurey: unknown setting (did you mean centre_query?)" in str(ei.value)
    with pytest.raises(ConfigError) as ei:
        parts(_cfg(tmp_path, "[reconciliation]\nat = '25:00'\n"))
    assert "[reconciliation] at" in str(ei.value)
    with pytest.raises(ConfigError) as ei:
        parts(_cfg(tmp_path, "[reconciliation]\ncount_mode = 'some'\n"))
    assert "count_mode must be net or rows" in str(ei.value)
    settings, job = parts(_cfg(tmp_path, "[reconciliation]\nextra_groups = ['440100:310:11']\n"
                                         "result_codes = {'0' = 'balanced', '9' = 'amount_differs'}\n"))
    assert settings.extra_groups == ("440100:310:11",) and settings.result_codes["9"] == "amount_differs"
    assert (job.hour, job.minute, job.days_back, job.platforms) == (10, 30, 1, ["offline", "mobilepay"])


def test_the_daily_job_runs_in_the_daemon_and_catches_up_at_start(tmp_path):
    """Started after the day's run time with no completed run: the job runs it at once."""
    running = start_simulator(SimulatorConfig.generate(require_sign_no=True))
    url, drop = make_database("sqlite", tmp_path)
    msgid = tmp_path / "msgid"
    msgid.mkdir()
    creds = running.client_credentials()
    recon = '\n[reconciliation]\nat = "00:00"\ndays_back = 0\nplatforms = ["offline"]\ncall_retry_seconds = 0.1\n'
    proc = DaemonProcess(tmp_path, url, None, name="job", workers=1, lease=3.0,
                         extra=daemon_toml(creds, str(msgid)) + recon, env={SECRET_ENV: creds["offline"]["secret"]})
    store = Store(url)
    try:
        deadline = time.monotonic() + 60
        rows = []
        while time.monotonic() < deadline:
            rows = store.query("SELECT platform, state, balanced FROM mi_recon_run")
            if rows and rows[0][1] != "running":
                break
            time.sleep(0.3)
        assert [tuple(r) for r in rows] == [("offline", "done", 1)], proc.tail()
    finally:
        rc = proc.terminate()
        store.close()
        running.stop()
        drop()
    assert rc == 0, proc.tail()
