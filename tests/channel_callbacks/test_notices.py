"""bridge/channels/notices.py on each database: what a verified callback is recorded as,
whose request it is, and what happens when that request is open, ended or unknown."""
from __future__ import annotations

from decimal import Decimal

import pytest

from bridge.alipay.messages import TradeStatus
from bridge.alipay.notify import TradeNotice
from bridge.channels import keys, notices
from bridge.db.store import Store
from bridge.mobilepay.flows import KIND_OUTPATIENT, KIND_REFUND
from bridge.wechatpay.callback import Envelope, MedInsPaid, OtherEvent, RefundChanged
from bridge.wechatpay.messages import MedInsOrder, Refund


def _env(event_type: str, event_id: str = "EV-1") -> Envelope:
    return Envelope(event_id=event_id, event_type=event_type, create_time=None, summary=None)


def _medins(key: str, serial_no=None) -> MedInsPaid:
    return MedInsPaid(_env("MEDICAL_INSURANCE.SUCCESS"), MedInsOrder.from_json({
        "mix_trade_no": "MIX" + key, "mix_pay_status": "MIX_PAY_SUCCESS", "self_pay_status": "SELF_PAY_SUCCESS",
        "med_ins_pay_status": "MED_INS_PAY_SUCCESS", "out_trade_no": keys.out_trade_no(key),
        "serial_no": serial_no or key, "pay_order_id": "ORD1", "total_fee": 10000, "wechat_pay_cash_fee": 4500,
        "pay_auth_no": "AUTH440100X", "openid": "o-patient", "passthrough_response_content": "{}"}))


def _refund(number: str, status: str = "SUCCESS") -> RefundChanged:
    return RefundChanged(_env("REFUND." + status), Refund.from_json({
        "out_refund_no": number, "refund_status": status, "refund_id": "50RF", "out_trade_no": "OT",
        "amount": {"refund": 4500, "total": 4500}}))


def test_what_is_kept_and_whose_request_it_is():
    n = notices.wechat_notice(_medins("INV-1"))
    assert (n.interface, n.notice_key) == (notices.WECHAT_MEDINS, "MIXINV-1")
    assert (n.target.business_key, n.target.what, n.target.kinds) == ("INV-1", "payment",
                                                                       notices.CHANNEL_PAYMENT_KINDS)
    assert n.record["wechat_pay_cash_fee"] == "45.00" and n.record["total_fee"] == "100.00"
    assert not {"pay_auth_no", "openid", "passthrough_response_content"} & set(n.record)
    assert "serial_no_differs" not in n.record
    assert notices.wechat_notice(_medins("INV-1", serial_no="OTHER")).record["serial_no_differs"] is True

    r = notices.wechat_notice(_refund(keys.refund_no("RF-1"), "ABNORMAL"))
    assert (r.notice_key, r.target.business_key, r.target.kinds) == (keys.refund_no("RF-1") + "|ABNORMAL", "RF-1",
                                                                     notices.CHANNEL_REFUND_KINDS)
    rev = notices.wechat_notice(_refund(keys.reversal_no("INV-1", attempt=1)))
    assert (rev.target.what, rev.target.business_key, rev.target.attempt) == ("reversal", "INV-1", 1)
    assert rev.target.kinds == notices.CHANNEL_PAYMENT_KINDS        # the payment's own flow refunds it
    assert notices.wechat_notice(_refund("SOMEONE-ELSES-REFUND")).target is None
    other = notices.wechat_notice(OtherEvent(_env("TRANSACTION.CLOSED", "EV-9"), {}))
    assert (other.interface, other.notice_key, other.target) == (notices.WECHAT_OTHER, "EV-9", None)

    refund = TradeNotice(notify_id="N1", notify_type="trade_status_sync", out_trade_no=keys.out_trade_no("INV-1"),
                         trade_no="T1", trade_status=TradeStatus.TRADE_CLOSED, refund_fee=Decimal("45.00"),
                         out_biz_no=keys.refund_no("RF-1"), params={"seller_id": "2088000000000001"})
    a = notices.alipay_notice(refund)
    assert (a.interface, a.target.business_key, a.record["refund_fee"]) == (notices.ALIPAY_REFUND, "RF-1", "45.00")
    blind = TradeNotice(notify_id="N2", notify_type="trade_status_sync", out_trade_no="OT", trade_no="T1",
                        trade_status=TradeStatus.TRADE_SUCCESS, refund_fee=Decimal("1.00"), out_biz_no=None)
    assert notices.alipay_notice(blind).target is None       # a refund without out_request_no is none of ours
    assert notices.alipay_notice(blind).notice_key == "OT|refund_fee=1.00"


def test_long_natural_keys_are_hashed_to_fit():
    long = notices.notice_key("x" * 64, "SUCCESS")
    assert len(long) == 64 and long.startswith("sha256:")
    assert long == notices.notice_key("x" * 64, "SUCCESS") != notices.notice_key("x" * 64, "CLOSED")
    assert notices.notice_key("a", None, "b") == "a||b"


def _row(store: Store, kind: str, key: str, state: str = "pending") -> int:
    oid = store.enqueue(kind, key, {}, serial_key=key)
    d = store.dialect
    store.execute(f"UPDATE mi_outbox SET next_attempt_at = {d.after('s')}, state = :st WHERE id = :id",
                  {"s": d.seconds(3600), "st": state, "id": oid})
    return oid


def _due(store: Store, oid: int) -> bool:
    age = store.dialect.age_seconds("next_attempt_at")
    return float(store.query(f"SELECT {age} FROM mi_outbox WHERE id = :id", {"id": oid})[0][0]) >= -1


def test_recorded_once_a_repeat_counts_and_only_an_open_request_is_woken(db_url):
    store = Store(db_url)
    calls = []

    def unmatched(st, notice, row):
        calls.append((notice.notice_key, row and row["state"]))
        return "checked"
    try:
        open_id = _row(store, KIND_OUTPATIENT, "INV-OPEN")
        done_id = _row(store, KIND_OUTPATIENT, "INV-DONE", "done")
        refund_id = _row(store, KIND_REFUND, "RF-1")
        assert not _due(store, open_id)
        first = notices.record_and_wake(store, notices.wechat_notice(_medins("INV-OPEN")), unmatched)
        again = notices.record_and_wake(store, notices.wechat_notice(_medins("INV-OPEN")), unmatched)
        assert (first.new, first.verdict, first.outbox_id) == (True, "woken", open_id)
        assert (again.new, again.verdict) == (False, "woken")
        assert _due(store, open_id) and calls == []
        rows = store.query("SELECT received_count, outbox_id, business_key FROM mi_notice WHERE notice_key = :k",
                           {"k": "MIXINV-OPEN"})
        assert [tuple(r) for r in rows] == [(2, open_id, "INV-OPEN")]

        ended = notices.record_and_wake(store, notices.wechat_notice(_medins("INV-DONE")), unmatched)
        assert (ended.verdict, ended.outbox_id, ended.note) == ("closed", done_id, "checked")
        assert [tuple(r) for r in store.query("SELECT state FROM mi_outbox WHERE id = :id", {"id": done_id})] == \
            [("done",)]
        lost = notices.record_and_wake(store, notices.wechat_notice(_medins("INV-NONE")), unmatched)
        notices.record_and_wake(store, notices.wechat_notice(_medins("INV-NONE")), unmatched)
        assert (lost.verdict, lost.outbox_id) == ("unknown", None)
        # The check is asked on every delivery (it must be idempotent): the first may have failed.
        assert calls == [("MIXINV-DONE", "done"), ("MIXINV-NONE", None), ("MIXINV-NONE", None)]

        assert not _due(store, refund_id)
        r = notices.record_and_wake(store, notices.wechat_notice(_refund(keys.refund_no("RF-1"))))
        assert (r.verdict, r.outbox_id) == ("woken", refund_id) and _due(store, refund_id)
        assert [x["notice_key"] for x in notices.records_of(store, notices.WECHAT_REFUND, "RF-1")] == \
            [keys.refund_no("RF-1") + "|SUCCESS"]
    finally:
        store.close()


@pytest.mark.parametrize("dialect", ["sqlite"], indirect=True)
def test_a_failed_check_fails_the_answer_and_the_resend_asks_again(db_url):
    """on_unmatched raising propagates (the endpoint answers 500 and the channel resends);
    the notice itself is already recorded, and the resend only counts."""
    store = Store(db_url)
    try:
        def broken(*_):
            raise RuntimeError("the check could not be enqueued")
        with pytest.raises(RuntimeError):
            notices.record_and_wake(store, notices.wechat_notice(_medins("INV-X")), broken)
        again = notices.record_and_wake(store, notices.wechat_notice(_medins("INV-X")), lambda *_: "enqueued")
        assert (again.new, again.note) == (False, "enqueued")
    finally:
        store.close()
