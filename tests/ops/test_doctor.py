"""`mibridge doctor`: everything `run` needs, each failure named in words
(exit status 1): a secret that cannot be read, a key that does not parse, a
platform that does not answer, a sign-in that fails, an old schema, a clock
apart from the database's, a login without its grants."""
from __future__ import annotations

import secrets
import tempfile

import pytest

from bridge.simulator import SimulatorConfig, start_simulator
from daemon import doctor
from daemon.demo import _config
from tests.ops.test_cli_errors import closed_port, mibridge


@pytest.fixture(scope="module")
def sim():
    s = start_simulator(SimulatorConfig.generate(callback_url="http://127.0.0.1:9/notify"))
    yield s
    s.stop()


@pytest.fixture
def cfg(sim, sqlite_url, monkeypatch):
    c = _config(sqlite_url, sim, closed_port(), tempfile.mkdtemp(prefix="mi-doctor-"))
    c.platforms["facepay"].pop("terminal_url", None)
    return c


def by_name(checks) -> dict:
    return {c.name: c for c in checks}


def bad(checks) -> dict:
    return {c.name: c.detail for c in checks if not c.ok}


def test_a_healthy_setup_passes_every_check(cfg):
    checks = by_name(doctor.run_checks(cfg))
    assert not bad(checks.values()), bad(checks.values())
    for name in ("crypto", "database", "schema", "clock", "grants", "mobilepay secrets", "mobilepay keys",
                 "mobilepay base_url", "offline secrets", "offline base_url", "offline sign-in (9001)"):
        assert checks[name].ok, name
    assert "signed in" in checks["offline sign-in (9001)"].detail


def test_a_secret_that_cannot_be_read(cfg, monkeypatch):
    monkeypatch.delenv("MIBRIDGE_DEMO_MP_SECRET")
    got = bad(doctor.run_checks(cfg, sign_in=False))
    assert got == {"mobilepay": "[mobilepay] app_secret_env: environment variable MIBRIDGE_DEMO_MP_SECRET is not set"}


def test_a_key_that_does_not_parse(cfg):
    cfg.platforms["mobilepay"]["platform_public_key"] = "bm90IGEga2V5"
    got = bad(doctor.run_checks(cfg, sign_in=False))
    assert list(got) == ["mobilepay keys"] and "does not parse" in got["mobilepay keys"]


def test_platforms_that_do_not_answer_and_a_sign_in_that_fails(cfg):
    port = closed_port()
    cfg.platforms["mobilepay"]["base_url"] = f"http://127.0.0.1:{port}"
    cfg.platforms["offline"]["base_url"] = f"http://127.0.0.1:{port}/gw"
    got = bad(doctor.run_checks(cfg))
    assert set(got) == {"mobilepay base_url", "offline base_url", "offline sign-in (9001)"}
    assert "does not answer" in got["mobilepay base_url"] and "ConnectError" in got["offline base_url"]
    assert got["offline sign-in (9001)"].startswith("operator op001: ")


def test_an_old_schema_and_the_cli_exit_status(cfg, tmp_path):
    from bridge.db.dialects import get_dialect
    from bridge.db.scripts import run_script, sql_dir
    from bridge.db.url import parse_url

    url = f"sqlite:///{tmp_path / 'old.db'}"
    conn = get_dialect("sqlite").connect(parse_url(url))
    run_script(conn, "sqlite", sql_dir() / "sqlite" / "migrations" / "001_baseline.sql")
    conn.close()
    cfg.database.url = url
    got = bad(doctor.run_checks(cfg, sign_in=False))
    assert "version 1; this mibridge needs" in got["schema"] and "mibridge db upgrade" in got["schema"]
    toml = tmp_path / "m.toml"
    toml.write_text(f'[database]\nurl = "{url}"\n')
    r = mibridge("doctor", "-c", str(toml))
    assert r.returncode == 1 and "BAD  schema" in r.stdout and "1 problem(s)" in r.stdout, r.stdout


def test_a_clock_apart_from_the_databases(cfg, monkeypatch):
    real = doctor.time.time
    monkeypatch.setattr(doctor.time, "time", lambda: real() + 125)
    got = bad(doctor.run_checks(cfg, sign_in=False))
    assert list(got) == ["clock"] and "ahead of the database" in got["clock"] and "NTP" in got["clock"]


def test_a_login_without_its_grants(tmp_path, cfg):
    from bridge.db.dialects import get_dialect
    from bridge.db.url import parse_url
    from tests.conftest import make_database, server_url
    from tests.sql.test_grants import _url_as

    url, drop = make_database("postgresql", tmp_path)
    admin = parse_url(server_url("postgresql"))
    role = f"mi_half_{secrets.token_hex(3)}"
    d = get_dialect("postgresql")
    c = d.connect(parse_url(url), autocommit=True)
    c.execute(f'CREATE ROLE "{role}" LOGIN')
    c.execute(f'GRANT SELECT ON mi_outbox, mi_schema_version TO "{role}"')
    c.execute(f'GRANT SELECT, INSERT ON mi_journal TO "{role}"')
    c.close()
    try:
        cfg.platforms = {}
        cfg.database.url = _url_as(url, role)
        got = bad(doctor.run_checks(cfg))
        assert list(got) == ["grants"], got
        assert f"the login {role} lacks: INSERT on mi_outbox" in got["grants"]
        assert "UPDATE on mi_journal" in got["grants"] and "SELECT on mi_journal" not in got["grants"]
        assert "EXECUTE on mi_requeue" in got["grants"] and "grants.sql" in got["grants"]
    finally:
        drop()
        c = d.connect(admin, autocommit=True)
        c.execute(f'DROP ROLE IF EXISTS "{role}"')
        c.close()
