"""How every Alipay answer is classified: one table for the whole channel.

Same contract as bridge/wechatpay/outcomes.py.  The code of a result is the answer's
``sub_code`` when it has one (``ACQ.TRADE_NOT_EXIST``), else its ``code`` (``40004``),
the medical APIs' ``result_code``, or one of ours.
"""
from __future__ import annotations

from typing import NamedTuple, Optional

from bridge.calls import CallResult, Outcome

NOT_SENT = "NOT_SENT"
TIMEOUT = "TIMEOUT"
TRANSPORT_ERROR = "TRANSPORT_ERROR"
HTTP_ERROR = "HTTP_ERROR"
BAD_SIGNATURE = "BAD_SIGNATURE"
BAD_RESPONSE = "BAD_RESPONSE"
# alipay.trade.refund answered 10000 without fund_change=Y: Alipay's own advice is to
# confirm with alipay.trade.fastpay.refund.query (§7.5, §10.4.13).
REFUND_UNCONFIRMED = "REFUND_UNCONFIRMED"
# alipay.trade.fastpay.refund.query answered 10000 with no refund in it (§7.5).
REFUND_NOT_FOUND = "REFUND_NOT_FOUND"

AUTH_QUERY = "alipay.commerce.medical.authinfo.auth.query"
MEDICAL_CREATE = "alipay.commerce.medical.payment.createandpay"
MEDICAL_TRADE_CREATE = "alipay.commerce.medical.trade.createandpay"
MEDICAL_QUERY = "alipay.commerce.medical.payment.query"
# The §7.3 variant's query (alipay-sdk-java-all AlipayCommerceMedicalTradeQueryModel / ...Response,
# the same source as its createandpay): flat fields, trade_no = the medical order, alipay_trade_no
# = the cash trade.
MEDICAL_TRADE_QUERY = "alipay.commerce.medical.trade.query"
TRADE_QUERY = "alipay.trade.query"
REFUND = "alipay.trade.refund"
REFUND_QUERY = "alipay.trade.fastpay.refund.query"
BILL_URL = "alipay.data.dataservice.bill.downloadurl.query"
BILL_DOWNLOAD = "alipay.bill.download"
TEMPLATE_MESSAGE = "alipay.open.app.mini.templatemessage.send"
# The template message's name in the journal and the flows' step tables: the method's own
# 41 characters do not fit mi_journal.interface (VARCHAR(40) on the server databases).
TEMPLATE_MESSAGE_CALL = "alipay.mini.templatemessage.send"

# The interface name a call is journalled under (PreparedCall.interface, mi_journal.interface,
# the flows' Step tables): the method name, except for the methods longer than the journal's
# interface column (VARCHAR(40) on every database), which get these shorter names.
JOURNAL_NAMES = {
    AUTH_QUERY: "alipay.medical.authinfo.query",
    MEDICAL_CREATE: "alipay.medical.payment.create",
    MEDICAL_TRADE_CREATE: "alipay.medical.trade.create",
    BILL_URL: "alipay.bill.downloadurl.query",
    TEMPLATE_MESSAGE: "alipay.mini.templatemessage.send",
}
INTERFACE_MAX = 40


def interface_of(method: str) -> str:
    """The journal's name for an Alipay method (see JOURNAL_NAMES)."""
    return JOURNAL_NAMES.get(method, method)


class Rule(NamedTuple):
    outcome: Outcome
    transient: bool
    why: str


_REJ, _UNK = Outcome.REJECTED, Outcome.UNKNOWN

RULES: dict[str, Rule] = {
    NOT_SENT: Rule(Outcome.NOT_SENT, True, "connection never opened"),
    TIMEOUT: Rule(_UNK, True, "no answer in time"),
    TRANSPORT_ERROR: Rule(_UNK, True, "connection broke after sending"),
    HTTP_ERROR: Rule(_UNK, True, "gateway answered with an HTTP error"),
    BAD_SIGNATURE: Rule(_UNK, False, "answer not verifiable"),
    BAD_RESPONSE: Rule(_UNK, False, "answer not usable"),
    REFUND_UNCONFIRMED: Rule(_UNK, False, "refund accepted without fund_change=Y: query it"),
    REFUND_NOT_FOUND: Rule(_REJ, False, "no such refund"),
    # §6.3 gateway codes.  20000 = service unavailable, sub_code isp.unknow-error "系统繁忙"
    # (sample in c19t043/study-demo AliPayServiceImpl.java).
    "20000": Rule(_UNK, True, "Alipay service unavailable"),
    "isp.unknow-error": Rule(_UNK, True, "Alipay system busy"),
    # 20001 授权权限不足 (aop.invalid-auth-token, aop.auth-token-time-out, aop.invalid-app-auth-token
    # ...): the gateway refused the call's authorisation before the business system saw it, and
    # Alipay's remedy is "refresh the token or authorise again" - a person's, not "retry later"
    # (Alipay open platform 公共错误码, opendocs.alipay.com/open/common/105806, copied in
    # cnblogs.com/rsapaper/p/9726452.html).  channels.md §6.3 lists only 20000 of the 2xxxx
    # codes.  OUR CHOICE: a plain refusal (nothing happened), as 40006 insufficient permission.
    "20001": Rule(_REJ, False, "authorisation invalid (token or app authorisation)"),
    "40001": Rule(_REJ, False, "missing parameter"),
    "40002": Rule(_REJ, False, "invalid parameter"),
    "40004": Rule(_REJ, False, "business failure"),
    "40006": Rule(_REJ, False, "insufficient permission"),
    # The gateway refused our signature (40002 isv.invalid-signature) or timestamp before
    # the business system saw the request: nothing done, and nothing said about the
    # request (bridge/refusals.py): transient, held for a person when attempts run out.
    "isv.invalid-signature": Rule(_REJ, True, "our request signature was refused"),
    "isv.invalid-timestamp": Rule(_REJ, True, "our request timestamp was refused"),
    # Trade / refund sub_codes (Alipay refund error table, copied in several SDKs, e.g. index
    # ids 30809127321, 24714636196): ACQ.SYSTEM_ERROR = "系统错误, 请使用相同的参数再次调用".
    "ACQ.SYSTEM_ERROR": Rule(_UNK, True, "Alipay system error: same request again after a query"),
    "aop.ACQ.SYSTEM_ERROR": Rule(_UNK, True, "Alipay system error"),
    # Same out_request_no with other details: the earlier refund may have succeeded
    # (its documented remedy includes "查询历史执行结果"); never treat as "not refunded".
    "ACQ.DISCORDANT_REPEAT_REQUEST": Rule(_UNK, False, "out_request_no reused with other details"),
    "ACQ.SELLER_BALANCE_NOT_ENOUGH": Rule(_REJ, False, "merchant balance too low for the refund"),
    "ACQ.TRADE_NOT_EXIST": Rule(_REJ, False, "no such trade"),
    "isp.bill_not_exist": Rule(_REJ, False, "no bill for that day"),
}

NOT_FOUND_CODES = frozenset({"ACQ.TRADE_NOT_EXIST", REFUND_NOT_FOUND})


def classify(code: Optional[str], http_status: Optional[int] = None, gateway_code: Optional[str] = None) -> Rule:
    """``code`` is the sub_code when the answer has one; ``gateway_code`` its ``code``: a
    sub_code this table does not know is classified by the gateway code (20000 "service
    unavailable" says nothing about the request, whatever sub_code comes with it)."""
    if code is not None and code in RULES:
        return RULES[code]
    if gateway_code is not None and gateway_code in RULES:
        # (20001 with aop.invalid-auth-token is 20001's rule, not 20000's "service unavailable".)
        return RULES[gateway_code]
    if http_status is not None and http_status >= 500:
        return RULES[HTTP_ERROR]
    return Rule(_REJ, False, "business error")


def result(interface: str, msg_id: str, code: str, message: str, *, http_status: Optional[int] = None,
           gateway_code: Optional[str] = None, **fields) -> CallResult:
    """The CallResult of an answer that is not a plain success, classified by the table:
    its outcome, and ``transient`` for a REJECTED whose rule says so (bridge/calls.py)."""
    rule = classify(code, http_status, gateway_code)
    return CallResult(rule.outcome, interface, msg_id, code=code, message=message, http_status=http_status,
                      transient=rule.outcome is Outcome.REJECTED and rule.transient, **fields)


def is_not_found(result: CallResult) -> bool:
    return result.outcome is Outcome.REJECTED and result.code in NOT_FOUND_CODES
