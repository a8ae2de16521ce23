"""How every WeChat answer is classified: one table for the whole channel.

The contract is bridge/calls.py: OK, REJECTED (nothing happened), NOT_SENT (the
request never left), UNKNOWN (it may have happened: query before anything else).  A
REJECTED answer whose rule is transient (rate limits, quotas) says nothing about the
request: ``result()`` sets ``CallResult.transient`` from the rule, so the flow tries
again after a pause instead of failing the row.  (The rules of UNKNOWN answers say
whether WeChat's own advice is to ask again; the flow's answer to UNKNOWN is always a
query first.)

Codes are WeChat's own (``PARAM_ERROR``, the 2685xxxxx number at the end of a med-ins
``Request-ID``, a message ``errcode``), or one of ours for what the client itself saw
(``NOT_SENT``, ``TIMEOUT`` ...).
"""
from __future__ import annotations

from typing import NamedTuple, Optional

from bridge.calls import CallResult, Outcome

# Our own codes.
NOT_SENT = "NOT_SENT"
TIMEOUT = "TIMEOUT"                    # no answer in time after the request may have left
TRANSPORT_ERROR = "TRANSPORT_ERROR"    # reset or similar after the request may have left
HTTP_ERROR = "HTTP_ERROR"              # 5xx or an unexpected status without a usable body
BAD_SIGNATURE = "BAD_SIGNATURE"        # missing or failing Wechatpay-Signature on an answer we need to trust
BAD_RESPONSE = "BAD_RESPONSE"          # verified but unparseable, or contradicting the request
ACCEPTED = "ACCEPTED"                  # HTTP 202: accepted, result pending
HASH_MISMATCH = "HASH_MISMATCH"        # bill file does not match its SHA1


class Rule(NamedTuple):
    outcome: Outcome
    transient: bool
    why: str


_REJ, _UNK = Outcome.REJECTED, Outcome.UNKNOWN

# Interface names (PreparedCall.interface).
PREPAY = "wechat.jsapi.prepay"
TRANSACTION_QUERY = "wechat.jsapi.query"
TRANSACTION_CLOSE = "wechat.jsapi.close"
MEDINS_CREATE = "wechat.medins.create"
MEDINS_QUERY = "wechat.medins.query"
MEDINS_REFUND_NOTIFY = "wechat.medins.refund_notify"
REFUND_CREATE = "wechat.refund.create"
REFUND_QUERY = "wechat.refund.query"
BILL_APPLY = "wechat.bill.apply"
BILL_DOWNLOAD = "wechat.bill.download"
SUBSCRIBE_MESSAGE = "wechat.message.subscribe"
TEMPLATE_MESSAGE = "wechat.message.template"

# By code, for every interface (channels.md §1.6, §2.9, §4).
RULES: dict[str, Rule] = {
    NOT_SENT: Rule(Outcome.NOT_SENT, True, "connection never opened"),
    TIMEOUT: Rule(_UNK, True, "no answer in time"),
    TRANSPORT_ERROR: Rule(_UNK, True, "connection broke after sending"),
    HTTP_ERROR: Rule(_UNK, True, "WeChat server error"),
    BAD_SIGNATURE: Rule(_UNK, False, "answer not verifiable"),
    BAD_RESPONSE: Rule(_UNK, False, "answer not usable"),
    ACCEPTED: Rule(_UNK, True, "accepted, result pending"),
    HASH_MISMATCH: Rule(_UNK, True, "bill file corrupted in transit"),
    # §1.6: 5xx SYSTEM_ERROR, retry with the same request.
    "SYSTEM_ERROR": Rule(_UNK, True, "WeChat system error"),
    "SYSTEMERROR": Rule(_UNK, True, "WeChat system error"),
    # 401 SIGN_ERROR: WeChat refused our signature before looking at the request (a clock
    # off, a merchant certificate being rotated): nothing was done, and the refusal says
    # nothing about the request (bridge/refusals.py): transient; a lasting key mistake
    # runs out of attempts and is held for a person.
    "SIGN_ERROR": Rule(_REJ, True, "our request signature was refused"),
    # W1 QueryByOutRefundNo: "如返回FREQUENCY_LIMITED频率限制报错可间隔1分钟再重试".
    "FREQUENCY_LIMITED": Rule(_REJ, True, "rate limited"),
    # Insufficient merchant balance for a refund: a person must top up first, so not transient.
    "NOT_ENOUGH": Rule(_REJ, False, "merchant balance too low for the refund"),
    # §4.1 / M1: message and token errcodes.
    "-1": Rule(_UNK, True, "WeChat system busy"),
    "45009": Rule(_REJ, True, "daily API quota reached"),
    "45011": Rule(_REJ, True, "per-minute API quota reached"),
    "43101": Rule(_REJ, False, "the user refused or cancelled the subscription"),
    # §3.1 bill apply (WeChat's error table, copied in index id 43802281489; W7 fixture 68311312877):
    # no bill for that day (an empty day), or not generated yet (T+1 after 10:00).
    "NO_STATEMENT_EXIST": Rule(_REJ, False, "no bill for that day"),
    "STATEMENT_CREATING": Rule(_REJ, True, "bill not generated yet"),
    # §2.9: bureau-side failures are final for this order; 268510610 hides FSI reasons.
    "268529515": Rule(_REJ, False, "order not found"),
}

# (interface, code) overrides: where the same code means "it may already exist".
INTERFACE_RULES: dict[tuple[str, str], Rule] = {
    # W1 排障手册 §1.2/§2.6 Q5: 268512536 / 400 ALREADY_EXISTS after a create timeout means the
    # earlier create landed: query by out_trade_no, never switch numbers blindly.
    (MEDINS_CREATE, "268512536"): Rule(_UNK, False, "a mixed order with this out_trade_no exists"),
    (MEDINS_CREATE, "ALREADY_EXISTS"): Rule(_UNK, False, "a mixed order with this out_trade_no exists"),
    # A repeated prepay whose order is paid already: it happened; query.
    (PREPAY, "ORDER_PAID"): Rule(_UNK, False, "the order is already paid"),
    (PREPAY, "ORDERPAID"): Rule(_UNK, False, "the order is already paid"),
    # §2.6 [uncertain]: a reused out_refund_no with another body may come back as a parameter
    # error while the first refund exists.  Money may have moved: query the refund.
    (REFUND_CREATE, "PARAM_ERROR"): Rule(_UNK, False, "may be a reused out_refund_no; query the refund"),
    (REFUND_CREATE, "INVALID_REQUEST"): Rule(_UNK, False, "may be a reused out_refund_no; query the refund"),
}

NOT_FOUND_CODES = frozenset({"ORDER_NOT_EXIST", "ORDERNOTEXIST", "RESOURCE_NOT_EXISTS", "NOT_FOUND", "268529515"})


def classify(interface: str, code: Optional[str], http_status: Optional[int] = None) -> Rule:
    """The rule for an error answer.  Unlisted 5xx are UNKNOWN and transient, 429 is a
    transient rejection, other unlisted 4xx (and errcodes) are plain rejections."""
    if code is not None:
        rule = INTERFACE_RULES.get((interface, code)) or RULES.get(code)
        if rule:
            return rule
    if http_status is not None and http_status >= 500:
        return RULES[HTTP_ERROR]
    if http_status == 429:
        return RULES["FREQUENCY_LIMITED"]
    return Rule(_REJ, False, "business error")


def is_transient_refusal(interface: str, code: Optional[str], http_status: Optional[int] = None) -> bool:
    """Does this answer say nothing about the request (a rate limit, a refused signature)?"""
    rule = classify(interface, code, http_status)
    return rule.outcome is Outcome.REJECTED and rule.transient


def result(interface: str, msg_id: str, code: str, message: str, *, http_status: Optional[int] = None,
           **fields) -> CallResult:
    """The CallResult of an answer that is not a plain success, classified by the table:
    its outcome, and ``transient`` for a REJECTED whose rule says so (bridge/calls.py)."""
    rule = classify(interface, code, http_status)
    return CallResult(rule.outcome, interface, msg_id, code=code, message=message, http_status=http_status,
                      transient=rule.outcome is Outcome.REJECTED and rule.transient, **fields)


def is_not_found(result: CallResult) -> bool:
    """A query answered "no such order/refund" (a verified REJECTED).  Whether that means
    "never booked" is the flow's call, after the settle window."""
    return result.outcome is Outcome.REJECTED and result.code in NOT_FOUND_CODES
