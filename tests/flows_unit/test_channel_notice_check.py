"""Every decision of channel.notice_check (bridge/channels/notice_check.py): a verified
WeChat Pay / Alipay callback for a request that ended, or for one of our numbers no
request has - quiet when the request's own records account for the money, held for a
person only when money may be unmatched, asked again when the channel cannot say."""
from __future__ import annotations

from decimal import Decimal

import pytest

from bridge.alipay import outcomes as ali
from bridge.alipay.messages import RefundState, Trade, TradeStatus
from bridge.channels import keys
from bridge.channels.notice_check import ChannelNoticeCheckFlow, check_key, check_payload, is_reversed, quiet_reason
from bridge.channels.notices import ALIPAY_REFUND, ALIPAY_TRADE, WECHAT_MEDINS, WECHAT_REFUND, WECHAT_TRADE
from bridge.engine.flow import Finish, Hold, Retry, Wait
from bridge.engine.testing import FlowScript, not_sent, ok, transient, unknown
from bridge.mobilepay.kinds import KIND_OUTPATIENT, KIND_REFUND
from bridge.wechatpay import outcomes as wx
from bridge.wechatpay.messages import Refund, RefundStatus, TradeState, Transaction

from .ch_messages import ali_answer, ch_clients, wx_answer  # noqa: F401 (fixture)

PAY = "INV-1"
RF = "RF-1"
OTN = keys.out_trade_no(PAY)                 # attempt 0
OTN1 = keys.out_trade_no(PAY, attempt=1)
REV = keys.reversal_no(PAY)
RFN = keys.refund_no(RF)
RFN1 = keys.refund_no(RF, attempt=1)
TXQ, WRQ, ATQ, ARQ = wx.TRANSACTION_QUERY, wx.REFUND_QUERY, ali.TRADE_QUERY, ali.REFUND_QUERY
YOUNG, OLD = 10.0, 400.0                      # a callback's age against the 300 s settle window
# flow_data of a payment that ended failed after giving its cash back itself (payment.py: the
# insurance part failed after the cash was taken; no `reversal` row): cash_done names the refund.
CASH_BACK = {"channel": "wechat", "out_trade_no": OTN, "payOrdId": "ORD-1", "channel_ordered": True,
             "cash_leg": {"channel": "wechat", "tag": "F", "key": PAY, "attempt": 0, "number": REV,
                          "out_trade_no": OTN, "amount": "30.00", "paid": "30.00", "purpose": "failed_payment"},
             "cash_done": {"number": REV, "refund_id": "50RF1", "success_time": "2026-01-01T11:00:00+08:00"},
             "end": {"code": "PAYMENT_FAILED", "message": "the insurance part failed after the cash was taken",
                     "no_close": True}}


def record(interface: str, **kw) -> dict:
    base = {WECHAT_TRADE: {"out_trade_no": OTN, "trade_state": "SUCCESS", "total": "30.00"},
            WECHAT_MEDINS: {"out_trade_no": OTN, "mix_trade_no": "MIX1", "mix_pay_status": "MIX_PAY_SUCCESS",
                            "mix_pay_type": "CASH_AND_INSURANCE", "wechat_pay_cash_fee": "30.00"},
            WECHAT_REFUND: {"out_refund_no": RFN, "out_trade_no": OTN, "status": "SUCCESS", "refund": "10.00"},
            ALIPAY_TRADE: {"out_trade_no": OTN, "trade_status": "TRADE_SUCCESS", "real_amount": "30.00"},
            ALIPAY_REFUND: {"out_trade_no": OTN, "out_biz_no": RFN, "refund_fee": "10.00"}}[interface]
    return {**base, **kw}


def script(ch_clients, interface: str, what: str, business_key: str, attempt: int = 0, age: float = YOUNG,
           **rec) -> tuple[FlowScript, dict]:
    r = record(interface, **rec)
    key = f"{interface}-key"
    payload = check_payload(interface, key, what, business_key, attempt, r)
    s = FlowScript(ChannelNoticeCheckFlow(), services=ch_clients,
                   business_key=check_key(payload["channel"], payload["number"]))
    s.port.set_notice(interface, key, r, age_seconds=age)
    return s, payload


def payment(s: FlowScript, state: str, flow_data=None, reversal: bool = False, kind: str = KIND_OUTPATIENT):
    s.port.add_request(id=50, kind=kind, business_key=PAY, state=state, flow_data=flow_data or {})
    if reversal:
        s.port.set_inbox(50, "reversal")


def refund_req(s: FlowScript, state: str, flow_data=None):
    s.port.add_request(id=60, kind=KIND_REFUND, business_key=RF, state=state, flow_data=flow_data or {},
                       serial_key=PAY)


def tx(state: TradeState, number: str = OTN):
    return ok(TXQ, Transaction(out_trade_no=number, trade_state=state, total=Decimal("30.00")))


def wrefund(status: RefundStatus, number: str = RFN):
    return ok(WRQ, Refund(out_refund_no=number, status=status, refund=Decimal("10.00")))


def atrade(status: TradeStatus):
    return ok(ATQ, Trade(trade_no="2026T1", out_trade_no=OTN, trade_status=status, total_amount=Decimal("30.00")))


def arefund(found: bool = True, status: str = "REFUND_SUCCESS"):
    if not found:
        return ali_answer(ARQ, ali.REFUND_NOT_FOUND, "no refund")
    return ok(ARQ, RefundState(out_request_no=RFN, refund_amount=Decimal("10.00"), refund_status=status))


def _is(t, kind, code=None):
    assert isinstance(t, kind), t
    if code is not None:
        assert t.code == code, t
    if isinstance(t, Finish):
        assert t.inbox == [] and "matched" in t.data            # quiet: nobody is alerted
    return t


# ---------------------------------------------------------------- a payment's number, WeChat

@pytest.mark.parametrize("state, flow_data, attempt, answers, want", [
    # done and it names the number (or names none: attempt 0): no query at all
    ("done", {}, 0, [], (Finish, None)),
    ("done", {"channel": {"out_trade_no": OTN1}}, 1, [], (Finish, None)),
    # done, but another attempt of the order was paid
    ("done", {}, 1, [tx(TradeState.SUCCESS, OTN1)], (Hold, "NOTICE_FOR_UNKNOWN_ORDER")),
    ("done", {"channel": {"out_trade_no": OTN}}, 1, [tx(TradeState.SUCCESS, OTN1)], (Hold, "NOTICE_FOR_UNKNOWN_ORDER")),
    ("done", {}, 1, [tx(TradeState.CLOSED, OTN1)], (Wait, None)),                 # not paid yet per the query
    # ended without the HIS taking it
    ("failed", {}, 0, [tx(TradeState.SUCCESS)], (Hold, "NOTICE_FOR_CLOSED_PAYMENT")),
    ("resolved", {}, 0, [tx(TradeState.SUCCESS)], (Hold, "NOTICE_FOR_CLOSED_PAYMENT")),
    ("failed", {}, 0, [tx(TradeState.REFUND)], (Hold, "NOTICE_FOR_CLOSED_PAYMENT")),
    ("failed", {}, 0, [tx(TradeState.NOTPAY)], (Wait, None)),
    ("failed", {}, 0, [wx_answer(TXQ, "ORDER_NOT_EXIST", http_status=404)], (Wait, None)),
    # the channel cannot say: asked again (a read)
    ("failed", {}, 0, [unknown(TXQ)], (Retry, "QUERY_FAILED")),
    ("failed", {}, 0, [not_sent(TXQ)], (Retry, "QUERY_FAILED")),
    ("failed", {}, 0, [transient(TXQ)], (Retry, "QUERY_FAILED")),
    ("failed", {}, 0, [wx_answer(TXQ, "PARAM_ERROR", http_status=400)], (Retry, "QUERY_FAILED")),
    # open again (requeued since): its own flow reads the callback
    ("pending", {}, 0, [], (Finish, None)),
    ("held", {}, 0, [], (Finish, None)),
])
def test_wechat_payment_callback(ch_clients, state, flow_data, attempt, answers, want):
    s, p = script(ch_clients, WECHAT_TRADE, "payment", PAY, attempt,
                  **({"out_trade_no": OTN1} if attempt else {}))
    payment(s, state, flow_data)
    if answers:
        s.answer(TXQ, *answers)
    t = _is(s.step("check", p), *want)
    assert s.sent == [TXQ] * len(answers) and not s.unanswered()
    if isinstance(t, Wait):
        assert t.step == "check" and t.delay == pytest.approx(300 - YOUNG)


@pytest.mark.parametrize("refund_answer, want", [
    (wrefund(RefundStatus.SUCCESS, REV), (Finish, None)),            # its reversal brought the cash back
    (wrefund(RefundStatus.PROCESSING, REV), (Retry, "REFUND_IN_PROGRESS")),
    (wrefund(RefundStatus.CLOSED, REV), (Hold, "NOTICE_FOR_CLOSED_PAYMENT")),
    (wrefund(RefundStatus.ABNORMAL, REV), (Hold, "NOTICE_FOR_CLOSED_PAYMENT")),
    (wx_answer(WRQ, "RESOURCE_NOT_EXISTS", http_status=404), (Hold, "NOTICE_FOR_CLOSED_PAYMENT")),
    (unknown(WRQ), (Retry, "QUERY_FAILED")),
])
@pytest.mark.parametrize("trade", [TradeState.SUCCESS, TradeState.REFUND])
def test_wechat_payment_that_ended_with_its_reversal(ch_clients, trade, refund_answer, want):
    s, p = script(ch_clients, WECHAT_TRADE, "payment", PAY)
    payment(s, "failed", reversal=True)
    s.answer(TXQ, tx(trade)).answer(WRQ, refund_answer)
    _is(s.step("check", p), *want)
    assert s.sent == [TXQ, WRQ]
    assert REV in s.prepared[1].url                 # the reversal's own number, attempt 0 by default


def test_the_reversal_number_the_payment_names_is_the_one_asked(ch_clients):
    s, p = script(ch_clients, WECHAT_TRADE, "payment", PAY)
    rev1 = keys.reversal_no(PAY, attempt=1)
    payment(s, "failed", {"reversal": {"out_refund_no": rev1}}, reversal=True)
    s.answer(TXQ, tx(TradeState.REFUND)).answer(WRQ, wrefund(RefundStatus.SUCCESS, rev1))
    _is(s.step("check", p), Finish)
    assert rev1 in s.prepared[1].url


@pytest.mark.parametrize("age, want", [(YOUNG, (Wait, None)), (OLD, (Hold, "NOTICE_CONTRADICTS_STATUS"))])
def test_paid_by_the_callback_but_not_by_the_query(ch_clients, age, want):
    s, p = script(ch_clients, WECHAT_TRADE, "payment", PAY, age=age)
    payment(s, "failed")
    s.answer(TXQ, tx(TradeState.CLOSED))
    _is(s.step("check", p), *want)


@pytest.mark.parametrize("answer, want", [
    (tx(TradeState.SUCCESS), (Hold, "NOTICE_FOR_UNKNOWN_PAYMENT")),
    (tx(TradeState.NOTPAY), (Wait, None)),
])
def test_one_of_our_numbers_no_request_has(ch_clients, answer, want):
    s, p = script(ch_clients, WECHAT_TRADE, "payment", PAY)
    s.answer(TXQ, answer)
    _is(s.step("check", p), *want)


@pytest.mark.parametrize("rec, answers, want", [
    ({"mix_pay_type": "INSURANCE_ONLY", "wechat_pay_cash_fee": None}, [], (Finish, None)),   # no cash part
    ({"wechat_pay_cash_fee": "0.00"}, [], (Finish, None)),
    ({}, [tx(TradeState.SUCCESS)], (Hold, "NOTICE_FOR_CLOSED_PAYMENT")),
])
def test_wechat_mixed_order_callback_is_about_its_cash_part(ch_clients, rec, answers, want):
    s, p = script(ch_clients, WECHAT_MEDINS, "payment", PAY, **rec)
    payment(s, "failed")
    if answers:
        s.answer(TXQ, *answers)
    _is(s.step("check", p), *want)
    assert s.sent == [TXQ] * len(answers)


# ---------------------------------------------------------------- a payment's number, Alipay

@pytest.mark.parametrize("rec, state, reversal, answers, want", [
    ({}, "failed", False, [atrade(TradeStatus.TRADE_SUCCESS)], (Hold, "NOTICE_FOR_CLOSED_PAYMENT")),
    ({}, "failed", False, [atrade(TradeStatus.TRADE_FINISHED)], (Hold, "NOTICE_FOR_CLOSED_PAYMENT")),
    ({}, "failed", False, [atrade(TradeStatus.TRADE_CLOSED)], (Finish, None)),      # closed or refunded in full
    ({}, "failed", False, [atrade(TradeStatus.WAIT_BUYER_PAY)], (Wait, None)),
    ({}, "failed", False, [ali_answer(ATQ, "ACQ.TRADE_NOT_EXIST")], (Wait, None)),
    ({"trade_status": "TRADE_CLOSED"}, "failed", False, [ali_answer(ATQ, "ACQ.TRADE_NOT_EXIST")], (Finish, None)),
    ({}, "failed", False, [ali_answer(ATQ, "20000", "服务不可用")], (Retry, "QUERY_FAILED")),
    ({}, "failed", False, [ali_answer(ATQ, "isv.invalid-signature")], (Retry, "QUERY_FAILED")),
    ({"real_amount": "0.00"}, "failed", False, [], (Finish, None)),                 # no cash part
    ({}, "done", False, [], (Finish, None)),
    ({}, "failed", True, [atrade(TradeStatus.TRADE_SUCCESS), arefund()], (Finish, None)),
    ({}, "failed", True, [atrade(TradeStatus.TRADE_SUCCESS), arefund(found=False)],
     (Hold, "NOTICE_FOR_CLOSED_PAYMENT")),
    ({}, "failed", True, [atrade(TradeStatus.TRADE_SUCCESS), arefund(status="REFUND_PROCESSING")],
     (Retry, "REFUND_IN_PROGRESS")),
])
def test_alipay_payment_notify(ch_clients, rec, state, reversal, answers, want):
    s, p = script(ch_clients, ALIPAY_TRADE, "payment", PAY, **rec)
    payment(s, state, reversal=reversal)
    for a in answers:
        s.answer(a.interface, a)
    _is(s.step("check", p), *want)
    assert s.sent == [a.interface for a in answers] and not s.unanswered()


# ---------------------------------------------------------------- a refund's number

@pytest.mark.parametrize("state, flow_data, attempt, rec, answers, want", [
    ("done", {}, 0, {}, [], (Finish, None)),                                       # it names it: no query
    ("done", {"refund": {"out_refund_no": RFN1}}, 1, {}, [], (Finish, None)),
    ("done", {"cash_leg": {"number": RFN1, "attempt": 1}}, 1, {}, [], (Finish, None)),   # under any key
    ("done", {"cash_leg": {"number": RFN1}}, 0, {"out_refund_no": RFN}, [wrefund(RefundStatus.SUCCESS)],
     (Hold, "NOTICE_FOR_UNKNOWN_REFUND")),                                          # attempt 0 after attempt 1
    ("done", {"other": keys.refund_no("RF-OTHER", attempt=1)}, 0, {}, [], (Finish, None)),  # another key's: no say
    ("done", {}, 1, {}, [wrefund(RefundStatus.SUCCESS, RFN1)], (Hold, "NOTICE_FOR_UNKNOWN_REFUND")),
    ("failed", {}, 0, {}, [wrefund(RefundStatus.SUCCESS)], (Hold, "NOTICE_FOR_CLOSED_REFUND")),
    ("resolved", {}, 0, {}, [wrefund(RefundStatus.SUCCESS)], (Hold, "NOTICE_FOR_CLOSED_REFUND")),
    ("failed", {}, 0, {}, [wrefund(RefundStatus.CLOSED)], (Finish, None)),          # no money moved
    ("failed", {}, 0, {}, [wrefund(RefundStatus.PROCESSING)], (Retry, "REFUND_IN_PROGRESS")),
    ("failed", {}, 0, {}, [wrefund(RefundStatus.ABNORMAL)], (Hold, "REFUND_ABNORMAL")),
    ("failed", {}, 0, {}, [wx_answer(WRQ, "RESOURCE_NOT_EXISTS", http_status=404)], (Wait, None)),
    ("failed", {}, 0, {}, [not_sent(WRQ)], (Retry, "QUERY_FAILED")),
    ("failed", {}, 0, {}, [unknown(WRQ)], (Retry, "QUERY_FAILED")),
    # an ABNORMAL callback for a refund the HIS was told went through
    ("done", {}, 0, {"status": "ABNORMAL"}, [wrefund(RefundStatus.ABNORMAL)], (Hold, "REFUND_ABNORMAL")),
    ("done", {}, 0, {"status": "ABNORMAL"}, [wrefund(RefundStatus.SUCCESS)], (Finish, None)),
    ("failed", {}, 0, {"status": "CLOSED"}, [wx_answer(WRQ, "RESOURCE_NOT_EXISTS", http_status=404)],
     (Finish, None)),
])
def test_wechat_refund_callback(ch_clients, state, flow_data, attempt, rec, answers, want):
    s, p = script(ch_clients, WECHAT_REFUND, "refund", RF, attempt,
                  **({"out_refund_no": RFN1} if attempt else {}), **rec)
    refund_req(s, state, flow_data)
    if answers:
        s.answer(WRQ, *answers)
    _is(s.step("check", p), *want)
    assert s.sent == [WRQ] * len(answers)


def test_a_refund_no_request_has(ch_clients):
    s, p = script(ch_clients, WECHAT_REFUND, "refund", RF)
    s.answer(WRQ, wrefund(RefundStatus.SUCCESS))
    _is(s.step("check", p), Hold, "NOTICE_FOR_UNKNOWN_REFUND")


@pytest.mark.parametrize("state, flow_data, reversal, answers, want", [
    ("failed", {}, True, [], (Finish, None)),                                     # its own reversal
    ("resolved", {}, True, [], (Finish, None)),
    ("failed", CASH_BACK, False, [], (Finish, None)),                             # its own cash refund
    ("done", {}, False, [wrefund(RefundStatus.SUCCESS, REV)], (Hold, "REVERSAL_AFTER_HIS_TOOK")),
    # a refund under the payment's F number that the payment's record does not show
    ("failed", {}, False, [wrefund(RefundStatus.SUCCESS, REV)], (Hold, "NOTICE_FOR_CLOSED_PAYMENT")),
    ("failed", {}, False, [wrefund(RefundStatus.CLOSED, REV)], (Finish, None)),
])
def test_wechat_reversal_callback(ch_clients, state, flow_data, reversal, answers, want):
    s, p = script(ch_clients, WECHAT_REFUND, "reversal", PAY, out_refund_no=REV)
    payment(s, state, flow_data, reversal=reversal)
    if answers:
        s.answer(WRQ, *answers)
    _is(s.step("check", p), *want)
    assert s.sent == [WRQ] * len(answers)


# ---------------------------------------------------------------- a payment that gave its cash back itself

@pytest.mark.parametrize("refund_answer, want", [
    (wrefund(RefundStatus.SUCCESS, REV), (Finish, None)),            # the cash is back: no news
    (wrefund(RefundStatus.PROCESSING, REV), (Retry, "REFUND_IN_PROGRESS")),
    (wrefund(RefundStatus.CLOSED, REV), (Hold, "NOTICE_FOR_CLOSED_PAYMENT")),
    (wx_answer(WRQ, "RESOURCE_NOT_EXISTS", http_status=404), (Hold, "NOTICE_FOR_CLOSED_PAYMENT")),
    (unknown(WRQ), (Retry, "QUERY_FAILED")),
], ids=["refunded", "processing", "closed", "absent", "unknown"])
@pytest.mark.parametrize("trade", [TradeState.SUCCESS, TradeState.REFUND])
def test_a_late_cash_callback_of_a_payment_that_refunded_its_cash_itself(ch_clients, trade, refund_answer, want):
    """The payment ended failed after its own cash refund (payment.py: the insurance part failed
    after the cash was taken, or the cash was paid after the centre's order ended; no
    `reversal` row).  A duplicate TRANSACTION.SUCCESS then finds the trade SUCCESS or REFUND:
    the refund the payment names is asked, and only a refund that did not bring the cash back
    is a person's - never "partly refunded by someone other than mibridge"."""
    s, p = script(ch_clients, WECHAT_TRADE, "payment", PAY)
    payment(s, "failed", CASH_BACK)
    s.answer(TXQ, tx(trade)).answer(WRQ, refund_answer)
    t = _is(s.step("check", p), *want)
    assert s.sent == [TXQ, WRQ] and REV in s.prepared[1].url
    if isinstance(t, Hold):
        assert "someone other than mibridge" not in t.message and "reversal" in t.message


def test_a_late_cash_callback_asks_the_refund_the_payment_says_succeeded(ch_clients):
    """cash_done names the number that succeeded (a CLOSED first number was replaced): that one."""
    rev1 = keys.reversal_no(PAY, attempt=1)
    s, p = script(ch_clients, WECHAT_TRADE, "payment", PAY)
    payment(s, "failed", dict(CASH_BACK, cash_leg=dict(CASH_BACK["cash_leg"], number=rev1, attempt=1),
                              cash_done=dict(CASH_BACK["cash_done"], number=rev1)))
    s.answer(TXQ, tx(TradeState.REFUND)).answer(WRQ, wrefund(RefundStatus.SUCCESS, rev1))
    _is(s.step("check", p), Finish)
    assert rev1 in s.prepared[1].url


@pytest.mark.parametrize("flow_data, answers, want", [
    (CASH_BACK, [atrade(TradeStatus.TRADE_SUCCESS), arefund()], (Finish, None)),
    (CASH_BACK, [atrade(TradeStatus.TRADE_CLOSED)], (Finish, None)),            # refunded in full: closed
    ({}, [atrade(TradeStatus.TRADE_SUCCESS)], (Hold, "NOTICE_FOR_CLOSED_PAYMENT")),
])
def test_alipay_notify_of_a_payment_that_refunded_its_cash_itself(ch_clients, flow_data, answers, want):
    s, p = script(ch_clients, ALIPAY_TRADE, "payment", PAY)
    payment(s, "failed", flow_data)
    for a in answers:
        s.answer(a.interface, a)
    _is(s.step("check", p), *want)
    assert s.sent == [a.interface for a in answers]


@pytest.mark.parametrize("interface, rec", [
    (WECHAT_REFUND, {"out_refund_no": REV}),
    (ALIPAY_REFUND, {"out_biz_no": REV, "refund_fee": "30.00"}),
])
def test_the_refund_callback_of_that_cash_refund_is_matched_without_a_query(ch_clients, interface, rec):
    s, p = script(ch_clients, interface, "reversal", PAY, **rec)
    payment(s, "failed", CASH_BACK)
    t = _is(s.step("check", p), Finish)
    assert s.sent == [] and REV in t.data["matched"]
    # The callback endpoint's own test (bridge/channels/unmatched.py) reads it the same way: no check.
    req = s.port.find_request([KIND_OUTPATIENT], PAY)
    assert is_reversed(s.port.inbox_state, req, "reversal") and not is_reversed(s.port.inbox_state, req, "refund")
    assert quiet_reason(p, s.port.notice(interface, f"{interface}-key"), req, True, keys.DEFAULT_PREFIX)


@pytest.mark.parametrize("state, answers, want", [
    ("done", [], (Finish, None)),
    ("failed", [arefund()], (Hold, "NOTICE_FOR_CLOSED_REFUND")),
    ("failed", [arefund(found=False)], (Wait, None)),
    ("failed", [arefund(status="REFUND_PROCESSING")], (Retry, "REFUND_IN_PROGRESS")),
    ("failed", [ali_answer(ARQ, "ACQ.SYSTEM_ERROR")], (Retry, "QUERY_FAILED")),
])
def test_alipay_refund_notify(ch_clients, state, answers, want):
    s, p = script(ch_clients, ALIPAY_REFUND, "refund", RF)
    refund_req(s, state)
    if answers:
        s.answer(ARQ, *answers)
    _is(s.step("check", p), *want)
    assert s.sent == [ARQ] * len(answers)
    if answers:
        assert OTN in s.prepared[0].body.decode()         # asked with the payment's out_trade_no


def test_one_check_per_channel_number():
    a = check_payload(WECHAT_MEDINS, "MIX1", "payment", PAY, 0, record(WECHAT_MEDINS))
    b = check_payload(WECHAT_TRADE, OTN, "payment", PAY, 0, record(WECHAT_TRADE))
    assert check_key(a["channel"], a["number"]) == check_key(b["channel"], b["number"]) == f"chk:wechat:{OTN}"
    long = "R" * 64
    assert len(check_key("alipay", long)) <= 64 and check_key("alipay", long) != check_key("alipay", long + "X")
    assert check_payload(ALIPAY_REFUND, "k", "refund", RF, 0, {"out_trade_no": OTN}) is None   # no out_biz_no
