"""Migration 004 on a database of the previous release: the payments, refunds, reversals and
cancellations it holds are booked; running the migration again (MariaDB commits each DDL
statement, so a failed run is simply run again) books nothing twice."""
from __future__ import annotations

import pytest

from bridge.db import schema
from bridge.db.dialects import get_dialect
from bridge.db.scripts import run_script, sql_dir
from bridge.db.store import Store
from bridge.db.url import parse_url
from tests.conftest import make_database

from .helpers import D, money


def _connect(url: str):
    u = parse_url(url)
    return get_dialect(u.dialect).connect(u)


def _upgrade_to(url: str, dialect: str, version: int) -> None:
    conn = _connect(url)
    try:
        for mig in schema.migrations(dialect)[:version]:
            run_script(conn, dialect, mig.path)
    finally:
        conn.close()


def _old_rows(store: Store) -> None:
    """What version 3 wrote: inbox rows only (plain SQL, as the old Store had no book)."""
    def req(kind, key, serial=None):
        store.execute("INSERT INTO mi_outbox (kind, business_key, serial_key, payload, state) "
                      "VALUES (:k, :b, :s, '{}', 'done')", {"k": kind, "b": key, "s": serial or key})
        return int(store.query("SELECT id FROM mi_outbox WHERE kind = :k AND business_key = :b",
                               {"k": kind, "b": key})[0][0])

    def inbox(oid, kind, key, rtype, outcome, order_id, setl_id, total, fund, acct, cash):
        store.execute("""INSERT INTO mi_inbox (outbox_id, kind, business_key, result_type, outcome, order_id,
                                               settlement_id, total_amount, fund_amount, account_amount, cash_amount)
                         VALUES (:o, :k, :b, :t, :oc, :oi, :si, :ta, :fa, :aa, :ca)""",
                      dict(o=oid, k=kind, b=key, t=rtype, oc=outcome, oi=order_id, si=setl_id, ta=total, fa=fund,
                           aa=acct, ca=cash))

    p1 = req("mobilepay.outpatient", "INV-1")
    inbox(p1, "mobilepay.outpatient", "INV-1", "order", "ok", "PO1", None, "30.00", "20.00", "5.00", "5.00")
    inbox(p1, "mobilepay.outpatient", "INV-1", "settlement", "ok", "PO1", "PO1", "30.00", "20.00", "5.00", "5.00")
    r1 = req("mobilepay.refund", "RF-1", "INV-1")
    inbox(r1, "mobilepay.refund", "RF-1", "refund", "ok", "PO1", "RFD1", "5.00", "0.00", "0.00", "5.00")
    p2 = req("mobilepay.outpatient", "INV-2")
    inbox(p2, "mobilepay.outpatient", "INV-2", "settlement", "ok", "PO2", "PO2", "10.00", "10.00", "0.00", "0.00")
    inbox(p2, "mobilepay.outpatient", "INV-2", "reversal", "failed", "PO2", "MIBR2", "10.00", "10.00", "0.00", "0.00")
    s3 = req("facepay.outpatient.settle", "S-3")
    inbox(s3, "facepay.outpatient.settle", "S-3", "settlement", "ok", None, "SETL3", "100.00", "70.00", "30.00", "0.00")
    c3 = req("facepay.outpatient.cancel", "C-3", "S-3")
    inbox(c3, "facepay.outpatient.cancel", "C-3", "cancellation", "ok", None, "SETL3", "100.00", "70.00", "30.00",
          "0.00")
    t4 = req("test.charge", "T-4")
    inbox(t4, "test.charge", "T-4", "settlement", "ok", "X4", None, "1.00", None, None, None)


def _book(store: Store) -> list[tuple]:
    rows = store.query("""SELECT platform_order_id, platform, channel, business_key, status, total_amount,
                                 refunded_total, refunded_cash, refund_count FROM mi_order ORDER BY platform_order_id""")
    return [(r[0], r[1], r[2], r[3], r[4], money(r[5]), money(r[6]), money(r[7]), int(r[8])) for r in rows]


EXPECTED = [("PO1", "mobilepay", "unknown", "INV-1", "partly_refunded", D("30.00"), D("5.00"), D("5.00"), 1),
            ("PO2", "mobilepay", "unknown", "INV-2", "reversed", D("10.00"), D("10.00"), D("0.00"), 1),
            ("SETL3", "facepay", "none", "S-3", "cancelled", D("100.00"), D("100.00"), D("0.00"), 1)]


def test_the_migration_books_what_the_previous_release_wrote(dialect, tmp_path):
    url, drop = make_database(dialect, tmp_path, install=False)
    try:
        _upgrade_to(url, dialect, 3)
        store = Store(url)
        _old_rows(store)
        conn = _connect(url)
        assert schema.upgrade(conn, dialect)[1][0] == "004_reconciliation"      # then 005, 006
        conn.close()
        assert _book(store) == EXPECTED
        refunds = store.query("""SELECT refund_type, business_key, platform_order_id, state FROM mi_order_refund
                                  ORDER BY platform_order_id""")
        assert [tuple(r) for r in refunds] == [("refund", "RF-1", "PO1", "booked"),
                                               ("reversal", "INV-2", "PO2", "booked"),
                                               ("cancellation", "C-3", "SETL3", "booked")]
        store.close()
    finally:
        drop()


@pytest.mark.parametrize("dialect", ["mysql"])
def test_the_mariadb_migration_runs_again_without_booking_twice(dialect, tmp_path):
    url, drop = make_database(dialect, tmp_path, install=False)
    try:
        _upgrade_to(url, dialect, 3)
        store = Store(url)
        _old_rows(store)
        conn = _connect(url)
        schema.upgrade(conn, dialect)
        run_script(conn, dialect, sql_dir() / dialect / "migrations" / "004_reconciliation.sql")
        conn.close()
        assert _book(store) == EXPECTED
        assert int(store.query("SELECT COUNT(*) FROM mi_order_refund")[0][0]) == 3
        store.close()
    finally:
        drop()
