"""The order book on real databases: the Store books payments and refunds from the inbox
rows it writes, in the same transaction; purge keeps the book; a booking that fails never
loses the inbox row."""
from __future__ import annotations

import pytest

from bridge.db import orderbook
from bridge.db.store import Store

from .helpers import D, claim_row, money, refund, settlement, setlinfo, write


@pytest.fixture
def store(db_url):
    s = Store(db_url)
    yield s
    s.close()


def _refunds(store: Store, order_id: int) -> list[tuple]:
    return [(r[0], r[1], money(r[2]), money(r[3]), money(r[4]), money(r[5]))
            for r in store.query("""SELECT refund_type, business_key, total_amount, fund_amount, account_amount,
                                           cash_amount FROM mi_order_refund WHERE order_ref = :o ORDER BY id""",
                                 {"o": order_id})]


def test_a_mobile_payment_and_its_refunds_are_booked_per_leg(store):
    write(store, "mobilepay.outpatient", "INV-1", [settlement(
        "PO1", "120.00", "70.00", "30.00", "20.00", settlement_id="SETL1", channel="wechat",
        mix_trade_no="MIX1", out_trade_no="OTN1", transaction_id="4200001", traceTime="20240301235959")])
    o = store.order("PO1")
    assert (o["platform"], o["channel"], o["business_key"], o["settlement_id"]) == \
        ("mobilepay", "wechat", "INV-1", "SETL1")
    assert (o["mix_trade_no"], o["out_trade_no"], o["trade_no"], o["settle_day"]) == \
        ("MIX1", "OTN1", "4200001", "2024-03-01")
    assert (o["total_amount"], o["fund_amount"], o["account_amount"], o["cash_amount"], o["status"]) == \
        (D("120.00"), D("70.00"), D("30.00"), D("20.00"), "paid")

    write(store, "mobilepay.refund", "RF-1", [refund("PO1", "5.50", "0.00", "0.00", "5.50",
                                                     settlement_id="RFD1", out_refund_no="WXR1")], serial="INV-1")
    o = store.order("PO1")
    assert (o["status"], o["refunded_total"], o["refunded_cash"], o["refund_count"]) == \
        ("partly_refunded", D("5.50"), D("5.50"), 1)
    write(store, "mobilepay.refund", "RF-2", [refund("PO1", "114.50", "70.00", "30.00", "14.50")], serial="INV-1")
    o = store.order("PO1")
    assert (o["status"], o["refunded_total"], o["refunded_fund"], o["refunded_account"], o["refunded_cash"],
            o["refund_count"]) == ("refunded", D("120.00"), D("70.00"), D("30.00"), D("20.00"), 2)
    assert _refunds(store, o["id"]) == [("refund", "RF-1", D("5.50"), D("0.00"), D("0.00"), D("5.50")),
                                        ("refund", "RF-2", D("114.50"), D("70.00"), D("30.00"), D("14.50"))]
    view = store.query("SELECT refund_count, last_refund_key, net_amount FROM mi_v_orders WHERE business_key = 'INV-1'")
    assert (int(view[0][0]), view[0][1], money(view[0][2])) == (2, "RF-2", D("0.00"))
    r = store.query("""SELECT payment_key, out_refund_no, refund_ref FROM mi_v_order_refunds
                        WHERE business_key = 'RF-1'""")
    assert tuple(r[0]) == ("INV-1", "WXR1", "RFD1")


def test_an_alipay_payment_keeps_its_medical_order_and_trade_numbers(store):
    """What the Alipay leg's settlement row carries (bridge/mobilepay/payment.py, the ids of
    bridge/channels/status.py): chnl_ord_sn is Alipay's medical order, kept where WeChat's
    mixed order is; trade_no is the cash trade's own number."""
    write(store, "mobilepay.outpatient", "INV-A", [settlement(
        "PO2", "120.00", "84.00", "0.00", "36.00", channel="alipay", out_trade_no="MBPINV_2DA",
        chnl_ord_sn="MED2024030100001", trade_no="2024030122001", traceTime="20240301093000")])
    o = store.order("PO2")
    assert (o["channel"], o["mix_trade_no"], o["out_trade_no"], o["trade_no"]) == \
        ("alipay", "MED2024030100001", "MBPINV_2DA", "2024030122001")


def test_a_repair_reversal_marks_the_payment_reversed(store):
    """The 单边账 repair: the payment request ends failed/REVERSED with a full refund."""
    claimed, owner = claim_row(store, "mobilepay.outpatient", "INV-2b")
    store.advance(claimed, owner, "await_his", {}, inbox=[settlement("PO2", "50.00", "35.00", "15.00", "0.00")])
    store.finish(claimed, owner, "failed", {}, [refund("PO2", "50.00", "35.00", "15.00", "0.00",
                                                       result_type="reversal", outcome="failed",
                                                       settlement_id="MIBR1")])
    o = store.order("PO2")
    assert (o["status"], o["refunded_total"], o["refund_count"]) == ("reversed", D("50.00"), 1)
    assert _refunds(store, o["id"])[0][:2] == ("reversal", "INV-2b")


def test_a_face_pay_settlement_takes_its_offline_facts_from_the_journal_and_its_cancel_books(store):
    """The face-pay flows do not put insutype/clr_type/psn_no into `result` yet: the settling
    call's journalled answer gives them (and the cancel answer's time gives the cancel day)."""
    write(store, "facepay.outpatient.settle", "S-1",
          [settlement(None, "100.00", "70.00", "30.00", "0.00", settlement_id="SETL9", setl_id="SETL9",
                      face_pay=True, refNo="REF77", termSeqNo="T0001")],
          journal=[("2207", setlinfo("OTHER")), ("2207", setlinfo("SETL9", insutype="390", clr_type="11",
                                                                  setl_time="2024-03-02 00:10:00"))])
    o = store.query("""SELECT platform, channel, psn_no, mdtrt_id, insutype, clr_type, setl_optins, settle_day,
                              ref_no, term_seq_no FROM mi_order WHERE platform_order_id = 'SETL9'""")
    assert tuple(o[0]) == ("facepay", "none", "P1", "MD1", "390", "11", "440100", "2024-03-02", "REF77", "T0001")
    cancel_answer = setlinfo("SETL9", setl_time="2024-03-05 08:00:00")
    write(store, "facepay.outpatient.cancel", "C-1",
          [refund(None, "100.00", "70.00", "30.00", "0.00", result_type="cancellation", settlement_id="SETL9")],
          journal=[("2208", cancel_answer)], serial="S-1")
    o = store.order("SETL9")
    assert (o["status"], o["refunded_total"], o["refunded_account"]) == ("cancelled", D("100.00"), D("30.00"))
    day = store.query("SELECT refund_day, refund_type FROM mi_order_refund WHERE platform_order_id = 'SETL9'")
    assert tuple(day[0]) == ("2024-03-05", "cancellation")


def test_a_settlement_is_cancelled_once_in_the_book_whichever_request_says_so(store):
    """Review finding: a second request reporting the same cancellation (a retried cancel,
    the settle flow's own 单边账 cancel) booked a second cancellation and doubled
    refunded_total.  A cancellation or reversal books once per settlement."""
    write(store, "facepay.outpatient.settle", "S-7",
          [settlement(None, "80.00", "50.00", "30.00", "0.00", settlement_id="SETL7", setl_id="SETL7")])
    for key in ("C-7a", "C-7b"):
        write(store, "facepay.outpatient.cancel", key,
              [refund(None, "80.00", "50.00", "30.00", "0.00", result_type="cancellation", settlement_id="SETL7")],
              serial="S-7")
    o = store.order("SETL7")
    assert (o["status"], o["refunded_total"], o["refund_count"]) == ("cancelled", D("80.00"), 1)
    assert [r[:2] for r in _refunds(store, o["id"])] == [("cancellation", "C-7a")]


def test_rows_that_are_not_payments_book_nothing_and_a_repeat_books_once(store):
    write(store, "test.charge", "T-1", [settlement("X1", "1.00", "1.00", "0.00", "0.00")])
    write(store, "mobilepay.outpatient", "INV-3", [settlement("PO3", "9.00", "9.00", "0.00", "0.00"),
                                                   settlement("PO3", "9.00", "9.00", "0.00", "0.00")])
    write(store, "facepay.outpatient.settle", "S-2", [
        refund(None, "0.00", "0.00", "0.00", "0.00", result_type="settlement_reversed")])
    write(store, "mobilepay.refund", "RF-X", [refund("PO3", "1.00", "1.00", "0.00", "0.00", outcome="failed")])
    assert store.order("X1") is None
    assert int(store.query("SELECT COUNT(*) FROM mi_order")[0][0]) == 1
    assert int(store.query("SELECT COUNT(*) FROM mi_order_refund")[0][0]) == 0
    # A refund of a payment the book does not hold is kept, unmatched, for a person.
    write(store, "mobilepay.refund", "RF-Y", [refund("PO-UNKNOWN", "2.00", "2.00", "0.00", "0.00")])
    got = store.query("SELECT order_ref, state FROM mi_order_refund WHERE platform_order_id = 'PO-UNKNOWN'")
    assert (got[0][0], got[0][1]) == (None, "unmatched")


def test_purge_keeps_the_book_and_a_later_refund_still_finds_its_payment(store):
    write(store, "mobilepay.outpatient", "INV-4", [settlement("PO4", "80.00", "50.00", "10.00", "20.00")])
    store.execute("UPDATE mi_inbox SET consumed_at = created_at, his_ack = 'accepted'")
    store.execute(f"UPDATE mi_outbox SET finished_at = {store.dialect.after('age')}",
                  {"age": store.dialect.seconds(-90 * 86400)})
    assert store.purge(30) == 1
    assert int(store.query("SELECT COUNT(*) FROM mi_inbox")[0][0]) == 0
    write(store, "mobilepay.refund", "RF-4", [refund("PO4", "20.00", "0.00", "0.00", "20.00")], serial="INV-4")
    o = store.order("PO4")
    assert (o["status"], o["refunded_cash"], o["cash_amount"], o["business_key"]) == \
        ("partly_refunded", D("20.00"), D("20.00"), "INV-4")
    assert [r["platform_order_id"] for r in store.orders_of("INV-4")] == ["PO4"]


def test_a_booking_that_fails_rolls_back_alone_and_the_inbox_row_stays(store, monkeypatch):
    def broken(*a, **k):
        raise ValueError("simulated book failure")
    monkeypatch.setattr(orderbook, "_book_payment", broken)
    oid = write(store, "mobilepay.outpatient", "INV-5", [settlement("PO5", "3.00", "3.00", "0.00", "0.00")])
    assert store.order("PO5") is None
    rows = store.query("SELECT result_type FROM mi_inbox WHERE outbox_id = :o", {"o": oid})
    assert [r[0] for r in rows] == ["settlement"]
    assert store.query("SELECT state FROM mi_outbox WHERE id = :o", {"o": oid})[0][0] == "done"


def test_days_come_from_the_platforms_time_or_the_database_clock(store):
    assert orderbook.day_of("2024-03-01 23:59:59") == "2024-03-01"
    assert orderbook.day_of("20240301235959") == "2024-03-01"
    assert orderbook.day_of("2024-13-01") is None and orderbook.day_of(None) is None
    import datetime

    def china_today():
        return (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=8)).date().isoformat()
    before = china_today()
    write(store, "mobilepay.outpatient", "INV-6", [settlement("PO6", "1.00", "1.00", "0.00", "0.00")])
    assert store.order("PO6")["settle_day"] in {before, china_today()}
