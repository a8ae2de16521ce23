"""grants.sql as shipped, for migration 004 (PostgreSQL and MariaDB): the daemon's login books
and reconciles with the rights it is given, and never deletes a book row; the HIS's login reads
the order book and the reconciliation through their views, and nothing else of them."""
from __future__ import annotations

from decimal import Decimal

from bridge.reconcile.model import BALANCED, Item
from bridge.reconcile.runs import Runs
from tests.sql.test_grants import _refused, logins  # noqa: F401 (the fixture)

from .helpers import refund, settlement, write


def test_the_daemon_books_and_reconciles_and_the_his_reads_the_views(logins):  # noqa: F811
    daemon = logins.store("daemon")
    write(daemon, "mobilepay.outpatient", "INV-1", [settlement("PO1", "10.00", "7.00", "3.00", "0.00")])
    write(daemon, "mobilepay.refund", "RF-1", [refund("PO1", "3.00", "0.00", "3.00", "0.00")], serial="INV-1")
    assert daemon.order("PO1")["status"] == "partly_refunded"
    runs = Runs(daemon)
    first = runs.start("2024-03-01", "offline")
    runs.add_items(first, [Item("S1", "total", BALANCED, "3201", Decimal("1.00"), Decimal("1.00"))])
    runs.complete(first, balanced=True, counts=runs.counts(first), digest=runs.digest(first), report=None)
    second = runs.start("2024-03-01", "offline")
    runs.add_items(second, [Item("S1", "total", BALANCED, "3201", Decimal("1.00"), Decimal("1.00"))])
    runs.complete(second, balanced=True, counts=runs.counts(second), digest=runs.digest(second), report=None)
    runs.supersede("2024-03-01", "offline", second)
    _refused(daemon, "DELETE FROM mi_order")
    _refused(daemon, "DELETE FROM mi_order_refund")
    _refused(daemon, "DELETE FROM mi_recon_run")

    his = logins.store("his")
    assert his.query("SELECT status, refund_count FROM mi_v_orders WHERE business_key = 'INV-1'")[0][0] == \
        "partly_refunded"
    assert his.query("SELECT payment_key FROM mi_v_order_refunds")[0][0] == "INV-1"
    assert int(his.query("SELECT run_id FROM mi_v_reconciliation")[0][0]) == second
    assert his.query("SELECT COUNT(*) FROM mi_v_recon_review")[0][0] == 0
    assert int(his.query("SELECT balanced FROM mi_v_recon_days")[0][0]) == 1
    for sql in ("SELECT COUNT(*) FROM mi_order", "SELECT COUNT(*) FROM mi_order_refund",
                "SELECT COUNT(*) FROM mi_recon_item", "SELECT COUNT(*) FROM mi_channel_bill",
                "SELECT COUNT(*) FROM mi_recon_run", "UPDATE mi_order SET status = 'paid'"):
        _refused(his, sql)
    his.close()
    daemon.close()
