"""Every decision of the payment's channel legs (bridge/mobilepay/channel_payment.py and the
channel paths of payment.py): the centre's and the channel's answers in, the transition out.
The real WeChat Pay and Alipay clients build and sign every request; nothing is sent."""
from __future__ import annotations

import json

import pytest

from bridge.channels import keys, notices
from bridge.engine.flow import Fail, Finish, Goto, Hold, InDoubt, Retry, Wait
from bridge.engine.testing import not_sent, ok, refused, transient, unknown
from bridge.engine.testing import expect as _is
from bridge.mobilepay.kinds import KIND_OUTPATIENT, KIND_REGISTRATION
from bridge.mobilepay.messages import OrdStas, PayOrderResponse
from bridge.mobilepay.payment import PaymentFlow
from bridge.wechatpay import outcomes as wx_oc
from bridge.wechatpay.authquery import AUTH_QUERY as WX_AUTH, AuthGrant

from .ch import (ALI_AUTH, ALI_CREATE, ALI_QUERY, CASH_SPLIT, KEY, MIX, OPENID, OTN, PREPAY, D, ali_doc, ali_not_found,
                 ali_order, ali_status, alipay_client, auth, ch_script, created_mix, mix, ordered, paid_mix, placed,
                 prepaid, transaction, wechat_auth_query, wechat_client, wechat_client_with_templates, wx_doc,
                 wx_error)
from .mp import INSIDE, ORDER, PAST, SHIPPED, SPLIT, TOKEN, query

SECRETS = {"payToken": TOKEN}
NO_CASH = SPLIT                                     # 120.00: fund 84, account 36, cash 0


@pytest.fixture(scope="module")
def wx():
    c = wechat_client()
    yield c
    c.close()


@pytest.fixture(scope="module")
def ali():
    c = alipay_client()
    yield c
    c.close()


@pytest.fixture
def flow():
    return PaymentFlow(KIND_OUTPATIENT, SHIPPED)


@pytest.fixture
def s(flow, mp_client, wx, ali):
    return ch_script(flow, mp_client, wx, ali)


# ------------------------------------------------------------------ authorize

def test_authorize_without_a_channel_makes_no_call(s):
    from .mp import payment_doc
    _is(s.step("authorize", payment_doc()), Goto, step="identify")
    assert s.sent == []


def test_authorize_a_wechat_payment_checks_before_any_call(s):
    t = _is(s.step("authorize", wx_doc()), Goto, step="identify")
    assert t.data == {"channel": "wechat", "out_trade_no": OTN} and s.sent == []


@pytest.mark.parametrize("key, doc, code", [
    ("K" * 30, wx_doc(), "BAD_INPUT"),                              # no out_trade_no fits in 32 characters
    (KEY, wx_doc(id_type="02"), "BAD_INPUT"),                       # no WeChat card_type for it
], ids=["key-too-long", "id-type"])
def test_authorize_refuses_what_the_channel_cannot_take(flow, mp_client, wx, ali, key, doc, code):
    s = ch_script(flow, mp_client, wx, ali, key=key)
    _is(s.step("authorize", doc), Fail, code=code)
    assert s.sent == []


@pytest.mark.parametrize("kind, doc", [(KIND_OUTPATIENT, wx_doc()), (KIND_OUTPATIENT, ali_doc()),
                                       (KIND_REGISTRATION, wx_doc()), (KIND_OUTPATIENT, None)],
                         ids=["wechat", "alipay", "registration", "no-channel"])
@pytest.mark.parametrize("state", ["pending", "done", "failed"])
def test_authorize_refuses_a_business_key_another_payment_kind_has(mp_client, wx, ali, kind, doc, state):
    """One key is one medOrgOrd at the centre and one out_trade_no at the channel: an outpatient
    bill and a registration under it would meet each other's orders.  The later request is
    refused before any call, whatever the earlier one's state."""
    from .mp import payment_doc
    s = ch_script(PaymentFlow(kind, SHIPPED), mp_client, wx, ali, row_id=60)
    other = KIND_REGISTRATION if kind == KIND_OUTPATIENT else KIND_OUTPATIENT
    s.port.add_request(id=50, kind=other, business_key=KEY, state=state)
    t = _is(s.step("authorize", doc or payment_doc()), Fail, code="BAD_INPUT")
    assert s.sent == [] and other in t.message and "new business key" in t.message


def test_authorize_the_earlier_request_keeps_the_key(mp_client, wx, ali):
    s = ch_script(PaymentFlow(KIND_OUTPATIENT, SHIPPED), mp_client, wx, ali, row_id=50)
    s.port.add_request(id=60, kind=KIND_REGISTRATION, business_key=KEY, state="pending")
    _is(s.step("authorize", wx_doc()), Goto, step="identify")


def test_authorize_a_channel_without_its_section_is_held_not_failed(flow, mp_client):
    from .mp import script
    s = script(flow, mp_client)
    _is(s.step("authorize", wx_doc()), Hold, code="CHANNEL_NOT_CONFIGURED")


def test_authorize_alipay_with_the_his_pay_auth_no_makes_no_call(s):
    _is(s.step("authorize", ali_doc()), Goto, step="identify")
    assert s.sent == []


@pytest.mark.parametrize("answer, want", [
    (auth(True), (Goto, None)),
    (auth(False), (Fail, "NOT_AUTHORISED")),
    (refused(ALI_AUTH, "无效的用户"), (Fail, "AUTH_REJECTED")),
    (transient(ALI_AUTH), (Retry, "AUTH_QUERY_FAILED")),
    (not_sent(ALI_AUTH), (Retry, "AUTH_QUERY_FAILED")),
    (unknown(ALI_AUTH), (Retry, "AUTH_QUERY_FAILED")),              # a read: asked again
], ids=["ok", "not-authorised", "refused", "transient", "not-sent", "unknown"])
def test_authorize_asks_alipay_for_the_pay_auth_no(s, answer, want):
    s.answer(ALI_AUTH, answer)
    t = _is(s.step("authorize", ali_doc(pay_auth_no=None)), *want)
    assert s.sent == [ALI_AUTH]
    if isinstance(t, Goto):
        assert t.secrets == {"payAuthNo": "AUTH-ALI-1"} and "AUTH" not in str(t.data)   # never in flow_data
    if isinstance(t, Fail) and t.code == "NOT_AUTHORISED":
        assert t.inbox[0].result["auth_url"] == "https://auth.example/x"


@pytest.fixture
def wxq(flow, mp_client, wx, ali):
    """A script whose daemon exchanges WeChat auth codes ([wechatpay] auth_query_url set)."""
    q = wechat_auth_query(wx)
    yield ch_script(flow, mp_client, wx, ali, more={"wechatpay.auth_query": q})
    q.close()


WX_CODE = dict(pay_auth_no=None, auth_code="AC-0001")


@pytest.mark.parametrize("answer, want", [
    (ok(WX_AUTH, AuthGrant("AUTH440100WX1")), (Goto, None)),
    (ok(WX_AUTH, AuthGrant("AUTH440100WX2", family=True)), (Goto, None)),
    (refused(WX_AUTH, "授权码已失效", code="40001"), (Fail, "AUTH_REJECTED")),
    (transient(WX_AUTH), (Retry, "AUTH_QUERY_FAILED")),
    (not_sent(WX_AUTH), (Retry, "AUTH_QUERY_FAILED")),
    (unknown(WX_AUTH), (Retry, "AUTH_QUERY_FAILED")),              # a read: asked again
], ids=["ok", "family", "refused", "transient", "not-sent", "unknown"])
def test_authorize_exchanges_a_wechat_auth_code(wxq, answer, want):
    wxq.answer(WX_AUTH, answer)
    t = _is(wxq.step("authorize", wx_doc(**WX_CODE)), *want)
    assert wxq.sent == [WX_AUTH]
    assert json.loads(wxq.prepared[0].body) == {"qrcode": "AC-0001", "openid": OPENID}
    if isinstance(t, Goto):
        assert t.step == "identify" and t.secrets == {"payAuthNo": answer.data.pay_auth_no}
        assert t.data["auth_family"] is answer.data.family and "AUTH" not in str(t.data)     # never in flow_data
        assert "AC-0001" not in wxq.prepared[0].masked_request


def test_authorize_a_wechat_auth_code_without_the_exchange_configured_fails_before_any_call(s):
    t = _is(s.step("authorize", wx_doc(**WX_CODE)), Fail, code="AUTH_EXCHANGE_OFF")
    assert s.sent == [] and "pay_auth_no" in t.message


def test_authorize_a_wechat_payment_with_pay_auth_no_never_exchanges(wxq):
    _is(wxq.step("authorize", wx_doc()), Goto, step="identify")
    assert wxq.sent == []


# ------------------------------------------------------------------ 6202, then the channel

def _ordered_6202(cash: str):
    fund = D("120.00") - D(cash)
    return ok("6202", PayOrderResponse(payOrdId=ORDER, ordStas=OrdStas.AWAITING_PAYMENT, feeSumamt=D("120.00"),
                                       fundPay=fund, psnAcctPay=D("0.00"), ownPayAmt=D(cash), extData={}))


@pytest.mark.parametrize("doc, cash, step", [(wx_doc(), "36.00", "prepay"), (wx_doc(), "0.00", "channel_order"),
                                             (ali_doc(), "36.00", "channel_order")],
                         ids=["wechat-cash", "wechat-no-cash", "alipay"])
def test_order_of_a_channel_payment_goes_to_the_channel_without_an_order_row(s, doc, cash, step):
    s.answer("6202", _ordered_6202(cash))
    t = _is(s.step("order", doc, data=placed(doc["channel"]), secrets=SECRETS), Goto, step=step)
    assert t.inbox == [] and t.data["channel_time"]


# ------------------------------------------------------------------ prepay (WeChat, safe)

@pytest.mark.parametrize("answer, want", [
    (prepaid(), (Goto, None, "channel_order")),
    (wx_error(wx_oc.PREPAY, "PARAM_ERROR", "openid与appid不匹配"), (Goto, None, "revoke")),
    (transient(wx_oc.PREPAY), (Retry, "CHANNEL_BUSY", None)),
    (not_sent(wx_oc.PREPAY), (Retry, "NOT_SENT", None)),
    (unknown(wx_oc.PREPAY), (Retry, "PREPAY_FAILED", None)),      # safe: the same body gives the same prepay_id
], ids=["ok", "refused", "transient", "not-sent", "unknown"])
def test_prepay(s, answer, want):
    s.answer(wx_oc.PREPAY, answer)
    t = _is(s.step("prepay", wx_doc(), data=placed("wechat"), secrets=SECRETS), *want)
    body = s.prepared[0].body.decode()
    assert f'"out_trade_no":"{OTN}"' in body and '"total":3600' in body and OPENID in body
    if want[2] == "channel_order":
        assert t.data == {"prepay_id": PREPAY}
    if want[2] == "revoke":
        assert t.data["end"]["code"] == "CHANNEL_ORDER_REJECTED"     # the centre's order is revoked first


# ------------------------------------------------------------------ channel_order (NOT safe)

@pytest.mark.parametrize("answer, want", [
    (created_mix(), (Wait, None, "await_payment")),
    (wx_error(wx_oc.MEDINS_CREATE, "268547120", "PAY_AUTH_NO校验失败"), (Goto, None, "revoke")),
    (transient(wx_oc.MEDINS_CREATE), (Retry, "CHANNEL_BUSY", None)),
    (not_sent(wx_oc.MEDINS_CREATE), (Retry, "NOT_SENT", None)),
    (unknown(wx_oc.MEDINS_CREATE), (InDoubt, "CHANNEL_ORDER_UNKNOWN", None)),
], ids=["ok", "refused", "transient", "not-sent", "unknown"])
def test_wechat_mixed_order(s, answer, want):
    s.answer(wx_oc.MEDINS_CREATE, answer)
    t = _is(s.step("channel_order", wx_doc(), data=placed("wechat", prepay_id=PREPAY), secrets=SECRETS), *want)
    assert s.sent == [wx_oc.MEDINS_CREATE]
    body = s.prepared[0].body.decode()
    assert '"mix_pay_type":"CASH_AND_INSURANCE"' in body and f'"prepay_id":"{PREPAY}"' in body
    assert '"serial_no":"PAY-1"' in body and "张三" not in body and "440106" not in body      # encrypted
    if isinstance(t, Wait):
        # nobody can pay before this row is written: the first look is after poll_first_seconds
        # (or a callback's wake-up), not at once
        assert t.delay == s.services["mobilepay.settings"].poll_first_seconds
        [row] = t.inbox
        cashier = row.result["cashier"]
        assert set(cashier) == {"mixTradeNo", "timeStamp", "nonceStr", "package", "signType", "paySign"}
        assert cashier["package"] == f"prepay_id={PREPAY}" and cashier["mixTradeNo"] == MIX
        assert (row.result_type, row.result["channel"], row.result["out_trade_no"]) == ("order", "wechat", OTN)
        assert t.data == {"mix_trade_no": MIX, "channel_ordered": True, "polls": 0}
        assert "payToken" not in str(row.result) and "AUTH" not in str(row.result)


def test_wechat_insurance_only_order_has_no_prepay_and_no_cash_in_the_cashier(s):
    s.answer(wx_oc.MEDINS_CREATE, created_mix(NO_CASH))
    t = _is(s.step("channel_order", wx_doc(), data=placed("wechat", NO_CASH), secrets=SECRETS), Wait)
    assert '"mix_pay_type":"INSURANCE_ONLY"' in s.prepared[0].body.decode()
    assert t.inbox[0].result["cashier"] == {"mixTradeNo": MIX}


@pytest.mark.parametrize("answer, want", [
    (ali_order(), (Wait, None, "await_payment")),
    (refused(ALI_CREATE, "SIM_AUTH_INVALID 未找到对应授权信息", code="SIM_AUTH_INVALID"), (Goto, None, "revoke")),
    (transient(ALI_CREATE), (Retry, "CHANNEL_BUSY", None)),
    (not_sent(ALI_CREATE), (Retry, "NOT_SENT", None)),
    (unknown(ALI_CREATE), (InDoubt, "CHANNEL_ORDER_UNKNOWN", None)),
], ids=["ok", "refused", "transient", "not-sent", "unknown"])
def test_alipay_medical_order(s, answer, want):
    s.answer(ALI_CREATE, answer)
    t = _is(s.step("channel_order", ali_doc(), data=placed("alipay"), secrets=SECRETS), *want)
    assert s.sent == [ALI_CREATE]
    if isinstance(t, Wait):
        assert t.inbox[0].result["cashier"] == {"pay_url": "https://ali.example/cashier?sn=MED-1"}


@pytest.mark.parametrize("channel, answer", [
    ("wechat", mix(pay_order_id="ORD-OTHER")),
    ("wechat", mix(serial_no="OTHER-KEY")),
    ("alipay", ali_status(pay_order_id="ORD-OTHER")),
], ids=["wx-other-pay-order", "wx-other-serial", "ali-other-pay-order"])
def test_resolve_channel_order_finds_another_payments_order(s, channel, answer):
    """The order under our out_trade_no belongs to another payment (the other payment kind under
    the same business key, from before authorize refused that): never its cashier for this one."""
    s.answer(answer.interface, answer)
    doc = wx_doc() if channel == "wechat" else ali_doc()
    extra = {"prepay_id": PREPAY} if channel == "wechat" else {}
    t = _is(s.resolve("channel_order", doc, data=placed(channel, **extra), doubt_age=PAST, secrets=SECRETS),
            Hold, code="CHANNEL_ORDER_MISMATCH")
    assert ORDER in t.message and "OTHER" in t.message


def test_channel_order_answer_for_another_payment_is_held(s):
    s.answer(wx_oc.MEDINS_CREATE, mix(pay_order_id="ORD-OTHER", interface=wx_oc.MEDINS_CREATE))
    _is(s.step("channel_order", wx_doc(), data=placed("wechat", prepay_id=PREPAY), secrets=SECRETS), Hold,
        code="CHANNEL_ORDER_MISMATCH")


@pytest.mark.parametrize("age", [INSIDE, PAST], ids=["inside", "past"])
@pytest.mark.parametrize("channel, answer, want", [
    ("wechat", mix(), (Wait, None, "await_payment")),              # it was placed: the cashier now
    ("wechat", wx_error(wx_oc.MEDINS_QUERY, "268529515", "订单不存在", 404), "window"),
    ("wechat", unknown(wx_oc.MEDINS_QUERY), (InDoubt, "QUERY_FAILED", None)),
    ("wechat", transient(wx_oc.MEDINS_QUERY), (InDoubt, "QUERY_FAILED", None)),
    ("wechat", not_sent(wx_oc.MEDINS_QUERY), (InDoubt, "QUERY_FAILED", None)),
    ("alipay", ali_status(), (Goto, None, "channel_order")),       # its answer has the pay_url
    ("alipay", ali_not_found(), "window"),
    ("alipay", unknown(ALI_QUERY), (InDoubt, "QUERY_FAILED", None)),
], ids=["wx-found", "wx-not-found", "wx-unknown", "wx-transient", "wx-not-sent", "ali-found", "ali-not-found",
        "ali-unknown"])
def test_resolve_channel_order(s, age, channel, answer, want):
    s.answer(answer.interface, answer)
    doc = wx_doc() if channel == "wechat" else ali_doc()
    extra = {"prepay_id": PREPAY} if channel == "wechat" else {}
    t = s.resolve("channel_order", doc, data=placed(channel, **extra), doubt_age=age, secrets=SECRETS)
    assert s.sent == [answer.interface]                    # asked, never created again blindly
    if want == "window":
        if age == INSIDE:
            assert isinstance(t, InDoubt) and t.waiting and t.code == "NOT_SETTLED_YET"
        else:
            _is(t, Goto, step="channel_order")                # never booked: a first send
        return
    _is(t, *want)
    if isinstance(t, Wait):
        assert t.inbox[0].result["cashier"]["mixTradeNo"] == MIX


# ------------------------------------------------------------------ await_payment: both sides judged

def _await(s, doc, data, age: float = 5.0):
    s.port.call_ages["MSG-6202"] = age
    return s.step("await_payment", doc, data=data, secrets=SECRETS)


def test_await_settles_only_when_the_centre_and_the_channel_agree(s):
    s.answer("6301", query(OrdStas.SETTLED, fund="84.00", account="0.00", cash="36.00"))
    s.answer(wx_oc.MEDINS_QUERY, paid_mix())
    s.answer(wx_oc.TRANSACTION_QUERY, transaction())
    t = _is(_await(s, wx_doc(), ordered("wechat")), Goto, step="await_his")
    assert s.sent == ["6301", wx_oc.MEDINS_QUERY, wx_oc.TRANSACTION_QUERY]
    [row] = t.inbox
    assert (row.result["channel"], row.result["out_trade_no"], row.result["mix_trade_no"],
            row.result["transaction_id"], row.result["confirmed_by"]) == ("wechat", OTN, MIX, "4200000001",
                                                                          "6301+wechat")
    settled = t.data["settled"]
    assert (settled["channel"], settled["cash_by"], settled["mix_trade_no"]) == ("wechat", "channel", MIX)


def test_await_takes_the_transaction_id_from_the_verified_cash_callback(s):
    """The order book's WeChat trade number: from the recorded TRANSACTION.SUCCESS callback
    when there is one (no query), else the cash payment's query (above)."""
    s.answer("6301", query(OrdStas.SETTLED, fund="84.00", account="0.00", cash="36.00"))
    s.answer(wx_oc.MEDINS_QUERY, paid_mix())
    s.port.set_notice(notices.WECHAT_TRADE, OTN, {"out_trade_no": OTN, "transaction_id": "4200000777",
                                                  "trade_state": "SUCCESS"})
    t = _is(_await(s, wx_doc(), ordered("wechat")), Goto, step="await_his")
    assert s.sent == ["6301", wx_oc.MEDINS_QUERY]
    assert t.inbox[0].result["transaction_id"] == "4200000777"


def test_await_settles_an_alipay_payment_with_its_cash_trade(s):
    s.answer("6301", query(OrdStas.SETTLED, fund="84.00", account="0.00", cash="36.00"))
    s.answer(ALI_QUERY, ali_status("PAY_SUCCESS", "TRADE_SUCCESS"))
    t = _is(_await(s, ali_doc(), ordered("alipay")), Goto, step="await_his")
    assert t.inbox[0].result["trade_no"] == "2026ALITRADE1" and t.data["settled"]["cash_by"] == "channel"


def test_await_the_channel_amounts_must_match(s):
    s.answer("6301", query(OrdStas.SETTLED, fund="84.00", account="0.00", cash="36.00"))
    s.answer(wx_oc.MEDINS_QUERY, paid_mix({"total": "120.00", "fund": "80.00", "account": "0.00", "cash": "40.00"}))
    s.answer(wx_oc.TRANSACTION_QUERY, transaction())
    _is(_await(s, wx_doc(), ordered("wechat")), Hold, code="AMOUNT_MISMATCH")


SETTLED_6301 = query(OrdStas.SETTLED, fund="84.00", account="0.00", cash="36.00")
AWAITING = query(OrdStas.AWAITING_PAYMENT, fund="84.00", account="0.00", cash="36.00")
REVOKED = query(OrdStas.REVOKED, fund="84.00", account="0.00", cash="36.00")


@pytest.mark.parametrize("centre, channel, first, past", [
    # the channel lags the centre (or the other way round): wait the settle window, then hold
    (SETTLED_6301, mix(), (Wait, None), (Hold, "CHANNEL_DISAGREES")),
    (AWAITING, paid_mix(), (Wait, None), (Hold, "CHANNEL_DISAGREES")),
    # §2.4: the cash was taken and the insurance part failed: refund the cash
    (AWAITING, mix("MIX_PAY_FAIL", "SELF_PAY_SUCCESS", "MED_INS_PAY_FAIL"), (Wait, None), (Goto, "cash_refund")),
    # nothing was taken and nothing will be: revoke, end failed
    (AWAITING, mix("MIX_PAY_FAIL", "SELF_PAY_FAIL", "MED_INS_PAY_FAIL"), (Wait, None), (Goto, "revoke")),
], ids=["centre-paid-channel-not", "channel-paid-centre-not", "cash-only-taken", "channel-failed"])
def test_await_a_state_one_side_may_lag_gets_the_settle_window(s, centre, channel, first, past):
    s.answer("6301", centre, centre, centre)
    s.answer(wx_oc.MEDINS_QUERY, channel, channel, channel)
    t = _is(_await(s, wx_doc(), ordered("wechat")), first[0])
    assert t.data["odd_since"] == s.prepared[0].msg_id               # when it was first seen (6301's journal row)
    s.port.call_ages["ODD-1"] = INSIDE
    _is(_await(s, wx_doc(), ordered("wechat", odd_since="ODD-1")), Wait)
    s.port.call_ages["ODD-1"] = PAST
    t = _is(_await(s, wx_doc(), ordered("wechat", odd_since="ODD-1")), past[0])
    if isinstance(t, Hold):
        assert t.code == past[1] and "6301 says ordStas" in t.message and MIX in t.message     # both answers
    else:
        assert t.step == past[1]
    if past[1] == "cash_refund":
        leg = t.data["cash_leg"]
        assert (leg["number"], leg["amount"], leg["purpose"]) == (keys.reversal_no(KEY), "36.00", "failed_payment")


CASH_ONLY_MIX = mix("MIX_PAY_FAIL", "SELF_PAY_SUCCESS", "MED_INS_PAY_FAIL")


@pytest.mark.parametrize("channel, doc, answer", [
    ("wechat", wx_doc, CASH_ONLY_MIX),
    ("alipay", ali_doc, ali_status("PAY_FAIL", "TRADE_SUCCESS")),
])
@pytest.mark.parametrize("stas, code", [(OrdStas.REVOKED, "REVOKED"), (OrdStas.SETTLEMENT_FAILED, "PAYMENT_FAILED")])
def test_await_the_cash_paid_after_the_centre_order_ended_is_refunded_without_a_6401(s, channel, doc, answer,
                                                                                      stas, code):
    """The HIS revoked (or the deadline did) and the patient paid the cash just before the cash
    order was closed (revoke.py's close refused): the centre says 12, the channel cash paid and
    insurance failed.  After the settle window the cash goes back by its own refund, and the
    payment ends as the centre's order did, naming the refund - no 6401 (the order is over),
    nobody asked to look unless the refund itself cannot be settled."""
    ended = query(stas, fund="84.00", account="0.00", cash="36.00")
    s.answer("6301", ended, ended)
    s.answer(answer.interface, answer, answer)
    first = _is(_await(s, doc(), ordered(channel)), Wait)
    assert first.data["odd_since"]
    s.port.call_ages["ODD-1"] = PAST
    t = _is(_await(s, doc(), ordered(channel, odd_since="ODD-1")), Goto, step="cash_refund")
    leg, end = t.data["cash_leg"], t.data["end"]
    assert (leg["number"], leg["amount"], leg["purpose"]) == (keys.reversal_no(KEY), "36.00", "failed_payment")
    assert (end["code"], end["closed"], end["no_close"]) == (code, True, True)
    assert "after the patient paid the cash" in end["message"]


@pytest.mark.parametrize("stas, notice, want", [
    (OrdStas.EXCEPTION, None, (Hold, "CHANNEL_DISAGREES")),               # 14: money may have moved at the centre
    (OrdStas.REVOKED, {"payOrdId": ORDER, "feeSumamt": "120.00"}, (Hold, "NOTICE_CONTRADICTS_STATUS")),
], ids=["anomaly", "a-6302-says-paid"])
def test_await_the_cash_paid_after_the_centre_order_ended_but_the_centre_may_have_money(s, stas, notice, want):
    ended = query(stas, fund="84.00", account="0.00", cash="36.00")
    s.answer("6301", ended)
    s.answer(wx_oc.MEDINS_QUERY, CASH_ONLY_MIX)
    if notice:
        s.port.set_notice("6302", ORDER, notice)
    s.port.call_ages["ODD-1"] = PAST
    _is(_await(s, wx_doc(), ordered("wechat", odd_since="ODD-1")), *want)


@pytest.mark.parametrize("centre, channel, want", [
    (SETTLED_6301, mix("MIX_PAY_FAIL", "SELF_PAY_FAIL", "MED_INS_PAY_FAIL"), (Hold, "CHANNEL_DISAGREES")),
    (REVOKED, paid_mix(), (Hold, "CHANNEL_DISAGREES")),
    (REVOKED, mix("MIX_PAY_FAIL", "SELF_PAY_FAIL", "MED_INS_PAY_FAIL"), (Fail, "REVOKED")),
    (REVOKED, mix(), (Fail, "REVOKED")),
], ids=["centre-paid-channel-failed", "centre-revoked-channel-paid", "both-ended", "revoked-unpaid"])
def test_await_a_disagreement_holds_with_both_answers_an_end_ends(s, centre, channel, want):
    s.answer("6301", centre)
    s.answer(wx_oc.MEDINS_QUERY, channel)
    _is(_await(s, wx_doc(), ordered("wechat")), *want)


@pytest.mark.parametrize("age, want", [(5.0, (Wait, None, None)), (SHIPPED.payment_deadline_seconds + 1,
                                                                   (Goto, None, "revoke"))],
                         ids=["waiting", "past-deadline"])
def test_await_unpaid_on_both_sides_polls_until_the_deadline(s, age, want):
    s.answer("6301", AWAITING)
    s.answer(wx_oc.MEDINS_QUERY, mix())
    _is(_await(s, wx_doc(), ordered("wechat"), age=age), *want)


@pytest.mark.parametrize("answers, age, want", [
    ([unknown("6301"), paid_mix()], 5.0, Wait),                     # half the picture decides nothing
    ([SETTLED_6301, unknown(wx_oc.MEDINS_QUERY)], 5.0, Wait),
    ([AWAITING, refused(wx_oc.MEDINS_QUERY, code="PARAM_ERROR")], 5.0, Retry),
    ([AWAITING, unknown(wx_oc.MEDINS_QUERY)], SHIPPED.payment_deadline_seconds + 1, Retry),   # never revoked blind
], ids=["centre-unknown", "channel-unknown", "channel-refused", "past-deadline"])
def test_await_a_side_that_cannot_be_asked(s, answers, age, want):
    for a in answers:
        s.answer(a.interface, a)
    _is(_await(s, wx_doc(), ordered("wechat"), age=age), want)


# ------------------------------------------------------------------ revoke and close_channel

def test_revoke_of_a_channel_payment_then_closes_the_channel(s):
    from .mp import revoked
    s.answer("6401", revoked())
    t = _is(s.step("revoke", wx_doc(), data=ordered("wechat"), secrets=SECRETS), Goto, step="close_channel")
    assert t.data["end"]["code"] == "EXPIRED"


def test_revoke_refused_and_paid_meanwhile_asks_the_channel_too(s):
    s.answer("6401", refused("6401"))
    s.answer("6301", SETTLED_6301)
    _is(s.step("revoke", wx_doc(), data=ordered("wechat"), secrets=SECRETS), Goto, step="await_payment")


@pytest.mark.parametrize("close, status, want", [
    (ok(wx_oc.TRANSACTION_CLOSE), mix("MIX_PAY_FAIL", "SELF_PAY_FAIL", "MED_INS_PAY_FAIL"), (Fail, "EXPIRED")),
    (ok(wx_oc.TRANSACTION_CLOSE), wx_error(wx_oc.MEDINS_QUERY, "268529515", "订单不存在", 404), (Fail, "EXPIRED")),
    (wx_error(wx_oc.TRANSACTION_CLOSE, "ORDER_PAID", "订单已支付"),
     mix("MIX_PAY_FAIL", "SELF_PAY_SUCCESS", "MED_INS_PAY_FAIL"), (Goto, "cash_refund")),
    (ok(wx_oc.TRANSACTION_CLOSE), paid_mix(), (Hold, "CHANNEL_DISAGREES")),
    (transient(wx_oc.TRANSACTION_CLOSE), None, (Retry, "CLOSE_FAILED")),
    (not_sent(wx_oc.TRANSACTION_CLOSE), None, (Retry, "CLOSE_FAILED")),
    (unknown(wx_oc.TRANSACTION_CLOSE), None, (Retry, "CLOSE_FAILED")),
    (ok(wx_oc.TRANSACTION_CLOSE), unknown(wx_oc.MEDINS_QUERY), (Retry, "QUERY_FAILED")),
], ids=["closed", "never-placed", "paid-at-the-last-moment", "insurance-paid", "transient", "not-sent", "unknown",
        "query-unknown"])
def test_close_channel(s, close, status, want):
    s.answer(wx_oc.TRANSACTION_CLOSE, close)
    if status is not None:
        s.answer(status.interface, status)
    t = s.step("close_channel", wx_doc(), data=ordered("wechat", end={"code": "EXPIRED", "message": "not paid"}),
               secrets=SECRETS)
    if want[0] is Goto:
        _is(t, Goto, step=want[1])
        assert t.data["cash_leg"]["purpose"] == "failed_payment" and t.data["end"]["closed"]
    else:
        _is(t, want[0], code=want[1])


@pytest.mark.parametrize("status", [mix("MIX_PAY_FAIL", "SELF_PAY_REFUND", "MED_INS_PAY_FAIL"),
                                    mix("MIX_PAY_FAIL", "SELF_PAY_SUCCESS", "MED_INS_PAY_FAIL")],
                         ids=["cash-refunded", "channel-view-lags-its-refund"])
def test_close_channel_after_the_cash_came_back_ends_failed_naming_its_refund(s, status):
    """await_payment CASH_ONLY -> cash_refund (F number) -> 6401 -> close_channel: the end names the
    refund (failed row and flow_data cash_done); a channel view that still says the cash is paid
    is not refunded a second time."""
    rev = keys.reversal_no(KEY)
    leg = {"channel": "wechat", "tag": keys.REVERSAL, "key": KEY, "attempt": 0, "number": rev, "out_trade_no": OTN,
           "amount": "36.00", "paid": "36.00", "purpose": "failed_payment", "reason": None}
    done = {"number": rev, "refund_id": "50RF1", "success_time": "2026-01-01T11:00:00+08:00"}
    s.answer(wx_oc.MEDINS_QUERY, status)
    t = _is(s.step("close_channel", wx_doc(), data=ordered("wechat", cash_leg=leg, cash_done=done, end={
        "code": "PAYMENT_FAILED", "message": "the insurance part failed", "no_close": True}), secrets=SECRETS),
        Fail, code="PAYMENT_FAILED")
    assert s.sent == [wx_oc.MEDINS_QUERY] and t.data["cash_done"] == done
    [row] = t.inbox
    assert (row.error_code, row.result["out_refund_no"], row.result["cash_refunded"]) == ("PAYMENT_FAILED", rev,
                                                                                          "36.00")


def test_close_channel_alipay_has_no_close_and_says_so(s):
    s.answer(ALI_QUERY, ali_status())
    t = _is(s.step("close_channel", ali_doc(), data=ordered("alipay", end={"code": "EXPIRED", "message": "x"}),
                   secrets=SECRETS), Fail, code="EXPIRED")
    assert s.sent == [ALI_QUERY] and "no close" in t.message


# ------------------------------------------------------------------ await_his: the patient's message

def _settled_data(channel: str = "wechat") -> dict:
    return ordered(channel, settled={"payOrdId": ORDER, **CASH_SPLIT, "traceTime": "20260101100500",
                                     "setlType": "ALL", "setlId": None, "channel": channel, "out_trade_no": OTN,
                                     "mix_trade_no": MIX, "cash_by": "channel"})


def test_await_his_taken_adds_the_message_only_when_a_template_is_configured(flow, mp_client, wx, ali):
    s = ch_script(flow, mp_client, wx, ali)
    s.port.set_inbox(1, "settlement", consumed=True, his_ack="accepted")
    t = _is(s.step("await_his", wx_doc(), data=_settled_data()), Finish)
    assert t.enqueue == []
    s = ch_script(flow, mp_client, wechat_client_with_templates(), ali)
    s.port.set_inbox(1, "settlement", consumed=True, his_ack="accepted")
    t = _is(s.step("await_his", wx_doc(), data=_settled_data()), Finish)
    [msg] = t.enqueue
    assert (msg.kind, msg.business_key, msg.serial_key) == ("patient.message", "msg:outpatient_paid:1",
                                                            "msg:outpatient_paid:1")
    p = msg.payload
    assert (p["event"], p["channel"], p["recipient"], p["source_outbox_id"]) == (
        "outpatient_paid", "wechat", {"openid": OPENID}, 1)
    assert p["values"] == {"patient_name": "张三", "amount": "120.00", "paid_time": "2026-01-01 10:05:00"}
    assert "440106" not in str(p)                                     # no ID number


def test_registration_messages_are_registration_paid(mp_client, ali):
    s = ch_script(PaymentFlow(KIND_REGISTRATION, SHIPPED), mp_client, wechat_client_with_templates(), ali)
    s.port.set_inbox(1, "settlement", consumed=True, his_ack="accepted")
    t = _is(s.step("await_his", wx_doc(), data=_settled_data()), Finish)
    assert [m.payload["event"] for m in t.enqueue] == ["registration_paid"]
    assert t.enqueue[0].payload["values"] == {"dept_name": "内科"}
