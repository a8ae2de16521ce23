"""The UnionPay references of a settlement that deducted the real personal account (issue 14).

facepay.md "Cancellation and refund" 2: fpy001 gives the UnionPay serial of the deduction
(platformSeqId) and, for merchant/acquirer reconciliation, a reference number (refNo) and
a channel terminal serial (termSeqNo).  Only fpy001 has them: the settling call (2207 /
2304 / 2260 setl_flag 1, the calls that deduct through UnionPay: facepay.md step 4) answers
the account amount alone.  So a settle flow whose settlement deducted the account asks
fpy001 before it writes the settlement row, and the row carries them (the order book reads
refNo / termSeqNo from it: bridge/db/orderbook.py).

    references   fpy001, safe to repeat (a query).  Then the settlement row.

The settlement has happened when this step runs: nothing here may fail, hold or undo it.
* ok                    -> the references in the row (`references: "ok"`; a field fpy001
                           left out -> "incomplete" / "unavailable", with the reason);
* refused (a verdict)   -> the row at once, `references: "unavailable"`;
* not sent, busy, sign-in failed, unknown -> asked again with backoff while less than
  references_wait_seconds have passed since the first try (database clock: the first
  fpy001's journal row), then the row with `references: "unavailable"`.
A retry is a Wait, not a Retry: a Retry spends the row's attempts and the runner holds
the row once they are used up, and a settled payment is never held for a reference.
Every "unavailable" is logged as a warning.
"""
from __future__ import annotations

from typing import Any, Optional

from loguru import logger

from bridge.calls import CallResult
from bridge.engine.backoff import Backoff
from bridge.engine.flow import Wait
from bridge.facepay import fields as F
from bridge.facepay.client import RealAccountStatus

from .results import ZERO, dec
from .settings import FacePaySettings

OK, INCOMPLETE, UNAVAILABLE = "ok", "incomplete", "unavailable"
# The engine's default retry backoff (2 s doubling, jitter), capped by the time left.
_BACKOFF = Backoff()


def wanted(settings: FacePaySettings, face_pay: bool, split: dict) -> bool:
    """fpy001 only after a face-pay settlement that deducted the real account: a plain
    settlement's account part is no UnionPay deduction, and 0 deducts nothing."""
    return settings.fetch_references and face_pay and (dec(split.get("account")) or ZERO) > 0


def of_status(st: RealAccountStatus) -> tuple[dict, list[str]]:
    """(the references fpy001 gave, keyed by their wire names; the names it left out)."""
    found = {F.REF_NO: st.ref_no, F.TERM_SEQ_NO: st.term_seq_no, F.PLATFORM_SEQ_ID: st.platform_seq_id}
    return {k: v for k, v in found.items() if v}, [k for k, v in found.items() if not v]


def _why(r: Any) -> str:
    if isinstance(r, CallResult):
        said = " ".join(x for x in (r.code, r.message) if x)
        return f"fpy001 {r.outcome.value}" + (f": {said}" if said else "")
    return f"fpy001 not asked: {r.code}: {r.message}"       # fsi_call's transition (sign-in)


class ReferenceSteps:
    """step_references for the settle flows (bridge/facepay/settle.py), which give it
    `_fpy001` (cancel.py) and `_write_settlement(ctx, result, data)`.

    ctx.data: target (the settlement), settlement_result (the row's result, without the
    references), settle_msg (the settling call's msg id), references_since / _tries."""

    settings: FacePaySettings

    def step_references(self, ctx):
        result = dict(ctx.data["settlement_result"])
        setl_id = ctx.data["target"]["setl_id"]
        r = self._fpy001(ctx)
        if isinstance(r, CallResult) and r.ok:
            refs, missing = of_status(r.data)
            result.update(refs)
            if missing:
                result["references"] = INCOMPLETE if refs else UNAVAILABLE
                result["references_error"] = (f"fpy001 answered without {', '.join(missing)} "
                                              f"(account state {r.data.acct_stas})")
                logger.warning("row {}: settlement {}: {}", ctx.row.id, setl_id, result["references_error"])
            else:
                result["references"] = OK
            return self._write_settlement(ctx, result, _done())
        why = _why(r)
        if not (isinstance(r, CallResult) and r.refused):
            again = self._ask_again(ctx, why)
            if again is not None:
                return again
        logger.warning("row {}: settlement {} written without its UnionPay references ({}): {}",
                       ctx.row.id, setl_id, "refused" if isinstance(r, CallResult) and r.refused
                       else f"gave up after {self.settings.references_wait_seconds:g} s", why)
        result.update(references=UNAVAILABLE, references_error=why[:200])
        return self._write_settlement(ctx, result, _done())

    def _ask_again(self, ctx, why: str) -> Optional[Wait]:
        """Wait and ask again while the time since the first try is under the setting."""
        last = ctx.last_result
        since = ctx.data.get("references_since")
        if since is None:
            # The first try: it just happened (its journal row starts the clock).  When no
            # fpy001 could be sent (the operator's sign-in failed), the settling call does.
            since = last.msg_id if last is not None else ctx.data.get("settle_msg")
            age = 0.0 if last is not None else (ctx.call_age_seconds(since) if since else None)
        else:
            age = ctx.call_age_seconds(since)
        wait = self.settings.references_wait_seconds
        if age is None or age >= wait:
            return None
        tries = int(ctx.data.get("references_tries") or 0) + 1
        delay = max(0.1, min(_BACKOFF.delay(tries), wait - age))
        logger.info("row {}: {}; asking fpy001 again in {:.1f} s", ctx.row.id, why, delay)
        return Wait("references", delay, data={"references_since": since, "references_tries": tries})


def _done() -> dict:
    # What the step kept while it asked; the settlement row has it now.
    return {"settlement_result": None, "references_since": None, "references_tries": None}
