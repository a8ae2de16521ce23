"""The command line as a new administrator meets it: every failure is one clear
line and a non-zero exit status, never a traceback (issue 15 lists the ones
that crashed); the arguments work the way they are written."""
from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from bridge.db.store import Store
from tests.conftest import server_url
from tests.ops.helpers import fill

ROOT = Path(__file__).resolve().parents[2]


def mibridge(*args, cwd=None, env=None, stdin=None):
    e = dict(os.environ, PYTHONPATH=str(ROOT))
    for k in ("MIBRIDGE_CONFIG", "MIBRIDGE_DB_URL", "MIBRIDGE_DB_PASSWORD"):
        e.pop(k, None)
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "daemon.cli", *args], capture_output=True, text=True,
                          timeout=120, cwd=cwd or ROOT, env=e, input=stdin)


def one_clear_line(r, *words):
    assert r.returncode != 0, r
    assert "Traceback" not in r.stderr + r.stdout, r.stderr
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("mibridge: "), r.stderr
    for w in words:
        assert w in lines[0], (w, lines[0])
    return lines[0]


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture
def db(sqlite_url):
    s = Store(sqlite_url)
    ids = fill(s)
    s.close()
    return sqlite_url, ids


def test_status_without_a_config_says_so_and_creates_no_database(tmp_path):
    r = mibridge("status", cwd=tmp_path)
    one_clear_line(r, "no configuration", "-c FILE")
    assert r.returncode == 1 and not (tmp_path / "mibridge.db").exists()
    # A config whose SQLite file does not exist: said, and not created either.
    cfg = tmp_path / "m.toml"
    cfg.write_text('[database]\nurl = "sqlite:///nothing-here.db"\n')
    r = mibridge("-c", str(cfg), "status", cwd=tmp_path)
    one_clear_line(r, "no database at nothing-here.db")
    assert not (tmp_path / "nothing-here.db").exists()


@pytest.mark.parametrize("command", [["status"], ["requeue", "1", "--note", "x"], ["resolve", "1", "--note", "x"],
                                     ["cancel", "1", "--note", "x"], ["doctor", "--no-sign-in"], ["orders"]])
def test_an_unreachable_database_is_one_line(command):
    url = f"postgresql://nobody@127.0.0.1:{closed_port()}/hisdb?connect_timeout=2"
    r = mibridge(*command, "--url", url)
    if command[0] == "doctor":
        assert r.returncode == 1 and "Traceback" not in r.stdout + r.stderr
        assert re.search(r"^BAD\s+database\s+not reachable", r.stdout, re.M), r.stdout
        return
    one_clear_line(r, "cannot reach the database")
    assert r.returncode == 1


def test_a_wrong_database_password_is_one_line():
    admin = server_url("mysql")
    from bridge.db.url import parse_url

    u = parse_url(admin)
    url = f"mysql://{u.user}@{u.host}:{u.port}/{u.database}"
    r = mibridge("status", "--url", url, env={"MIBRIDGE_DB_PASSWORD": "certainly-not-the-password"})
    one_clear_line(r, "the database refused the login", "Access denied")
    # -v shows the details, traceback included, for whoever needs them.
    r = mibridge("-v", "status", "--url", url, env={"MIBRIDGE_DB_PASSWORD": "certainly-not-the-password"})
    assert r.returncode == 1 and "Traceback" in r.stderr and "OperationalError" in r.stderr


def test_admin_commands_say_what_the_database_refused(db):
    url, ids = db
    r = mibridge("resolve", "9999", "--note", "x", "--url", url)
    one_clear_line(r, "resolve 9999 refused", "does not exist")
    assert r.returncode == 2
    r = mibridge("cancel", str(ids["held_doubt"]), "--note", "x", "--url", url)
    one_clear_line(r, "may have moved money")
    r = mibridge("requeue", str(ids["done"]), "--note", "x", "--url", url)
    one_clear_line(r, "not held")
    r = mibridge("cancel", str(ids["pending"]), "--note", "patient left", "--url", url)
    assert r.returncode == 0 and "cancelled" in r.stdout, r.stderr


def test_enqueue_with_a_payload_the_database_refuses(db):
    url, _ = db
    r = mibridge("enqueue", "test.charge", "INV-X", "--payload", '{"total_amount": "1.005"}', "--url", url)
    one_clear_line(r, "the database refused the request", "total_amount")
    r = mibridge("enqueue", "test.charge", "INV-Y", "--payload", "[1, 2]", "--url", url)
    one_clear_line(r, "JSON object")


def test_enqueue_of_a_key_named_simulator_is_not_the_simulator_command(db):
    url, _ = db
    r = mibridge("enqueue", "test.noop", "simulator", "--payload", "{}", "--url", url)
    assert r.returncode == 0, r.stderr
    s = Store(url)
    assert s.query("SELECT kind FROM mi_outbox WHERE business_key = 'simulator'")[0][0] == "test.noop"
    s.close()


def test_config_before_or_after_the_command_and_the_status_hint(db, tmp_path):
    url, ids = db
    cfg = tmp_path / "m.toml"
    cfg.write_text(f'[database]\nurl = "{url}"\n')
    before = mibridge("-c", str(cfg), "status")
    after = mibridge("status", "-c", str(cfg))
    same = lambda out: re.sub(r"\d+ s old", "N s old", out)  # noqa: E731
    assert before.returncode == after.returncode == 2 and same(before.stdout) == same(after.stdout)
    assert "requeue ID --note" in before.stdout and "resolve ID --note" in before.stdout
    assert re.search(r"^held\s+2$", before.stdout, re.M) and "NOTIFY_FAILED" in before.stdout


def test_version_and_every_option_has_help():
    r = mibridge("--version")
    assert r.returncode == 0 and re.fullmatch(r"mibridge \S+\n", r.stdout)
    from daemon.cli import build_parser
    import argparse

    missing = []

    def walk(parser, path):
        for a in parser._actions:
            if isinstance(a, argparse._SubParsersAction):
                for name, sub in a.choices.items():
                    walk(sub, path + [name])
            elif not isinstance(a, (argparse._HelpAction, argparse._VersionAction)) and not a.help:
                missing.append((" ".join(path), a.dest))
    walk(build_parser(), ["mibridge"])
    assert not missing, missing


def test_console_hash_makes_a_hash_the_console_accepts():
    r = mibridge("console-hash", stdin="a-long-enough-password\n")
    assert r.returncode == 0 and r.stdout.startswith(("scrypt:", "pbkdf2:"))
    from werkzeug.security import check_password_hash
    assert check_password_hash(r.stdout.strip(), "a-long-enough-password")
    one_clear_line(mibridge("console-hash", stdin="short\n"), "at least 10 characters")


def test_run_refuses_a_database_at_an_older_schema(tmp_path):
    from bridge.db.dialects import get_dialect
    from bridge.db.scripts import run_script, sql_dir
    from bridge.db.url import parse_url

    url = f"sqlite:///{tmp_path / 'old.db'}"
    conn = get_dialect("sqlite").connect(parse_url(url))
    run_script(conn, "sqlite", sql_dir() / "sqlite" / "migrations" / "001_baseline.sql")
    conn.close()
    cfg = tmp_path / "m.toml"
    cfg.write_text(f'[database]\nurl = "{url}"\n')
    r = mibridge("-c", str(cfg), "run")
    one_clear_line(r, "schema version 1", "mibridge db upgrade")


@pytest.mark.parametrize("argv, words", [
    (["run", "--workers", "-2"], "argument --workers: -2 is not between 1 and 256"),
    (["run", "--workers", "0"], "argument --workers: 0 is not between 1 and 256"),
    (["orders", "--limit", "-1"], "argument --limit: -1 is not between 1 and 100000"),
    (["orders", "--limit", "ten"], "argument --limit: 'ten' is not a whole number"),
])
def test_a_count_out_of_range_is_refused_before_anything_runs(argv, words, capsys):
    """`run --workers -2` used to start a daemon with no worker at all (it claimed nothing and
    said so only as "-2 worker(s)"); `orders --limit -1` meant no limit on SQLite and an error
    on PostgreSQL."""
    from daemon.cli import build_parser

    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and words in err and "Traceback" not in err
    assert build_parser().parse_args(["run", "--workers", "256"]).workers == 256
