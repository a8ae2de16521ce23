"""Cancel a face-pay settlement and give the patient's account back (facepay.md
"Cancellation and refund"): the kinds facepay.{outpatient,inpatient,document}.cancel,
and the same steps inside a settlement the HIS did not keep (settle.py, 单边账).

    cancel          2208 / 2305 / 2261 with the original expContent: the core cancels and
                    refunds the account.  NOT safe to repeat; its lost answer: resolve_cancel
                    asks fpy001 (settlement and account state; inside the settle window
                    "still valid" is no answer yet).  Where face pay is not enabled (a kiosk
                    with no [facepay] section) there is no fpy001 (a Guangdong face-pay
                    extension): 2601 of the lost message's msgid, as a lost settlement
                    (offline.md §9.2 lists 2208 and 2305 as reversible): undone -> the
                    settlement stands, the cancel is sent again as a new message; "not found"
                    after the settle window -> never booked, sent
    check_cancel    the cancel was refused: fpy001 says whether the UnionPay refund failed
    query_account   cancelled without the extension: is the account part still deducted?
    refund_account  mpc004 (tgdupc004): refund the account by hand; NOT safe to repeat,
                    resolved by fpy001; refused -> asked again after refund_retry_delays
    cancel_plain    the account is back: cancel the settlement without the extension
"""
from __future__ import annotations

import time
from decimal import Decimal
from typing import Optional

from bridge.calls import CallResult
from bridge.engine.flow import Fail, Finish, Flow, Goto, Hold, InboxRow, InDoubt, Retry, Step, Wait
from bridge.facepay import fields as F
from bridge.facepay.client import FacePayClient, PersonalAccountRefund, RealAccountQuery
from bridge.offline import messages as m
from bridge.offline.client import OfflineClient

from .fsi import (NEVER_BOOKED, REVERSED, fsi_call, in_resolver, platform_code, retry_later, reversal_verdict,
                  settle_window_wait)
from .kinds import DOC, INFNO, INP, OUT, kind
from .patient import lookup
from .payloads import CancelRequest, parse_cancel
from .results import ZERO, dec, money_row
from .settings import FacePaySettings
from .visit import exp_content


def cancel_steps(setting: str) -> dict[str, Step]:
    """The cancel steps of one setting (2208 / 2305 / 2261), shared by its cancel and
    settle flows."""
    infno, fpy001, mpc004 = INFNO[setting]["cancel"], F.FPY001_INFNO, F.MPC004_INFNO
    return {
        # with_extension (facepay.md "Cancellation" 1): the core cancels and refunds the account.
        # NOT safe to repeat: resolved by fpy001 (settlement and account state).
        # Without face pay: resolved by 2601 of its msgid instead (resolve_cancel).
        "cancel": Step("cancel", calls=(infno,), safe_to_repeat=False, resolves_with=(fpy001, "2601"),
                       next=("cancel", "check_cancel", "query_account", "refund_account")),
        # After a rejected cancel: why?  fpy001 tells whether the UnionPay refund failed.
        "check_cancel": Step("check_cancel", calls=(fpy001,), next=("refund_account", "query_account")),
        # After a cancel without the extension: was the account part left deducted?
        "query_account": Step("query_account", calls=(fpy001,), next=("refund_account",)),
        # mpc004 (infno tgdupc004): the personal-account refund.
        "refund_account": Step("refund_account", calls=(mpc004,), safe_to_repeat=False,
                               resolves_with=(fpy001,), next=("refund_account", "cancel_plain")),
        # The account is back with the patient; now cancel the settlement without the
        # extension (facepay.md: "only the insurance settlement is cancelled").
        "cancel_plain": Step("cancel_plain", calls=(infno,), safe_to_repeat=False, resolves_with=(fpy001,),
                             next=("cancel_plain",)),
    }


class CancelSteps:
    """Cancel a settlement, refunding the real account; used by the cancel flows and by the
    settle flows when the HIS rejects (or never takes) the settlement (单边账).

    ctx.data["target"] = {setl_id, mdtrt_id, psn_no, insuplc_admdvs, face_pay, terms,
                          split, infno}  (set before entering `cancel`)
    """

    settings: FacePaySettings
    setting: str
    # The order book's platform for this flow's money rows (bridge/db/orderbook.py reads
    # `result.platform`); None: the kind's first part.  The kiosk flows set "kiosk".
    platform: Optional[str] = None

    def _tagged(self, result: dict) -> dict:
        return dict(result, platform=self.platform) if self.platform else result

    # -- helpers ------------------------------------------------------------------------
    def _cancel_infno(self) -> str:
        return INFNO[self.setting]["cancel"]

    def _cancel_call(self, ctx, with_ext: bool):
        """2208 / 2305 / 2261, with the original expContent when `with_ext`.  Every cancel
        here happens with a settlement standing: a refused sign-in holds."""
        client: OfflineClient = ctx.service("facepay").offline
        tg = ctx.data["target"]
        extra = exp_content(client, tg["terms"]) if (with_ext and tg.get("terms")) else {}
        req = m.CancelSettlementRequest(setl_id=tg["setl_id"], mdtrt_id=tg["mdtrt_id"], psn_no=tg["psn_no"],
                                        insuplc_admdvs=tg["insuplc_admdvs"], extra=extra)
        prep = {OUT: client.prepare_cancel_outpatient_settlement,
                INP: client.prepare_cancel_inpatient_settlement,
                DOC: client.prepare_cancel_document_settle}[self.setting]
        return fsi_call(ctx, prep, req, face_pay=False)

    def _fpy001(self, ctx):
        """fpy001 real-account status (facepay.md "Cancellation" 2): CallResult or, when it
        could not be asked, the transition to take."""
        fp: FacePayClient = ctx.service("facepay")
        tg = ctx.data["target"]
        return fsi_call(ctx, fp.prepare_query_real_account, RealAccountQuery(
            setl_id=tg["setl_id"], mdtrt_id=tg["mdtrt_id"], psn_no=tg["psn_no"],
            insuplc_admdvs=tg["insuplc_admdvs"]))

    def _cancelled(self, ctx, how: str, data: Optional[dict] = None):
        """Done: the cancellation row.  `data`: what this step learnt (kept with the row)."""
        d = {**ctx.data, **(data or {})}
        tg = d["target"]
        result = {"setl_id": tg["setl_id"], "mdtrt_id": tg["mdtrt_id"], "account_refund": how,
                  "reason": d.get("cancel_reason")}
        for k in ("refund_seq_id", "platform_seq_id"):
            if d.get(k):
                result[k] = d[k]
        return Finish([money_row("cancellation", tg["split"], settlement_id=tg["setl_id"],
                                 result=self._tagged(result))],
                      data=dict(data or {}))

    def _after_status(self, ctx, st, rejected: Optional[tuple[str, str]] = None):
        """Decide from an fpy001 answer what is left to do."""
        tg = ctx.data["target"]
        data = {"platform_seq_id": st.platform_seq_id} if st.platform_seq_id else {}
        acct = dec(tg["split"].get("account")) or ZERO
        if rejected is not None and not st.settlement_valid:
            # Our cancel was refused, yet the settlement is cancelled: someone else
            # cancelled it (an earlier cancel request, the settle flow's 单边账 cancel).
            # This request moved nothing: reporting it as a cancellation would have the HIS
            # refund the cash twice and book a second refund.
            if st.acct_stas == F.ACCT_STAS_DEDUCTED and acct > 0:
                return Hold("CANCELLED_ELSEWHERE", f"settlement {tg['setl_id']} was already cancelled (not by this "
                                                   f"request: {rejected[1]}) and the personal account still shows "
                                                   f"deducted: check whether the other cancel refunds it (mpc004) "
                                                   f"before refunding by hand")
            return Fail("ALREADY_CANCELLED", f"settlement {tg['setl_id']} was already cancelled before this request "
                                             f"({rejected[1]}); this request refunded nothing",
                        inbox=[InboxRow(result_type="error", outcome="failed", error_code="ALREADY_CANCELLED",
                                        error_message=f"settlement {tg['setl_id']} was already cancelled; "
                                                      f"nothing was refunded by this request",
                                        settlement_id=tg["setl_id"],
                                        result={"setl_id": tg["setl_id"], "account_state": st.acct_stas})])
        if not st.settlement_valid:
            if st.acct_stas == F.ACCT_STAS_DEDUCTED and acct > 0:
                # Cancelled without the extension (or by a reversal that left it): refund it.
                note = InboxRow(result_type="cancel_progress", outcome="ok",
                                result={"step": "settlement cancelled; refunding the personal account "
                                                "through mpc004", "setl_id": tg["setl_id"]})
                return Goto("refund_account", data=dict(data, refund_sn=refund_sn(ctx), cancelled=True),
                            inbox=[note])
            how = "core" if st.acct_stas == F.ACCT_STAS_REFUNDED and not ctx.data.get("refund_seq_id") \
                else ("mpc004" if ctx.data.get("refund_seq_id") else "none")
            return self._cancelled(ctx, how, data)
        if st.acct_stas == F.ACCT_STAS_REFUND_FAILED and acct > 0:
            # facepay.md: the UnionPay refund failed, so the settlement stands.  Refund the
            # account through mpc004 (with the deduction's serial from fpy001), then cancel.
            note = InboxRow(result_type="cancel_progress", outcome="failed", error_code="UNIONPAY_REFUND_FAILED",
                            error_message=(rejected[1] if rejected else "UnionPay refund failed"),
                            result={"step": "settlement stays; refunding the personal account through "
                                            "mpc004, then cancelling", "setl_id": tg["setl_id"]})
            return Goto("refund_account", data=dict(data, refund_sn=refund_sn(ctx), cancelled=False),
                        inbox=[note])
        if rejected is not None:
            return self._cancel_refused(rejected[0], rejected[1])
        return None

    def _cancel_refused(self, code: str, message: str):
        """The platform refused the cancel and the settlement stands.  The HIS asked for this
        cancel: it fails, and the HIS knows the settlement is still there."""
        return Fail(code, message)

    # -- steps --------------------------------------------------------------------------
    def step_cancel(self, ctx):
        tg = ctx.data["target"]
        with_ext = bool(tg.get("face_pay")) and ctx.data.get("with_extension", True)
        r = self._cancel_call(ctx, with_ext)
        if not isinstance(r, CallResult):
            return r
        if r.ok:
            if tg.get("face_pay") and not with_ext:
                return Goto("query_account")
            return self._cancelled(ctx, "core" if tg.get("face_pay") else "none")
        if r.try_again:      # not sent, or refused as busy: nothing happened; ask again later
            return retry_later(r)
        if r.refused:
            return Goto("check_cancel", data={"cancel_rejected": [platform_code(r),
                                                                  f"{r.interface}: {r.message}"]})
        return InDoubt("CANCEL_UNKNOWN", r.message or "cancel outcome unknown")

    def resolve_cancel(self, ctx):
        if not self.settings.enabled:
            return self._resolve_cancel_by_reversal(ctx)
        r = self._fpy001(ctx)
        if not isinstance(r, CallResult):
            return in_resolver(r)
        if not r.ok:
            return InDoubt("QUERY_FAILED", f"fpy001 after a lost cancel: {r.message or r.outcome.value}",
                           delay=self.settings.resolve_retry_seconds)
        st = r.data
        if not st.settlement_valid:
            tg = ctx.data["target"]
            with_ext = bool(tg.get("face_pay")) and ctx.data.get("with_extension", True)
            if tg.get("face_pay") and with_ext and st.acct_stas == F.ACCT_STAS_DEDUCTED:
                # Cancelled with the extension but the account still shows deducted: never
                # refund blindly on top of what the core may still do; a person checks.
                return Hold("ACCOUNT_STATE_UNCLEAR", "settlement cancelled but the account still shows "
                                                     "deducted after a cancel with the extension")
            return self._after_status(ctx, st)
        if st.acct_stas == F.ACCT_STAS_REFUND_FAILED:
            return self._after_status(ctx, st)
        if (t := settle_window_wait(ctx, self.settings, "CANCEL_NOT_SEEN_YET",
                                     "the settlement is still valid")) is not None:
            return t
        return Goto("cancel")   # never took effect: send it (a first send as far as the core knows)

    def _resolve_cancel_by_reversal(self, ctx):
        """A lost cancel where face pay is not enabled: no fpy001 to ask, so 2601 with the lost
        message's msgid and infno (offline.md §9.1-9.3; the cancel's own reversal restores the
        settlement, §9.4), never a blind resend.  Undone -> cancelled again as a new message
        (at most max_reversals times); "not found" -> only after the settle window, never
        booked; anything else -> in doubt, or held when 2601 cannot tell."""
        client: OfflineClient = ctx.service("facepay").offline
        tg = ctx.data["target"]
        infno = self._cancel_infno()
        r = fsi_call(ctx, client.prepare_reverse, m.ReversalRequest(
            psn_no=tg["psn_no"], omsgid=ctx.in_doubt_msg_id, oinfno=infno, insuplc_admdvs=tg["insuplc_admdvs"]))
        verdict = reversal_verdict(ctx, self.settings, r, infno, "cancellation", "CANCEL_UNRESOLVED",
                                   "CANCEL_NOT_SEEN_YET")
        if verdict == NEVER_BOOKED:
            return Goto("cancel")     # the first send as far as the core knows
        if verdict != REVERSED:
            return verdict
        n = int(ctx.data.get("cancel_reversals", 0)) + 1
        if n > self.settings.max_reversals:
            return Hold("TOO_MANY_REVERSALS", f"{n} cancels of settlement {tg['setl_id']} were lost and reversed; the "
                                              f"settlement stands at the core; requeue when the link is sound")
        # Not `settlement_reversed` (the order book books that as the settlement's reversal):
        # the settlement stands again, only this cancel was undone.
        note = InboxRow(result_type="cancel_progress", outcome="ok",
                        result=self._tagged({"step": "the cancel's answer was lost; 2601 undid it; cancelling again",
                                             "setl_id": tg["setl_id"], "omsgid": ctx.in_doubt_msg_id,
                                             "oinfno": infno, "reversals": n}))
        return Goto("cancel", data={"cancel_reversals": n}, inbox=[note])

    def step_check_cancel(self, ctx):
        r = self._fpy001(ctx)
        if not isinstance(r, CallResult):
            return r
        rejected = tuple(ctx.data.get("cancel_rejected") or ("REJECTED", "cancel rejected"))
        if r.refused:
            return self._cancel_refused(rejected[0], f"{rejected[1]} (fpy001: {r.message})")
        if not r.ok:
            return Retry("QUERY_FAILED", f"fpy001: {r.message or r.outcome.value}")
        return self._after_status(ctx, r.data, rejected=rejected)

    def step_query_account(self, ctx):
        r = self._fpy001(ctx)
        if not isinstance(r, CallResult):
            return r
        if not r.ok:
            return Retry("QUERY_FAILED", f"fpy001: {r.message or r.outcome.value}")
        t = self._after_status(ctx, r.data)
        if t is None:   # settlement still valid after a successful cancel: should not happen
            return Hold("SETTLEMENT_STILL_VALID", "fpy001 shows the settlement valid after a cancel")
        return t

    def step_refund_account(self, ctx):
        fp: FacePayClient = ctx.service("facepay")
        tg = ctx.data["target"]
        req = PersonalAccountRefund(
            setl_id=tg["setl_id"], mdtrt_id=tg["mdtrt_id"], psn_no=tg["psn_no"],
            psn_acct_refd_amt=Decimal(tg["split"]["account"]), app_refd_sn=ctx.data["refund_sn"],
            app_refd_time=time.strftime("%Y%m%d%H%M%S"),
            orig_platform_seq_id=ctx.data.get("platform_seq_id"), insuplc_admdvs=tg["insuplc_admdvs"])
        r = fsi_call(ctx, fp.prepare_refund_personal_account, req)
        if not isinstance(r, CallResult):
            return r
        if r.ok:
            return self._refunded(ctx, r.data.refund_seq_id)
        if r.try_again:
            return retry_later(r)
        if r.refused:
            return self._refund_failed(ctx, r.message or r.code or "refund failed")
        return InDoubt("REFUND_UNKNOWN", r.message or "mpc004 outcome unknown")

    def _refund_failed(self, ctx, message: str):
        tries = int(ctx.data.get("refund_tries", 0)) + 1
        delays = self.settings.refund_retry_delays
        if tries > len(delays):
            return Hold("ACCOUNT_REFUND_FAILED",
                        f"mpc004 personal-account refund failed {tries} times, last: {message}; "
                        "fix the cause (acquirer refund permission, bank) and requeue")
        note = InboxRow(result_type="account_refund_attempt", outcome="failed", error_code="REFUND_FAILED",
                        error_message=message, result={"attempt": tries, "next_in_seconds": delays[tries - 1]})
        return Wait("refund_account", delays[tries - 1], data={"refund_tries": tries}, inbox=[note])

    def _refunded(self, ctx, refund_seq_id: Optional[str], data: Optional[dict] = None):
        note = InboxRow(result_type="account_refund", outcome="ok",
                        account_amount=Decimal(ctx.data["target"]["split"]["account"]),
                        result={"refund_seq_id": refund_seq_id, "setl_id": ctx.data["target"]["setl_id"]})
        data = dict(data or {}, refund_seq_id=refund_seq_id or "refunded")
        if not {**ctx.data, **data}.get("cancelled"):
            return Goto("cancel_plain", data=data, inbox=[note])
        return self._cancelled_with(ctx, note, data)

    def _cancelled_with(self, ctx, note: InboxRow, data: dict):
        t = self._cancelled(ctx, "mpc004", data)
        t.inbox.insert(0, note)
        return t

    def resolve_refund_account(self, ctx):
        r = self._fpy001(ctx)
        if not isinstance(r, CallResult):
            return in_resolver(r)
        if not r.ok:
            return InDoubt("QUERY_FAILED", f"fpy001 after a lost mpc004: {r.message or r.outcome.value}",
                           delay=self.settings.resolve_retry_seconds)
        st = r.data
        if st.acct_stas == F.ACCT_STAS_REFUNDED:
            return self._refunded(ctx, st.refund_seq_id, {"cancelled": not st.settlement_valid})
        if (t := settle_window_wait(ctx, self.settings, "REFUND_NOT_SEEN_YET",
                                     "the account is not refunded yet")) is not None:
            return t
        # Not refunded: send mpc004 again with the same appRefdSn (the refund's own serial).
        return Goto("refund_account")

    def step_cancel_plain(self, ctx):
        r = self._cancel_call(ctx, with_ext=False)
        if not isinstance(r, CallResult):
            return r
        if r.ok:
            return self._cancelled(ctx, "mpc004")
        if r.try_again:
            return retry_later(r)
        if r.refused:
            return Hold("CANCEL_AFTER_REFUND_FAILED",
                        f"the personal account was refunded but {r.interface} was refused: {r.message}; "
                        "the settlement still stands at the core")
        return InDoubt("CANCEL_UNKNOWN", r.message or "cancel outcome unknown")

    def resolve_cancel_plain(self, ctx):
        r = self._fpy001(ctx)
        if not isinstance(r, CallResult):
            return in_resolver(r)
        if not r.ok:
            return InDoubt("QUERY_FAILED", f"fpy001: {r.message or r.outcome.value}",
                           delay=self.settings.resolve_retry_seconds)
        if not r.data.settlement_valid:
            return self._cancelled(ctx, "mpc004")
        if (t := settle_window_wait(ctx, self.settings, "CANCEL_NOT_SEEN_YET",
                                     "the settlement is still valid")) is not None:
            return t
        return Goto("cancel_plain")

def refund_sn(ctx) -> str:
    # appRefdSn: one per refund of this row, kept across retries (mpc004 is keyed by the
    # deduction; the serial only lets the acquirer pair our retries).  <= 30 chars.
    return f"RF{ctx.row.id:012d}{int(time.time()) % 10**8:08d}"


# ============================================================== the cancel kinds

class _CancelBase(CancelSteps, Flow):
    setting: str
    initial = "start"

    def __init__(self, settings: FacePaySettings):
        self.settings = settings

    def parse(self, doc: dict) -> CancelRequest:
        return parse_cancel(doc)

    @property
    def settle_kind(self) -> str:
        """The kind of the settlement this cancel names (the kiosk's differs)."""
        return kind(self.setting, "settle")

    def step_start(self, ctx):
        sk = ctx.payload.settle_key
        row = lookup(ctx, (self.settle_kind,), sk)
        if row is None:
            return Fail("SETTLEMENT_NOT_FOUND", f"no {self.settle_kind} request {sk!r}")
        target = row["flow_data"].get("target")
        if target is None:
            return Fail("NOT_SETTLED", f"settlement request {sk!r} is {row['state']} without a settlement")
        if row["state"] not in ("done", "failed", "resolved"):
            return Fail("SETTLEMENT_BUSY", f"settlement request {sk!r} is still {row['state']}; "
                                           "enqueue the cancel with the same serial_key")
        return Goto("cancel", data={"target": target, "with_extension": ctx.payload.with_extension,
                                    "cancel_reason": ctx.payload.reason or "his_request",
                                    "operator": ctx.payload.operator or target.get("operator")})


class OutpatientCancelFlow(_CancelBase):
    kind = kind(OUT, "cancel")
    setting = OUT
    steps = {"start": Step("start", next=("cancel",)), **cancel_steps(OUT)}


class InpatientCancelFlow(_CancelBase):
    kind = kind(INP, "cancel")
    setting = INP
    steps = {"start": Step("start", next=("cancel",)), **cancel_steps(INP)}


class DocumentCancelFlow(_CancelBase):
    """2261 with the original expContent (facepay.md "Cancellation and refund")."""
    kind = kind(DOC, "cancel")
    setting = DOC
    steps = {"start": Step("start", next=("cancel",)), **cancel_steps(DOC)}
