"""Face-scan one-stop settlement with the real personal account (issue 5): the flows.

Kinds (payloads: docs/facepay.md; state tables: `mibridge flows`):

    facepay.identify               face on the terminal -> insured identity (mi_identity + inbox)
    facepay.outpatient.presettle   [2201] -> 2203 -> 2205+2204 -> 2206     split to show the patient
    facepay.outpatient.settle      2207 -> terminal notice -> HIS ack       final split, setl_id
    facepay.outpatient.cancel      2208 (+ fpy001 / mpc004 when the account refund fails)
    facepay.inpatient.presettle    2302+2301 -> 2303
    facepay.inpatient.settle       2304 -> terminal notice -> HIS ack
    facepay.inpatient.cancel       2305 (+ fpy001 / mpc004)
    facepay.document.presettle     2260 setl_flag 0    Guangdong one-shot outpatient (offline.md §5.11)
    facepay.document.settle        2260 setl_flag 1 -> terminal notice -> HIS ack
    facepay.document.cancel        2261 (+ fpy001 / mpc004)

Every request may name its `operator` (counter staff, kiosk): the envelopes carry it and it
is signed in with 9001 once a day (offline.md §4); else the daemon's [offline] operator.

Rules these flows keep (docs/engine.md):
* every call that moves money (2207/2304/2260 settle, 2208/2305/2261 cancel, mpc004 refund) is
  NOT safe to repeat and has a resolver that asks the platform first:
    - settle: no setl_id is known when its answer is lost, so fpy001 (which needs one)
      cannot help; offline.md §9.3 names 2601 with the original msgid/infno as the tool.
      2601 succeeds -> the lost settlement (if it was booked) is undone at the core,
      account included, and the settlement is sent again, as a new message (bounded by
      max_reversals).  2601 says "original not found" -> only after the settle window
      (database clock) is that taken as "never booked", and the settlement is sent.
    - cancel and mpc004: fpy001 (facepay.md §2) tells the settlement state and the
      account's deduction/refund state.
* a REJECTED answer means nothing happened (bridge/calls.py) and is what allows a
  different call (the plain settlement, mpc004) to follow.

Where facepay.md / offline.md are silent, the choice is ours and says so ("OUR CHOICE").
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Callable, Optional

from loguru import logger

from bridge.calls import CallResult, Outcome, PreparedCall
from bridge.engine.flow import IdentityRow, InboxRow
from bridge.engine import handover
from bridge.engine.flow import (BadInput, Fail, Finish, Flow, Goto, Hold, InDoubt, Retry, Step,
                                Wait, check_line_amount, require_amount, require_text)
from bridge.facepay import fields as F
from bridge.facepay.client import (FaceAuthRequest, FacePayClient, PersonalAccountRefund,
                                   RealAccountQuery, SettleNotice)
from bridge.facepay.expcontent import FacePayTerms
from bridge.offline import messages as m
from bridge.offline.client import OfflineClient
from bridge.offline.config import Operator

ZERO = Decimal("0.00")

KIND_IDENTIFY = "facepay.identify"
OUT, INP, DOC = "outpatient", "inpatient", "document"
# DOC: the Guangdong one-shot "document-style" outpatient settlement, which facepay.md
# step 2/4 names beside 2206/2207 and offline.md §11 sequences as
# 1101 -> 2260(setl_flag=0) -> 2260(setl_flag=1), cancel 2261.
INFNO = {OUT: {"presettle": "2206", "settle": "2207", "cancel": "2208"},
         INP: {"presettle": "2303", "settle": "2304", "cancel": "2305"},
         DOC: {"presettle": "2260", "settle": "2260", "cancel": "2261"}}


def kind(setting: str, op: str) -> str:
    return f"facepay.{setting}.{op}"


ALL_KINDS = (KIND_IDENTIFY,) + tuple(kind(s, o) for s in (OUT, INP, DOC)
                                     for o in ("presettle", "settle", "cancel"))


# ============================================================== settings

@dataclass(frozen=True)
class FacePaySettings:
    """[facepay] section (daemon/platforms_facepay.py).  Delays in seconds."""

    # Global switch: False = every request settles the plain way (acct_used_flag 0, no
    # expContent), whatever the payload says (issue 5: "switched off ... globally").
    enabled: bool = True
    # Default terms for expContent (facepay.md table); a request may name its own terminal.
    merchant_no: str = ""
    terminal_no: str = ""
    isv_no: str = ""
    acct_type: str = "A02"
    down_payment: Decimal = ZERO
    # Face terminal (cn.nhsa.ec.auth / auth.check / settle.notify, offline.md §7.2).
    business_type: str = "01101"      # the only code seen (offline.md §13 #5)
    office_id: str = ""
    office_name: str = ""
    hospital_name: str = ""
    # Send cn.nhsa.settle.notify after a settlement of an identified patient (offline.md
    # §7.2: needed when the terminal did not collect the payment itself - it never does here).
    notify_terminal: bool = True
    notify_attempts: int = 3
    notify_retry_seconds: float = 5.0
    # The credential used in 2201..2207 for a face-identified patient.  "02" = ID number
    # (NMG route, offline.md §7.3) by default: an ecToken ("01") is short-lived and GZ
    # rescans before 2207 (§7.3) - OUR CHOICE: the route that does not expire.
    cert_type: str = "02"
    # How long after a send the core may still book it (client read timeout + margin).
    # "not found" before that is "not yet", after it "never" (docs/engine.md rule 7).
    settle_window_seconds: float = 120.0
    resolve_retry_seconds: float = 10.0
    # After a lost settle answer, 2601 reverses whatever was booked and the settlement is
    # sent again; more reversals than this on one row -> held.  OUR CHOICE.
    max_reversals: int = 2
    # The platform's text for "2601: original message not found".  No public source
    # gives it (offline.md §9.4 only says "return an error"); anything else a 2601 answers
    # keeps the row in doubt and, in the end, held.  OUR CHOICE (simulator's wording).
    reversal_not_found_markers: tuple[str, ...] = ("原交易不存在",)
    # The platform's text for "this transaction cannot be reversed" (offline.md §9.4: an
    # error for a non-reversible oinfno; §9.2's list is single-source and may not hold
    # 2260).  A lost settle answer whose reversal is refused like this is held at once
    # for a person: nothing else can tell whether it was booked.  OUR CHOICE (simulator).
    reversal_refused_markers: tuple[str, ...] = ("不允许冲正",)
    # The transactions 2601 is known to reverse (offline.md §9.2, single-source).  For any
    # other (2260) a "not found" answer cannot mean "never booked": the platform may look
    # the msgid up only among reversible messages.  Such a lost answer is held.
    reversible_infnos: tuple[str, ...] = ("2207", "2208", "2304", "2305", "2401")
    # mpc004 personal-account refund: tries and the pause before each retry
    # (facepay.md: "may be called again, in a loop").  After the last -> held.
    refund_retry_delays: tuple[float, ...] = (60.0, 300.0, 900.0, 3600.0)
    # 单边账: after the settlement row, wait for the HIS to consume it.  'rejected' ->
    # cancel at once; not consumed within his_ack_timeout_seconds -> cancel too
    # (issue 5).  0 = do not wait (no automatic cancel).
    his_ack_timeout_seconds: float = 900.0
    his_ack_poll_seconds: float = 2.0

    def terms(self, override: Optional[dict] = None) -> Optional[FacePayTerms]:
        o = override or {}
        t = FacePayTerms(merchant_no=o.get("merchant_no") or self.merchant_no,
                         terminal_no=o.get("terminal_no") or self.terminal_no,
                         isv_no=o.get("isv_no") or self.isv_no,
                         acct_type=o.get("acct_type") or self.acct_type,
                         down_payment=Decimal(str(o.get("down_payment", self.down_payment))))
        if not (t.merchant_no and t.terminal_no and t.isv_no and t.acct_type):
            return None
        return t


# ============================================================== payload helpers

def _opt_text(doc: dict, name: str, max_len: int = 64) -> Optional[str]:
    if doc.get(name) in (None, ""):
        return None
    return require_text(doc, name, max_len)


def _opt_bool(doc: dict, name: str) -> Optional[bool]:
    v = doc.get(name)
    if v is None:
        return None
    if not isinstance(v, bool):
        raise BadInput(f"payload field {name!r} must be true or false")
    return v


def _number(doc: dict, name: str, where: str, places: int) -> Decimal:
    v = doc.get(name)
    if isinstance(v, bool) or v is None or v == "":
        raise BadInput(f"{where}: field {name!r} is required (a number)")
    try:
        d = Decimal(str(v))
    except InvalidOperation:
        raise BadInput(f"{where}: field {name!r} is not a number: {v!r}") from None
    if not d.is_finite() or d.as_tuple().exponent < -places:
        raise BadInput(f"{where}: field {name!r} must have at most {places} decimal places: {v!r}")
    return d


def only_fields(doc: dict, known: tuple[str, ...]) -> None:
    """Refuse a payload field no flow reads: a misspelt "facepay": false would otherwise be
    ignored and the patient's account charged."""
    unknown = set(doc) - set(known)
    if unknown:
        raise BadInput(f"unknown payload field(s) {', '.join(sorted(unknown))}; known: {', '.join(known)}")


def _object(doc: dict, name: str, required: bool = False) -> Optional[dict]:
    v = doc.get(name)
    if v is None:
        if required:
            raise BadInput(f"payload field {name!r} is required (an object)")
        return None
    if not isinstance(v, dict):
        raise BadInput(f"payload field {name!r} must be an object")
    return v


FEE_TEXT = ("feedetl_sn", "fee_ocur_time", "med_list_codg", "medins_list_codg", "bilg_dept_codg",
            "bilg_dept_name", "bilg_dr_codg", "bilg_dr_name")
FEE_OPTIONAL = ("rxno", "rx_circ_flag", "med_type", "init_feedetl_sn", "chrg_bchno")


def _fees(doc: dict) -> tuple[dict, ...]:
    rows = doc.get("fees")
    if not isinstance(rows, list) or not rows:
        raise BadInput("payload field 'fees' is required (a non-empty list of fee lines)")
    out, seen = [], set()
    for i, row in enumerate(rows, 1):
        where = f"fees[{i}]"
        if not isinstance(row, dict):
            raise BadInput(f"{where} must be an object")
        rec: dict[str, Any] = {}
        for k in FEE_TEXT:
            v = row.get(k)
            if not isinstance(v, str) or not v.strip():
                raise BadInput(f"{where}: field {k!r} is required (text)")
            rec[k] = v
        if rec["feedetl_sn"] in seen:
            raise BadInput(f"{where}: feedetl_sn {rec['feedetl_sn']!r} repeats")
        seen.add(rec["feedetl_sn"])
        rec["det_item_fee_sumamt"] = _number(row, "det_item_fee_sumamt", where, 2)
        if rec["det_item_fee_sumamt"] < 0:
            raise BadInput(f"{where}: det_item_fee_sumamt must not be negative")
        rec["cnt"] = _number(row, "cnt", where, 4)            # offline.md §5.5: cnt 16,4
        rec["pric"] = _number(row, "pric", where, 6)          # pric 16,6
        check_line_amount(rec["cnt"], rec["pric"], rec["det_item_fee_sumamt"], where,
                          ("cnt", "pric", "det_item_fee_sumamt"))
        for k in FEE_OPTIONAL:
            if row.get(k) not in (None, ""):
                rec[k] = str(row[k])
        unknown = set(row) - set(FEE_TEXT) - set(FEE_OPTIONAL) - {"det_item_fee_sumamt", "cnt", "pric"}
        if unknown:
            raise BadInput(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
        out.append(rec)
    return tuple(out)


TERM_KEYS = ("merchant_no", "terminal_no", "isv_no", "acct_type")
PERSON_KEYS = ("psn_no", "insutype", "insuplc_admdvs", "mdtrt_cert_type", "mdtrt_cert_no")

# ---- secrets (docs/facepay.md "What the HIS sees"): kept in mi_secret, never in flow_data.
# A patient's credential (mdtrt_cert_no: an ID number or an ecToken) and what the face
# terminal gave (authNo, ID number, name).  A pre-settlement or admission keeps them
# when done, for the settlement that follows; a settlement drops them when final.
CERT = "mdtrt_cert_no"
FACE_SECRETS = ("auth_no", "id_no", "user_name")
PERSON_SECRETS = (CERT,) + tuple(f"face.{k}" for k in FACE_SECRETS)
# Keys that never stay in a final row's flow_data (rows written before mi_secret).
SECRET_KEYS = (CERT, "id_no", "user_name", "ec_token", "auth_no", "certno", "psn_name")


def split_person(person: dict) -> tuple[dict, dict]:
    """(what flow_data may keep, what goes to mi_secret) of a person or visit dict that
    holds its credential and, face-identified, its terminal identity."""
    public = {k: v for k, v in person.items() if k not in (CERT, "face")}
    secret = {CERT: person.get(CERT)}
    face = person.get("face")
    if face:
        public["face"] = {k: v for k, v in face.items() if k not in FACE_SECRETS}
        secret.update({f"face.{k}": face.get(k) for k in FACE_SECRETS})
    elif "face" in person:
        public["face"] = face
    return public, {k: v for k, v in secret.items() if v not in (None, "")}


def with_secrets(public: dict, secret: dict) -> dict:
    """The person or visit again, in memory only: flow_data's part plus its secrets (a
    row written before mi_secret still has them in flow_data: they stay)."""
    out = dict(public)
    if secret.get(CERT):
        out[CERT] = secret[CERT]
    if out.get("face"):
        face = dict(out["face"])
        for k in FACE_SECRETS:
            if secret.get(f"face.{k}"):
                face[k] = secret[f"face.{k}"]
        face.setdefault("user_name", "")
        out["face"] = face
    return out


def own_secrets(ctx) -> dict:
    return {n: ctx.secret(n) for n in PERSON_SECRETS}
VISIT_KEYS = ("ipt_otp_no", "begntime", "atddr_no", "dr_name", "dept_code", "dept_name", "caty")
DIAG_KEYS = ("diag_type", "diag_srt_no", "diag_code", "diag_name", "diag_dept", "dise_dor_no",
             "dise_dor_name", "diag_time", "vali_flag")


@dataclass(frozen=True)
class PresettleRequest:
    setting: str
    identify_key: Optional[str]
    person: Optional[dict]
    mdtrt_id: Optional[str]
    visit: Optional[dict]
    fees: tuple[dict, ...]
    total: Decimal
    chrg_bchno: Optional[str]
    med_type: str
    psn_setlway: str
    mid_setl_flag: str
    face_pay: Optional[bool]
    terminal: Optional[dict]
    retry_without_face_pay: bool
    operator: Optional[dict] = None
    admit_key: Optional[str] = None


PRESETTLE_FIELDS = ("identify_key", "person", "mdtrt_id", "visit", "fees", "total_amount", "chrg_bchno",
                    "med_type", "psn_setlway", "mid_setl_flag", "face_pay", "terminal",
                    "retry_without_face_pay", "operator", "admit_key")


def parse_presettle(doc: dict, setting: str) -> PresettleRequest:
    only_fields(doc, PRESETTLE_FIELDS)
    identify_key = _opt_text(doc, "identify_key")
    person = _object(doc, "person")
    admit_key = _opt_text(doc, "admit_key") if setting == INP else None
    if doc.get("admit_key") not in (None, "") and setting != INP:
        raise BadInput("payload field 'admit_key' is only for an inpatient pre-settlement")
    if identify_key is not None and person is not None or \
            (identify_key is None and person is None and admit_key is None):
        raise BadInput("give exactly one of 'identify_key' (a facepay.identify request) or "
                       "'person' {psn_no, insutype, insuplc_admdvs, mdtrt_cert_type, mdtrt_cert_no}"
                       + (" (or neither with 'admit_key': the admitted person)" if setting == INP else ""))
    if person is not None:
        for k in PERSON_KEYS:
            require_text(person, k, 600 if k == "mdtrt_cert_no" else 64)
    mdtrt_id = _opt_text(doc, "mdtrt_id", 30)
    visit = _object(doc, "visit")
    if setting == INP and (mdtrt_id is None) == (admit_key is None):
        raise BadInput("give exactly one of 'mdtrt_id' (a stay admitted with 2401 elsewhere) or "
                       "'admit_key' (a facepay.inpatient.admit request)")
    if setting == DOC:
        for k in ("mdtrt_id", "chrg_bchno"):
            if doc.get(k) not in (None, ""):
                raise BadInput(f"payload field {k!r} is not used by the one-shot settlement: "
                               "2260 registers the visit itself")
    if setting == OUT and mdtrt_id is None:
        if visit is None:
            raise BadInput("give 'mdtrt_id' (a registered visit) or 'visit' {ipt_otp_no, begntime, "
                           "atddr_no, dr_name, dept_code, dept_name, caty, diagnoses} to register one")
    if setting in (OUT, DOC):
        if visit is None:
            raise BadInput("payload field 'visit' is required (begntime and diagnoses for "
                           f"{'2260' if setting == DOC else '2203'})")
        for k in (VISIT_KEYS if mdtrt_id is None else ("begntime",)):
            require_text(visit, k)
        diags = visit.get("diagnoses")
        if not isinstance(diags, list) or not diags:
            raise BadInput("visit.diagnoses is required (a non-empty list, 2203 diseinfo)")
        for i, d in enumerate(diags, 1):
            if not isinstance(d, dict):
                raise BadInput(f"visit.diagnoses[{i}] must be an object")
            missing = [k for k in DIAG_KEYS if not isinstance(d.get(k), str) or not d.get(k)]
            if missing:
                raise BadInput(f"visit.diagnoses[{i}]: missing {', '.join(missing)}")
    fees = _fees(doc)
    total = require_amount(doc, "total_amount")
    sum_fees = sum((f["det_item_fee_sumamt"] for f in fees), ZERO)
    if sum_fees != total:
        raise BadInput(f"total_amount {total} is not the sum of the fee lines ({sum_fees})")
    chrg_bchno = _opt_text(doc, "chrg_bchno", 30)
    if setting == OUT and chrg_bchno is None:
        raise BadInput("payload field 'chrg_bchno' is required (the charge batch of 2204)")
    terminal = _object(doc, "terminal")
    if terminal is not None:
        bad = [k for k in terminal if k not in TERM_KEYS + ("down_payment",)]
        if bad:
            raise BadInput(f"terminal: unknown field(s) {', '.join(bad)}; known: {', '.join(TERM_KEYS)}")
    return PresettleRequest(
        setting=setting, identify_key=identify_key, person=person, mdtrt_id=mdtrt_id, visit=visit,
        fees=fees, total=total, chrg_bchno=chrg_bchno,
        med_type=_opt_text(doc, "med_type", 6) or ("21" if setting == INP else "11"),
        psn_setlway=_opt_text(doc, "psn_setlway", 6) or "01",
        mid_setl_flag=_opt_text(doc, "mid_setl_flag", 2) or "0",
        face_pay=_opt_bool(doc, "face_pay"), terminal=terminal,
        retry_without_face_pay=bool(_opt_bool(doc, "retry_without_face_pay")),
        operator=parse_operator(doc), admit_key=admit_key)


@dataclass(frozen=True)
class SettleRequest:
    presettle_key: str
    face_pay: Optional[bool]
    retry_without_face_pay: Optional[bool]
    operator: Optional[dict] = None


@dataclass(frozen=True)
class CancelRequest:
    settle_key: str
    with_extension: bool
    reason: Optional[str]
    operator: Optional[dict] = None


# ============================================================== shared helpers

def lookup(ctx, kinds: tuple[str, ...], business_key: str) -> Optional[dict]:
    """Another request of this visit, by its business key (Store.find_request)."""
    return ctx.port.find_request(kinds, business_key)


OPERATOR_TYPES = ("1", "2", "3")   # envelope opter_type: staff, self-service kiosk, mobile (offline.md §2)


def parse_operator(doc: dict) -> Optional[dict]:
    """The request's own operator {"id", "name", "type"}, or None for the daemon's."""
    o = _object(doc, "operator")
    if o is None:
        return None
    unknown = set(o) - {"id", "name", "type"}
    if unknown:
        raise BadInput(f"operator: unknown field(s) {', '.join(sorted(unknown))}; known: id, name, type")
    op = {"id": require_text(o, "id", 20),                 # 9001 opter_no is 20 long (offline.md §4)
          "name": _opt_text(o, "name", 50) or o["id"],
          "type": _opt_text(o, "type", 3) or "1"}
    if op["type"] not in OPERATOR_TYPES:
        raise BadInput(f"operator.type must be one of {', '.join(OPERATOR_TYPES)} (1 staff, 2 kiosk, 3 mobile)")
    return op


def _operator(ctx, client: OfflineClient) -> Operator:
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
    op = _operator(ctx, client)
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
        return _in_resolver(r, s.resolve_retry_seconds)
    if r.ok:
        return REVERSED
    said = r.message if r.refused and r.message else ""
    not_found = any(w in said for w in s.reversal_not_found_markers)
    if (said and any(w in said for w in s.reversal_refused_markers)) or (not_found and infno not in s.reversible_infnos):
        return Hold(hold_code, f"the answer to {infno} msgid {ctx.in_doubt_msg_id} was lost and 2601 cannot tell "
                               f"whether it was booked ({said}); check at the centre (settlement list / "
                               "reconciliation) before anything is sent again")
    if not_found:
        return _settle_window_wait(ctx, s, wait_code, f"2601 does not know the {what} yet") or NEVER_BOOKED
    return InDoubt("REVERSAL_FAILED", f"2601 for the lost {what}: {r.message or r.outcome.value}",
                   delay=s.resolve_retry_seconds)


def _identity_secret(ctx, data: dict, name: str) -> Optional[str]:
    """An identify row's own secret (flow_data holds it only in rows written before mi_secret)."""
    return ctx.secret(name) or data.get(name)


def _in_resolver(t, delay: Optional[float] = None):
    """A resolver must stay in doubt (not retry the step) when it could not ask."""
    return t if isinstance(t, Hold) else InDoubt(t.code, t.message, delay=delay)


def _exp(client: OfflineClient, terms: dict) -> dict:
    t = FacePayTerms(merchant_no=terms["merchant_no"], terminal_no=terms["terminal_no"],
                     isv_no=terms["isv_no"], acct_type=terms["acct_type"],
                     down_payment=Decimal(str(terms.get("down_payment", "0.00"))))
    return {client.config.exp_content_field: t.exp_content(as_string=client.config.exp_content_as_string)}


def _terms_dict(t: FacePayTerms) -> dict:
    return {"merchant_no": t.merchant_no, "terminal_no": t.terminal_no, "isv_no": t.isv_no,
            "acct_type": t.acct_type, "down_payment": str(t.down_payment)}


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


def split_of(s: m.Settlement) -> dict:
    acct = s.acct_pay if s.acct_pay is not None else ZERO
    cash = s.psn_cash_pay if s.psn_cash_pay is not None else ZERO
    return {"total": str(s.medfee_sumamt), "fund": str(s.fund_pay_sumamt if s.fund_pay_sumamt is not None else ZERO),
            "account": str(acct), "cash": str(cash), "hosp_part": str(s.hosp_part_amt or ZERO),
            "balc": None if s.balc is None else str(s.balc)}


def _dec(v: Any) -> Optional[Decimal]:
    return None if v in (None, "") else Decimal(str(v))


def _money_row(result_type: str, split: dict, *, settlement_id: Optional[str] = None,
               outcome: str = "ok", result: Optional[dict] = None, sign: int = 1,
               error_code: Optional[str] = None, error_message: Optional[str] = None) -> InboxRow:
    def amt(k):
        v = _dec(split.get(k))
        return None if v is None else (v * sign).quantize(Decimal("0.01"))
    return InboxRow(result_type=result_type, outcome=outcome, settlement_id=settlement_id,
                    total_amount=amt("total"), fund_amount=amt("fund"),
                    account_amount=amt("account"), cash_amount=amt("cash"),
                    error_code=error_code, error_message=error_message,
                    result=dict(result or {}, split=split))


def _settle_window_wait(ctx, settings: FacePaySettings, code: str, what: str) -> Optional[InDoubt]:
    """Inside the settle window "not seen" is no answer yet: wait, asking again every
    resolve_retry_seconds; the waits use none of the row's attempts (the engine's)."""
    return ctx.settle_window_wait(settings.settle_window_seconds, code, what, settings.resolve_retry_seconds)


# ============================================================== identify

@dataclass(frozen=True)
class IdentifyRequest:
    his_patient_id: str
    operator_id: Optional[str]
    operator_name: Optional[str]
    office_id: Optional[str]
    office_name: Optional[str]
    business_type: Optional[str]
    operator: Optional[dict] = None


class IdentifyFlow(Flow):
    """cn.nhsa.ec.auth -> cn.nhsa.auth.check -> 1101 (offline.md §7.3 steps 1-3).
    None of them moves money: all safe to repeat."""

    kind = KIND_IDENTIFY
    initial = "face_auth"
    # The pre-settlements and admissions of this patient read them (IDENTITY_SECRETS).
    kept_secrets = ("auth_no", "id_no", "user_name", "ec_token")
    secret_keys = SECRET_KEYS
    steps = {
        "face_auth": Step("face_auth", calls=("cn.nhsa.ec.auth",), next=("check",)),
        "check": Step("check", calls=("cn.nhsa.auth.check",), next=("person",)),
        "person": Step("person", calls=("1101",), next=()),
    }

    def __init__(self, settings: FacePaySettings):
        self.settings = settings

    def parse(self, doc: dict) -> IdentifyRequest:
        only_fields(doc, ("his_patient_id", "terminal", "business_type", "operator"))
        t = _object(doc, "terminal") or {}
        return IdentifyRequest(his_patient_id=require_text(doc, "his_patient_id"),
                               operator_id=_opt_text(t, "operator_id", 30),
                               operator_name=_opt_text(t, "operator_name", 50),
                               office_id=_opt_text(t, "office_id", 30),
                               office_name=_opt_text(t, "office_name", 50),
                               business_type=_opt_text(doc, "business_type", 5),
                               operator=parse_operator(doc))

    def _auth_req(self, ctx) -> FaceAuthRequest:
        p, s = ctx.payload, self.settings
        op = ctx.service("facepay").offline.config.default_operator
        if p.operator:
            op = Operator(p.operator["id"], p.operator["name"], p.operator["type"])
        return FaceAuthRequest(businessType=p.business_type or s.business_type,
                               operatorId=p.operator_id or op.opter,
                               operatorName=p.operator_name or op.opter_name,
                               officeId=p.office_id or s.office_id or "",
                               officeName=p.office_name or s.office_name or "")

    @staticmethod
    def _terminal_failure(r: CallResult, what: str):
        if r.refused:
            return Fail("FACE_AUTH_FAILED", f"{what}: {r.message or r.code}")
        return Retry("TERMINAL_UNAVAILABLE", f"{what}: {r.message or r.outcome.value}")

    def step_face_auth(self, ctx):
        fp: FacePayClient = ctx.service("facepay")
        out_biz_no = fp.offline.next_msgid()
        r = ctx.call(fp.send_terminal, fp.prepare_face_authorise(self._auth_req(ctx), out_biz_no=out_biz_no))
        if not r.ok:
            return self._terminal_failure(r, "face authorisation")
        return Goto("check", data={"out_biz_no": out_biz_no, "operator": ctx.payload.operator},
                    secrets={"auth_no": r.data.authNo})

    def step_check(self, ctx):
        fp: FacePayClient = ctx.service("facepay")
        r = ctx.call(fp.send_terminal, fp.prepare_check_authorisation(
            self._auth_req(ctx), auth_no=_identity_secret(ctx, ctx.data, "auth_no"),
            out_biz_no=ctx.data["out_biz_no"]))
        if not r.ok:
            return self._terminal_failure(r, "identity check")
        ident = r.data
        return Goto("person", data={"id_type": ident.idType or "01", "insu_org": ident.insuOrg,
                                    "office": {"id": self._auth_req(ctx).officeId,
                                               "name": self._auth_req(ctx).officeName}},
                    secrets={"id_no": ident.idNo, "user_name": ident.userName, "ec_token": ident.ecToken})

    def step_person(self, ctx):
        fp: FacePayClient = ctx.service("facepay")
        client = fp.offline
        d = ctx.data
        id_no = _identity_secret(ctx, d, "id_no")
        # offline.md §7.3 step 3: the ID-card route, insuOrg as insuplc_admdvs.
        req = m.PersonInfoRequest(mdtrt_cert_type="02", mdtrt_cert_no=id_no,
                                  psn_cert_type=d["id_type"], certno=id_no,
                                  psn_name=_identity_secret(ctx, d, "user_name"), insuplc_admdvs=d.get("insu_org"))
        r = fsi_call(ctx, client.prepare_person_info, req, nothing_stands=True)
        if not isinstance(r, CallResult):
            return r
        if r.refused:
            return Fail("PERSON_NOT_FOUND", f"1101: {r.message or r.code}")
        if not r.ok:
            return retry_later(r)
        p: m.PersonInfo = r.data
        insured = [i for i in p.insuinfo if i.psn_insu_stas == "1"]
        chosen = insured[0] if insured else (p.insuinfo[0] if p.insuinfo else m.Insurance())
        # benefit (待遇): the person's identity category when 1101 gives one (idetinfo
        # psn_idet_type), else the person type of the chosen insurance.  OUR CHOICE: the
        # digest names both fields (offline.md §5.1) but not which is "the benefit".
        idet = [i.get("psn_idet_type") for i in p.idetinfo if isinstance(i, dict) and i.get("psn_idet_type")]
        benefit = idet[0] if idet else chosen.psn_type
        region = chosen.insuplc_admdvs or d.get("insu_org")
        data = {"psn_no": p.psn_no, "insutype": chosen.insutype,
                "insuplc_admdvs": region, "psn_cert_type": p.psn_cert_type or d["id_type"],
                "insured": bool(insured)}
        # What the HIS needs to write the identity back (the mi_identity columns, the
        # insurances to choose from) and nothing more: no ID number, name or token
        # (docs/facepay.md "What the HIS sees").
        result = {"psn_no": p.psn_no, "psn_cert_type": data["psn_cert_type"], "insutype": chosen.insutype,
                  "insuplc_admdvs": region, "insured": bool(insured), "benefit": benefit,
                  "out_biz_no": d["out_biz_no"],
                  "insurances": [{"insutype": i.insutype, "psn_type": i.psn_type,
                                  "psn_insu_stas": i.psn_insu_stas, "balc": None if i.balc is None else str(i.balc),
                                  "insuplc_admdvs": i.insuplc_admdvs} for i in p.insuinfo]}
        ident = IdentityRow(his_patient_id=ctx.payload.his_patient_id, psn_no=p.psn_no,
                            insuplc_admdvs=region, insutype=chosen.insutype, benefit=benefit,
                            psn_cert_type=data["psn_cert_type"])
        if insured:
            row = InboxRow(result_type="identity", outcome="ok", result=result)
        else:
            # Known to the platform but not insured now: a clear result, not an error of ours.
            row = InboxRow(result_type="identity", outcome="failed", error_code="NOT_INSURED",
                           error_message="the person is not insured (insurance suspended or ended)",
                           result=result)
        # A row written before mi_secret holds its secrets in flow_data: moved now.
        moved = {k: d.get(k) for k in self.kept_secrets if d.get(k)}
        return Finish([row], data=data, identities=[ident], secrets=moved)


# ============================================================== pre-settlement

class _PresettleBase(Flow):
    setting: str
    # The settlement of this visit sends the credential and notifies the face terminal.
    kept_secrets = PERSON_SECRETS
    secret_keys = SECRET_KEYS

    def __init__(self, settings: FacePaySettings):
        self.settings = settings

    def parse(self, doc: dict) -> PresettleRequest:
        return parse_presettle(doc, self.setting)

    def _prepared(self, ctx, *, chrg_bchno: Optional[str], dr_name: Optional[str]) -> tuple[dict, dict] | Fail:
        """The visit a pre-settlement works on (person, bill, face-pay terms), kept in
        flow_data for the later steps and for the settle request, and its secrets (the
        credential, the face identity) for mi_secret."""
        p: PresettleRequest = ctx.payload
        mdtrt_id = p.mdtrt_id
        person = None
        if p.admit_key is not None:
            from bridge.facepay.admission import admitted_stay   # admission builds on this module
            stay = admitted_stay(ctx, p.admit_key)
            if isinstance(stay, Fail):
                return stay
            mdtrt_id = stay["mdtrt_id"]
            if p.person is None and p.identify_key is None:
                person = stay                      # the admitted person (and face, if scanned)
        if person is None:
            person = self._person(ctx)
        if isinstance(person, Fail):
            return person
        face_pay, terms = self._mode(ctx)
        visit = {k: person[k] for k in PERSON_KEYS}
        visit.update(total=str(p.total), chrg_bchno=chrg_bchno, med_type=p.med_type, psn_setlway=p.psn_setlway,
                     mid_setl_flag=p.mid_setl_flag, terms=terms, mdtrt_id=mdtrt_id,
                     face=person.get("face"), dr_name=dr_name, operator=p.operator)
        # The operator goes with the visit: settle and cancel run as the same person
        # unless their own request names another.
        public, secret = split_person(visit)
        return {"visit": public, "face_pay": face_pay, "operator": p.operator}, secret

    # -- who and how ----------------------------------------------------------------
    def _person(self, ctx) -> dict | Fail:
        """psn_no, insutype, insuplc_admdvs, credential, and (face-identified) the
        terminal identity for the settlement notice."""
        p: PresettleRequest = ctx.payload
        if p.person is not None:
            return dict(p.person)
        row = lookup(ctx, (KIND_IDENTIFY,), p.identify_key)
        if row is None:
            return Fail("IDENTIFY_NOT_FOUND", f"no facepay.identify request {p.identify_key!r}")
        d = dict(row["flow_data"])
        for k, v in ctx.port.secrets(row["id"]).items():   # its ID number, name, tokens
            d[k] = v
        if row["state"] != "done" or not d.get("psn_no"):
            return Fail("IDENTIFY_NOT_DONE", f"facepay.identify {p.identify_key!r} is {row['state']}, "
                                             "not done with an identity")
        if not d.get("insured"):
            return Fail("NOT_INSURED", f"the person identified by {p.identify_key!r} is not insured")
        s = self.settings
        use_token = s.cert_type == "01" and d.get("ec_token")
        if not d.get("id_no"):
            return Fail("IDENTIFY_NOT_DONE", f"facepay.identify {p.identify_key!r} holds no identity any more")
        return {"psn_no": d["psn_no"], "insutype": d["insutype"], "insuplc_admdvs": d["insuplc_admdvs"],
                "mdtrt_cert_type": "01" if use_token else "02",
                "mdtrt_cert_no": d["ec_token"] if use_token else d["id_no"],
                "face": {"out_biz_no": d["out_biz_no"], "auth_no": d.get("auth_no"), "id_no": d["id_no"],
                         "user_name": d.get("user_name") or "", "office": d.get("office") or {}}}

    def _mode(self, ctx) -> tuple[bool, Optional[dict]]:
        """(face_pay, terms) for this request: the global switch wins, then the payload."""
        p: PresettleRequest = ctx.payload
        on = self.settings.enabled and (p.face_pay is not False)
        if not on:
            return False, None
        terms = self.settings.terms(p.terminal)
        if terms is None:
            raise BadInput("face-pay needs merchant_no, terminal_no, isv_no and acct_type: "
                           "give 'terminal' in the payload or set them in [facepay]")
        return True, _terms_dict(terms)

    # -- the trial --------------------------------------------------------------------
    def _settle_request(self, visit: dict, face_pay: bool, client: OfflineClient, setl_flag: str):
        acct = "1" if face_pay else "0"
        extra = _exp(client, visit["terms"]) if face_pay else {}
        if self.setting == DOC:
            d = visit["document"]
            return m.DocumentSettleRequest(
                psn_no=visit["psn_no"], mdtrt_cert_type=visit["mdtrt_cert_type"],
                mdtrt_cert_no=visit["mdtrt_cert_no"], setl_flag=setl_flag, insutype=visit["insutype"],
                med_type=visit["med_type"], begntime=d["begntime"], clnc_flag="0",
                # facepay.md step 2 sets it to "1"; the GZ 2260 model has no such field, so
                # the plain one-shot settlement leaves it out.
                acct_used_flag="1" if face_pay else None,
                diseinfo=tuple(d["diseinfo"]), feedetail_rows=tuple(d["feedetail"]),
                insuplc_admdvs=visit["insuplc_admdvs"], extra=dict(d["mdtrtinfo"], **extra))
        common = dict(psn_no=visit["psn_no"], mdtrt_cert_type=visit["mdtrt_cert_type"],
                      mdtrt_cert_no=visit["mdtrt_cert_no"], medfee_sumamt=Decimal(visit["total"]),
                      psn_setlway=visit["psn_setlway"], mdtrt_id=visit["mdtrt_id"],
                      acct_used_flag=acct, insutype=visit["insutype"],
                      insuplc_admdvs=visit["insuplc_admdvs"], extra=extra)
        if self.setting == OUT:
            return m.OutpatientSettleRequest(med_type=visit["med_type"], chrg_bchno=visit["chrg_bchno"],
                                             **common)
        return m.InpatientSettleRequest(mid_setl_flag=visit["mid_setl_flag"], **common)

    def step_presettle(self, ctx):
        client: OfflineClient = ctx.service("facepay").offline
        visit = ctx.data["visit"]
        face_pay = bool(ctx.data.get("face_pay"))
        req = self._settle_request(with_secrets(visit, own_secrets(ctx)), face_pay, client, setl_flag="0")
        prep = {OUT: client.prepare_pre_settle_outpatient, INP: client.prepare_pre_settle_inpatient,
                DOC: client.prepare_document_settle}[self.setting]
        r = fsi_call(ctx, prep, req, face_pay=False, nothing_stands=True)
        if not isinstance(r, CallResult):
            return r
        if r.ok:
            s: m.Settlement = r.data
            split = split_of(s)
            visit_out = dict(visit, face_pay=face_pay, presettle_split=split)
            result = {"mdtrt_id": visit["mdtrt_id"], "chrg_bchno": visit.get("chrg_bchno"),
                      "face_pay": face_pay, "infno": INFNO[self.setting]["presettle"]}
            # A visit written before mi_secret holds its secrets in flow_data: moved now.
            public, secret = split_person(visit_out)
            return Finish([_money_row("presettlement", split, result=result)], data={"visit": public},
                          secrets=secret)
        if r.refused:
            code, msg, fp_specific = classify_rejection(r)
            if face_pay and fp_specific and ctx.payload.retry_without_face_pay:
                # The HIS asked for it: the same trial without face-pay (account untouched).
                note = InboxRow(result_type="face_pay_refused", outcome="failed", error_code=code,
                                error_message=msg, result={"next": "presettle without face-pay"})
                return Goto("presettle", data={"face_pay": False}, inbox=[note])
            return Fail(code, msg, data={"face_pay": face_pay})
        # 2206/2303 move nothing (offline.md §5.7): a lost answer is simply asked again.
        return retry_later(r)


class OutpatientPresettleFlow(_PresettleBase):
    """[2201 register] -> 2203 visit -> 2205+2204 fee lines -> 2206 trial.  Nothing here
    moves money; 2201 is treated as safe to repeat (OUR CHOICE: a registration holds no
    money, a lost answer may leave an unused registration at the core, which no
    settlement or reconciliation counts)."""

    kind = kind(OUT, "presettle")
    setting = OUT
    initial = "prepare"
    steps = {
        "prepare": Step("prepare", next=("register", "upload_visit")),
        "register": Step("register", calls=("2201",), next=("upload_visit",)),
        "upload_visit": Step("upload_visit", calls=("2203",), next=("upload_fees",)),
        # 2205 (drop this batch's unsettled lines) then 2204: an upload whose answer was
        # lost can be redone without "duplicate feedetl_sn" (offline.md §5.6).
        "upload_fees": Step("upload_fees", calls=("2205", "2204"), next=("presettle",)),
        "presettle": Step("presettle", calls=("2206",), next=("presettle",)),
    }

    def step_prepare(self, ctx):
        p: PresettleRequest = ctx.payload
        prepared = self._prepared(ctx, chrg_bchno=p.chrg_bchno, dr_name=(p.visit or {}).get("dr_name"))
        if isinstance(prepared, Fail):
            return prepared
        data, secret = prepared
        return Goto("upload_visit" if p.mdtrt_id else "register", data=data, secrets=secret)

    def step_register(self, ctx):
        client: OfflineClient = ctx.service("facepay").offline
        v, pv = with_secrets(ctx.data["visit"], own_secrets(ctx)), ctx.payload.visit
        req = m.RegisterRequest(psn_no=v["psn_no"], insutype=v["insutype"], begntime=pv["begntime"],
                                mdtrt_cert_type=v["mdtrt_cert_type"], mdtrt_cert_no=v["mdtrt_cert_no"],
                                ipt_otp_no=pv["ipt_otp_no"], atddr_no=pv["atddr_no"], dr_name=pv["dr_name"],
                                dept_code=pv["dept_code"], dept_name=pv["dept_name"], caty=pv["caty"],
                                insuplc_admdvs=v["insuplc_admdvs"])
        r = fsi_call(ctx, client.prepare_register, req, nothing_stands=True)
        return after_safe_call(r, "registration", lambda r: Goto(
            "upload_visit", data={"visit": dict(ctx.data["visit"], mdtrt_id=r.data.mdtrt_id)}))

    def step_upload_visit(self, ctx):
        client: OfflineClient = ctx.service("facepay").offline
        v, pv = ctx.data["visit"], ctx.payload.visit
        diags = tuple(m.Diagnosis(**{k: d[k] for k in DIAG_KEYS}) for d in pv["diagnoses"])
        req = m.VisitRequest(mdtrt_id=v["mdtrt_id"], psn_no=v["psn_no"], med_type=v["med_type"],
                             begntime=pv["begntime"], main_cond_dscr=pv.get("main_cond_dscr"),
                             insuplc_admdvs=v["insuplc_admdvs"], diseinfo=diags)
        r = fsi_call(ctx, client.prepare_upload_visit, req, nothing_stands=True)
        return after_safe_call(r, "visit upload", lambda r: Goto("upload_fees"))

    def step_upload_fees(self, ctx):
        client: OfflineClient = ctx.service("facepay").offline
        v = ctx.data["visit"]
        r = fsi_call(ctx, client.prepare_revoke_fee_details, m.RevokeFeeDetailsRequest(
            mdtrt_id=v["mdtrt_id"], chrg_bchno=v["chrg_bchno"], psn_no=v["psn_no"],
            insuplc_admdvs=v["insuplc_admdvs"]), nothing_stands=True)
        if isinstance(r, CallResult) and r.ok:
            rows = [m.FeeDetail(mdtrt_id=v["mdtrt_id"], psn_no=v["psn_no"], chrg_bchno=v["chrg_bchno"],
                                rx_circ_flag=f.get("rx_circ_flag", "0"),
                                **{k: f[k] for k in f if k not in ("rx_circ_flag", "chrg_bchno", "med_type")})
                    for f in ctx.payload.fees]
            r = fsi_call(ctx, client.prepare_upload_fee_details, rows, insuplc_admdvs=v["insuplc_admdvs"],
                         nothing_stands=True)
        return after_safe_call(r, "fee lines", lambda r: Goto("presettle"))


class InpatientPresettleFlow(_PresettleBase):
    """2302 "0000" (drop the stay's unsettled lines) + 2301 (the payload's lines are the
    complete list of the stay) -> 2303 trial.  The admission (2401) is not part of it."""

    kind = kind(INP, "presettle")
    setting = INP
    initial = "prepare"
    steps = {
        "prepare": Step("prepare", next=("upload_fees",)),
        "upload_fees": Step("upload_fees", calls=("2302", "2301"), next=("presettle",)),
        "presettle": Step("presettle", calls=("2303",), next=("presettle",)),
    }

    def step_prepare(self, ctx):
        prepared = self._prepared(ctx, chrg_bchno=None, dr_name=None)
        if isinstance(prepared, Fail):
            return prepared
        data, secret = prepared
        return Goto("upload_fees", data=data, secrets=secret)

    def step_upload_fees(self, ctx):
        client: OfflineClient = ctx.service("facepay").offline
        v = ctx.data["visit"]
        r = fsi_call(ctx, client.prepare_revoke_inpatient_fees, m.RevokeInpatientFeesRequest(
            feedetl_sn="0000", mdtrt_id=v["mdtrt_id"], psn_no=v["psn_no"], insuplc_admdvs=v["insuplc_admdvs"]),
            nothing_stands=True)
        if isinstance(r, CallResult) and r.ok:
            rows = [m.FeeDetail(mdtrt_id=v["mdtrt_id"], psn_no=v["psn_no"],
                                med_type=f.get("med_type", v["med_type"]),
                                **{k: f[k] for k in f if k not in ("med_type", "chrg_bchno", "rx_circ_flag")})
                    for f in ctx.payload.fees]
            r = fsi_call(ctx, client.prepare_upload_inpatient_fees, rows, insuplc_admdvs=v["insuplc_admdvs"],
                         nothing_stands=True)
        return after_safe_call(r, "fee lines", lambda r: Goto("presettle"))


def document_of(p: PresettleRequest) -> dict:
    """What 2260 needs besides the person (offline.md §5.11), kept JSON-safe in flow_data:
    the settlement (setl_flag 1) sends the whole document again.  Field names follow the
    Guangdong model (IBORN_HIS_ALL API.GZSI RequestGzsiModel2260.cs): diagnoses as dise_*,
    fee lines with rx_drord_no / fee_ocur_date / medins_milist_codg."""
    v = p.visit
    main = sorted(v["diagnoses"], key=lambda d: d["diag_srt_no"])[0]
    mdtrtinfo = {"ipt_op_no": v["ipt_otp_no"], "adm_dept_code": v["dept_code"], "adm_dept_name": v["dept_name"],
                 "dscg_maindiag_code": main["diag_code"], "dscg_maindiag_name": main["diag_name"]}
    if v.get("main_cond_dscr"):
        mdtrtinfo["main_cond_desc"] = v["main_cond_dscr"]
    diseinfo = [{"dise_type": d["diag_type"], "dise_srt_no": d["diag_srt_no"], "dise_code": d["diag_code"],
                 "dise_name": d["diag_name"], "dise_dept": d["diag_dept"], "dise_dor_no": d["dise_dor_no"],
                 "dise_dor_name": d["dise_dor_name"], "dise_time": d["diag_time"]} for d in v["diagnoses"]]
    renamed = {"rxno": "rx_drord_no", "fee_ocur_time": "fee_ocur_date", "medins_list_codg": "medins_milist_codg"}
    feedetail = [{renamed.get(k, k): (str(val) if isinstance(val, Decimal) else val) for k, val in f.items()
                  if k not in ("med_type", "chrg_bchno", "rx_circ_flag", "init_feedetl_sn")} for f in p.fees]
    return {"begntime": v["begntime"], "mdtrtinfo": mdtrtinfo, "diseinfo": diseinfo, "feedetail": feedetail}


class DocumentPresettleFlow(_PresettleBase):
    """2260 with setl_flag 0: the Guangdong one-shot trial, which registers the visit and
    takes the diagnoses and the fee lines in the same call.  Moves nothing."""

    kind = kind(DOC, "presettle")
    setting = DOC
    initial = "prepare"
    steps = {
        "prepare": Step("prepare", next=("presettle",)),
        "presettle": Step("presettle", calls=("2260",), next=("presettle",)),
    }

    def step_prepare(self, ctx):
        p: PresettleRequest = ctx.payload
        prepared = self._prepared(ctx, chrg_bchno=None, dr_name=p.visit.get("dr_name"))
        if isinstance(prepared, Fail):
            return prepared
        data, secret = prepared
        data["visit"]["document"] = document_of(p)
        return Goto("presettle", data=data, secrets=secret)


# ============================================================== cancel steps (shared)

class _CancelSteps:
    """Cancel a settlement, refunding the real account; used by the cancel flows and by the
    settle flows when the HIS rejects (or never takes) the settlement (单边账).

    ctx.data["target"] = {setl_id, mdtrt_id, psn_no, insuplc_admdvs, face_pay, terms,
                          split, infno}  (set before entering `cancel`)
    """

    settings: FacePaySettings
    setting: str

    # -- helpers ------------------------------------------------------------------------
    def _cancel_infno(self) -> str:
        return INFNO[self.setting]["cancel"]

    def _cancel_call(self, ctx, with_ext: bool):
        """2208 / 2305 / 2261, with the original expContent when `with_ext`.  Every cancel
        here happens with a settlement standing: a refused sign-in holds."""
        client: OfflineClient = ctx.service("facepay").offline
        tg = ctx.data["target"]
        extra = _exp(client, tg["terms"]) if (with_ext and tg.get("terms")) else {}
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
        return Finish([_money_row("cancellation", tg["split"], settlement_id=tg["setl_id"], result=result)],
                      data=dict(data or {}))

    def _after_status(self, ctx, st, rejected: Optional[tuple[str, str]] = None):
        """Decide from an fpy001 answer what is left to do."""
        tg = ctx.data["target"]
        data = {"platform_seq_id": st.platform_seq_id} if st.platform_seq_id else {}
        acct = _dec(tg["split"].get("account")) or ZERO
        if not st.settlement_valid:
            if st.acct_stas == F.ACCT_STAS_DEDUCTED and acct > 0:
                # Cancelled without the extension (or by a reversal that left it): refund it.
                note = InboxRow(result_type="cancel_progress", outcome="ok",
                                result={"step": "settlement cancelled; refunding the personal account "
                                                "through mpc004", "setl_id": tg["setl_id"]})
                return Goto("refund_account", data=dict(data, refund_sn=_refund_sn(ctx), cancelled=True),
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
            return Goto("refund_account", data=dict(data, refund_sn=_refund_sn(ctx), cancelled=False),
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
        r = self._fpy001(ctx)
        if not isinstance(r, CallResult):
            return _in_resolver(r)
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
        if (t := _settle_window_wait(ctx, self.settings, "CANCEL_NOT_SEEN_YET",
                                     "the settlement is still valid")) is not None:
            return t
        return Goto("cancel")   # never took effect: send it (a first send as far as the core knows)

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
            return _in_resolver(r)
        if not r.ok:
            return InDoubt("QUERY_FAILED", f"fpy001 after a lost mpc004: {r.message or r.outcome.value}",
                           delay=self.settings.resolve_retry_seconds)
        st = r.data
        if st.acct_stas == F.ACCT_STAS_REFUNDED:
            return self._refunded(ctx, st.refund_seq_id, {"cancelled": not st.settlement_valid})
        if (t := _settle_window_wait(ctx, self.settings, "REFUND_NOT_SEEN_YET",
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
            return _in_resolver(r)
        if not r.ok:
            return InDoubt("QUERY_FAILED", f"fpy001: {r.message or r.outcome.value}",
                           delay=self.settings.resolve_retry_seconds)
        if not r.data.settlement_valid:
            return self._cancelled(ctx, "mpc004")
        if (t := _settle_window_wait(ctx, self.settings, "CANCEL_NOT_SEEN_YET",
                                     "the settlement is still valid")) is not None:
            return t
        return Goto("cancel_plain")


def _refund_sn(ctx) -> str:
    # appRefdSn: one per refund of this row, kept across retries (mpc004 is keyed by the
    # deduction; the serial only lets the acquirer pair our retries).  <= 30 chars.
    return f"RF{ctx.row.id:012d}{int(time.time()) % 10**8:08d}"


# ============================================================== settle

class _SettleBase(_CancelSteps, Flow):
    setting: str
    secret_keys = SECRET_KEYS       # its secrets (the visit's) go when it is final

    def __init__(self, settings: FacePaySettings):
        self.settings = settings

    def parse(self, doc: dict) -> SettleRequest:
        only_fields(doc, ("presettle_key", "face_pay", "retry_without_face_pay", "operator"))
        return SettleRequest(presettle_key=require_text(doc, "presettle_key"),
                             face_pay=_opt_bool(doc, "face_pay"),
                             retry_without_face_pay=_opt_bool(doc, "retry_without_face_pay"),
                             operator=parse_operator(doc))

    def _visit(self, ctx) -> dict | Fail:
        if "visit" in ctx.data:
            return ctx.data["visit"]
        pk = ctx.payload.presettle_key
        row = lookup(ctx, (kind(self.setting, "presettle"),), pk)
        if row is None:
            return Fail("PRESETTLE_NOT_FOUND", f"no {kind(self.setting, 'presettle')} request {pk!r}")
        if row["state"] != "done" or "visit" not in row["flow_data"]:
            return Fail("PRESETTLE_NOT_DONE", f"pre-settlement {pk!r} is {row['state']}; "
                                              "settle only after a successful pre-settlement")
        # The visit with its secrets (in memory only), split again by step_start.
        v = with_secrets(row["flow_data"]["visit"], ctx.port.secrets(row["id"]))
        v["retry_without_face_pay"] = json.loads(row["payload"]).get("retry_without_face_pay", False)
        return v

    def step_start(self, ctx):
        v = self._visit(ctx)
        if isinstance(v, Fail):
            return v
        v, secret = split_person(v)
        face_pay = bool(v.get("face_pay")) and self.settings.enabled and ctx.payload.face_pay is not False
        if face_pay and not v.get("terms"):
            face_pay = False
        retry_plain = ctx.payload.retry_without_face_pay
        if retry_plain is None:
            retry_plain = bool(v.get("retry_without_face_pay"))
        return Goto("settle", data={"visit": v, "face_pay": face_pay, "retry_plain": retry_plain,
                                    "reversals": 0, "operator": ctx.payload.operator or v.get("operator")},
                    secrets=secret)

    def step_settle(self, ctx):
        # Reached only when nothing of this request stands at the core: the first send, or
        # after the resolver reversed a lost one or found it never booked.
        client: OfflineClient = ctx.service("facepay").offline
        v, face_pay = with_secrets(ctx.data["visit"], own_secrets(ctx)), bool(ctx.data["face_pay"])
        req = _PresettleBase._settle_request(self, v, face_pay, client, setl_flag="1")
        prep = {OUT: client.prepare_settle_outpatient, INP: client.prepare_settle_inpatient,
                DOC: client.prepare_document_settle}[self.setting]
        r = fsi_call(ctx, prep, req, face_pay=False, nothing_stands=True)
        if not isinstance(r, CallResult):
            return r
        if r.ok:
            return self._settled(ctx, r.data)
        if r.try_again:
            return retry_later(r)
        if r.refused:
            code, msg, fp_specific = classify_rejection(r)
            if face_pay and fp_specific and ctx.data.get("retry_plain"):
                note = InboxRow(result_type="face_pay_refused", outcome="failed", error_code=code,
                                error_message=msg, result={"next": "settle without face-pay"})
                return Goto("without_face_pay", inbox=[note])
            return Fail(code, msg)
        return InDoubt("SETTLE_UNKNOWN", r.message or "settlement outcome unknown")

    def _cancel_refused(self, code: str, message: str):
        # 单边账: the HIS did not keep this settlement and the cancel was refused; a failed
        # row would hide a settlement that stands at the core.  A person must act.
        return Hold("UNILATERAL_SETTLEMENT", f"the settlement the HIS did not keep could not be cancelled "
                                             f"({code}: {message}); it stands at the core")

    def step_without_face_pay(self, ctx):
        # A REJECTED face-pay settlement moved nothing; the plain one is a new request.
        return Goto("settle", data={"face_pay": False})

    def resolve_settle(self, ctx):
        """2601 with the lost message's msgid and infno (offline.md §9.3): the only tool when
        no setl_id is known.  OK = whatever it booked is undone (fund and account)."""
        client: OfflineClient = ctx.service("facepay").offline
        v = ctx.data["visit"]
        infno = INFNO[self.setting]["settle"]
        r = fsi_call(ctx, client.prepare_reverse, m.ReversalRequest(
            psn_no=v["psn_no"], omsgid=ctx.in_doubt_msg_id, oinfno=infno,
            insuplc_admdvs=v["insuplc_admdvs"]))
        verdict = reversal_verdict(ctx, self.settings, r, infno, "settlement", "SETTLE_UNRESOLVED",
                                   "SETTLE_NOT_SEEN_YET")
        if verdict == NEVER_BOOKED:
            return Goto("settle")    # the first send as far as the core knows
        if verdict == REVERSED:
            n = int(ctx.data.get("reversals", 0)) + 1
            note = InboxRow(result_type="settlement_reversed", outcome="ok",
                            result={"omsgid": ctx.in_doubt_msg_id, "oinfno": infno,
                                    "why": "the settlement's answer was lost; 2601 undid whatever it booked",
                                    "reversals": n})
            if n > self.settings.max_reversals:
                return Hold("TOO_MANY_REVERSALS", f"{n} settlements of this request were lost and reversed; "
                                                  "nothing stands at the core; enqueue again when the link is sound")
            return Goto("settle", data={"reversals": n}, inbox=[note])
        return verdict

    def _settled(self, ctx, s: m.Settlement):
        v = ctx.data["visit"]
        split = split_of(s)
        face_pay = bool(ctx.data["face_pay"])
        target = {"setl_id": s.setl_id, "mdtrt_id": s.mdtrt_id or v["mdtrt_id"], "psn_no": v["psn_no"],
                  "insuplc_admdvs": v["insuplc_admdvs"], "face_pay": face_pay,
                  "terms": v.get("terms") if face_pay else None, "split": split,
                  "setl_time": s.setl_time, "infno": INFNO[self.setting]["settle"],
                  "medins_setl_id": s.medins_setl_id, "operator": ctx.data.get("operator")}
        result = {"setl_id": s.setl_id, "mdtrt_id": target["mdtrt_id"], "setl_time": s.setl_time,
                  "face_pay": face_pay, "medins_setl_id": s.medins_setl_id,
                  "presettle_split": v.get("presettle_split")}
        row = _money_row("settlement", split, settlement_id=s.setl_id, result=result)
        data = {"target": target}
        if v.get("face") and self.settings.notify_terminal:
            return Goto("notify", data=data, inbox=[row])
        return Goto("await_his", data=data, inbox=[row])

    def step_notify(self, ctx):
        """cn.nhsa.settle.notify (facepay.md "settlement result notification"; offline.md §7.2).
        Safe to repeat: it moves no money; a repeat shows the result on the screen again."""
        fp: FacePayClient = ctx.service("facepay")
        v, tg = with_secrets(ctx.data["visit"], own_secrets(ctx)), ctx.data["target"]
        face, sp = v["face"], tg["split"]
        op = _operator(ctx, fp.offline)
        notice = SettleNotice(
            outBizNo=face["out_biz_no"], medicalSettleState="SUCCESS", authNo=face["auth_no"],
            operatorId=op.opter, operatorName=op.opter_name, totalFee=Decimal(sp["total"]),
            bizType="settle", idNo=face["id_no"], userName=face["user_name"],
            setlTime=tg.get("setl_time") or time.strftime("%Y-%m-%d %H:%M:%S"),
            hospitalName=self.settings.hospital_name or fp.offline.config.fixmedins_name,
            officeId=(face.get("office") or {}).get("id") or self.settings.office_id,
            officeName=(face.get("office") or {}).get("name") or self.settings.office_name,
            doctorName=v.get("dr_name") or "", medicalSettleNo=tg["setl_id"],
            ownAmt=Decimal(sp["cash"]), hifAmt=Decimal(sp["fund"]), acctAmt=Decimal(sp["account"]),
            balance=_dec(sp.get("balc")))
        r = ctx.call(fp.send_terminal, fp.prepare_notify_terminal(notice))
        if r.ok:
            return Goto("await_his", inbox=[InboxRow(result_type="terminal_notice", outcome="ok",
                                                     settlement_id=tg["setl_id"])])
        tries = int(ctx.data.get("notify_tries", 0)) + 1
        if tries < self.settings.notify_attempts and not r.refused:
            return Wait("notify", self.settings.notify_retry_seconds, data={"notify_tries": tries})
        # The settlement stands whatever the screen shows: report and go on.
        return Goto("await_his", inbox=[InboxRow(result_type="terminal_notice", outcome="failed",
                                                 settlement_id=tg["setl_id"], error_code="NOTICE_FAILED",
                                                 error_message=r.message or r.outcome.value)])

    def step_await_his(self, ctx):
        """单边账 guard: the settlement row must be taken by the HIS.  Rejected, or not taken
        within his_ack_timeout_seconds -> cancel it (offline.md §9.3: GZ calls 2208 at once
        when the HIS cannot keep a settlement)."""
        s = self.settings
        if s.his_ack_timeout_seconds <= 0:
            return Finish([])
        v = handover.his_verdict(ctx, "settlement", s.his_ack_timeout_seconds)
        if v.status == handover.MISSING:
            return Hold("NO_SETTLEMENT_ROW", "the settlement's inbox row is missing")
        if v.status == handover.ACCEPTED:
            return Finish([])
        if v.status in (handover.REJECTED, handover.EXPIRED):
            why = "his_rejected" if v.status == handover.REJECTED else "his_not_taken"
            note = InboxRow(result_type="cancel_progress", outcome="ok",
                            result={"step": f"cancelling the settlement ({why})",
                                    "setl_id": ctx.data["target"]["setl_id"]})
            return Goto("cancel", data={"cancel_reason": why, "with_extension": True}, inbox=[note])
        return Wait("await_his", min(s.his_ack_poll_seconds, max(0.1, v.wait)))


def cancel_steps(setting: str) -> dict[str, Step]:
    """The cancel steps of one setting (2208 / 2305 / 2261), shared by its cancel and
    settle flows."""
    infno, fpy001, mpc004 = INFNO[setting]["cancel"], F.FPY001_INFNO, F.MPC004_INFNO
    return {
        # with_extension (facepay.md "Cancellation" 1): the core cancels and refunds the account.
        # NOT safe to repeat: resolved by fpy001 (settlement and account state).
        "cancel": Step("cancel", calls=(infno,), safe_to_repeat=False, resolves_with=(fpy001,),
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


def _settle_steps(setting: str) -> dict[str, Step]:
    steps = {
        "start": Step("start", next=("settle",)),
        # NOT safe to repeat: resolved by 2601 (see resolve_settle); "settle" may lead back to
        # itself only from the resolver, after a reversal or a confirmed "never booked".
        "settle": Step("settle", calls=(INFNO[setting]["settle"],), safe_to_repeat=False,
                       resolves_with=("2601",), next=("notify", "await_his", "without_face_pay", "settle")),
        "without_face_pay": Step("without_face_pay", next=("settle",)),
        "notify": Step("notify", calls=("cn.nhsa.settle.notify",), next=("await_his",)),
        "await_his": Step("await_his", next=("cancel",)),
    }
    steps.update(cancel_steps(setting))
    return steps


class OutpatientSettleFlow(_SettleBase):
    kind = kind(OUT, "settle")
    setting = OUT
    initial = "start"
    steps = _settle_steps(OUT)


class InpatientSettleFlow(_SettleBase):
    kind = kind(INP, "settle")
    setting = INP
    initial = "start"
    steps = _settle_steps(INP)


class DocumentSettleFlow(_SettleBase):
    """2260 with setl_flag 1, the same document as the trial.  A lost answer: 2601 of that
    msgid (oinfno 2260); a platform that refuses to reverse 2260 -> held (SETTLE_UNRESOLVED)."""
    kind = kind(DOC, "settle")
    setting = DOC
    initial = "start"
    steps = _settle_steps(DOC)


# ============================================================== cancel

class _CancelBase(_CancelSteps, Flow):
    setting: str
    initial = "start"

    def __init__(self, settings: FacePaySettings):
        self.settings = settings

    def parse(self, doc: dict) -> CancelRequest:
        only_fields(doc, ("settle_key", "with_extension", "reason", "operator"))
        w = _opt_bool(doc, "with_extension")
        return CancelRequest(settle_key=require_text(doc, "settle_key"),
                             with_extension=True if w is None else w,
                             reason=_opt_text(doc, "reason", 200), operator=parse_operator(doc))

    def step_start(self, ctx):
        sk = ctx.payload.settle_key
        row = lookup(ctx, (kind(self.setting, "settle"),), sk)
        if row is None:
            return Fail("SETTLEMENT_NOT_FOUND", f"no {kind(self.setting, 'settle')} request {sk!r}")
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


def all_flows(settings: FacePaySettings) -> list[Flow]:
    return [IdentifyFlow(settings), OutpatientPresettleFlow(settings), OutpatientSettleFlow(settings),
            OutpatientCancelFlow(settings), InpatientPresettleFlow(settings), InpatientSettleFlow(settings),
            InpatientCancelFlow(settings), DocumentPresettleFlow(settings), DocumentSettleFlow(settings),
            DocumentCancelFlow(settings)]
