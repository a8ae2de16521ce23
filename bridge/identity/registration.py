"""kiosk.register / kiosk.register_cancel: outpatient registration at a self-service kiosk
(2201 / 2202, offline.md §5.2-§5.3), as operator type 2.

    kiosk.register         prepare (the person of a done identity.lookup and the insurance
                           chosen, or `person`) -> register (2201) -> `registration` row
    kiosk.register_cancel  start (the done registration) -> cancel (2202)

Neither call moves money.  What a lost answer does:
* 2201 (OUR CHOICE, as face-pay's pre-settlement, bridge/facepay/presettle.py): sent again
  as a new message.  If the centre booked the lost one, it holds a registration with no fee
  line and no settlement: it moves no money and neither a settlement nor the reconciliation
  (3201/3202 count settlements) sees it, but it cannot be cancelled by mibridge (its
  mdtrt_id was lost).  The `registration` row names the lost messages (`lost_msgids`) so
  that the registration office can look them up where its region counts visits.  2601 is not
  used: offline.md §9.2 does not list 2201 as reversible, and no query of a registration by
  msgid is public.
* 2202: asked again.  A repeat refused as "unknown or already cancelled" after an earlier
  2202 of this row whose answer was lost means the registration is cancelled: done, with
  `confirmed_by` (as face-pay's 2404, bridge/facepay/admission.py).
A 2202 while the visit has a valid settlement is refused by the platform: the row fails
SETTLEMENT_STANDS and says to cancel the settlement first (kiosk.cancel).
"""
from __future__ import annotations

from typing import Any, Optional

from bridge.calls import CallResult
from bridge.engine.flow import Fail, Finish, Flow, Goto, InboxRow, Retry, Step
from bridge.facepay.admission import STAY_GONE_MARKERS, STAY_SETTLED_MARKERS
from bridge.facepay.fsi import fsi_call, platform_code, retry_later
from bridge.facepay.patient import PERSON_SECRETS, SECRET_KEYS, own_secrets, split_person, with_secrets
from bridge.facepay.payloads import PERSON_KEYS
from bridge.offline import messages as m

from . import insurances as ins
from .choose import done_lookup
from .kinds import KIND_REGISTER, KIND_REGISTER_CANCEL
from .lookup import CERTNO
from .payloads import RegisterCancelRequest, RegisterRequest, parse_register, parse_register_cancel
from .settings import IdentitySettings


class RegisterFlow(Flow):
    kind = KIND_REGISTER
    initial = "prepare"
    # The pre-settlement and settlement of this visit send the credential again.
    kept_secrets = PERSON_SECRETS
    secret_keys = SECRET_KEYS
    steps = {
        "prepare": Step("prepare", next=("register",)),
        "register": Step("register", calls=("2201",), next=()),
    }

    def __init__(self, settings: IdentitySettings):
        self.settings = settings

    def parse(self, doc: dict) -> RegisterRequest:
        return parse_register(doc, self.settings)

    def step_prepare(self, ctx):
        p: RegisterRequest = ctx.payload
        if p.person is not None:
            person = dict(p.person)
        else:
            found = done_lookup(ctx, p.lookup_key)
            if isinstance(found, Fail):
                return found
            chosen = ins.pick(found["insurances"], p.insutype, p.insuplc_admdvs)
            if isinstance(chosen, ins.NoChoice):
                return Fail(chosen.code, chosen.message, inbox=[InboxRow(
                    result_type="error", outcome="failed", error_code=chosen.code, error_message=chosen.message,
                    result={"insurances": ins.public(found["insurances"])})])
            certno = ctx.port.secrets(found["_id"]).get(CERTNO)
            if not certno:
                return Fail("LOOKUP_NOT_DONE", f"lookup {p.lookup_key!r} holds no identity any more; look up again")
            # The ID-number credential (type 02): it does not expire like an ecToken (offline.md
            # §7.3; face-pay's cert_type "02" for the same reason).
            person = {"psn_no": found["psn_no"], "insutype": chosen["insutype"],
                      "insuplc_admdvs": chosen["insuplc_admdvs"], "mdtrt_cert_type": m.CERT_ID_CARD,
                      "mdtrt_cert_no": certno}
        public, secret = split_person(person)
        return Goto("register", data={"person": public, "operator": p.operator}, secrets=secret)

    def step_register(self, ctx):
        p: RegisterRequest = ctx.payload
        client = ctx.service("facepay").offline
        v = with_secrets(ctx.data["person"], own_secrets(ctx))
        # A 2201 of this row whose answer was never written (the daemon died during it).
        lost = list(ctx.data.get("lost_msgids") or [])
        if ctx.row.current_call and ctx.row.current_call not in lost:
            lost.append(ctx.row.current_call)
        req = m.RegisterRequest(psn_no=v["psn_no"], insutype=v["insutype"], mdtrt_cert_type=v["mdtrt_cert_type"],
                                mdtrt_cert_no=v["mdtrt_cert_no"], insuplc_admdvs=v["insuplc_admdvs"], **p.visit)
        r = fsi_call(ctx, client.prepare_register, req, nothing_stands=not lost)
        if not isinstance(r, CallResult):
            return _keeping(r, {"lost_msgids": lost} if lost else {})
        if r.ok:
            reg = r.data
            registration = {**{k: ctx.data["person"][k] for k in PERSON_KEYS if k in ctx.data["person"]},
                            "mdtrt_id": reg.mdtrt_id, "ipt_otp_no": p.visit["ipt_otp_no"],
                            "begntime": p.visit["begntime"], "dr_name": p.visit["dr_name"]}
            result = {"mdtrt_id": reg.mdtrt_id, "ipt_otp_no": p.visit["ipt_otp_no"], "psn_no": v["psn_no"],
                      "insutype": v["insutype"], "insuplc_admdvs": v["insuplc_admdvs"]}
            if lost:
                result["lost_msgids"] = lost
            return Finish([InboxRow(result_type="registration", outcome="ok", result=result)],
                          data={"registration": registration})
        if r.refused:
            # After a lost 2201 the refusal may be of the resend only: name the lost ones (module text).
            named = list(ctx.data.get("lost_msgids") or [])
            msg = f"2201 registration refused: {r.message}" + (
                f"; an earlier 2201 of this request was lost and may stand ({', '.join(named)})" if named else "")
            return Fail(platform_code(r), msg, inbox=[InboxRow(
                result_type="error", outcome="failed", error_code=platform_code(r), error_message=msg,
                result={"lost_msgids": named})] if named else [])
        if r.try_again:
            return _keeping(retry_later(r), {"lost_msgids": lost} if lost else {})
        # Lost: see the module text.  Sent again as a new message on the next try.
        return Retry("REGISTER_UNKNOWN", f"2201: {r.message or r.outcome.value}",
                     data={"lost_msgids": lost + [r.msg_id]})


def done_registration(ctx, register_key: str) -> dict | Fail:
    """The visit a done kiosk.register made, with its credential (memory only):
    {psn_no, insutype, insuplc_admdvs, mdtrt_cert_type, mdtrt_cert_no, mdtrt_id, ipt_otp_no,
    begntime, dr_name, operator}, or Fail REGISTRATION_NOT_FOUND / REGISTRATION_NOT_DONE."""
    row = ctx.port.find_request((KIND_REGISTER,), register_key)
    if row is None:
        return Fail("REGISTRATION_NOT_FOUND", f"no {KIND_REGISTER} request {register_key!r}")
    reg = row["flow_data"].get("registration")
    if row["state"] != "done" or not reg or not reg.get("mdtrt_id"):
        return Fail("REGISTRATION_NOT_DONE", f"registration {register_key!r} is {row['state']}, not done with a "
                                             "visit; enqueue after it with the same serial_key")
    return dict(with_secrets(reg, ctx.port.secrets(row["id"])), operator=row["flow_data"].get("operator"),
                register_key=register_key)


class RegisterCancelFlow(Flow):
    kind = KIND_REGISTER_CANCEL
    initial = "start"
    secret_keys = SECRET_KEYS
    steps = {
        "start": Step("start", next=("cancel",)),
        "cancel": Step("cancel", calls=("2202",), next=()),
    }

    def __init__(self, settings: IdentitySettings):
        self.settings = settings

    def parse(self, doc: dict) -> RegisterCancelRequest:
        return parse_register_cancel(doc, self.settings)

    def step_start(self, ctx):
        reg = done_registration(ctx, ctx.payload.register_key)
        if isinstance(reg, Fail):
            return reg
        public = split_person(reg)[0]
        return Goto("cancel", data={"registration": public, "operator": ctx.payload.operator or reg.get("operator")})

    def step_cancel(self, ctx):
        maybe = bool(ctx.data.get("maybe_cancelled") or ctx.row.current_call)
        mark = {"maybe_cancelled": True} if maybe else {}
        client = ctx.service("facepay").offline
        reg = ctx.data["registration"]
        r = fsi_call(ctx, client.prepare_cancel_register, m.CancelRegisterRequest(
            psn_no=reg["psn_no"], mdtrt_id=reg["mdtrt_id"], ipt_otp_no=reg["ipt_otp_no"],
            insuplc_admdvs=reg["insuplc_admdvs"]), nothing_stands=not maybe)
        if not isinstance(r, CallResult):
            return _keeping(r, mark)
        if r.ok:
            return self._cancelled(ctx, data=mark)
        if r.try_again:
            return _keeping(retry_later(r), mark)
        if r.refused:
            msg = r.message or r.code or "refused"
            if any(w in msg for w in STAY_SETTLED_MARKERS):
                return Fail("SETTLEMENT_STANDS", f"2202 refused: the visit has a valid settlement; cancel the "
                                                 f"settlement first (kiosk.cancel), then this: {msg}", data=mark)
            if any(w in msg for w in STAY_GONE_MARKERS):
                if maybe:
                    return self._cancelled(ctx, confirmed_by=f"repeat refused: {msg}", data=mark)
                return Fail("REGISTRATION_NOT_ACTIVE", f"2202 refused: the registration is unknown or already "
                                                       f"cancelled: {msg}")
            return Fail(platform_code(r), f"2202 registration cancel refused: {msg}", data=mark)
        return Retry("CANCEL_UNKNOWN", f"2202: {r.message or r.outcome.value}", data={"maybe_cancelled": True})

    def _cancelled(self, ctx, confirmed_by: Optional[str] = None, data: Optional[dict] = None):
        reg = ctx.data["registration"]
        result: dict[str, Any] = {"mdtrt_id": reg["mdtrt_id"], "ipt_otp_no": reg["ipt_otp_no"],
                                  "register_key": ctx.payload.register_key}
        if confirmed_by:
            result["confirmed_by"] = confirmed_by
        return Finish([InboxRow(result_type="registration_cancellation", outcome="ok", result=result)],
                      data=dict(data or {}))


def _keeping(t, data: dict):
    """`t` (Retry, Fail ...) with `data` kept in flow_data too."""
    if data and hasattr(t, "data"):
        t.data = {**data, **t.data}
    return t
