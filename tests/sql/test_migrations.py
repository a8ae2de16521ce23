"""A schema that can be upgraded (issue 11, section 4): a database installed by
the previous release (8e75f34), with rows in it, upgrades to the new schema
with nothing lost; install.sql and 001 + every migration give the same
catalog; `mibridge db install|upgrade|uninstall` say what they did, refuse
what would do harm, and never print a traceback."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from bridge.db import schema
from bridge.db.dialects import get_dialect
from bridge.db.scripts import run_script, script_path, sql_dir
from bridge.db.store import InboxRow, Store
from bridge.db.url import parse_url
from tests.conftest import make_database
from tests.sql.catalog import catalog

ROOT = Path(__file__).resolve().parents[2]
PREVIOUS_RELEASE = "8e75f34"
TABLES = ["mi_outbox", "mi_inbox", "mi_journal", "mi_identity", "mi_audit", "mi_notice"]


def cli(*args, env: dict | None = None) -> subprocess.CompletedProcess:
    e = dict(os.environ, PYTHONPATH=str(ROOT), **(env or {}))
    return subprocess.run([sys.executable, "-m", "daemon.cli", *args], capture_output=True, text=True,
                          env=e, cwd=ROOT, timeout=300)


def _connect(url: str):
    u = parse_url(url)
    return get_dialect(u.dialect).connect(u)


def _install_previous_release(url: str) -> None:
    conn = _connect(url)
    try:
        run_script(conn, parse_url(url).dialect, sql_dir() / parse_url(url).dialect / "migrations" / "001_baseline.sql")
    finally:
        conn.close()


def _fill(store: Store) -> None:
    """Rows of every kind the previous release wrote: finished and open requests,
    consumed and unread inbox rows, journal, identity, audit, notice."""
    done = store.enqueue("test.charge", "INV-1", {"patient_id": "P1", "total_amount": "12.50"}, serial_key="V-1")
    held = store.enqueue("test.charge", "INV-2", {"patient_id": "P2", "total_amount": "3.05"}, serial_key="V-2")
    store.enqueue("test.charge", "INV-3", {"patient_id": "P3", "total_amount": "1.00", "note": "退费"},
                  serial_key="V-1")
    rows = {r.id: r for r in store.claim("w", 30, limit=5)}
    _old_begin_call(store, done, "MSG-1", '{"masked": true}')
    store.end_call("MSG-1", "ok", 200, '{"ok": true}', None)
    store.finish(rows[done], "w", "done", {"charge_id": "CH1"},
                 [InboxRow("charge", "ok", order_id="CH1", total_amount=Decimal("12.50"),
                           fund_amount=Decimal("10.05"), cash_amount=Decimal("2.45"), result={"a": "中文"})],
                 )
    # The previous release's identity row: its own columns (migration 007 added more).
    store.execute("INSERT INTO mi_identity (his_patient_id, psn_no, insutype, source_outbox_id) "
                  "VALUES ('P1', 'PSN-1', '310', :o)", {"o": done})
    _old_begin_call(store, held, "MSG-2", "{}")
    store.release(rows[held], "w", "held", 0, {}, error_code="CHARGE_IN_DOUBT", error_message="needs a person",
                  keep_call=True)
    # The previous release's requeue: its own two statements (no mi_requeue yet).
    store.execute("UPDATE mi_outbox SET state = 'in_doubt', attempts = 0 WHERE id = :i AND state = 'held'",
                  {"i": held})
    store.execute("INSERT INTO mi_audit (outbox_id, action, actor, note) VALUES (:i, 'requeue', 'dba@old', "
                  "'checked')", {"i": held})
    inbox_id = store.query("SELECT id FROM mi_inbox WHERE outbox_id = :o", {"o": done})[0][0]
    store.execute("UPDATE mi_inbox SET consumed_at = created_at, his_ack = 'accepted' WHERE id = :i", {"i": inbox_id})
    store.execute("""INSERT INTO mi_inbox (outbox_id, kind, business_key, result_type, outcome, error_code)
                     VALUES (:o, 'test.charge', 'INV-2', 'held', 'held', 'CHARGE_IN_DOUBT')""", {"o": held})
    store.record_notice("6302", "PO-1", "INV-1", done, {"payOrdId": "PO-1", "ordStas": "6"})


def _old_begin_call(store: Store, row_id: int, msg: str, request: str) -> None:
    """The journal row and the mark, as the previous release wrote them (no unsafe column)."""
    store.execute("UPDATE mi_outbox SET current_call = :m, call_unsafe = 1 WHERE id = :i", {"m": msg, "i": row_id})
    store.execute("""INSERT INTO mi_journal (msg_id, outbox_id, step, interface, request_masked)
                     VALUES (:m, :i, 'charge', 'charge', :r)""", {"m": msg, "i": row_id, "r": request})


def _dump(store: Store) -> dict:
    return {t: [tuple(r) for r in store.query(f"SELECT * FROM {t} ORDER BY 1")] for t in TABLES}


def test_the_baseline_is_the_previous_release_as_it_was():
    """001_baseline.sql must never change: it is what live databases have."""
    try:
        for d in ("postgresql", "mysql", "sqlite", "oracle", "sqlserver"):
            old = subprocess.run(["git", "show", f"{PREVIOUS_RELEASE}:sql/{d}/install.sql"], cwd=ROOT,
                                 capture_output=True, check=True).stdout
            assert (sql_dir() / d / "migrations" / "001_baseline.sql").read_bytes() == old, d
    except (subprocess.CalledProcessError, FileNotFoundError):
        pytest.skip(f"no git history with {PREVIOUS_RELEASE} here")


def test_a_database_of_the_previous_release_upgrades_with_nothing_lost(dialect, tmp_path):
    url, drop = make_database(dialect, tmp_path, install=False)
    try:
        _install_previous_release(url)
        store = Store(url)
        _fill(store)
        before = _dump(store)
        store.close()

        status = cli("db", "status", "--url", url)
        assert status.returncode == 0 and "schema version 1;" in status.stdout, status
        up = cli("db", "upgrade", "--url", url)
        assert up.returncode == 0, up.stderr
        latest = schema.latest_version(dialect)
        assert f"from schema version 1 to {latest}" in up.stdout and "002_hardening" in up.stdout
        again = cli("db", "upgrade", "--url", url)
        assert again.returncode == 0 and "nothing to do" in again.stdout, again

        store = Store(url)
        # Every row as it was; migrations only add columns, at the end (005: the journal's
        # unsafe flag and the audit's db_login; 007: the identity's writeback columns; NULL for rows
        # written before).
        after = _dump(store)
        assert {t: [r[:len(before[t][0])] for r in rows] if before[t] else rows for t, rows in after.items()} \
            == before
        assert all(set(r[len(before[t][0]):]) <= {None} for t, rows in after.items() if before[t] for r in rows)
        # The engine goes on with the rows it had: the open ones run, the new rules hold.
        assert sorted(r.business_key for r in store.claim("w2", 30, limit=5)) == ["INV-2", "INV-3"]
        with pytest.raises(Exception) as ei:
            store.enqueue("test.charge", "INV-4 ", {"patient_id": "P4", "total_amount": "1.00"})
        assert "mibridge: business_key must not start or end with a blank" in str(ei.value)
        store.close()
    finally:
        drop()


def test_install_sql_is_the_baseline_plus_every_migration(dialect, tmp_path):
    fresh_url, drop_fresh = make_database(dialect, tmp_path)
    old_url, drop_old = make_database(dialect, tmp_path, install=False)
    try:
        _install_previous_release(old_url)
        conn = _connect(old_url)
        schema.upgrade(conn, dialect)
        conn.close()
        fresh, upgraded = Store(fresh_url), Store(old_url)
        a, b = catalog(fresh), catalog(upgraded)
        for part in a:
            assert a[part] == b[part], f"{dialect} {part}: install.sql and 001+migrations differ"
        assert [r[:2] for r in fresh.query("SELECT version, name FROM mi_schema_version ORDER BY version")] == \
            [r[:2] for r in upgraded.query("SELECT version, name FROM mi_schema_version ORDER BY version")] == \
            [(m.version, m.name) for m in schema.migrations(dialect)]
        fresh.close()
        upgraded.close()
    finally:
        drop_fresh()
        drop_old()


def test_db_install_on_an_installed_database_says_so(dialect, tmp_path):
    url, drop = make_database(dialect, tmp_path, install=False)
    try:
        first = cli("db", "install", "--url", url)
        assert first.returncode == 0 and f"schema version {schema.latest_version(dialect)} installed" in first.stdout
        second = cli("db", "install", "--url", url)
        assert second.returncode == 1 and "Traceback" not in second.stderr
        assert f"already installed here (schema version {schema.latest_version(dialect)})" in second.stderr
    finally:
        drop()


def test_db_install_on_the_previous_release_points_to_upgrade(tmp_path):
    url, _ = make_database("sqlite", tmp_path, install=False)
    _install_previous_release(url)
    r = cli("db", "install", "--url", url)
    assert r.returncode == 1 and "schema version 1" in r.stderr and "mibridge db upgrade" in r.stderr


def test_db_uninstall_refuses_while_requests_are_open_unless_forced(dialect, tmp_path):
    url, drop = make_database(dialect, tmp_path)
    try:
        s = Store(url)
        s.enqueue("test.charge", "INV-1", {"patient_id": "P1", "total_amount": "1.00"})
        s.close()
        r = cli("db", "uninstall", "--url", url)
        assert r.returncode == 1 and "refusing to uninstall" in r.stderr and "1 pending" in r.stderr, r
        assert Store(url).query("SELECT COUNT(*) FROM mi_outbox")[0][0] == 1
        r = cli("db", "uninstall", "--url", url, "--force")
        assert r.returncode == 0, r.stderr
        conn = _connect(url)
        assert schema.installed_version(conn, dialect) is None
        conn.close()
    finally:
        drop()


def test_uninstall_refuses_while_an_his_object_uses_ours(dialect, tmp_path):
    """The example trigger left behind would fail every HIS charge insert."""
    url, drop = make_database(dialect, tmp_path)
    try:
        conn = _connect(url)
        run_script(conn, dialect, script_path(dialect, "examples/his_charge_trigger.sql"))
        conn.close()
        r = cli("db", "uninstall", "--url", url, "--force")
        assert r.returncode == 1 and "not uninstalled" in r.stderr and "his_charge_mi" in r.stderr.lower(), r.stderr
        assert "Traceback" not in r.stderr
        s = Store(url)
        assert s.query("SELECT COUNT(*) FROM mi_outbox")[0][0] == 0     # still installed
        s.execute("INSERT INTO his_charge (charge_no, visit_no, patient_id, amount) VALUES ('C1', 'V1', 'P1', 1.00)")
        assert s.query("SELECT COUNT(*) FROM mi_outbox")[0][0] == 1
        s.close()
    finally:
        drop()


def test_a_failed_migration_stops_with_a_clear_message_and_keeps_nothing_of_it(dialect, tmp_path):
    """A migration that fails half way: non-zero exit, the name and the cause,
    the version unchanged; where DDL is transactional, nothing of it kept."""
    url, drop = make_database(dialect, tmp_path)
    fake = tmp_path / "sql"
    shutil.copytree(sql_dir(), fake)
    nxt = schema.latest_version(dialect) + 1
    bad = {"sqlserver": "CREATE TABLE mi_probe (a INT);\nGO\nSELECT * FROM mi_no_such_table;\nGO\n",
           "oracle": "CREATE TABLE mi_probe (a NUMBER)\n/\nSELECT * FROM mi_no_such_table\n/\n"}.get(
        dialect, "CREATE TABLE mi_probe (a INT);\nSELECT * FROM mi_no_such_table;\n")
    if dialect == "sqlite":
        bad = "BEGIN IMMEDIATE;\n" + bad + "COMMIT;\n"
    (fake / dialect / "migrations" / f"{nxt:03d}_broken_on_purpose.sql").write_text(bad)
    try:
        r = cli("db", "upgrade", "--url", url, env={"MIBRIDGE_SQL_DIR": str(fake)})
        assert r.returncode == 1 and "Traceback" not in r.stderr
        assert f"migration {nxt:03d}_broken_on_purpose failed" in r.stderr
        assert f"schema version {nxt - 1}" in r.stderr and "mi_no_such_table" in r.stderr
        conn = _connect(url)
        assert schema.installed_version(conn, dialect) == nxt - 1
        conn.close()
        if dialect in schema.TRANSACTIONAL_DDL:
            with pytest.raises(Exception):
                Store(url).query("SELECT COUNT(*) FROM mi_probe")
    finally:
        drop()
