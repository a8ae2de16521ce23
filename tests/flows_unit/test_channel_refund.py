"""Every decision of the refund legs (bridge/mobilepay/channel_refund.py, the channel paths of
refund.py, the payment's repair, and revoke.py's close): each leg refunded once, by its own
journalled call, resolved by its own query.  The real clients build every request."""
from __future__ import annotations

import json
import pytest

from bridge.alipay import outcomes as ali_oc
from bridge.channels import keys
from bridge.engine.flow import Fail, Finish, Goto, Hold, InDoubt, Retry, Wait
from bridge.engine.testing import not_sent, ok, refused, transient, unknown
from bridge.engine.testing import expect as _is
from bridge.mobilepay.kinds import KIND_OUTPATIENT
from bridge.mobilepay.messages import OrdStas
from bridge.mobilepay.payment import PaymentFlow, repair_serial
from bridge.mobilepay.refund import RefundFlow
from bridge.mobilepay.revoke import RevokeFlow
from bridge.wechatpay import outcomes as wx_oc

from .ch import (CASH_SPLIT, KEY, MIX, OPENID, OTN, PREPAY, D, ali_doc, ali_refund_state, ali_refunded,
                 alipay_client, ch_script, ordered, wechat_client, wechat_client_with_templates, wx_doc, wx_error,
                 wx_refund)
from .mp import INSIDE, ORDER, PAST, PATIENT_SECRETS, SHIPPED, TOKEN, query, refunded, revoked

RF = "RF-1"
NUMBER = keys.refund_no(RF)
REV = keys.reversal_no(KEY)


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


def settled(channel: str, cash_by: str = "channel", split: dict = CASH_SPLIT) -> dict:
    s = {"payOrdId": ORDER, **split, "traceTime": "20260101100500", "setlType": "ALL", "setlId": None,
         "channel": channel, "out_trade_no": OTN, "cash_by": cash_by}
    if channel == "wechat":
        s["mix_trade_no"] = MIX
    return s


def add_channel_payment(port, channel: str, cash_by: str = "channel", split: dict = CASH_SPLIT):
    doc = wx_doc() if channel == "wechat" else ali_doc()
    return port.add_request(id=50, kind=KIND_OUTPATIENT, business_key=KEY, state="done", step="await_his",
                            flow_data=ordered(channel, split, settled=settled(channel, cash_by, split)),
                            payload=doc, secrets={"payToken": TOKEN})


def refund_script(mp_client, wx, ali, cash_after="hospital_refunds_cash"):
    return ch_script(RefundFlow(SHIPPED), mp_client, wx, ali, key=RF, serial_key=KEY, cash_after=cash_after)


# ================================================================== refund: check splits into legs

@pytest.mark.parametrize("channel, cash_by, doc, first, centre, channel_cash, notify", [
    ("wechat", "channel", {"amount": "10.00"}, "cash_refund", None, "10.00", False),       # partial cash: WeChat only
    ("wechat", "channel", {}, "refund", "HI", "36.00", True),                              # all: 6203 HI + cash + notify
    ("wechat", "centre", {}, "refund", "ALL", "0.00", True),                               # the centre returns the cash
    ("wechat", "centre", {"amount": "10.00"}, "refund", "CASH", "0.00", False),
    ("alipay", "channel", {}, "refund", "HI", "36.00", False),                             # Alipay: no notify
    ("alipay", "channel", {"amount": "36.00", "refund_type": "CASH"}, "cash_refund", None, "36.00", False),
], ids=["wx-partial-cash", "wx-all", "wx-centre-all", "wx-centre-cash", "ali-all", "ali-cash"])
def test_check_splits_a_channel_refund_into_its_legs(mp_client, wx, ali, channel, cash_by, doc, first, centre,
                                                     channel_cash, notify):
    s = refund_script(mp_client, wx, ali)
    add_channel_payment(s.port, channel, cash_by)
    t = _is(s.step("check", dict({"payment_key": KEY}, **doc)), Goto, step=first)
    assert t.data["legs"] == {"centre": centre, "centre_cash": "36.00" if centre == "ALL" else
                              ("10.00" if centre == "CASH" else "0.00"), "channel_cash": channel_cash,
                              "notify": notify}
    if D(channel_cash) > 0:
        leg = t.data["cash_leg"]
        assert (leg["number"], leg["amount"], leg["paid"], leg["out_trade_no"]) == (NUMBER, channel_cash, "36.00", OTN)
    else:
        assert "cash_leg" not in t.data
    if centre == "HI":        # the centre never books the cash it did not move: 6 -> 8
        assert (t.data["state_before"], t.data["state_after"]) == ("6", "8")


def test_check_a_refund_key_that_makes_no_channel_number_is_bad_input(mp_client, wx, ali):
    """30 characters fit appRefdSn, but not every 30 characters fit a 64-character refund number
    (a character other than a letter or digit takes 3 per UTF-8 byte): refused before any call."""
    s = ch_script(RefundFlow(SHIPPED), mp_client, wx, ali, key="退" * 10, serial_key=KEY)
    add_channel_payment(s.port, "wechat")
    t = _is(s.step("check", {"payment_key": KEY}), Fail, code="BAD_INPUT")
    assert "refund number" in t.message and s.sent == []


# ================================================================== refund: 6203 for the insurance part

def _legs_data(channel="wechat", centre="HI", channel_cash="36.00", notify=True, **more):
    d = {"settled": settled(channel), "type": centre, "fund": "84.00", "account": "0.00", "cash": "36.00",
         "appRefdTime": "20260101120000", "state_before": "6", "state_after": "8",
         "legs": {"centre": centre, "centre_cash": "0.00", "channel_cash": channel_cash, "notify": notify}}
    if D(channel_cash) > 0:
        d["cash_leg"] = {"channel": channel, "tag": keys.REFUND, "key": RF, "attempt": 0, "number": NUMBER,
                         "out_trade_no": OTN, "amount": channel_cash, "paid": "36.00", "purpose": "refund",
                         "reason": None}
    d.update(more)
    return d


@pytest.mark.parametrize("answer, want", [
    (refunded(), (Goto, None, "cash_refund")),
    (refused("6203", "退费失败"), (Fail, "REFUND_REJECTED", None)),
    (transient("6203"), (Retry, "CENTRE_BUSY", None)),
    (not_sent("6203"), (Retry, "NOT_SENT", None)),
    (unknown("6203"), (InDoubt, "REFUND_UNKNOWN", None)),
], ids=["ok", "refused", "transient", "not-sent", "unknown"])
def test_refund_sends_the_insurance_part_only(mp_client, wx, ali, answer, want):
    s = refund_script(mp_client, wx, ali)
    add_channel_payment(s.port, "wechat")
    s.answer("6203", answer)
    t = _is(s.step("refund", {"payment_key": KEY}, data=_legs_data(), secrets=PATIENT_SECRETS), *want)
    body = s.prepared[0].masked_request
    assert '"refdType":"HI"' in body and '"cashRefdAmt":"0.00"' in body and '"fundRefdAmt":"84.00"' in body
    if isinstance(t, Goto):
        assert t.data["centre_done"] == RF


@pytest.mark.parametrize("channel, want", [("wechat", (Goto, None, "refund_notify")), ("alipay", (Finish, None, None))])
def test_refund_without_a_cash_leg_notifies_wechat_or_finishes(mp_client, wx, ali, channel, want):
    s = refund_script(mp_client, wx, ali)
    add_channel_payment(s.port, channel)
    s.answer("6203", refunded())
    data = _legs_data(channel, channel_cash="0.00", notify=channel == "wechat")
    t = _is(s.step("refund", {"payment_key": KEY}, data=data, secrets=PATIENT_SECRETS), *want)
    if isinstance(t, Goto):
        n = t.data["notify"]
        assert (n["mix_trade_no"], n["out_refund_no"], n["fund"]) == (MIX, NUMBER, "84.00")     # our own number
    else:
        assert t.inbox[0].result["insurance_refunded_by"] == "6203" and "cash_refunded_by" not in t.inbox[0].result


@pytest.mark.parametrize("age", [INSIDE, PAST], ids=["inside", "past"])
@pytest.mark.parametrize("stas, want", [
    (OrdStas.INSURANCE_FULLY_REFUNDED, (Goto, None, "cash_refund")),     # 8: the insurance part is back
    (OrdStas.SETTLED, "window"),                                         # 6: not yet
    (OrdStas.REFUNDED, (Hold, "REFUND_UNCLEAR", None)),                  # 7: the centre moved cash it was not asked to
], ids=["refunded", "not-yet", "unclear"])
def test_resolve_refund_reads_the_centres_own_legs(mp_client, wx, ali, age, stas, want):
    s = refund_script(mp_client, wx, ali)
    s.answer("6301", query(stas, fund="84.00", account="0.00", cash="36.00"))
    t = s.resolve("refund", {"payment_key": KEY}, data=_legs_data(), doubt_age=age, secrets=PATIENT_SECRETS)
    if want == "window":
        if age == INSIDE:
            assert isinstance(t, InDoubt) and t.waiting
        else:
            _is(t, Goto, step="refund")
        return
    _is(t, *want)


# ================================================================== cash_refund (NOT safe to repeat)

def _cash_data(channel: str):
    return _legs_data(channel, centre_done=RF, refdSn="RSN-1")


@pytest.mark.parametrize("answer, want", [
    (wx_refund("SUCCESS", NUMBER), (Goto, None, "refund_notify")),
    (wx_refund("PROCESSING", NUMBER), (Wait, None, "await_cash_refund")),
    (wx_refund("CLOSED", NUMBER), (Goto, None, "await_cash_refund")),     # a new number only after a query
    (wx_refund("ABNORMAL", NUMBER), (Hold, "CASH_REFUND_ABNORMAL", None)),
    (wx_error(wx_oc.REFUND_CREATE, "NOT_ENOUGH", "余额不足"), (Hold, "CASH_REFUND_REFUSED", None)),
    (transient(wx_oc.REFUND_CREATE), (Retry, "CHANNEL_BUSY", None)),
    (not_sent(wx_oc.REFUND_CREATE), (Retry, "NOT_SENT", None)),
    (unknown(wx_oc.REFUND_CREATE), (InDoubt, "CASH_REFUND_UNKNOWN", None)),
], ids=["success", "processing", "closed", "abnormal", "refused", "transient", "not-sent", "unknown"])
def test_wechat_cash_refund(mp_client, wx, ali, answer, want):
    s = refund_script(mp_client, wx, ali)
    s.answer(wx_oc.REFUND_CREATE, answer)
    t = _is(s.step("cash_refund", {"payment_key": KEY}, data=_cash_data("wechat")), *want)
    body = json.loads(s.prepared[0].body)
    assert (body["out_refund_no"], body["out_trade_no"], body["amount"]) == (
        NUMBER, OTN, {"refund": 3600, "total": 3600, "currency": "CNY"})
    if isinstance(t, Goto) and t.step == "refund_notify":
        assert t.data["notify"]["out_refund_no"] == NUMBER                # the same number as the cash refund (§2.7)
    if isinstance(t, Hold):
        assert "6203 RF-1" in t.message                                   # what already happened, for the person


@pytest.mark.parametrize("answer, want", [
    (ali_refunded(), (Finish, None)),
    (refused(ali_oc.REFUND, "ACQ.SELLER_BALANCE_NOT_ENOUGH", code="ACQ.SELLER_BALANCE_NOT_ENOUGH"),
     (Hold, "CASH_REFUND_REFUSED")),
    (transient(ali_oc.REFUND), (Retry, "CHANNEL_BUSY")),
    (not_sent(ali_oc.REFUND), (Retry, "NOT_SENT")),
    (unknown(ali_oc.REFUND), (InDoubt, "CASH_REFUND_UNKNOWN")),
], ids=["success", "refused", "transient", "not-sent", "unknown"])
def test_alipay_cash_refund(mp_client, wx, ali, answer, want):
    s = refund_script(mp_client, wx, ali)
    s.port.add_request(id=50, kind=KIND_OUTPATIENT, business_key=KEY, state="done", payload=ali_doc())
    s.answer(ali_oc.REFUND, answer)
    t = _is(s.step("cash_refund", {"payment_key": KEY}, data=_legs_data("alipay", notify=False, centre_done=RF)),
            *want)
    assert NUMBER in s.prepared[0].masked_request
    if isinstance(t, Finish):
        r = t.inbox[0].result
        assert (r["channel"], r["out_refund_no"], r["cash_refunded_by"], r["insurance_refunded_by"]) == (
            "alipay", NUMBER, "alipay", "6203")
        assert r["refund_time"] == "2026-01-01 11:00:00"


@pytest.mark.parametrize("age", [INSIDE, PAST], ids=["inside", "past"])
@pytest.mark.parametrize("answer, want", [
    (wx_refund("SUCCESS", NUMBER, interface=wx_oc.REFUND_QUERY), (Goto, None, "refund_notify")),
    (wx_refund("PROCESSING", NUMBER, interface=wx_oc.REFUND_QUERY), (Wait, None, "await_cash_refund")),
    (wx_refund("CLOSED", NUMBER, interface=wx_oc.REFUND_QUERY), (Goto, None, "cash_refund")),
    (wx_refund("ABNORMAL", NUMBER, interface=wx_oc.REFUND_QUERY), (Hold, "CASH_REFUND_ABNORMAL", None)),
    (wx_error(wx_oc.REFUND_QUERY, "RESOURCE_NOT_EXISTS", "退款单不存在", 404), "window"),
    (unknown(wx_oc.REFUND_QUERY), (InDoubt, "QUERY_FAILED", None)),
    (transient(wx_oc.REFUND_QUERY), (InDoubt, "QUERY_FAILED", None)),
], ids=["success", "processing", "closed", "abnormal", "not-found", "unknown", "transient"])
def test_resolve_wechat_cash_refund(mp_client, wx, ali, age, answer, want):
    s = refund_script(mp_client, wx, ali)
    s.answer(wx_oc.REFUND_QUERY, answer)
    t = s.resolve("cash_refund", {"payment_key": KEY}, data=_cash_data("wechat"), doubt_age=age)
    assert s.sent == [wx_oc.REFUND_QUERY]                                 # asked; never refunded again blindly
    if want == "window":
        if age == INSIDE:
            assert isinstance(t, InDoubt) and t.waiting and t.code == "NOT_SETTLED_YET"
        else:
            _is(t, Goto, step="cash_refund")
            assert "cash_leg" not in t.data                                # the same number again: a first send
        return
    _is(t, *want)
    if isinstance(t, Goto) and t.step == "cash_refund":
        assert t.data["cash_leg"]["number"] == keys.refund_no(RF, attempt=1)     # CLOSED: a new number


@pytest.mark.parametrize("age", [INSIDE, PAST], ids=["inside", "past"])
@pytest.mark.parametrize("answer, want", [
    (ali_refund_state("REFUND_SUCCESS", NUMBER), (Finish, None)),
    (ali_refund_state("PROCESSING", NUMBER), (Wait, None)),
    (refused(ali_oc.REFUND_QUERY, "no such refund", code=ali_oc.REFUND_NOT_FOUND), "window"),
    (unknown(ali_oc.REFUND_QUERY), (InDoubt, "QUERY_FAILED")),
], ids=["success", "other-status", "not-found", "unknown"])
def test_resolve_alipay_cash_refund(mp_client, wx, ali, age, answer, want):
    s = refund_script(mp_client, wx, ali)
    s.port.add_request(id=50, kind=KIND_OUTPATIENT, business_key=KEY, state="done", payload=ali_doc())
    s.answer(ali_oc.REFUND_QUERY, answer)
    t = s.resolve("cash_refund", {"payment_key": KEY}, data=_legs_data("alipay", notify=False), doubt_age=age)
    if want == "window":
        if age == INSIDE:
            assert isinstance(t, InDoubt) and t.waiting
        else:
            _is(t, Goto, step="cash_refund")
        return
    _is(t, *want)


@pytest.mark.parametrize("answer, attempt, want", [
    (wx_refund("SUCCESS", NUMBER, interface=wx_oc.REFUND_QUERY), 0, (Goto, None, "refund_notify")),
    (wx_refund("PROCESSING", NUMBER, interface=wx_oc.REFUND_QUERY), 0, (Wait, None, "await_cash_refund")),
    (wx_refund("CLOSED", NUMBER, interface=wx_oc.REFUND_QUERY), 0, (Goto, None, "cash_refund")),
    (wx_refund("CLOSED", NUMBER, interface=wx_oc.REFUND_QUERY), 3, (Hold, "CASH_REFUND_CLOSED", None)),
    (wx_refund("ABNORMAL", NUMBER, interface=wx_oc.REFUND_QUERY), 0, (Hold, "CASH_REFUND_ABNORMAL", None)),
    (wx_error(wx_oc.REFUND_QUERY, "RESOURCE_NOT_EXISTS", "退款单不存在", 404), 0, (Hold, "CASH_REFUND_MISSING", None)),
    (unknown(wx_oc.REFUND_QUERY), 0, (Retry, "QUERY_FAILED", None)),
], ids=["success", "processing", "closed", "closed-three-times", "abnormal", "missing", "unknown"])
def test_await_cash_refund(mp_client, wx, ali, answer, attempt, want):
    s = refund_script(mp_client, wx, ali)
    data = _cash_data("wechat")
    data["cash_leg"] = dict(data["cash_leg"], attempt=attempt, number=keys.refund_no(RF, attempt=attempt))
    s.answer(wx_oc.REFUND_QUERY, answer)
    t = _is(s.step("await_cash_refund", {"payment_key": KEY}, data=data), *want)
    if isinstance(t, Goto) and t.step == "cash_refund":
        assert t.data["cash_leg"]["number"] == keys.refund_no(RF, attempt=attempt + 1)


# ================================================================== refund_notify (WeChat §2.7, safe)

@pytest.mark.parametrize("answer, attempts, want", [
    (ok(wx_oc.MEDINS_REFUND_NOTIFY), 1, (Finish, None)),
    (wx_error(wx_oc.MEDINS_REFUND_NOTIFY, "PARAM_ERROR"), 1, (Finish, None)),     # noted, never held: the money is back
    (transient(wx_oc.MEDINS_REFUND_NOTIFY), 1, (Retry, "NOTIFY_FAILED")),
    (not_sent(wx_oc.MEDINS_REFUND_NOTIFY), 1, (Retry, "NOTIFY_FAILED")),
    (unknown(wx_oc.MEDINS_REFUND_NOTIFY), 1, (Retry, "NOTIFY_FAILED")),
    (unknown(wx_oc.MEDINS_REFUND_NOTIFY), 9, (Finish, None)),                   # the last attempt: noted
], ids=["ok", "refused", "transient", "not-sent", "unknown", "last-attempt"])
def test_refund_notify(mp_client, wx, ali, monkeypatch, answer, attempts, want):
    s = refund_script(mp_client, wx, ali)
    s.port.add_request(id=50, kind=KIND_OUTPATIENT, business_key=KEY, state="done", payload=wx_doc())
    data = _cash_data("wechat")
    data.update(cash_done={"number": NUMBER, "refund_id": "50RF1", "success_time": "2026-01-01T11:00:00+08:00"},
                notify={"mix_trade_no": MIX, "out_refund_no": NUMBER, "fund": "84.00", "account": "0.00",
                        "refund_time": "2026-01-01T11:00:00+08:00"})
    s.answer(wx_oc.MEDINS_REFUND_NOTIFY, answer)
    import bridge.engine.testing as testing
    row = testing.ClaimedRow            # the claim's attempt count (FlowScript claims with 1)
    monkeypatch.setattr(testing, "ClaimedRow", lambda **kw: row(**dict(kw, attempts=attempts)))
    t = _is(s.step("refund_notify", {"payment_key": KEY}, data=data), *want)
    body = json.loads(s.prepared[0].body)
    assert body == {"med_refund_total_fee": 8400, "med_refund_gov_fee": 8400, "med_refund_self_fee": 0,
                    "med_refund_other_fee": 0, "refund_time": "2026-01-01T11:00:00+08:00", "out_refund_no": NUMBER}
    assert s.prepared[0].url.endswith(f"mix_trade_no={MIX}")
    if isinstance(t, Finish):
        row = t.inbox[0]
        assert (row.total_amount, row.fund_amount, row.cash_amount) == (D("120.00"), D("84.00"), D("36.00"))
        assert (row.result["out_refund_no"], row.result["cash_refunded_by"]) == (NUMBER, "wechat")
        assert ("note" in row.result) == (answer.outcome.value != "ok")


def test_a_finished_refund_adds_the_patient_message_when_configured(mp_client, ali):
    s = refund_script(mp_client, wechat_client_with_templates(), ali)
    s.port.add_request(id=50, kind=KIND_OUTPATIENT, business_key=KEY, state="done", payload=wx_doc())
    s.answer(wx_oc.REFUND_CREATE, wx_refund("SUCCESS", NUMBER))
    data = _legs_data("wechat", notify=False, centre_done=RF)
    t = _is(s.step("cash_refund", {"payment_key": KEY, "reason": "退药"}, data=data), Finish)
    [msg] = t.enqueue
    assert (msg.business_key, msg.payload["event"], msg.payload["recipient"]) == (
        "msg:refund_done:1", "refund_done", {"openid": OPENID})
    assert msg.payload["values"] == {"amount": "120.00", "refund_reason": "退药",
                                     "refund_time": "2026-01-01T11:00:00+08:00"}


# ================================================================== the payment's own reversal

REPAIRING = {"appRefdSn": repair_serial(ORDER), "appRefdTime": "20260101130000",
             "repair_reason": "the HIS rejected the settlement"}


def _payment(mp_client, wx, ali, cash_after="hospital_refunds_cash"):
    return ch_script(PaymentFlow(KIND_OUTPATIENT, SHIPPED), mp_client, wx, ali, cash_after=cash_after)


@pytest.mark.parametrize("channel, cash_by, split, sent, want", [
    ("wechat", "channel", CASH_SPLIT, '"refdType":"HI"', (Goto, "cash_refund")),
    ("wechat", "centre", CASH_SPLIT, '"refdType":"ALL"', (Goto, "refund_notify")),          # no cash refund of ours
    ("alipay", "channel", CASH_SPLIT, '"refdType":"HI"', (Goto, "cash_refund")),
    ("wechat", "channel", {"total": "120.00", "fund": "0.00", "account": "0.00", "cash": "120.00"}, None,
     (Goto, "cash_refund")),                                                              # nothing for the centre
], ids=["wx", "wx-centre", "ali", "cash-only"])
def test_repair_refunds_each_leg(mp_client, wx, ali, channel, cash_by, split, sent, want):
    s = _payment(mp_client, wx, ali)
    doc = wx_doc() if channel == "wechat" else ali_doc()
    data = ordered(channel, split, settled=settled(channel, cash_by, split), **REPAIRING)
    if sent:
        s.answer("6203", refunded())
    t = _is(s.step("repair", doc, data=data, secrets={"payToken": TOKEN}), want[0], step=want[1])
    if sent:
        assert sent in s.prepared[0].masked_request
    else:
        assert s.sent == []
    if t.step == "cash_refund":
        assert (t.data["cash_leg"]["number"], t.data["cash_leg"]["purpose"]) == (REV, "reversal")


@pytest.mark.parametrize("age", [INSIDE, PAST], ids=["inside", "past"])
@pytest.mark.parametrize("stas, want", [(OrdStas.INSURANCE_FULLY_REFUNDED, (Goto, "cash_refund")),
                                        (OrdStas.SETTLED, "window"), (OrdStas.REFUNDED, (Hold, None))],
                         ids=["hi-refunded", "not-yet", "unexpected"])
def test_resolve_repair_of_a_channel_payment_expects_the_insurance_part_only(mp_client, wx, ali, age, stas, want):
    s = _payment(mp_client, wx, ali)
    s.answer("6301", query(stas, fund="84.00", account="0.00", cash="36.00"))
    t = s.resolve("repair", wx_doc(), data=ordered("wechat", settled=settled("wechat"), **REPAIRING),
                  doubt_age=age, secrets={"payToken": TOKEN})
    if want == "window":
        assert (isinstance(t, InDoubt) and t.waiting) if age == INSIDE else (isinstance(t, Goto) and t.step == "repair")
    elif want[0] is Hold:
        _is(t, Hold, code="REPAIR_UNCLEAR")
    else:
        _is(t, Goto, step=want[1])


def test_the_reversal_ends_with_both_legs_named(mp_client, wx, ali):
    s = _payment(mp_client, wx, ali)
    s.answer(wx_oc.REFUND_CREATE, wx_refund("SUCCESS", REV))
    leg = {"channel": "wechat", "tag": keys.REVERSAL, "key": KEY, "attempt": 0, "number": REV, "out_trade_no": OTN,
           "amount": "36.00", "paid": "36.00", "purpose": "reversal", "reason": None}
    data = ordered("wechat", settled=settled("wechat"), cash_leg=leg, refdSn="RSN-9", **REPAIRING)
    t = _is(s.step("cash_refund", wx_doc(), data=data), Goto, step="refund_notify")
    assert t.data["notify"]["out_refund_no"] == REV
    s.answer(wx_oc.MEDINS_REFUND_NOTIFY, ok(wx_oc.MEDINS_REFUND_NOTIFY))
    t = _is(s.step("refund_notify", wx_doc(), data={**data, **t.data}), Fail, code="REVERSED")
    r = t.inbox[0].result
    assert (r["channel"], r["out_refund_no"], r["out_trade_no"]) == ("wechat", REV, OTN) and r["refund_time"]
    assert "6203" in t.message and REV in t.message


@pytest.mark.parametrize("end, want", [({"code": "PAYMENT_FAILED", "message": "x", "no_close": True},
                                        (Goto, "revoke")),
                                       ({"code": "EXPIRED", "message": "x", "no_close": True, "closed": True},
                                        (Fail, None))], ids=["then-revoke", "already-revoked"])
def test_the_cash_of_a_failed_payment_comes_back_before_the_centre_order_ends(mp_client, wx, ali, end, want):
    s = _payment(mp_client, wx, ali)
    s.answer(wx_oc.REFUND_CREATE, wx_refund("SUCCESS", REV))
    leg = {"channel": "wechat", "tag": keys.REVERSAL, "key": KEY, "attempt": 0, "number": REV, "out_trade_no": OTN,
           "amount": "36.00", "paid": "36.00", "purpose": "failed_payment", "reason": None}
    t = s.step("cash_refund", wx_doc(), data=ordered("wechat", cash_leg=leg, end=end))
    if want[0] is Goto:
        _is(t, Goto, step="revoke")
        assert t.data["cash_done"]["number"] == REV
    else:
        # Ends failed (no `reversal` row: nothing was settled), naming the refund that gave the
        # cash back: the HIS and finance see it, and the notice check matches a late callback
        # of the cash or of its refund by flow_data's cash_done (bridge/channels/notice_check.py).
        _is(t, Fail, code="EXPIRED")
        assert t.data["cash_done"] == {"number": REV, "refund_id": "50RF1",
                                       "success_time": "2026-01-01T11:00:00+08:00"}
        [row] = t.inbox
        assert (row.result_type, row.outcome, row.error_code, row.order_id) == ("error", "failed", "EXPIRED", ORDER)
        assert (row.result["out_refund_no"], row.result["refund_id"], row.result["cash_refunded"],
                row.result["channel"], row.result["out_trade_no"]) == (REV, "50RF1", "36.00", "wechat", OTN)
        assert REV in row.error_message and REV in t.message


# ================================================================== mobilepay.revoke closes the cash order

@pytest.mark.parametrize("answer, want", [
    (ok(wx_oc.TRANSACTION_CLOSE), (Finish, "closed")),
    (wx_error(wx_oc.TRANSACTION_CLOSE, "ORDER_NOT_EXIST", "订单不存在", 404), (Finish, "closed")),
    (wx_error(wx_oc.TRANSACTION_CLOSE, "ORDER_PAID", "订单已支付"), (Finish, "close refused")),
    (transient(wx_oc.TRANSACTION_CLOSE), (Retry, None)),
    (not_sent(wx_oc.TRANSACTION_CLOSE), (Retry, None)),
    (unknown(wx_oc.TRANSACTION_CLOSE), (Retry, None)),
], ids=["ok", "not-found", "refused", "transient", "not-sent", "unknown"])
def test_revoke_closes_the_wechat_cash_order(mp_client, wx, ali, answer, want):
    s = ch_script(RevokeFlow(SHIPPED), mp_client, wx, ali, key="RV-1", serial_key="RV-1")
    s.answer(wx_oc.TRANSACTION_CLOSE, answer)
    data = {"payOrdId": ORDER, "payment_id": 50, "channel": "wechat", "out_trade_no": OTN, "prepay_id": PREPAY}
    t = _is(s.step("close_channel", {"payment_key": KEY}, data=data), want[0])
    assert s.prepared[0].url.endswith(f"/out-trade-no/{OTN}/close")
    if isinstance(t, Finish):
        assert t.inbox[0].result["channel_closed"].startswith(want[1])
        assert s.port.pokes == [(("mobilepay.outpatient", "mobilepay.registration"), KEY)]


def test_revoke_then_close_only_where_there_is_a_cash_order(mp_client, wx, ali):
    s = ch_script(RevokeFlow(SHIPPED), mp_client, wx, ali, key="RV-1", serial_key="RV-1")
    base = {"payOrdId": ORDER, "payment_id": 50, "channel": "wechat", "out_trade_no": OTN}
    s.answer("6401", revoked(), revoked())
    _is(s.step("revoke", {"payment_key": KEY}, data=dict(base, prepay_id=PREPAY), secrets=PATIENT_SECRETS), Goto,
        step="close_channel")
    t = _is(s.step("revoke", {"payment_key": KEY}, data=dict(base, channel="alipay"), secrets=PATIENT_SECRETS),
            Finish)
    assert "Alipay has no close" in t.inbox[0].result["channel_closed"]


def test_revoke_refused_because_the_payment_revoked_it_still_closes_the_cash_order(mp_client, wx, ali):
    s = ch_script(RevokeFlow(SHIPPED), mp_client, wx, ali, key="RV-1", serial_key="RV-1")
    data = {"payOrdId": ORDER, "payment_id": 50, "channel": "wechat", "out_trade_no": OTN, "prepay_id": PREPAY}
    s.answer("6401", refused("6401", "订单已撤销"))
    s.answer("6301", query(OrdStas.REVOKED))
    t = _is(s.step("revoke", {"payment_key": KEY}, data=data, secrets=PATIENT_SECRETS), Goto, step="close_channel")
    s.answer(wx_oc.TRANSACTION_CLOSE, ok(wx_oc.TRANSACTION_CLOSE))
    t = _is(s.step("close_channel", {"payment_key": KEY}, data={**data, **t.data}), Finish)
    assert t.inbox[0].result["channel_closed"] == "closed" and "already revoked" in t.inbox[0].result["note"]


def test_a_processing_refund_whose_callback_came_meanwhile_is_asked_again_at_once(mp_client, wx, ali):
    """The REFUND.SUCCESS callback can arrive while the row is still at work (it cannot wake a
    running row): look for it before waiting, as the payment does for 6302."""
    from bridge.channels.notices import WECHAT_REFUND, notice_key
    s = refund_script(mp_client, wx, ali)
    s.answer(wx_oc.REFUND_CREATE, wx_refund("PROCESSING", NUMBER), wx_refund("PROCESSING", NUMBER))
    slow = _is(s.step("cash_refund", {"payment_key": KEY}, data=_cash_data("wechat")), Wait)
    s.port.set_notice(WECHAT_REFUND, notice_key(NUMBER, "SUCCESS"), {"status": "SUCCESS"})
    fast = _is(s.step("cash_refund", {"payment_key": KEY}, data=_cash_data("wechat")), Wait)
    assert fast.delay < slow.delay and fast.delay <= 0.2
