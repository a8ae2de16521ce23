"""Inpatient admission as request kinds, for an HIS that has nobody to do 2401 itself.

    facepay.inpatient.admit          2401 入院办理                  -> inbox `admission` (result_json.mdtrt_id)
    facepay.inpatient.admit_cancel   2404 入院撤销 of such a stay   -> inbox `admission_cancellation`

The inpatient pre-settlement works on the stay an admission made: `admitted_stay(ctx,
admit_key)` below gives it the stay (mdtrt_id, person) of a done admit request.

Why 2401 is NOT safe to repeat: it creates a stay (mdtrt_id) at the core; a blind resend
after a lost answer makes a second stay for the same patient.  Like a lost settlement
(bridge/facepay/settle.py resolve_settle) nothing can be queried without the mdtrt_id we
never received, so the resolver sends 2601 with the lost message's msgid and oinfno 2401
(offline.md §9.2 lists 2401 as reversible, §9.4 "2401 -> visit removed"):
  * 2601 OK -> whatever the lost 2401 booked is undone; 2401 goes out again as a NEW
    message (at most FacePaySettings.max_reversals times, then held);
  * 2601 "original not found" (FacePaySettings.reversal_not_found_markers) -> "not yet"
    until the settle window (database clock) has passed, then "never booked": 2401 is sent;
  * anything else -> stays in doubt; the engine holds the row after its attempts.
A REJECTED 2401 moved nothing: the request fails with the platform's message.

2404 moves no money and cannot create anything; see AdmitCancelFlow for why it is safe to
ask again and how a refused repeat is read.

Where offline.md is silent the choice is ours and says so ("OUR CHOICE").
"""
from __future__ import annotations

from typing import Any, Optional

from bridge.calls import CallResult
from bridge.engine.flow import Fail, Finish, Flow, Goto, Hold, InboxRow, InDoubt, Retry, Step
from bridge.offline import messages as m
from bridge.offline.client import OfflineClient

from .fsi import NEVER_BOOKED, REVERSED, fsi_call, platform_code, retry_later, reversal_verdict
from .kinds import ADMIT_INFNO, KIND_ADMIT, KIND_ADMIT_CANCEL
from .patient import PERSON_SECRETS, SECRET_KEYS, admitted_stay, own_secrets, person_of, split_person, with_secrets
from .payloads import PERSON_KEYS, AdmitCancelRequest, AdmitRequest, parse_admit, parse_admit_cancel
from .settings import FacePaySettings

__all__ = ["KIND_ADMIT", "KIND_ADMIT_CANCEL", "AdmitFlow", "AdmitCancelFlow", "admitted_stay"]

# 2404 answers, recognised by words in err_msg (no code is public: every refusal is infcode
# -1).  OUR CHOICE, the simulator's wording (bridge/simulator/offline.py _i2404/_visit):
# "该住院存在有效结算,不能撤销入院" and "就诊信息不存在或已撤销".
STAY_SETTLED_MARKERS = ("有效结算", "已结算")
STAY_GONE_MARKERS = ("已撤销", "就诊信息不存在")


class AdmitFlow(Flow):
    kind = KIND_ADMIT
    initial = "prepare"
    # The inpatient pre-settlements of this stay send the credential (admitted_stay).
    kept_secrets = PERSON_SECRETS
    secret_keys = SECRET_KEYS
    steps = {
        "prepare": Step("prepare", next=("admit",)),
        # NOT safe to repeat: resolved by 2601 (resolve_admit).  "admit" leads back to
        # itself only from the resolver, after a reversal or a confirmed "never booked".
        "admit": Step("admit", calls=(ADMIT_INFNO,), safe_to_repeat=False, resolves_with=("2601",),
                      next=("admit",)),
    }

    def __init__(self, settings: FacePaySettings):
        self.settings = settings

    def parse(self, doc: dict) -> AdmitRequest:
        return parse_admit(doc)

    def step_prepare(self, ctx):
        # Who: the payload's person, or the identity of a done facepay.identify (the same
        # lookup as the pre-settlements; `self.settings.cert_type` picks the credential).
        person = person_of(ctx, ctx.payload, self.settings.cert_type)
        if isinstance(person, Fail):
            return person
        public, secret = split_person(person)
        return Goto("admit", data={"person": public, "reversals": 0, "operator": ctx.payload.operator},
                    secrets=secret)

    def _request(self, ctx) -> m.AdmissionRequest:
        p, s = with_secrets(ctx.data["person"], own_secrets(ctx)), ctx.payload.stay
        diags = tuple(m.AdmissionDiagnosis(psn_no=p["psn_no"], **d) for d in ctx.payload.diagnoses)
        return m.AdmissionRequest(psn_no=p["psn_no"], insutype=p["insutype"],
                                  mdtrt_cert_type=p["mdtrt_cert_type"], mdtrt_cert_no=p["mdtrt_cert_no"],
                                  insuplc_admdvs=p["insuplc_admdvs"], diseinfo=diags, **s)

    def step_admit(self, ctx):
        client: OfflineClient = ctx.service("facepay").offline
        # 9001 first, as the request's operator (flows.fsi_call); no stay stands before 2401
        # (a reversed one is undone), so a refused sign-in may simply fail the request.
        r = fsi_call(ctx, client.prepare_admit, self._request(ctx), nothing_stands=True)
        if not isinstance(r, CallResult):
            return r
        if r.ok:
            return self._admitted(ctx, r.data.mdtrt_id)
        if r.try_again:     # not sent, or refused as busy: no stay was made; ask again later
            return retry_later(r)
        if r.refused:
            # Refused: no stay was made.
            return Fail(platform_code(r), f"2401 admission refused: {r.message or r.code}")
        return InDoubt("ADMIT_UNKNOWN", r.message or "2401 outcome unknown")

    def resolve_admit(self, ctx):
        """2601 with the lost 2401's msgid (offline.md §9.1/§9.2), as resolve_settle does for
        a lost settlement: no mdtrt_id is known, so nothing else can be asked."""
        client: OfflineClient = ctx.service("facepay").offline
        s, p = self.settings, ctx.data["person"]
        r = fsi_call(ctx, client.prepare_reverse, m.ReversalRequest(
            psn_no=p["psn_no"], omsgid=ctx.in_doubt_msg_id, oinfno=ADMIT_INFNO,
            insuplc_admdvs=p["insuplc_admdvs"]))
        verdict = reversal_verdict(ctx, s, r, ADMIT_INFNO, "admission", "ADMIT_UNRESOLVED",
                                   "ADMIT_NOT_SEEN_YET")
        if verdict == NEVER_BOOKED:
            return Goto("admit")    # the first send as far as the core knows
        if verdict == REVERSED:
            n = int(ctx.data.get("reversals", 0)) + 1
            if n > s.max_reversals:
                return Hold("TOO_MANY_REVERSALS", f"{n} admissions of this request were lost and reversed; "
                                                  "no stay stands at the core; enqueue again when the link is sound")
            # Whatever the lost 2401 booked is undone: admit again, as a new message.
            return Goto("admit", data={"reversals": n})
        return verdict

    def _admitted(self, ctx, mdtrt_id: str):
        p, st = ctx.data["person"], ctx.payload.stay
        stay = {k: p[k] for k in PERSON_KEYS if k in p}
        stay.update(mdtrt_id=mdtrt_id, med_type=st["med_type"], ipt_no=st["ipt_no"], begntime=st["begntime"])
        if p.get("face"):
            stay["face"] = p["face"]
        stay, moved = split_person(stay)     # a person written before mi_secret: moved now
        row = InboxRow(result_type="admission", outcome="ok", result={"mdtrt_id": mdtrt_id})
        return Finish([row], data={"stay": stay}, secrets=moved)


# ============================================================== 2404

class AdmitCancelFlow(Flow):
    """2404 入院撤销 of a stay made by a facepay.inpatient.admit request.

    Safe to repeat (OUR CHOICE, offline.md is silent on 2404 idempotency): it moves no money
    and cannot create anything - asked twice, the stay is cancelled once.  The only catch is
    the answer to the repeat: the simulator (bridge/simulator/offline.py _i2404) refuses a
    2404 of a stay that is already cancelled ("就诊信息不存在或已撤销"), and a real platform
    is expected to do the same.  So when an earlier 2404 of THIS row may have gone through
    (its answer was lost, or the daemon died during it: current_call still set), such a
    refusal means the stay is cancelled, which is what was asked -> done, and the row says
    so.  Without an earlier unknown 2404 the same refusal is a clear failure.
    2601 is not used: offline.md §9.2 does not list 2404 as reversible."""

    kind = KIND_ADMIT_CANCEL
    initial = "start"
    secret_keys = SECRET_KEYS
    steps = {
        "start": Step("start", next=("cancel",)),
        "cancel": Step("cancel", calls=("2404",), next=()),
    }

    def __init__(self, settings: FacePaySettings):
        self.settings = settings

    def parse(self, doc: dict) -> AdmitCancelRequest:
        return parse_admit_cancel(doc)

    def step_start(self, ctx):
        stay = admitted_stay(ctx, ctx.payload.admit_key)
        if isinstance(stay, Fail):
            return stay
        return Goto("cancel", data={"stay": split_person(stay)[0], "operator": ctx.payload.operator})

    def step_cancel(self, ctx):
        # A 2404 of ours went out and its answer was never written (current_call), or an
        # earlier try's answer was unknown: the stay may be cancelled already.
        maybe = bool(ctx.data.get("maybe_cancelled") or ctx.row.current_call)
        mark = {"maybe_cancelled": True} if maybe else {}
        client: OfflineClient = ctx.service("facepay").offline
        st = ctx.data["stay"]
        # A refused sign-in fails the request, unless an earlier 2404 of it may have worked: held.
        r = fsi_call(ctx, client.prepare_cancel_admission, m.CancelAdmissionRequest(
            mdtrt_id=st["mdtrt_id"], psn_no=st["psn_no"], insuplc_admdvs=st["insuplc_admdvs"]),
            nothing_stands=not maybe)
        if not isinstance(r, CallResult):
            return _keeping(r, mark)
        if r.ok:
            return self._cancelled(ctx, data=mark)
        if r.try_again:
            return _keeping(retry_later(r), mark)
        if r.refused:
            msg = r.message or r.code or "refused"
            if any(w in msg for w in STAY_SETTLED_MARKERS):
                return Fail("STAY_SETTLED", f"2404 refused: the stay has a valid settlement; cancel it first "
                                            f"(facepay.inpatient.cancel): {msg}", data=mark)
            if any(w in msg for w in STAY_GONE_MARKERS):
                if maybe:
                    return self._cancelled(ctx, confirmed_by=f"repeat refused: {msg}", data=mark)
                return Fail("STAY_NOT_ACTIVE", f"2404 refused: the stay is unknown or already cancelled: {msg}")
            return Fail(platform_code(r), f"2404 admission cancel refused: {msg}", data=mark)
        # Unknown: safe to ask again (see the class comment); remember that it may have worked.
        return Retry("CANCEL_UNKNOWN", f"2404: {r.message or r.outcome.value}", data={"maybe_cancelled": True})

    def _cancelled(self, ctx, confirmed_by: Optional[str] = None, data: Optional[dict] = None):
        st = ctx.data["stay"]
        result: dict[str, Any] = {"mdtrt_id": st["mdtrt_id"], "admit_key": st["admit_key"]}
        if confirmed_by:
            result["confirmed_by"] = confirmed_by
        return Finish([InboxRow(result_type="admission_cancellation", outcome="ok", result=result)],
                      data=dict(data or {}))


def _keeping(t, data: dict):
    """`t` (Retry, Fail ...) with `data` kept in flow_data too."""
    if data and hasattr(t, "data"):
        t.data = {**data, **t.data}
    return t
