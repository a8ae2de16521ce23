"""The [regions] section and a REAL daemon process (python -m daemon.cli run) on SQLite,
PostgreSQL and MariaDB with the simulator over HTTP: at start it applies the config's list
and asks 1901, and the list the view shows is the merge of both; a section that cannot work
stops the daemon with one clear line."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bridge.db.store import Store
from bridge.regions import storage
from daemon.config import ConfigError, load
from tests.conftest import make_database
from tests.engine.daemonproc import DaemonProcess

from .conftest import SIM_REGIONS, offline_toml

ROOT = Path(__file__).resolve().parents[2]

REGIONS = """
[regions]
refresh_from_platform = true
refresh_hour = 3

[[regions.region]]
admdvs = "440100"
name = "广州"
channels = ["wechat", "kiosk"]
insutypes = ["310"]
sort_order = 1

[[regions.region]]
admdvs = "445100"
name = "潮州市"
enabled = false
"""


def wait_for(pred, timeout=30.0, proc=None):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = pred()
        if got:
            return got
        if proc is not None and proc.proc.poll() is not None:
            raise AssertionError(f"daemon exited: {proc.tail()}")
        time.sleep(0.2)
    raise AssertionError(f"timed out; daemon log:\n{proc.tail() if proc else ''}")


def test_the_daemon_applies_the_config_and_the_platforms_list_at_start(dialect, tmp_path, sim, msgid_dir):
    url, drop = make_database(dialect, tmp_path)
    proc = DaemonProcess(tmp_path, url, None, extra=offline_toml(sim.creds, msgid_dir) + REGIONS)
    store = Store(url)
    try:
        def merged():
            rows = storage.read_all(store)
            done = set(rows) == set(SIM_REGIONS) | {"445100"} and rows["440100"].source == "config"
            return rows if done and all(rows[c].source == "1901" for c in SIM_REGIONS if c != "440100") else None
        rows = wait_for(merged, proc=proc)
        assert rows["440100"].channels == ("wechat", "kiosk") and rows["440100"].insutypes == ("310",)
        assert not rows["445100"].enabled
        view = storage.read_view(store)
        assert [v["admdvs"] for v in view] == ["440100", "440300", "440600", "442000"]
        log = wait_for(lambda: "1901 listed 4 region(s)" in proc.log.read_text() and proc.log.read_text(), proc=proc)
        assert "region list (1901 refresh): added 440300 深圳市" in log
    finally:
        proc.terminate()
        store.close()
        drop()


def _run(*args, cwd=None) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "daemon.cli", *args], capture_output=True, text=True, env=env,
                          cwd=cwd or ROOT, timeout=120)


@pytest.mark.parametrize("offline, message", [
    (False, "[regions] refresh_from_platform needs the [offline] section"),
    (True, "[regions] refresh_from_platform needs [offline] region_dictionary_type"),
])
def test_a_refresh_that_cannot_work_stops_the_daemon_with_one_line(tmp_path, sim, msgid_dir, offline, message):
    url, _ = make_database("sqlite", tmp_path)
    cfg = tmp_path / "m.toml"
    cfg.write_text(f'[database]\nurl = "{url}"\n'
                   + (offline_toml(sim.creds, msgid_dir, dictionary_type=None) if offline else "")
                   + "[regions]\nrefresh_from_platform = true\n")
    r = _run("-c", str(cfg), "run")
    assert r.returncode != 0 and message in r.stderr and "Traceback" not in r.stderr, r.stderr


@pytest.mark.parametrize("text, message", [
    ('[[regions.region]]\nadmdvs = "44010"\nname = "x"\n', "[regions] region.0.admdvs: admdvs must be a 6-digit"),
    ('[[regions.region]]\nadmdvs = 440100\nname = "x"\n', "[regions] region.0.admdvs: Input should be a valid string"),
    ('[[regions.region]]\nadmdvs = "440100"\nname = "x"\nchannels = ["wechat", "fax"]\n',
     "[regions] region.0.channels: unknown channel fax"),
    ('[[regions.region]]\nadmdvs = "440100"\nname = "x"\n[[regions.region]]\nadmdvs = "440100"\nname = "y"\n',
     "[regions] region: 440100 is listed twice"),
    ('[regions]\nrefresh_form_platform = true\n', "did you mean refresh_from_platform?"),
    ('[[regions.region]]\nadmdvs = "440100"\n', "[regions] region.0.name: required"),
    ('[regions]\nrefresh_hour = 24\n', "[regions] refresh_hour"),
])
def test_the_section_is_checked_key_by_key(tmp_path, text, message):
    f = tmp_path / "m.toml"
    f.write_text(text)
    with pytest.raises(ConfigError) as ei:
        load(f)
    assert message in str(ei.value), str(ei.value)


def test_a_good_section_loads(tmp_path):
    f = tmp_path / "m.toml"
    f.write_text(REGIONS)
    from daemon.regions import settings
    s = settings(load(f))
    assert [r.admdvs for r in s.regions()] == ["440100", "445100"] and s.refresh_hour == 3
    assert s.regions()[1].channels == ("wechat", "alipay", "counter", "kiosk") and not s.regions()[1].enabled
