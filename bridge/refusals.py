"""Transient refusals versus business verdicts: the one table every platform client uses.

A platform that answers "系统繁忙" (busy), "请求过于频繁" (rate-limited) or a signature
error has said nothing about the request itself: the same request may pass a minute
later.  Taken as a verdict, such an answer tells the HIS to correct a correct request
(an operator "refused" at 9001, a person "not found" by 1101) or holds a row for a
person (a 2261 cancel "refused").  So the clients mark these answers
`CallResult.transient` (bridge/calls.py) and the flows retry them with backoff.

No public source lists the platforms' error codes (offline.md §13, mobilepay.md §6.3:
every failure is infcode -1 / a non-zero code with a text), so the texts decide.
OUR CHOICE: the words below; a verdict that carries one of them is retried until the
row's attempts run out and then held, which costs a person a look but never money.

Gateway refusals (offline.md §1.4 "two error shapes"): the Guangdong gateway answers
with its own wrapper {"code", "type", "message", "data"} when the x-tif signature or the
paasid does not check out, which it verifies before anything is forwarded: the headers
authenticate the caller to the gateway, not to the business system (offline.md §1.2;
the x-tif headers are computed for the gateway host in public proxy code, e.g.
ProxyUtil.ComputeSignatureHeaders for dc-gateway.gdgov.cn, index id 7876713796).  Such a
wrapper means the message never reached the core: NOT_SENT.  Any other wrapper error
(a gateway timeout, an upstream failure) may come after forwarding and is not.
"""
from __future__ import annotations

from typing import Optional

# The platform or a gateway is overloaded or paused.
BUSY = ("系统繁忙", "系统忙", "服务繁忙", "繁忙", "稍后再试", "稍后重试", "服务暂不可用",
        "服务不可用", "暂停服务", "busy", "try again later", "temporarily unavailable")
# ... but an answer that says the request is being processed, or that its result is not
# known yet, is no refusal at all: it may still be booked.  Never transient (never resent
# on that answer), whatever else it says.
# A timeout or an unknown result behind the refusal ("银联扣款超时，请稍后再试": the
# deduction may have gone through) is the same: an unknown outcome, resolved by query.
IN_PROGRESS = ("处理中", "结果未知", "稍后查询", "in progress", "processing",
               "超时", "未知", "不确定", "timeout", "timed out", "unknown")
# Too many requests.
RATE_LIMITED = ("请求过于频繁", "过于频繁", "访问频繁", "限流", "流控", "too many requests", "rate limit")
# Our signature (x-tif headers, an envelope signature) did not check out: a clock, a
# nonce or a key being rotated; nothing was done with the request.
SIGNATURE = ("签名", "验签", "signature", "x-tif", "时间戳", "timestamp", "nonce")
# What a gateway checks before it forwards anything: who is calling and how often.
GATEWAY_CHECKS = SIGNATURE + RATE_LIMITED + ("paasid", "鉴权", "认证失败", "未授权", "unauthori")

TRANSIENT = BUSY + RATE_LIMITED + SIGNATURE


def _has(message: Optional[str], words: tuple[str, ...]) -> bool:
    if not message:
        return False
    text = str(message).lower()
    return any(w.lower() in text for w in words)


def is_transient(message: Optional[str]) -> bool:
    """A platform's refusal that says nothing about the request: busy, rate-limited, a
    signature error.  Such a refusal is worth another try; anything else is a verdict."""
    return _has(message, TRANSIENT) and not _has(message, IN_PROGRESS)


def still_processing(message: Optional[str]) -> bool:
    """An error answer that says the request is being processed or its result is unknown:
    for a call that moves money, no refusal but an unknown outcome (query first)."""
    return _has(message, IN_PROGRESS)


def refused_before_forwarding(message: Optional[str]) -> bool:
    """A gateway wrapper error (offline.md §1.4) for a check the gateway makes before it
    forwards the message: the business system never saw it (not sent)."""
    return _has(message, GATEWAY_CHECKS)


# RFC 6585 §4: 429 Too Many Requests - the server (or a gateway in front of it) refused
# the request for its rate; it was not processed.
RATE_LIMITED_STATUS = 429
