"""The install scripts, the HIS-facing enqueue/consume calls and the DBA views,
on each real database."""
from __future__ import annotations

import json

import pytest

from bridge.db.dialects import get_dialect
from bridge.db.scripts import run_script, script_path
from bridge.db.store import InboxRow, Store
from bridge.db.url import parse_url

VIEWS = ["mi_v_pending", "mi_v_in_flight", "mi_v_held", "mi_v_failed", "mi_v_today"]
TABLES = ["mi_outbox", "mi_inbox", "mi_journal", "mi_identity", "mi_audit", "mi_notice", "mi_schema_version",
          "mi_secret"]


def his_enqueue(store: Store, kind, key, serial, payload) -> int:
    """Enqueue exactly as the documented HIS call for the dialect does it."""
    from tests.his_sql import his_enqueue as call

    if store.dialect.name == "sqlite":
        return store.enqueue(kind, key, payload, serial_key=serial)
    return call(store, kind, key, serial, payload)


def error_text(exc) -> str:
    return str(exc)


@pytest.fixture
def store(db_url):
    s = Store(db_url)
    yield s
    s.close()


def test_install_creates_only_mi_objects_and_uninstall_removes_them(db_url):
    store = Store(db_url)
    for t in TABLES + VIEWS:
        store.query(f"SELECT COUNT(*) FROM {t}")
    u = parse_url(db_url)
    conn = get_dialect(u.dialect).connect(u)
    run_script(conn, u.dialect, script_path(u.dialect, "uninstall.sql"))
    conn.close()
    store.close()
    for t in TABLES:
        with pytest.raises(Exception):
            Store(db_url).query(f"SELECT COUNT(*) FROM {t}")
    # And it installs again cleanly after an uninstall.
    conn = get_dialect(u.dialect).connect(u)
    run_script(conn, u.dialect, script_path(u.dialect, "install.sql"))
    conn.close()
    assert Store(db_url).query("SELECT COUNT(*) FROM mi_outbox")[0][0] == 0


def test_enqueue_returns_id_and_repeat_is_a_noop(store):
    p = json.dumps({"patient_id": "P1", "total_amount": "12.50"})
    a = his_enqueue(store, "test.charge", "INV-1", "V-1", p)
    b = his_enqueue(store, "test.charge", "INV-1", "V-1", p)
    assert a == b
    assert store.query("SELECT COUNT(*) FROM mi_outbox")[0][0] == 1
    row = store.query("SELECT state, serial_key, attempts FROM mi_outbox WHERE id = :id", {"id": a})[0]
    assert tuple(row) == ("pending", "V-1", 0)


def test_same_key_with_different_payload_is_refused(store):
    his_enqueue(store, "test.charge", "INV-1", "V-1", '{"total_amount": "12.50"}')
    with pytest.raises(Exception) as ei:
        his_enqueue(store, "test.charge", "INV-1", "V-1", '{"total_amount": "99.00"}')
    assert "already exists with a different payload" in error_text(ei.value)
    assert store.query("SELECT COUNT(*) FROM mi_outbox")[0][0] == 1
    # The same key under another kind is another request.
    his_enqueue(store, "test.refund", "INV-1", "V-1", '{"total_amount": "99.00"}')


@pytest.mark.parametrize("key, payload, message", [
    ("", '{"total_amount": "1.00"}', "business_key is required"),
    ("INV-2", '{not json', "not valid JSON"),
    ("INV-3", '[1, 2]', "must be a JSON object"),
    ("INV-4", '{"total_amount": "-1.00"}', "total_amount must be a non-negative amount"),
    ("INV-5", '{"total_amount": -1}', "total_amount must be a non-negative amount"),
    ("INV-6", '{"total_amount": "1.234"}', "total_amount must be a non-negative amount"),
    ("INV-7", '{"total_amount": "abc"}', "total_amount must be a non-negative amount"),
    ("INV-8", '{"total_amount": "."}', "total_amount must be a non-negative amount"),
    ("INV-9", '{"total_amount": "5."}', "total_amount must be a non-negative amount"),
    ("INV-10", '{"total_amount": "1..2"}', "total_amount must be a non-negative amount"),
])
def test_bad_input_is_refused_to_the_his_and_nothing_is_inserted(store, key, payload, message):
    with pytest.raises(Exception) as ei:
        his_enqueue(store, "test.charge", key, None, payload)
    assert message in error_text(ei.value)
    assert store.query("SELECT COUNT(*) FROM mi_outbox")[0][0] == 0


def test_missing_serial_key_defaults_to_business_key(store):
    if store.dialect.name == "sqlite":   # the documented INSERT, leaving the column out
        store.execute("""INSERT INTO mi_outbox (kind, business_key, payload)
                         VALUES ('test.charge', 'INV-9', '{"total_amount": "1.00"}')""")
        oid = store.query("SELECT id FROM mi_outbox WHERE business_key = 'INV-9'")[0][0]
    else:
        oid = his_enqueue(store, "test.charge", "INV-9", None, '{"total_amount": "1.00"}')
    assert store.query("SELECT serial_key FROM mi_outbox WHERE id = :id", {"id": oid})[0][0] == "INV-9"


def _consume(store: Store, inbox_id: int, ack: str) -> None:
    from tests.his_sql import his_consume

    his_consume(store, inbox_id, ack)


def test_inbox_typed_money_and_consume_once(store):
    from decimal import Decimal
    from bridge.db.store import ClaimedRow

    oid = store.enqueue("test.charge", "INV-1", {"patient_id": "P1", "total_amount": "12.50"})
    [row] = store.claim("w1", 30)
    store.finish(row, "w1", "done", {}, [InboxRow(result_type="charge", outcome="ok", order_id="CH1",
                                                  total_amount=Decimal("12.50"), fund_amount=Decimal("10.05"),
                                                  account_amount=Decimal("0"), cash_amount=Decimal("2.45"))])
    inbox_id, total, fund, cash = store.query(
        "SELECT id, total_amount, fund_amount, cash_amount FROM mi_inbox WHERE outbox_id = :o", {"o": oid})[0]
    assert Decimal(str(total)) == Decimal("12.50") and Decimal(str(fund)) + Decimal(str(cash)) == Decimal("12.50")
    _consume(store, inbox_id, "accepted")
    with pytest.raises(Exception) as ei:
        _consume(store, inbox_id, "accepted")
    assert "already consumed" in str(ei.value)
    assert store.query("SELECT his_ack FROM mi_inbox WHERE id = :i", {"i": inbox_id})[0][0] == "accepted"


def test_views_show_pending_held_failed_and_todays_totals(store):
    from decimal import Decimal

    a = store.enqueue("test.charge", "A", {"total_amount": "1.00"})
    b = store.enqueue("test.charge", "B", {"total_amount": "2.00"})
    c = store.enqueue("test.charge", "C", {"total_amount": "3.00"})
    rows = {r.id: r for r in store.claim("w", 30, limit=3)}
    store.release(rows[a], "w", "held", 0, {}, error_code="E1", error_message="needs a human",
                  keep_call=False)
    store.finish(rows[b], "w", "failed", {}, [InboxRow("error", "failed", "E2", "bad")],
                 error_code="E2", error_message="bad")
    store.finish(rows[c], "w", "done", {}, [InboxRow("charge", "ok", total_amount=Decimal("3.00"))])
    held = store.query("SELECT id, reason_code, reason FROM mi_v_held")
    assert [tuple(h) for h in held] == [(a, "E1", "needs a human")]
    assert [r[0] for r in store.query("SELECT id FROM mi_v_failed")] == [b]
    assert store.query("SELECT COUNT(*) FROM mi_v_pending")[0][0] == 0
    today = {(r[0], r[1]): (int(r[2]), r[3]) for r in store.query("SELECT kind, state, requests, total_amount FROM mi_v_today")}
    assert today[("test.charge", "done")][0] == 1
    assert Decimal(str(today[("test.charge", "done")][1])) == Decimal("3.00")
    assert today[("test.charge", "held")][0] == 1


def test_notice_is_recorded_once_per_platform_key_and_needs_no_outbox_row(store):
    insert = """INSERT INTO mi_notice (interface, notice_key, business_key, outbox_id, notice_json)
                VALUES ('6302', :k, 'ORD-1', :o, '{"payOrdId": "PO-1"}')"""
    # No foreign key: the outbox row may have been purged, or never existed.
    store.execute(insert, {"k": "PO-1", "o": 999999})
    row = store.query("""SELECT received_count, first_received_at, last_received_at, outbox_id
                           FROM mi_notice WHERE interface = '6302' AND notice_key = 'PO-1'""")[0]
    assert row[0] == 1 and row[1] is not None and row[1] == row[2] and row[3] == 999999
    with pytest.raises(Exception):
        store.execute(insert, {"k": "PO-1", "o": None})
    store.execute(insert, {"k": "PO-2", "o": None})  # another notice for the same order
    assert [r[0] for r in store.query("SELECT notice_key FROM mi_notice WHERE business_key = 'ORD-1' "
                                      "ORDER BY notice_key")] == ["PO-1", "PO-2"]


def test_mysql_rows_are_due_whatever_the_his_sessions_time_zone(store):
    if store.dialect.name != "mysql":
        pytest.skip("session time zones are a MariaDB matter (PostgreSQL uses timestamptz, SQLite UTC text)")

    def go(cur):
        cur.execute("SET time_zone = '+08:00'")
        cur.execute("INSERT INTO mi_outbox (kind, business_key, serial_key, payload) "
                    "VALUES ('test.charge', 'TZ-1', 'TZ-1', '{\"total_amount\": \"1.00\"}')")
    his = Store(store.url)
    his._tx(go)
    his.close()
    def go2(cur):
        cur.execute("SET time_zone = '-05:00'")
    store._tx(go2)
    assert [r.business_key for r in store.claim("w", 30)] == ["TZ-1"]
