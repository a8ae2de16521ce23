"""kiosk.register / kiosk.register_cancel: outpatient registration at a self-service kiosk
(2201 / 2202, offline.md §5.2-§5.3), as operator type 2.

    kiosk.register         prepare (the person of a done identity.lookup and the insurance
                           chosen, or `person`) -> register (2201) -> `registration` row
    kiosk.register_cancel  start (the done registration) -> cancel (2202)

Neither call moves money.  What a lost answer does:
* 2201 is NOT safe to repeat: a second one registers the patient twice (a visit the HIS never
  hears of, which nobody then cancels).  It is journalled first, and its lost answer is
  resolved by a query, never by sending it again (resolve_register):
  5201 就诊信息查询 (not in the digest; sources in bridge/offline/messages.py) lists the
  person's visits of the day; the visit with this request's ipt_otp_no (unique in the HIS,
  offline.md §5.2) is the one the lost 2201 made -> done with it (`confirmed_by`).  Not listed
  -> inside registration_window_seconds (database clock) that is no answer yet: wait and ask
  again; after it, never registered -> 2201 again, the first send as far as the centre knows.
  2601 is no help: offline.md §9.2 does not list 2201 as reversible.
  Where the centre does not offer 5201 ([identity] registration_query = "none", or 5201 is
  refused): nothing can tell, but nothing can be unmatched either - a registration holds no
  fee and no settlement, and the reconciliation (3201/3202) counts settlements only.  So no
  hold (a hold is for money that may be unmatched): once the window has passed, 2201 is sent
  again and the registration row names the lost messages (`lost_msgids`) so that the
  registration office can look them up at the centre.
* 2202: asked again.  A repeat refused as "unknown or already cancelled" after an earlier
  2202 of this row whose answer was lost means the registration is cancelled: done, with
  `confirmed_by` (as face-pay's 2404, bridge/facepay/admission.py).  Safe to repeat: a
  repeat cancels the same visit or is refused, and a cancelled visit never comes back
  (2601 does not reverse 2202, offline.md §9.2).
A 2202 while the visit has a valid settlement is refused by the platform: the row fails
SETTLEMENT_STANDS and says to cancel the settlement first (kiosk.cancel).
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Optional

from loguru import logger

from bridge.calls import CallResult
from bridge.engine.flow import Fail, Finish, Flow, Goto, InboxRow, InDoubt, Retry, Step
from bridge.facepay.admission import STAY_GONE_MARKERS, STAY_SETTLED_MARKERS
from bridge.facepay.fsi import fsi_call, in_resolver, platform_code, retry_later
from bridge.facepay.patient import PERSON_SECRETS, SECRET_KEYS, own_secrets, split_person, with_secrets
from bridge.facepay.payloads import PERSON_KEYS
from bridge.offline import messages as m

from . import insurances as ins
from .choose import done_lookup
from .kinds import KIND_REGISTER, KIND_REGISTER_CANCEL
from .lookup import CERTNO
from .payloads import TIME_FORMAT, RegisterCancelRequest, RegisterRequest, parse_register, parse_register_cancel
from .settings import NO_QUERY, IdentitySettings


def visit_window(begntime: str) -> tuple[str, str]:
    """The 5201 window around a visit's begntime: the day before to the day after (OUR
    CHOICE: the centre keeps the begntime 2201 sent, but whether 5201 filters on it or on its
    own registration time is not public; three days cover both around midnight)."""
    day = datetime.strptime(begntime, TIME_FORMAT).replace(hour=0, minute=0, second=0)
    return ((day - timedelta(days=1)).strftime(TIME_FORMAT),
            (day + timedelta(days=1, hours=23, minutes=59, seconds=59)).strftime(TIME_FORMAT))


class RegisterFlow(Flow):
    kind = KIND_REGISTER
    initial = "prepare"
    # The pre-settlement and settlement of this visit send the credential again.
    kept_secrets = PERSON_SECRETS
    secret_keys = SECRET_KEYS
    steps = {
        "prepare": Step("prepare", next=("register",)),
        # NOT safe to repeat (a second registration); "register" leads back to itself only
        # from resolve_register, once 5201 (or the window) says the lost one was never booked.
        "register": Step("register", calls=("2201",), safe_to_repeat=False, resolves_with=("5201",),
                         next=("register",)),
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
        req = m.RegisterRequest(psn_no=v["psn_no"], insutype=v["insutype"], mdtrt_cert_type=v["mdtrt_cert_type"],
                                mdtrt_cert_no=v["mdtrt_cert_no"], insuplc_admdvs=v["insuplc_admdvs"], **p.visit)
        # A registration may stand at the centre only after a lost 2201 left unresolved
        # (lost_msgids): then a refused sign-in must not end the request.
        r = fsi_call(ctx, client.prepare_register, req, nothing_stands=not ctx.data.get("lost_msgids"))
        if not isinstance(r, CallResult):
            return r
        if r.ok:
            return self._registered(ctx, r.data.mdtrt_id)
        if r.refused:
            # After a lost 2201 the refusal may be of the resend only: name the lost ones (module text).
            named = list(ctx.data.get("lost_msgids") or [])
            msg = f"2201 registration refused: {r.message}" + (
                f"; an earlier 2201 of this request was lost and may stand ({', '.join(named)})" if named else "")
            return Fail(platform_code(r), msg, inbox=[InboxRow(
                result_type="error", outcome="failed", error_code=platform_code(r), error_message=msg,
                result={"lost_msgids": named})] if named else [])
        if r.try_again:
            return retry_later(r)
        # Sent, answer lost: the centre may have registered the patient.  Resolve by 5201.
        return InDoubt("REGISTER_UNKNOWN", f"2201: {r.message or r.outcome.value}",
                       delay=self.settings.resolve_retry_seconds)

    def resolve_register(self, ctx):
        """The 2201 in doubt (ctx.in_doubt_msg_id): 5201 for the person's visits around the
        visit's day; ours is the one with this request's ipt_otp_no."""
        s = self.settings
        if s.registration_query == NO_QUERY:
            return self._register_again(ctx, "no registration query ([identity] registration_query = \"none\")")
        p: RegisterRequest = ctx.payload
        v = ctx.data["person"]
        lo, hi = visit_window(p.visit["begntime"])
        client = ctx.service("facepay").offline
        r = fsi_call(ctx, client.prepare_visit_query, m.VisitQueryRequest(
            psn_no=v["psn_no"], begntime=lo, endtime=hi, med_type=s.med_type, insuplc_admdvs=v["insuplc_admdvs"]))
        if not isinstance(r, CallResult):
            return in_resolver(r, s.resolve_retry_seconds)
        if r.ok:
            mine = [x for x in r.data.visits if x.ipt_otp_no == p.visit["ipt_otp_no"]
                    and x.psn_no in (None, v["psn_no"])]
            if mine:
                return self._registered(ctx, mine[0].mdtrt_id,
                                        confirmed_by=f"5201 lists visit {mine[0].mdtrt_id} with outpatient number "
                                                     f"{p.visit['ipt_otp_no']}",
                                        others=[x.mdtrt_id for x in mine[1:]])
            wait = ctx.settle_window_wait(s.registration_window_seconds, "REGISTER_NOT_SEEN_YET",
                                          "5201 does not list the registration yet", s.resolve_retry_seconds)
            # Never registered: the next 2201 is the first the centre sees.
            return wait or Goto("register")
        if r.refused:
            logger.warning("5201 refused ({}): the lost 2201 of request {} cannot be looked up; set [identity] "
                           "registration_query = \"none\" if the centre does not offer 5201", r.message, ctx.row.id)
            return self._register_again(ctx, f"5201 refused: {r.message or r.code}")
        return InDoubt("REGISTER_QUERY_FAILED", f"5201: {r.message or r.outcome.value}", delay=s.resolve_retry_seconds)

    def _register_again(self, ctx, why: str):
        """Nothing can tell whether the lost 2201 registered the patient.  It moved no money:
        after the window, register again and name the lost message (module text)."""
        s = self.settings
        wait = ctx.settle_window_wait(s.registration_window_seconds, "REGISTER_NOT_SEEN_YET",
                                      f"{why}; the lost 2201 may still be booked", s.resolve_retry_seconds)
        if wait:
            return wait
        lost = [x for x in (ctx.data.get("lost_msgids") or []) if x != ctx.in_doubt_msg_id]
        return Goto("register", data={"lost_msgids": lost + [ctx.in_doubt_msg_id]})

    def _registered(self, ctx, mdtrt_id: str, *, confirmed_by: Optional[str] = None, others=()):
        p: RegisterRequest = ctx.payload
        person = ctx.data["person"]
        registration = {**{k: person[k] for k in PERSON_KEYS if k in person}, "mdtrt_id": mdtrt_id,
                        "ipt_otp_no": p.visit["ipt_otp_no"], "begntime": p.visit["begntime"],
                        "dr_name": p.visit["dr_name"]}
        result: dict[str, Any] = {"mdtrt_id": mdtrt_id, "ipt_otp_no": p.visit["ipt_otp_no"],
                                  "psn_no": person["psn_no"], "insutype": person["insutype"],
                                  "insuplc_admdvs": person["insuplc_admdvs"]}
        if confirmed_by:
            result["confirmed_by"] = confirmed_by
        if others:
            # More than one visit with this outpatient number: the others are unused
            # registrations at the centre, for the registration office.
            result["other_visits"] = list(others)
        if ctx.data.get("lost_msgids"):
            result["lost_msgids"] = list(ctx.data["lost_msgids"])
        return Finish([InboxRow(result_type="registration", outcome="ok", result=result)],
                      data={"registration": registration})


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
