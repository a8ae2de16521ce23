"""Late channel callbacks, end to end (a real daemon per database, the simulator over HTTP):

* a WeChat TRANSACTION.SUCCESS delivered again after the payment ended with its reversal,
  whose cash refund went through: checked (transaction query, then the reversal's refund
  query) and ended quietly; repeats add nothing;
* a WeChat and an Alipay payment paid in the cashier after their request had already failed:
  the cash is really unmatched, and the check is held for a person - once per order, although
  WeChat sends two callbacks (MEDICAL_INSURANCE.SUCCESS and TRANSACTION.SUCCESS)."""
from __future__ import annotations

import uuid
from decimal import Decimal

import httpx

from bridge.channels import keys
from bridge.channels.notice_check import KIND_CHANNEL_NOTICE_CHECK, check_key
from bridge.channels.notices import WECHAT_REFUND
from bridge.mobilepay.flows import KIND_OUTPATIENT
from bridge.wechatpay.messages import RefundRequest

from tests.channel_callbacks.conftest import WX_PATH, alipay_order, centre_order, settled, wechat_order

from .conftest import final, journal, rows, wait_for


def _late_transaction_success(b, otn: str, cash: Decimal) -> None:
    from bridge.simulator.wechatpay_wire import callback

    fen = int(cash * 100)
    cfg = b.sim.config
    resource = {"mchid": cfg.wechat_mchid, "appid": cfg.wechat_appid, "out_trade_no": otn, "trade_state": "SUCCESS",
                "transaction_id": "4200" + uuid.uuid4().hex[:24], "amount": {"total": fen, "payer_total": fen}}
    body, headers = callback(cfg, "TRANSACTION.SUCCESS", resource, "transaction", "transaction", "支付成功",
                             event_id="EV-" + uuid.uuid4().hex)
    r = httpx.post(f"http://127.0.0.1:{b.port}{WX_PATH}/pay", content=body, headers=headers, timeout=10)
    assert r.status_code == 204, r.text


def test_a_late_callback_for_a_payment_its_reversal_refunded_ends_quietly(mbridge):
    b = mbridge
    centre = centre_order(b)
    key = centre.med_org_ord
    pay_id = b.request(KIND_OUTPATIENT, key, state="held")          # open while the money moves
    order = wechat_order(b, centre)
    order.pay(b.sim)
    settled(b.sim, order.out_trade_no)
    cash = Decimal(centre.cash)
    r = b.wechat.refund(RefundRequest(out_refund_no=keys.reversal_no(key), refund=cash, total=cash,
                                      out_trade_no=order.out_trade_no))
    assert r.ok, r.message
    wait_for(lambda: any(n["interface"] == WECHAT_REFUND for n in b.notices(key)), 15, "the reversal's callback")
    # The payment ends with its reversal (as the 单边账 repair leaves it).
    b.store.execute("UPDATE mi_outbox SET state = 'failed', last_error_code = 'REVERSED' WHERE id = :i", {"i": pay_id})
    b.store.execute("""INSERT INTO mi_inbox (outbox_id, kind, business_key, result_type, outcome)
                       VALUES (:i, :k, :b, 'reversal', 'ok')""", {"i": pay_id, "k": KIND_OUTPATIENT, "b": key})
    for _ in range(2):                                               # WeChat delivers it again, twice
        _late_transaction_success(b, order.out_trade_no, cash)
    ck = check_key("wechat", order.out_trade_no)
    got = final(b.store, [ck], KIND_CHANNEL_NOTICE_CHECK)
    assert got[ck]["state"] == "done" and "reversal" in got[ck]["data"]["matched"], got[ck]
    assert [j[:2] for j in journal(b.store, got[ck]["id"])] == [("wechat.jsapi.query", "ok"),
                                                                ("wechat.refund.query", "ok")]
    assert [k for k in rows(b.store, KIND_CHANNEL_NOTICE_CHECK) if order.out_trade_no in k] == [ck]


def test_cash_paid_after_the_payment_failed_is_held_once_per_order(mbridge):
    b = mbridge
    wx_centre, ali_centre = centre_order(b), centre_order(b)
    for c in (wx_centre, ali_centre):
        b.request(KIND_OUTPATIENT, c.med_org_ord, state="failed")  # e.g. expired: the cashier paid too late
    wx_order, ali_order = wechat_order(b, wx_centre), alipay_order(b, ali_centre)
    wx_order.pay(b.sim)
    ali_order.pay(b.sim)
    wx_key, ali_key = check_key("wechat", wx_order.out_trade_no), check_key("alipay", ali_order.out_trade_no)
    got = final(b.store, [wx_key, ali_key], KIND_CHANNEL_NOTICE_CHECK)
    settled(b.sim, wx_order.mix_trade_no)
    settled(b.sim, wx_order.out_trade_no)
    for k, query in ((wx_key, "wechat.jsapi.query"), (ali_key, "alipay.trade.query")):
        assert (got[k]["state"], got[k]["code"]) == ("held", "NOTICE_FOR_CLOSED_PAYMENT"), got[k]
        assert [j[:2] for j in journal(b.store, got[k]["id"])] == [(query, "ok")]
    message = b.store.query("SELECT last_error_message FROM mi_outbox WHERE id = :i", {"i": got[wx_key]["id"]})[0][0]
    assert wx_order.out_trade_no in message and "refund it by hand" in message
    # two WeChat callbacks (mixed order and cash), one check
    assert [k for k in rows(b.store, KIND_CHANNEL_NOTICE_CHECK) if wx_order.out_trade_no in k] == [wx_key]
    held_rows = b.store.query("SELECT result_type, outcome, error_code FROM mi_inbox WHERE outbox_id = :i",
                              {"i": got[wx_key]["id"]})
    assert [tuple(r) for r in held_rows] == [("held", "held", "NOTICE_FOR_CLOSED_PAYMENT")]
