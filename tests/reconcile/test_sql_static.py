"""The reconciliation's SQL on Oracle and SQL Server, which cannot run here: every statement the
runs, the book and both reconcilers send, recorded through each driver's parameter style and
read by sqlglot; Oracle's binds match their names exactly and are never ''; no LIMIT where the
database has none.  And the views have the same columns, in the same order, in all five
install scripts."""
from __future__ import annotations

import re
from decimal import Decimal

import pytest
from sqlglot import exp

from bridge.db.store import Store
from bridge.reconcile.hospital import Book
from bridge.reconcile.model import BALANCED, Item
from bridge.reconcile.runs import Runs
from tests.engine.test_oracle_sqlserver import ORACLE_RESERVED
from tests.sql import ddl

URLS = {"oracle": "oracle://u:p@db:1521/HISPDB", "sqlserver": "mssql://u:p@db:1433/hisdb"}


class Cursor:
    def __init__(self, log):
        self.log, self.rowcount, self.last = log, 1, ""

    def execute(self, sql, params=None):
        self.log.append((sql, params))
        self.last = " ".join(sql.split())

    def executemany(self, sql, rows):
        for r in rows:
            self.log.append((sql, r))

    def fetchall(self):
        s = self.last
        if s.startswith("SELECT id FROM mi_recon_run WHERE active_key"):
            return [(7,)]
        if "GROUP BY diff_class" in s:
            return [("balanced", 1)]
        if s.startswith("SELECT MIN(id), MAX(id)"):
            return [(1, 2)]
        if s.startswith("SELECT COUNT(*)"):
            return [(0,)]
        return []


class Connection:
    def __init__(self):
        self.log = []

    def cursor(self):
        return Cursor(self.log)

    def commit(self):
        pass

    def rollback(self):
        pass

    def close(self):
        pass


def _recorded(dialect: str) -> list:
    s = Store(URLS[dialect])
    conn = Connection()
    s._conn = conn
    runs = Runs(s)
    run = runs.start("2024-03-01", "offline")
    runs.beat(run, step="x", done=1, total=2, force=True)
    runs.note(run, a=1)
    runs.add_items(run, [Item("S1", "total", BALANCED, "3201", Decimal("1.00"), Decimal("1.00"), business_key="K")])
    runs.add_bill_rows(run, [{"channel": "wechat", "bill_day": "2024-03-01", "line_no": 2, "row_type": "pay",
                              "out_trade_no": "OTN1", "amount": Decimal("1.00")}])
    list(runs.differences(run))
    runs.digest(run)
    runs.previous_digest("2024-03-01", "offline", run)
    runs.counts(run)
    runs.complete(run, balanced=True, counts={"balanced": 1}, digest="0", report=None)
    runs.supersede("2024-03-01", "offline", run)
    runs.fail(run, "x")
    runs.latest("2024-03-01", "offline")
    book = Book(s, 10)
    book.groups("2024-03-01", ("facepay", "kiosk"))
    list(book.movements("2024-03-01", ("facepay", "kiosk"), "440100", "11"))
    list(book.orders_of_day("2024-03-01", ("facepay", "kiosk"), filters={"setl_optins": "440100"}, ungrouped=True))
    list(book.unmatched_refunds("2024-03-01", ("facepay",)))
    book.orders_by("out_trade_no", ["OTN1"], "2024-03-01")
    book.itemized(run, ["S1"])
    # The offline reconciler's server-side balanced items and the mobile-pay queries.
    from bridge.reconcile.context import RunContext
    from bridge.reconcile.hospital import Group
    from bridge.reconcile.mobilepay import MobilePayReconciler
    from bridge.reconcile.offline import OfflineReconciler
    from bridge.reconcile.settings import ReconcileSettings
    ctx = RunContext(s, runs, run, "2024-03-01", ReconcileSettings(page_size=10), "/tmp")
    OfflineReconciler(None)._balanced_group(ctx, Group("440100", "310", "11"))
    mp = MobilePayReconciler(None)
    mp._bill_sums(ctx, ["OTN1"])
    mp._bill_only(ctx)
    mp._book_has_channel_cash(ctx, "wechat")
    mp._patients(ctx, [1])
    mp._unbooked_payments(ctx)
    s.secret_values([1], "payToken")
    return [(sql, p) for sql, p in conn.log if not re.match(r"\s*(SAVEPOINT|SAVE TRANSACTION|ROLLBACK)", sql)]


@pytest.mark.parametrize("dialect", ["oracle", "sqlserver"])
def test_every_reconciliation_statement_parses_and_binds(dialect):
    log = _recorded(dialect)
    assert len(log) > 30
    for sql, params in log:
        tree = ddl.parse(dialect, sql)
        assert not isinstance(tree, exp.Command), sql[:120]
        assert not re.search(r"\bLIMIT\b", sql, re.I), sql
        if dialect == "oracle":
            names = set(re.findall(r"(?<![:\w]):([A-Za-z_]\w*)", sql))
            assert names == set(params or {}), (sql, params)
            assert not names & {n.lower() for n in ORACLE_RESERVED}, names
            assert all(v not in ("", b"") for v in (params or {}).values()), (sql, params)
            assert not re.search(r"\bFROM\s+\w+\s+AS\s+\w+", sql, re.I), sql
        else:
            assert sql.count("?") == len(params or []), (sql, params)


VIEWS = ("mi_v_orders", "mi_v_order_refunds", "mi_v_reconciliation", "mi_v_recon_review", "mi_v_recon_days")


def _view_columns(dialect: str) -> dict[str, list[str]]:
    out = {}
    for st in ddl.statements(dialect, "install.sql"):
        m = re.match(r"\s*(?:--[^\n]*\n\s*)*CREATE\s+(?:OR\s+REPLACE\s+)?VIEW\s+(\w+)\s+AS\s+(.*)", st, re.S | re.I)
        if m and m.group(1).lower() in VIEWS:
            tree = ddl.parse(dialect, m.group(2))
            out[m.group(1).lower()] = [e.alias_or_name.lower() for e in tree.expressions]
    return out


def test_the_views_have_the_same_columns_on_every_database():
    ref = _view_columns("postgresql")
    assert set(ref) == set(VIEWS)
    for d in ddl.DIALECTS:
        assert _view_columns(d) == ref, d
