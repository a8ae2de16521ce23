"""What the HIS writes in mi_outbox.payload for the identity and kiosk kinds
(docs/identity.md "Payloads"), parsed and checked before anything is sent.  Bad input
raises BadInput: the row fails with the reason, nothing is sent.  A field no flow reads is
refused, as for face-pay (a misspelt field must not be silently ignored)."""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Optional

from bridge.engine.flow import BadInput, require_amount, require_text
from bridge.facepay.payloads import (PERSON_KEYS, PresettleRequest, TERM_KEYS, object_field, only_fields, opt_bool,
                                     opt_text, parse_cancel, parse_fees, parse_operator, parse_settle)
from bridge.facepay.kinds import OUT
from bridge.regions.model import CHANNELS

from .kinds import OPTER_KIOSK
from .settings import IdentitySettings

ZERO = Decimal("0.00")
# A resident ID number as typed: 18 characters (the last may be X) or the old 15 digits
# (GB 11643).  The check character is left to the platform: a wrong one is its verdict.
_CERTNO = re.compile(r"[0-9]{17}[0-9X]|[0-9]{15}")
_ADMDVS = re.compile(r"[0-9]{6}")
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"

# How a lookup finds the person (LookupRequest.route).
BY_ID_CARD, BY_PAY_AUTH_NO, BY_EC_TOKEN, BY_QR, BY_CARD = "id_card", "pay_auth_no", "ec_token", "qr", "card"
TERMINAL_READS = {"qr": BY_QR, "card": BY_CARD}


def _region(doc: dict, name: str = "insuplc_admdvs") -> Optional[str]:
    v = opt_text(doc, name, 6)
    if v is not None and not _ADMDVS.fullmatch(v):
        raise BadInput(f"payload field {name!r} must be a 6-digit division code such as 440100, not {v!r}")
    return v


def _channel(doc: dict) -> Optional[str]:
    v = opt_text(doc, "channel", 10)
    if v is not None and v not in CHANNELS:
        raise BadInput(f"payload field 'channel' must be one of {', '.join(CHANNELS)}")
    return v


def kiosk_operator(doc: dict, settings: IdentitySettings, *, required: bool) -> Optional[dict]:
    """The kiosk's operator {"id", "name", "type": "2"}: the payload's, else [identity]
    kiosk_operator_id.  A kiosk request always runs as a self-service terminal (opter_type
    2, offline.md §2 #11): another type is refused."""
    raw = doc.get("operator")
    op = parse_operator(doc)
    if op is not None:
        if isinstance(raw, dict) and raw.get("type") not in (None, "", OPTER_KIOSK):
            raise BadInput("operator.type of a kiosk request must be 2 (self-service terminal) or left out")
        return dict(op, type=OPTER_KIOSK)
    if settings.kiosk_operator_id:
        return {"id": settings.kiosk_operator_id, "name": settings.kiosk_operator_name or settings.kiosk_operator_id,
                "type": OPTER_KIOSK}
    if required:
        raise BadInput("payload field 'operator' {id, name} is required (the kiosk's terminal id), "
                       "or set [identity] kiosk_operator_id")
    return None


# ============================================================== identity.lookup

@dataclass(frozen=True)
class LookupRequest:
    route: str                         # BY_*
    insuplc_admdvs: Optional[str]      # the region the patient chose
    certno: Optional[str] = None       # BY_ID_CARD (upper case)
    psn_name: Optional[str] = None
    pay_auth_no: Optional[str] = None
    ec_token: Optional[str] = None
    his_patient_id: Optional[str] = None
    channel: Optional[str] = None
    med_type: Optional[str] = None
    operator: Optional[dict] = None

    @property
    def at_terminal(self) -> bool:
        return self.route in (BY_QR, BY_CARD)


LOOKUP_FIELDS = ("certno", "psn_name", "pay_auth_no", "ec_token", "terminal", "insuplc_admdvs", "his_patient_id",
                 "channel", "med_type", "operator")


def parse_lookup(doc: dict, settings: IdentitySettings) -> LookupRequest:
    only_fields(doc, LOOKUP_FIELDS)
    given = [k for k in ("certno", "pay_auth_no", "ec_token", "terminal") if doc.get(k) not in (None, "")]
    if len(given) != 1:
        raise BadInput("give exactly one of 'certno' (with 'psn_name' and 'insuplc_admdvs'), 'pay_auth_no', "
                       "'ec_token' or 'terminal' (\"qr\" or \"card\": read at the kiosk)")
    region = _region(doc)
    common = dict(insuplc_admdvs=region, his_patient_id=opt_text(doc, "his_patient_id"), channel=_channel(doc),
                  med_type=opt_text(doc, "med_type", 6), operator=parse_operator(doc))
    how = given[0]
    if doc.get("psn_name") not in (None, "") and how != "certno":
        raise BadInput("payload field 'psn_name' goes with 'certno' only")
    if how == "certno":
        certno = require_text(doc, "certno", 18).strip().upper()
        if not _CERTNO.fullmatch(certno):
            raise BadInput("payload field 'certno' must be a resident ID number: 18 characters (digits, the "
                           "last may be X) or 15 digits")
        name = require_text(doc, "psn_name", 50).strip()
        if region is None:
            raise BadInput("a lookup by ID number needs 'insuplc_admdvs', the region the patient chose "
                           "(mi_v_insured_regions)")
        return LookupRequest(route=BY_ID_CARD, certno=certno, psn_name=name, **common)
    if how == "pay_auth_no":
        return LookupRequest(route=BY_PAY_AUTH_NO, pay_auth_no=require_text(doc, "pay_auth_no", 128), **common)
    if how == "ec_token":
        return LookupRequest(route=BY_EC_TOKEN, ec_token=require_text(doc, "ec_token", 128), **common)
    read = doc.get("terminal")
    if read not in TERMINAL_READS:
        raise BadInput("payload field 'terminal' must be \"qr\" (the e-credential QR) or \"card\" "
                       "(the social-security card)")
    common["channel"] = common["channel"] or "kiosk"
    common["operator"] = kiosk_operator(doc, settings, required=False)
    return LookupRequest(route=TERMINAL_READS[read], **common)


# ============================================================== identity.choose

@dataclass(frozen=True)
class ChooseRequest:
    lookup_key: str
    his_patient_id: Optional[str]
    insutype: Optional[str]
    insuplc_admdvs: Optional[str]


def parse_choose(doc: dict) -> ChooseRequest:
    only_fields(doc, ("lookup_key", "his_patient_id", "insutype", "insuplc_admdvs"))
    return ChooseRequest(lookup_key=require_text(doc, "lookup_key"), his_patient_id=opt_text(doc, "his_patient_id"),
                         insutype=opt_text(doc, "insutype", 6), insuplc_admdvs=_region(doc))


# ============================================================== kiosk.register / register_cancel

VISIT_FIELDS = {"ipt_otp_no": 30, "begntime": 19, "atddr_no": 30, "dr_name": 50, "dept_code": 30, "dept_name": 100,
                "caty": 30}


@dataclass(frozen=True)
class RegisterRequest:
    lookup_key: Optional[str]
    person: Optional[dict]
    insutype: Optional[str]
    insuplc_admdvs: Optional[str]
    visit: dict
    operator: dict


def parse_register(doc: dict, settings: IdentitySettings) -> RegisterRequest:
    only_fields(doc, ("lookup_key", "person", "insutype", "insuplc_admdvs", "visit", "operator"))
    lookup_key, person = opt_text(doc, "lookup_key"), object_field(doc, "person")
    if (lookup_key is None) == (person is None):
        raise BadInput("give exactly one of 'lookup_key' (an identity.lookup request) or 'person' "
                       "{psn_no, insutype, insuplc_admdvs, mdtrt_cert_type, mdtrt_cert_no}")
    if person is not None:
        unknown = set(person) - set(PERSON_KEYS)
        if unknown:
            raise BadInput(f"person: unknown field(s) {', '.join(sorted(unknown))}")
        for k in PERSON_KEYS:
            require_text(person, k, 600 if k == "mdtrt_cert_no" else 64)
        person = {k: person[k] for k in PERSON_KEYS}
        if doc.get("insutype") not in (None, "") or doc.get("insuplc_admdvs") not in (None, ""):
            raise BadInput("'insutype' / 'insuplc_admdvs' go with 'lookup_key'; 'person' names its own")
    raw = object_field(doc, "visit", required=True)
    unknown = set(raw) - set(VISIT_FIELDS)
    if unknown:
        raise BadInput(f"visit: unknown field(s) {', '.join(sorted(unknown))}")
    visit = {}
    for k, n in VISIT_FIELDS.items():
        try:
            visit[k] = require_text(raw, k, n)
        except BadInput as exc:
            raise BadInput(f"visit: {exc}") from None
    try:
        datetime.strptime(visit["begntime"], TIME_FORMAT)
    except ValueError:
        raise BadInput(f"visit.begntime must be a time like 2024-03-01 09:30:00, got {visit['begntime']!r}") from None
    return RegisterRequest(lookup_key=lookup_key, person=person, insutype=opt_text(doc, "insutype", 6),
                           insuplc_admdvs=_region(doc), visit=visit,
                           operator=kiosk_operator(doc, settings, required=True))


@dataclass(frozen=True)
class RegisterCancelRequest:
    register_key: str
    operator: Optional[dict]


def parse_register_cancel(doc: dict, settings: IdentitySettings) -> RegisterCancelRequest:
    only_fields(doc, ("register_key", "operator"))
    return RegisterCancelRequest(register_key=require_text(doc, "register_key"),
                                 operator=kiosk_operator(doc, settings, required=False))


# ============================================================== kiosk.presettle / settle / cancel

@dataclass(frozen=True)
class KioskPresettleRequest(PresettleRequest):
    """face-pay's outpatient pre-settlement request (bridge/facepay/payloads.py), its visit
    and person taken from a kiosk.register request instead of the payload."""
    register_key: str = ""


def parse_presettle(doc: dict, settings: IdentitySettings) -> KioskPresettleRequest:
    only_fields(doc, ("register_key", "chrg_bchno", "fees", "total_amount", "med_type", "psn_setlway", "face_pay",
                      "terminal", "retry_without_face_pay", "operator"))
    fees = parse_fees(doc)
    total = require_amount(doc, "total_amount")
    sum_fees = sum((f["det_item_fee_sumamt"] for f in fees), ZERO)
    if sum_fees != total:
        raise BadInput(f"total_amount {total} is not the sum of the fee lines ({sum_fees})")
    terminal = object_field(doc, "terminal")
    if terminal is not None:
        bad = [k for k in terminal if k not in TERM_KEYS + ("down_payment",)]
        if bad:
            raise BadInput(f"terminal: unknown field(s) {', '.join(bad)}; known: {', '.join(TERM_KEYS)}")
    return KioskPresettleRequest(
        setting=OUT, identify_key=None, person=None, mdtrt_id=None, visit=None, fees=fees, total=total,
        chrg_bchno=require_text(doc, "chrg_bchno", 30), med_type=opt_text(doc, "med_type", 6) or "11",
        psn_setlway=opt_text(doc, "psn_setlway", 6) or "01", mid_setl_flag="0", face_pay=opt_bool(doc, "face_pay"),
        terminal=terminal, retry_without_face_pay=bool(opt_bool(doc, "retry_without_face_pay")),
        operator=kiosk_operator(doc, settings, required=False), register_key=require_text(doc, "register_key"))


def parse_kiosk_settle(doc: dict, settings: IdentitySettings):
    s = parse_settle(doc)
    op = kiosk_operator(doc, settings, required=False) if doc.get("operator") is not None else None
    return type(s)(presettle_key=s.presettle_key, face_pay=s.face_pay,
                   retry_without_face_pay=s.retry_without_face_pay, operator=op)


def parse_kiosk_cancel(doc: dict, settings: IdentitySettings):
    c = parse_cancel(doc)
    op = kiosk_operator(doc, settings, required=False) if doc.get("operator") is not None else None
    return type(c)(settle_key=c.settle_key, with_extension=c.with_extension, reason=c.reason, operator=op)
