"""What the HIS writes in mi_outbox.payload for each face-pay kind (docs/facepay.md),
parsed and checked before anything is sent.  Bad input raises BadInput: the row fails
with the reason and nothing is sent.  A field no flow reads is refused (a misspelt
"facepay": false must not settle with the patient's account)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Optional

from bridge.engine.flow import BadInput, check_line_amount, require_amount, require_text

from .kinds import DOC, INP, OUT

ZERO = Decimal("0.00")


def opt_text(doc: dict, name: str, max_len: int = 64) -> Optional[str]:
    if doc.get(name) in (None, ""):
        return None
    return require_text(doc, name, max_len)


def opt_bool(doc: dict, name: str) -> Optional[bool]:
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


def object_field(doc: dict, name: str, required: bool = False) -> Optional[dict]:
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


def parse_fees(doc: dict) -> tuple[dict, ...]:
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
    identify_key = opt_text(doc, "identify_key")
    person = object_field(doc, "person")
    admit_key = opt_text(doc, "admit_key") if setting == INP else None
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
    mdtrt_id = opt_text(doc, "mdtrt_id", 30)
    visit = object_field(doc, "visit")
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
    fees = parse_fees(doc)
    total = require_amount(doc, "total_amount")
    sum_fees = sum((f["det_item_fee_sumamt"] for f in fees), ZERO)
    if sum_fees != total:
        raise BadInput(f"total_amount {total} is not the sum of the fee lines ({sum_fees})")
    chrg_bchno = opt_text(doc, "chrg_bchno", 30)
    if setting == OUT and chrg_bchno is None:
        raise BadInput("payload field 'chrg_bchno' is required (the charge batch of 2204)")
    terminal = object_field(doc, "terminal")
    if terminal is not None:
        bad = [k for k in terminal if k not in TERM_KEYS + ("down_payment",)]
        if bad:
            raise BadInput(f"terminal: unknown field(s) {', '.join(bad)}; known: {', '.join(TERM_KEYS)}")
    return PresettleRequest(
        setting=setting, identify_key=identify_key, person=person, mdtrt_id=mdtrt_id, visit=visit,
        fees=fees, total=total, chrg_bchno=chrg_bchno,
        med_type=opt_text(doc, "med_type", 6) or ("21" if setting == INP else "11"),
        psn_setlway=opt_text(doc, "psn_setlway", 6) or "01",
        mid_setl_flag=opt_text(doc, "mid_setl_flag", 2) or "0",
        face_pay=opt_bool(doc, "face_pay"), terminal=terminal,
        retry_without_face_pay=bool(opt_bool(doc, "retry_without_face_pay")),
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

OPERATOR_TYPES = ("1", "2", "3")   # envelope opter_type: staff, self-service kiosk, mobile (offline.md §2)


def parse_operator(doc: dict) -> Optional[dict]:
    """The request's own operator {"id", "name", "type"}, or None for the daemon's."""
    o = object_field(doc, "operator")
    if o is None:
        return None
    unknown = set(o) - {"id", "name", "type"}
    if unknown:
        raise BadInput(f"operator: unknown field(s) {', '.join(sorted(unknown))}; known: id, name, type")
    op = {"id": require_text(o, "id", 20),                 # 9001 opter_no is 20 long (offline.md §4)
          "name": opt_text(o, "name", 50) or o["id"],
          "type": opt_text(o, "type", 3) or "1"}
    if op["type"] not in OPERATOR_TYPES:
        raise BadInput(f"operator.type must be one of {', '.join(OPERATOR_TYPES)} (1 staff, 2 kiosk, 3 mobile)")
    return op

def parse_settle(doc: dict) -> SettleRequest:
    only_fields(doc, ("presettle_key", "face_pay", "retry_without_face_pay", "operator"))
    return SettleRequest(presettle_key=require_text(doc, "presettle_key"),
                         face_pay=opt_bool(doc, "face_pay"),
                         retry_without_face_pay=opt_bool(doc, "retry_without_face_pay"),
                         operator=parse_operator(doc))


def parse_cancel(doc: dict) -> CancelRequest:
    only_fields(doc, ("settle_key", "with_extension", "reason", "operator"))
    w = opt_bool(doc, "with_extension")
    return CancelRequest(settle_key=require_text(doc, "settle_key"),
                         with_extension=True if w is None else w,
                         reason=opt_text(doc, "reason", 200), operator=parse_operator(doc))


@dataclass(frozen=True)
class IdentifyRequest:
    his_patient_id: str
    operator_id: Optional[str]
    operator_name: Optional[str]
    office_id: Optional[str]
    office_name: Optional[str]
    business_type: Optional[str]
    operator: Optional[dict] = None

def parse_identify(doc: dict) -> IdentifyRequest:
    only_fields(doc, ("his_patient_id", "terminal", "business_type", "operator"))
    t = object_field(doc, "terminal") or {}
    return IdentifyRequest(his_patient_id=require_text(doc, "his_patient_id"),
                           operator_id=opt_text(t, "operator_id", 30),
                           operator_name=opt_text(t, "operator_name", 50),
                           office_id=opt_text(t, "office_id", 30),
                           office_name=opt_text(t, "office_name", 50),
                           business_type=opt_text(doc, "business_type", 5),
                           operator=parse_operator(doc))


# ============================================================== admission (2401 / 2404)

# stay fields -> max length (CQ Input_2401.cs column 4; R = required there and in offline.md §5.10)
STAY_REQUIRED = {"ipt_no": 30, "begntime": 19, "atddr_no": 30, "chfpdr_name": 50, "adm_diag_dscr": 200,
                 "adm_dept_codg": 30, "adm_dept_name": 100, "adm_bed": 30, "dscg_maindiag_code": 20,
                 "dscg_maindiag_name": 300}
STAY_OPTIONAL = {"med_type": 6, "coner_name": 50, "tel": 50, "medrcdno": 30, "main_cond_dscr": 1000,
                 "dise_codg": 30, "dise_name": 500, "oprn_oprt_code": 30, "oprn_oprt_name": 500,
                 "fpsc_no": 50, "matn_type": 6, "birctrl_type": 6, "latechb_flag": 3, "geso_val": 2,
                 "fetts": 3, "fetus_cnt": 3, "pret_flag": 3, "birctrl_matn_date": 10, "dise_type_code": 6}
# diagnoses -> 2401 diseinfo[] (CQ table 101 / diseinfo.cs); psn_no is filled in by us.
DIAG_REQUIRED = {"diag_type": 3, "maindiag_flag": 3, "diag_srt_no": 2, "diag_code": 20, "diag_name": 100,
                 "diag_dept": 50, "dise_dor_no": 30, "dise_dor_name": 50, "diag_time": 19}
DIAG_OPTIONAL = {"adm_cond": 500, "vali_flag": 3}
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


@dataclass(frozen=True)
class AdmitRequest:
    # `identify_key` / `person`: the names patient.person_of reads.
    identify_key: Optional[str]
    person: Optional[dict]
    stay: dict
    diagnoses: tuple[dict, ...]
    operator: Optional[dict] = None        # {"id", "name", "type"}: parse_operator


def _text_fields(doc: dict, where: str, required: dict, optional: dict) -> dict:
    out = {}
    for k in required:
        v = doc.get(k)
        if not isinstance(v, str) or not v.strip():
            raise BadInput(f"{where}: field {k!r} is required (non-empty text)")
        out[k] = v
    for k in optional:
        v = doc.get(k)
        if v in (None, ""):
            continue
        if isinstance(v, bool) or not isinstance(v, (str, int)):
            raise BadInput(f"{where}: field {k!r} must be text")
        out[k] = str(v)
    limits = {**required, **optional}
    for k, v in out.items():
        if len(v) > limits[k]:
            raise BadInput(f"{where}: field {k!r} is longer than {limits[k]} characters")
    return out


def _time(v: str, where: str) -> None:
    try:
        datetime.strptime(v, TIME_FORMAT)
    except ValueError:
        raise BadInput(f"{where} must be a time like 2024-03-01 09:30:00, got {v!r}") from None


def parse_admit(doc: dict) -> AdmitRequest:
    only_fields(doc, ("identify_key", "person", "stay", "operator"))
    identify_key = opt_text(doc, "identify_key")
    person = object_field(doc, "person")
    if (identify_key is None) == (person is None):
        raise BadInput("give exactly one of 'identify_key' (a facepay.identify request) or "
                       "'person' {psn_no, insutype, insuplc_admdvs, mdtrt_cert_type, mdtrt_cert_no}")
    if person is not None:
        for k in PERSON_KEYS:
            require_text(person, k, 600 if k == "mdtrt_cert_no" else 64)
        person = {k: person[k] for k in PERSON_KEYS}
    raw = object_field(doc, "stay", required=True)
    known = set(STAY_REQUIRED) | set(STAY_OPTIONAL) | {"diagnoses"}
    unknown = set(raw) - known
    if unknown:
        raise BadInput(f"stay: unknown field(s) {', '.join(sorted(unknown))}")
    stay = _text_fields(raw, "stay", STAY_REQUIRED, STAY_OPTIONAL)
    _time(stay["begntime"], "stay.begntime")
    stay.setdefault("med_type", "21")          # 21 ordinary inpatient (offline.md §6)
    # OUR CHOICE: at least one admission diagnosis.  The CQ/GZ 2401 models carry diseinfo[]
    # (CQ: table 101 "入院诊断信息"); the digest does not say whether it may be empty, and a
    # refusal at the core is worse for the HIS than a clear BAD_INPUT here.
    diags = raw.get("diagnoses")
    if not isinstance(diags, list) or not diags:
        raise BadInput("stay.diagnoses is required (a non-empty list, 2401 diseinfo: diag_type, maindiag_flag, "
                       "diag_srt_no, diag_code, diag_name, diag_dept, dise_dor_no, dise_dor_name, diag_time)")
    out = []
    for i, d in enumerate(diags, 1):
        where = f"stay.diagnoses[{i}]"
        if not isinstance(d, dict):
            raise BadInput(f"{where} must be an object")
        unknown = set(d) - set(DIAG_REQUIRED) - set(DIAG_OPTIONAL)
        if unknown:
            raise BadInput(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
        rec = _text_fields(d, where, DIAG_REQUIRED, DIAG_OPTIONAL)
        _time(rec["diag_time"], f"{where}.diag_time")
        out.append(rec)
    return AdmitRequest(identify_key=identify_key, person=person, stay=stay, diagnoses=tuple(out),
                        operator=parse_operator(doc))


@dataclass(frozen=True)
class AdmitCancelRequest:
    admit_key: str
    operator: Optional[dict] = None


def parse_admit_cancel(doc: dict) -> AdmitCancelRequest:
    only_fields(doc, ("admit_key", "operator"))
    return AdmitCancelRequest(admit_key=require_text(doc, "admit_key"), operator=parse_operator(doc))
