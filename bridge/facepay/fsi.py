"""One FSI call of a face-pay flow, and how its answer is read.

* fsi_call: 9001 sign-in of the request's operator first (offline.md §4), then
  prepare, journal and send; the transition to take when no call could be made;
* after_safe_call / retry_later: a call that moves nothing (asked again on anything
  but a verdict);
* reversal_verdict: what the 2601 of a lost settlement or admission says (REVERSED,
  NEVER_BOOKED after the settle window, or wait / doubt / hold);
* classify_rejection: the face-pay specific refusals (not enabled, no real account,
  UnionPay);
* settle_window_wait: inside the window "not seen" is no answer yet.
"""
from __future__ import annotations

from typing import Any, Callable, Optional

from loguru import logger

from bridge.calls import CallResult, Outcome, PreparedCall
from bridge.engine.flow import Fail, Hold, InDoubt, Retry
from bridge.offline.client import OfflineClient
from bridge.offline.config import Operator

from .settings import FacePaySettings


def operator_of(ctx, client: OfflineClient) -> Operator:
    o = ctx.data.get("operator")
    return client.operator(Operator(o["id"], o["name"], o["type"]) if o else None)


def fsi_call(ctx, prepare: Callable[..., PreparedCall], *args: Any, nothing_stands: bool = False,
             **kw: Any) -> CallResult | Retry | Fail | Hold:
    """One FSI call as this request's operator: 9001 first when the operator has no
    sign-in today (offline.md §4), then prepare, journal and send.  Returns the
    CallResult, or the transition to take when no call could be made:
    * the request's own operator refused at 9001 (a verdict of the platform, not a busy
      or signature refusal: bridge/refusals.py) -> Fail when nothing of this request
      stands at the core (`nothing_stands`); else the daemon's operator makes the call;
    * any other 9001 failure -> Retry (nothing was sent);
    * the call refused as "not signed in" -> Retry (the client dropped the sign_no).
    """
    client: OfflineClient = ctx.service("facepay").offline
    op = operator_of(ctx, client)
    failure = client.ensure_signed_in(op)
    if failure is not None and failure.refused and op.opter != client.operator().opter:
        # The platform refused the request's own operator (mistyped, not registered).  The
        # 9001 job stops trying it.  Nothing stands yet: fail, the HIS corrects it.  Money
        # stands (a cancel, a refund): the daemon's [offline] operator carries on.
        client.forget_operator(op.opter)
        if nothing_stands:
            return Fail("SIGN_IN_REFUSED", f"9001 sign-in of operator {op.opter} refused: "
                                           f"{failure.code or ''} {failure.message or ''}")
        logger.warning("operator {} refused at 9001; the daemon's operator carries on", op.opter)
        op = client.operator()
        failure = client.ensure_signed_in(op)
    if failure is not None:
        # The daemon's own operator, or 9001 not reachable: nothing was sent, try later.
        return Retry("SIGN_IN_FAILED", f"9001 sign-in of operator {op.opter} failed: "
                                       f"{failure.code or failure.outcome.value} {failure.message or ''}")
    r = ctx.call(client.send, prepare(*args, operator=op, **kw))
    if r.outcome is Outcome.REJECTED and r.message and \
            any(k in r.message for k in client.config.sign_in_invalid_markers):
        return Retry("SIGN_IN_INVALID", r.message)     # the client dropped that sign_no
    return r


def platform_code(r: CallResult) -> str:
    """The error_code of a platform refusal: PLATFORM_<infcode> (the text is the message)."""
    return f"PLATFORM_{r.code or 'REJECTED'}"[:40]


def after_safe_call(r, what: str, then: Callable[[CallResult], Any]):
    """The answer to a call that moves nothing (uploads, registration, trials): ok ->
    then(r); refused by the platform (a verdict) -> Fail with its text; anything else
    (not sent, busy, unknown) -> Retry (asking again is harmless).  `r` may already be
    fsi_call's transition."""
    if not isinstance(r, CallResult):
        return r
    if r.ok:
        return then(r)
    if r.refused:
        return Fail(platform_code(r), f"{r.interface} {what}: {r.message}")
    return retry_later(r)


def retry_later(r: CallResult) -> Retry:
    """Nothing happened and nothing is known: ask again after the backoff."""
    code = "NOT_SENT" if r.outcome is Outcome.NOT_SENT else \
        ("PLATFORM_BUSY" if r.transient else "PLATFORM_UNAVAILABLE")
    return Retry(code, f"{r.interface}: {r.message or r.outcome.value}")


REVERSED, NEVER_BOOKED = "reversed", "never_booked"


def reversal_verdict(ctx, s: FacePaySettings, r, infno: str, what: str, hold_code: str, wait_code: str):
    """What the 2601 of a lost `infno` message says (offline.md §9.1-9.4): REVERSED (whatever
    it booked is undone), NEVER_BOOKED (not found, the settle window on the database clock
    has passed, and `infno` is one 2601 reverses), or the transition to take: wait, stay in
    doubt, or hold when nothing can tell whether it was booked."""
    if not isinstance(r, CallResult):
        return in_resolver(r, s.resolve_retry_seconds)
    if r.ok:
        return REVERSED
    said = r.message if r.refused and r.message else ""
    not_found = any(w in said for w in s.reversal_not_found_markers)
    refused_to_reverse = bool(said) and any(w in said for w in s.reversal_refused_markers)
    if refused_to_reverse or (not_found and infno not in s.reversible_infnos):
        return Hold(hold_code, f"the answer to {infno} msgid {ctx.in_doubt_msg_id} was lost and 2601 cannot tell "
                               f"whether it was booked ({said}); check at the centre (settlement list / "
                               "reconciliation) before anything is sent again")
    if not_found:
        return settle_window_wait(ctx, s, wait_code, f"2601 does not know the {what} yet") or NEVER_BOOKED
    return InDoubt("REVERSAL_FAILED", f"2601 for the lost {what}: {r.message or r.outcome.value}",
                   delay=s.resolve_retry_seconds)

def in_resolver(t, delay: Optional[float] = None):
    """A resolver must stay in doubt (not retry the step) when it could not ask."""
    return t if isinstance(t, Hold) else InDoubt(t.code, t.message, delay=delay)

# Platform error texts that are specific to face-pay (facepay.md step 3/4 lists the three
# causes; no code is public - every failure is infcode -1).  OUR CHOICE: recognised by these
# words in err_msg; anything else is an ordinary rejection.
FACEPAY_ERRORS = (
    ("FACEPAY_NOT_ENABLED", ("未开通",), "the institution is not enabled for face-pay"),
    ("NO_REAL_ACCOUNT", ("实账", "个人账户不存在", "无个人账户"),
     "the person has no real personal account"),
    ("UNIONPAY_FAILED", ("银联",), "UnionPay (balance / deduction) failed"),
)


def classify_rejection(r: CallResult) -> tuple[str, str, bool]:
    """(code, message, face_pay_specific) for a REJECTED pre-settle/settle answer."""
    msg = r.message or "rejected by the platform"
    for code, words, text in FACEPAY_ERRORS:
        if any(w in msg for w in words):
            return code, f"{text}: {msg}", True
    return platform_code(r), msg, False


def settle_window_wait(ctx, settings: FacePaySettings, code: str, what: str) -> Optional[InDoubt]:
    """Inside the settle window "not seen" is no answer yet: wait, asking again every
    resolve_retry_seconds; the waits use none of the row's attempts (the engine's)."""
    return ctx.settle_window_wait(settings.settle_window_seconds, code, what, settings.resolve_retry_seconds)
