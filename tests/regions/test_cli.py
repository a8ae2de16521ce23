"""mibridge regions as a DBA runs it, on SQLite, PostgreSQL and MariaDB: load (UTF-8 and GBK,
good and bad files, --replace, --dry-run), list, enable/disable, config, refresh against the
simulator; every failure one clear message, never a traceback, nothing half loaded."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bridge.db.dialects import get_dialect
from bridge.db.scripts import run_script, sql_dir
from bridge.db.store import Store
from bridge.db.url import parse_url
from bridge.regions import storage
from tests.conftest import make_database
from tests.engine.daemonproc import without_password

from .conftest import offline_toml

ROOT = Path(__file__).resolve().parents[2]
GOOD = ("admdvs,name,enabled,channels,insutypes,sort_order\n"
        "440100,广州市,1,wechat;alipay,310;390,1\n"
        "440300,深圳市,1,,,2\n"
        "442000,中山市,0,,,\n")


def run(*args) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, "-m", "daemon.cli", *args], capture_output=True, text=True, env=env,
                       cwd=ROOT, timeout=120)
    assert "Traceback" not in r.stderr + r.stdout, r.stderr
    return r


@pytest.fixture
def url(db_url):
    return db_url


def test_load_list_enable_disable(url, tmp_path):
    f = tmp_path / "regions.csv"
    f.write_bytes(GOOD.encode("gbk"))
    r = run("regions", "load", str(f), "--url", url)
    assert r.returncode == 0, r.stderr
    assert "3 region(s) read (gbk)" in r.stdout and "csv load: 3 added, 0 changed, 0 unchanged" in r.stdout
    r = run("regions", "list", "--url", url)
    lines = r.stdout.splitlines()
    assert r.returncode == 0 and lines[0].split() == ["admdvs", "name", "channels", "insutypes", "sort", "source"]
    assert [l.split()[0] for l in lines[1:]] == ["440100", "440300"]
    assert lines[1].split()[1:4] == ["广州市", "wechat/alipay", "310,390"]
    r = run("regions", "list", "--all", "--json", "--url", url)
    rows = json.loads(r.stdout)
    assert [(x["admdvs"], x["enabled"]) for x in rows] == [("440100", 1), ("440300", 1), ("442000", 0)]
    r = run("regions", "enable", "442000", "--url", url)
    assert r.returncode == 0 and "442000 中山市: enabled, source csv -> manual" in r.stdout
    r = run("regions", "disable", "440100", "--url", url)
    assert r.returncode == 0 and "440100 广州市: disabled" in r.stdout
    assert [v["admdvs"] for v in storage.read_view(Store(url))] == ["440300", "442000"]
    r = run("regions", "enable", "445100", "--url", url)
    assert r.returncode == 1 and "445100 is not in the region list" in r.stderr
    r = run("regions", "enable", "4451", "--url", url)
    assert r.returncode == 1 and "6-digit" in r.stderr


def test_a_bad_file_loads_nothing_and_says_where(url, tmp_path):
    run("regions", "load", str(_file(tmp_path, GOOD)), "--url", url)
    before = storage.read_all(Store(url))
    bad = GOOD.replace("440300,深圳市,1,,,2", "44030,深圳市,maybe,,,2") + "445100,潮州市,1,wechat;fax,,\n"
    r = run("regions", "load", str(_file(tmp_path, bad, "bad.csv")), "--url", url, "--replace")
    assert r.returncode == 1
    assert "3 problem(s) in the file, nothing was loaded" in r.stderr
    assert "line 3, column admdvs: admdvs must be a 6-digit division code such as 440100, not '44030'" in r.stderr
    assert "line 3, column enabled:" in r.stderr and "line 5, column channels: unknown channel fax" in r.stderr
    assert storage.read_all(Store(url)) == before
    r = run("regions", "load", str(tmp_path / "none.csv"), "--url", url)
    assert r.returncode == 1 and "cannot read the file" in r.stderr


def test_replace_and_dry_run(url, tmp_path):
    run("regions", "load", str(_file(tmp_path, GOOD)), "--url", url)
    only = _file(tmp_path, "admdvs,name\n440300,深圳\n", "only.csv")
    r = run("regions", "load", str(only), "--replace", "--dry-run", "--url", url)
    assert r.returncode == 0 and r.stdout.splitlines()[1].startswith("would apply csv load --replace: 0 added, 2 changed")
    assert len(storage.read_view(Store(url))) == 2                     # nothing changed
    r = run("regions", "load", str(only), "--replace", "--url", url)
    assert r.returncode == 0 and "440100 广州市: disabled" in r.stdout
    rows = storage.read_all(Store(url))
    assert [k for k, v in rows.items() if v.enabled] == ["440300"] and rows["440300"].name == "深圳"
    # the name column only: the channels and insutypes 440300 had are kept
    assert rows["440300"].sort_order == 2


def test_config_and_refresh_from_the_command_line(url, tmp_path, sim, msgid_dir):
    u, password = without_password(url)
    cfg = tmp_path / "m.toml"
    cfg.write_text(f'[database]\nurl = "{u}"\n' + offline_toml(sim.creds, msgid_dir)
                   + '[[regions.region]]\nadmdvs = "440300"\nname = "深圳"\nchannels = ["kiosk"]\n')
    env = {"MIBRIDGE_DB_PASSWORD": password} if password else {}
    os.environ.update(env)
    try:
        r = run("-c", str(cfg), "regions", "refresh")
        assert r.returncode == 0, r.stderr
        assert "1901 listed 4 region(s)" in r.stdout and "1901 refresh: 4 added" in r.stdout
        run("regions", "load", str(_file(tmp_path, "admdvs,name\n440600,佛山\n")), "--url", url)
        r = run("-c", str(cfg), "regions", "config")
        assert r.returncode == 0 and "440300 深圳市: name 深圳市 -> 深圳, channels" in r.stdout
        sim.set_regions({"440100": "广州市"})
        r = run("-c", str(cfg), "regions", "refresh")
        assert r.returncode == 0
        assert "note: 440600 佛山: the platform no longer lists it; left enabled because csv set it" in r.stdout
        assert "note: 440300 深圳: the platform no longer lists it; left enabled because config set it" in r.stdout
        assert "442000 中山市: disabled" in r.stdout
    finally:
        for k in env:
            os.environ.pop(k, None)


def test_refresh_without_the_gateway_or_on_an_old_schema_says_what_to_do(tmp_path):
    url, _ = make_database("sqlite", tmp_path)
    cfg = tmp_path / "m.toml"
    cfg.write_text(f'[database]\nurl = "{url}"\n')
    r = run("-c", str(cfg), "regions", "refresh")
    assert r.returncode == 1 and "needs the [offline] section" in r.stderr
    old = f"sqlite:///{tmp_path / 'old.db'}"
    conn = get_dialect("sqlite").connect(parse_url(old))
    run_script(conn, "sqlite", sql_dir() / "sqlite" / "migrations" / "001_baseline.sql")
    conn.close()
    r = run("regions", "list", "--url", old)
    assert r.returncode == 1 and "mibridge db upgrade" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def _file(tmp_path, text, name="regions.csv"):
    f = tmp_path / name
    f.write_text(text, encoding="utf-8")
    return f
