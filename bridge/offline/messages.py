"""Typed requests and responses of the offline interfaces, with the spec's field names
(digest offline.md §4, §5, §9, §10).  Attribute names *are* the wire names.

Optional spec fields not modelled here (GZ extras such as `mdtrt_mode`, `order_no`,
`hcard_basinfo`, newer `pub_hosp_rfom_flag` ...) go into `extra`, under their spec names.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Mapping, Optional


def to_decimal(value: Any) -> Optional[Decimal]:
    """Money from a platform answer: numbers (parsed as Decimal/int) or numeric strings.
    null and "" stay None; anything else is a protocol error."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError(f"not an amount: {value!r}")
    if isinstance(value, (Decimal, int)):
        return Decimal(value)
    if isinstance(value, str):
        try:
            d = Decimal(value.strip())
        except InvalidOperation:
            raise ValueError(f"not an amount: {value!r}") from None
        if d.is_finite():
            return d
    raise ValueError(f"not an amount: {value!r}")


# ============================================================== requests

@dataclass(frozen=True, kw_only=True)
class Record:
    """One input record.  `insuplc_admdvs` belongs to the envelope (§2 #4), not the record."""

    extra: Mapping[str, Any] = field(default_factory=dict)
    insuplc_admdvs: Optional[str] = None

    _NOT_WIRE = ("extra", "insuplc_admdvs")

    def to_record(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            if f.name in self._NOT_WIRE:
                continue
            value = getattr(self, f.name)
            if value is None:
                continue
            if isinstance(value, Record):
                value = value.to_record()
            elif isinstance(value, (list, tuple)):
                value = [v.to_record() if isinstance(v, Record) else v for v in value]
            out[f.name] = value
        clash = set(out) & set(self.extra)
        if clash:
            raise ValueError(f"extra repeats typed fields: {sorted(clash)}")
        out.update(self.extra)
        return out


@dataclass(frozen=True, kw_only=True)
class SignInRequest(Record):                       # 9001 `signIn` (§4)
    opter_no: str
    mac: str
    ip: str


# 1101 mdtrt_cert_type (offline.md §5.1, §6) and psn_cert_type values.
CERT_ECREDENTIAL = "01"     # e-credential ecToken, or a channel's payAuthNo (mobilepay.md §5.7)
CERT_ID_CARD = "02"         # resident ID number
CERT_SSC = "03"             # social-security card number (+ card_sn)
PSN_CERT_RESIDENT_ID = "01"


@dataclass(frozen=True, kw_only=True)
class PersonInfoRequest(Record):                   # 1101 (§5.1)
    mdtrt_cert_type: str                           # 01 ecToken, 02 ID no., 03 SSC card
    mdtrt_cert_no: str
    card_sn: Optional[str] = None
    begntime: Optional[str] = None
    psn_cert_type: Optional[str] = None
    certno: Optional[str] = None
    psn_name: Optional[str] = None

    # One constructor per certificate.  `insuplc_admdvs` is the region the patient chose
    # (the envelope's 参保地, §2 #4); without it the platform answers from its own region.

    @classmethod
    def by_id_card(cls, certno: str, psn_name: Optional[str] = None, *,
                   insuplc_admdvs: Optional[str] = None,
                   begntime: Optional[str] = None) -> "PersonInfoRequest":
        """ID number (+ name): type 02, the number also as certno with psn_cert_type 01
        (offline.md §7.3 step 3, NMG's ID-card route)."""
        certno = _required(certno, "certno").upper()
        return cls(mdtrt_cert_type=CERT_ID_CARD, mdtrt_cert_no=certno,
                   psn_cert_type=PSN_CERT_RESIDENT_ID, certno=certno, psn_name=psn_name or None,
                   begntime=begntime, insuplc_admdvs=insuplc_admdvs)

    @classmethod
    def by_ecredential(cls, ec_token: str, *, insuplc_admdvs: Optional[str] = None
                       ) -> "PersonInfoRequest":
        """e-credential token from the terminal (ec.query / auth.check): type 01 (§5.1)."""
        return cls(mdtrt_cert_type=CERT_ECREDENTIAL, mdtrt_cert_no=_required(ec_token, "ecToken"),
                   insuplc_admdvs=insuplc_admdvs)

    @classmethod
    def by_pay_auth_no(cls, pay_auth_no: str, *, insuplc_admdvs: Optional[str] = None
                       ) -> "PersonInfoRequest":
        """A channel's payAuthNo: type 01 with the payAuthNo as the number (mobilepay.md §5.7,
        Shanxi)."""
        return cls(mdtrt_cert_type=CERT_ECREDENTIAL,
                   mdtrt_cert_no=_required(pay_auth_no, "payAuthNo"), insuplc_admdvs=insuplc_admdvs)

    @classmethod
    def by_card(cls, card_no: str, card_sn: str, *, psn_name: Optional[str] = None,
                insuplc_admdvs: Optional[str] = None) -> "PersonInfoRequest":
        """Social-security card as read by ReadCardBas: type 03, the card number, and the
        card identification code as card_sn (C when 03, §5.1; NMG YiBaoDZPZController)."""
        return cls(mdtrt_cert_type=CERT_SSC, mdtrt_cert_no=_required(card_no, "card_no"),
                   card_sn=_required(card_sn, "card_sn"), psn_name=psn_name or None,
                   insuplc_admdvs=insuplc_admdvs)


def _required(value: Optional[str], name: str) -> str:
    if value is None or not str(value).strip():
        raise ValueError(f"{name} is required")
    return str(value).strip()


@dataclass(frozen=True, kw_only=True)
class RegisterRequest(Record):                     # 2201 (§5.2)
    psn_no: str
    insutype: str
    begntime: str
    mdtrt_cert_type: str
    mdtrt_cert_no: str
    ipt_otp_no: str
    atddr_no: str
    dr_name: str
    dept_code: str
    dept_name: str
    caty: str


@dataclass(frozen=True, kw_only=True)
class CancelRegisterRequest(Record):               # 2202 (§5.3)
    psn_no: str
    mdtrt_id: str
    ipt_otp_no: str


@dataclass(frozen=True, kw_only=True)
class Diagnosis(Record):                           # 2203 `diseinfo[]` (§5.4)
    diag_type: str
    diag_srt_no: str
    diag_code: str
    diag_name: str
    diag_dept: str
    dise_dor_no: str
    dise_dor_name: str
    diag_time: str
    vali_flag: str


@dataclass(frozen=True, kw_only=True)
class VisitRequest(Record):                        # 2203 `mdtrtinfo` (§5.4)
    mdtrt_id: str
    psn_no: str
    med_type: str
    begntime: str
    main_cond_dscr: Optional[str] = None
    dise_codg: Optional[str] = None
    dise_name: Optional[str] = None
    diseinfo: tuple[Diagnosis, ...] = ()

    _NOT_WIRE = Record._NOT_WIRE + ("diseinfo",)


@dataclass(frozen=True, kw_only=True)
class FeeDetail(Record):
    """One `feedetail[]` row of 2204 (outpatient, needs chrg_bchno and rx_circ_flag) or
    2301 (inpatient, needs med_type) (§5.5, §5.10)."""

    feedetl_sn: str
    mdtrt_id: str
    psn_no: str
    fee_ocur_time: str
    med_list_codg: str
    medins_list_codg: str
    det_item_fee_sumamt: Decimal
    cnt: Decimal
    pric: Decimal
    bilg_dept_codg: str
    bilg_dept_name: str
    bilg_dr_codg: str
    bilg_dr_name: str
    chrg_bchno: Optional[str] = None
    rx_circ_flag: Optional[str] = None
    med_type: Optional[str] = None
    init_feedetl_sn: Optional[str] = None
    rxno: Optional[str] = None


@dataclass(frozen=True, kw_only=True)
class RevokeFeeDetailsRequest(Record):             # 2205 (§5.6); chrg_bchno "0000" = all
    mdtrt_id: str
    chrg_bchno: str
    psn_no: str


@dataclass(frozen=True, kw_only=True)
class RevokeInpatientFeesRequest(Record):          # 2302 (§5.10); feedetl_sn "0000" = all
    feedetl_sn: str
    mdtrt_id: str
    psn_no: str


@dataclass(frozen=True, kw_only=True)
class _SettleRequest(Record):
    """The fields every pre-settlement / settlement input shares (§5.7, §5.8, §5.10).
    Record order on the wire: these first, then the kind's own (JSON members have no order)."""
    psn_no: str
    mdtrt_cert_type: str
    mdtrt_cert_no: str
    medfee_sumamt: Decimal
    psn_setlway: str
    mdtrt_id: str
    acct_used_flag: str
    insutype: str
    invono: Optional[str] = None
    fulamt_ownpay_amt: Optional[Decimal] = None
    overlmt_selfpay: Optional[Decimal] = None
    preselfpay_amt: Optional[Decimal] = None
    inscp_scp_amt: Optional[Decimal] = None


@dataclass(frozen=True, kw_only=True)
class OutpatientSettleRequest(_SettleRequest):     # 2206 / 2207 (§5.7, §5.8)
    med_type: str
    chrg_bchno: str


@dataclass(frozen=True, kw_only=True)
class InpatientSettleRequest(_SettleRequest):      # 2303 / 2304 (§5.10)
    mid_setl_flag: str


@dataclass(frozen=True, kw_only=True)
class CancelSettlementRequest(Record):             # 2208 / 2305 / 2261 (§5.9, §5.10, §5.11)
    setl_id: str
    mdtrt_id: str
    psn_no: str


@dataclass(frozen=True, kw_only=True)
class DocumentSettleRequest(Record):
    """2260 Guangdong one-shot document-style settlement (§5.11).  `setl_flag` 0 trial,
    1 settle.  Remaining `mdtrtinfo` fields go in `extra`; the other nodes are lists of
    rows under their spec names."""

    psn_no: str
    mdtrt_cert_type: str
    mdtrt_cert_no: str
    setl_flag: str
    insutype: str
    med_type: str
    begntime: str
    clnc_flag: str
    acct_used_flag: Optional[str] = None          # set by face-pay mode (facepay.md step 2)
    diseinfo: tuple[Mapping[str, Any], ...] = ()
    feedetail_rows: tuple[Mapping[str, Any], ...] = ()
    agnterinfo: Optional[Mapping[str, Any]] = None

    _NOT_WIRE = Record._NOT_WIRE + ("diseinfo", "feedetail_rows", "agnterinfo")


@dataclass(frozen=True, kw_only=True)
class ReversalRequest(Record):                     # 2601 (§9.1)
    psn_no: str
    omsgid: str                                    # msgid of the original request
    oinfno: str                                    # its infno


@dataclass(frozen=True, kw_only=True)
class ReconcileTotalsRequest(Record):
    """3201 (§10.1).  National names; the Guangzhou build sends `clr_optins` instead of
    `setl_optins` and `cash_payamt` instead of `acct_pay`: fill the pair your region uses."""

    insutype: str
    clr_type: str
    stmt_begndate: str
    stmt_enddate: str
    medfee_sumamt: Decimal
    fund_pay_sumamt: Decimal
    fixmedins_setl_cnt: int
    setl_optins: Optional[str] = None
    clr_optins: Optional[str] = None
    acct_pay: Optional[Decimal] = None
    cash_payamt: Optional[Decimal] = None
    refd_setl_flag: Optional[str] = None


@dataclass(frozen=True, kw_only=True)
class ReconcileDetailsRequest(Record):             # 3202 (§10.2 step 3)
    setl_optins: str
    file_qury_no: str                              # from 9101 upload of the detail file
    stmt_begndate: str
    stmt_enddate: str
    medfee_sumamt: Decimal
    fund_pay_sumamt: Decimal
    cash_payamt: Decimal
    fixmedins_setl_cnt: int
    clr_type: Optional[str] = None
    refd_setl_flag: Optional[str] = None


# ============================================================== responses

def _pick(src: Mapping[str, Any], cls, money: frozenset[str] = frozenset()) -> dict[str, Any]:
    names = {f.name for f in dataclasses.fields(cls)} - {"raw"}
    out = {}
    for name in names:
        if name in src:
            out[name] = to_decimal(src[name]) if name in money else src[name]
    return out


def node(output: Any, *names: str) -> Any:
    """The first present node among spelling variants (e.g. setlinfo / setlInfo)."""
    if isinstance(output, Mapping):
        for n in names:
            if output.get(n) is not None:
                return output[n]
    return None


@dataclass(frozen=True)
class SignInResult:
    sign_no: str
    sign_time: Optional[str] = None

    @classmethod
    def from_output(cls, output: Mapping[str, Any]) -> "SignInResult":
        # national `signinoutb`, Guangzhou `result` (§4)
        rec = node(output, "signinoutb", "result")
        if not isinstance(rec, Mapping) or not rec.get("sign_no"):
            raise ValueError("9001 answer without sign_no")
        return cls(sign_no=str(rec["sign_no"]), sign_time=rec.get("sign_time"))


# psn_insu_stas of an insurance in force.  "1" is the value every source treats as
# normally insured (an NHSA-side query filters `PSN_INSU_STAS in (1)`, index id 27196879157;
# the 1101 sample of index id 11340175073); other values (suspended, terminated) are not.
INSU_STAS_ACTIVE = "1"


@dataclass(frozen=True)
class Insurance:                                   # 1101 `insuinfo[]`
    insutype: Optional[str] = None
    psn_type: Optional[str] = None
    balc: Optional[Decimal] = None
    psn_insu_stas: Optional[str] = None
    psn_insu_date: Optional[str] = None
    paus_insu_date: Optional[str] = None
    cvlserv_flag: Optional[str] = None
    insuplc_admdvs: Optional[str] = None
    emp_name: Optional[str] = None

    @property
    def active(self) -> bool:
        return self.psn_insu_stas == INSU_STAS_ACTIVE


@dataclass(frozen=True)
class IdentityCategory:                            # 1101 `idetinfo[]` (§5.1; SZ RY1101.cs)
    psn_idet_type: Optional[str] = None            # 人员身份类别 (D)
    psn_type_lv: Optional[str] = None              # 人员类别等级 (disability grade dictionary)
    memo: Optional[str] = None
    begntime: Optional[str] = None
    endtime: Optional[str] = None


def _records(value: Any) -> list[Mapping[str, Any]]:
    """A list node that some builds send as one object (SZ RY1101.cs types insuinfo and
    idetinfo as single objects)."""
    if value is None:
        return []
    if isinstance(value, Mapping):
        return [value]
    if isinstance(value, (list, tuple)):
        bad = [v for v in value if not isinstance(v, Mapping)]
        if bad:
            raise ValueError("list node with a non-object element")
        return list(value)
    raise ValueError("list node is neither an object nor a list")


@dataclass(frozen=True)
class PersonInfo:                                  # 1101 output (§5.1)
    psn_no: str
    psn_name: Optional[str] = None
    psn_cert_type: Optional[str] = None
    certno: Optional[str] = None
    gend: Optional[str] = None
    naty: Optional[str] = None
    brdy: Optional[str] = None
    age: Optional[Decimal] = None
    insuinfo: tuple[Insurance, ...] = ()
    # kept as the answer's objects (callers read keys); typed view: `identities`
    idetinfo: tuple[Mapping[str, Any], ...] = ()

    @classmethod
    def from_output(cls, output: Mapping[str, Any]) -> "PersonInfo":
        base = node(output, "baseinfo")
        if not isinstance(base, Mapping) or not base.get("psn_no"):
            raise ValueError("1101 answer without baseinfo.psn_no")
        fields = _pick(base, cls, frozenset({"age"}))
        fields.pop("insuinfo", None)
        fields.pop("idetinfo", None)
        insu = tuple(Insurance(**_pick(i, Insurance, frozenset({"balc"})))
                     for i in _records(output.get("insuinfo")))
        return cls(**fields, insuinfo=insu, idetinfo=tuple(_records(output.get("idetinfo"))))

    @property
    def identities(self) -> tuple[IdentityCategory, ...]:
        return tuple(IdentityCategory(**_pick(i, IdentityCategory)) for i in self.idetinfo)

    def active_insurances(self, insuplc_admdvs: Optional[str] = None) -> tuple[Insurance, ...]:
        """Insurances in force, optionally only those of one insured region."""
        return tuple(i for i in self.insuinfo if i.active and
                     (insuplc_admdvs is None or i.insuplc_admdvs == insuplc_admdvs))

    def insurance(self, insutype: str, insuplc_admdvs: Optional[str] = None
                  ) -> Optional[Insurance]:
        """The insurance of that type (and region), in force or not; None when absent."""
        for i in self.insuinfo:
            if i.insutype == insutype and (insuplc_admdvs is None
                                           or i.insuplc_admdvs == insuplc_admdvs):
                return i
        return None


@dataclass(frozen=True)
class Registration:                                # 2201 output (§5.2)
    mdtrt_id: str
    psn_no: Optional[str] = None
    ipt_otp_no: Optional[str] = None

    @classmethod
    def from_output(cls, output: Mapping[str, Any]) -> "Registration":
        rec = node(output, "data", "result")
        if not isinstance(rec, Mapping) or not rec.get("mdtrt_id"):
            raise ValueError("2201 answer without mdtrt_id")
        return cls(**_pick(rec, cls))


FEE_RESULT_MONEY = frozenset({"det_item_fee_sumamt", "cnt", "pric", "pric_uplmt_amt",
                              "selfpay_prop", "fulamt_ownpay_amt", "overlmt_amt",
                              "preselfpay_amt", "inscp_scp_amt"})


@dataclass(frozen=True)
class FeeDetailResult:                             # 2204 / 2301 `result[]` (§5.5)
    feedetl_sn: str
    det_item_fee_sumamt: Optional[Decimal] = None
    cnt: Optional[Decimal] = None
    pric: Optional[Decimal] = None
    pric_uplmt_amt: Optional[Decimal] = None
    selfpay_prop: Optional[Decimal] = None
    fulamt_ownpay_amt: Optional[Decimal] = None
    overlmt_amt: Optional[Decimal] = None
    preselfpay_amt: Optional[Decimal] = None
    inscp_scp_amt: Optional[Decimal] = None
    chrgitm_lv: Optional[str] = None
    med_chrgitm_type: Optional[str] = None
    memo: Optional[str] = None

    @classmethod
    def list_from_output(cls, output: Any) -> tuple["FeeDetailResult", ...]:
        rows = node(output, "result") if isinstance(output, Mapping) else output
        return tuple(cls(**_pick(r, cls, FEE_RESULT_MONEY)) for r in (rows or []))


SETTLEMENT_MONEY = frozenset({
    "medfee_sumamt", "fulamt_ownpay_amt", "overlmt_selfpay", "preselfpay_amt", "inscp_scp_amt",
    "act_pay_dedc", "hifp_pay", "pool_prop_selfpay", "cvlserv_pay", "hifes_pay", "hifmi_pay",
    "hifob_pay", "maf_pay", "oth_pay", "hifdm_pay", "fund_pay_sumamt", "psn_part_amt",
    "acct_pay", "psn_cash_pay", "hosp_part_amt", "balc", "acct_mulaid_pay", "med_sumfee",
})

# Spelling variants seen in sources, mapped onto the spec name (§5.8, §5.9):
# GZ Setlinfo.cs `psn_part_am`; CQ 2208 table `pdn_cash_pay`.
_SETTLEMENT_ALIASES = {"psn_part_am": "psn_part_amt", "pdn_cash_pay": "psn_cash_pay"}


@dataclass(frozen=True)
class SettlementDetail:                            # `setldetail[]` (§5.8)
    fund_pay_type: Optional[str] = None
    fund_payamt: Optional[Decimal] = None
    inscp_scp_amt: Optional[Decimal] = None
    crt_payb_lmt_amt: Optional[Decimal] = None
    fund_pay_type_name: Optional[str] = None
    setl_proc_info: Optional[str] = None


@dataclass(frozen=True)
class Settlement:
    """`setlinfo` of 2206/2207/2208/2303/2304/2305 and `setlInfo` of 2260/2261 (§5.8)."""

    mdtrt_id: Optional[str] = None
    setl_id: Optional[str] = None
    psn_no: Optional[str] = None
    medins_setl_id: Optional[str] = None
    setl_time: Optional[str] = None
    insutype: Optional[str] = None
    clr_optins: Optional[str] = None
    clr_way: Optional[str] = None
    clr_type: Optional[str] = None
    medfee_sumamt: Optional[Decimal] = None
    fulamt_ownpay_amt: Optional[Decimal] = None
    overlmt_selfpay: Optional[Decimal] = None
    preselfpay_amt: Optional[Decimal] = None
    inscp_scp_amt: Optional[Decimal] = None
    act_pay_dedc: Optional[Decimal] = None
    hifp_pay: Optional[Decimal] = None
    pool_prop_selfpay: Optional[Decimal] = None
    cvlserv_pay: Optional[Decimal] = None
    hifes_pay: Optional[Decimal] = None
    hifmi_pay: Optional[Decimal] = None
    hifob_pay: Optional[Decimal] = None
    maf_pay: Optional[Decimal] = None
    oth_pay: Optional[Decimal] = None
    hifdm_pay: Optional[Decimal] = None
    fund_pay_sumamt: Optional[Decimal] = None
    psn_part_amt: Optional[Decimal] = None
    acct_pay: Optional[Decimal] = None
    psn_cash_pay: Optional[Decimal] = None
    hosp_part_amt: Optional[Decimal] = None
    balc: Optional[Decimal] = None
    acct_mulaid_pay: Optional[Decimal] = None
    med_sumfee: Optional[Decimal] = None
    setldetail: tuple[SettlementDetail, ...] = ()

    @classmethod
    def from_output(cls, output: Mapping[str, Any]) -> "Settlement":
        rec = node(output, "setlinfo", "setlInfo")
        if not isinstance(rec, Mapping):
            raise ValueError("answer without setlinfo")
        rec = dict(rec)
        for alias, name in _SETTLEMENT_ALIASES.items():
            if rec.get(name) is None and rec.get(alias) is not None:
                rec[name] = rec[alias]
        fields = _pick(rec, cls, SETTLEMENT_MONEY)
        fields.pop("setldetail", None)
        details = node(output, "setldetail")
        if isinstance(details, Mapping):            # some builds send one object
            details = [details]
        money = frozenset({"fund_payamt", "inscp_scp_amt", "crt_payb_lmt_amt"})
        det = tuple(SettlementDetail(**_pick(d, SettlementDetail, money)) for d in (details or []))
        return cls(**fields, setldetail=det)


# The arithmetic identities that hold in every real sample (§5.8).
_FUND_PARTS = ("hifp_pay", "cvlserv_pay", "hifes_pay", "hifmi_pay", "hifob_pay", "maf_pay",
               "oth_pay")
_RULES = (
    ("medfee_sumamt", ("fulamt_ownpay_amt", "overlmt_selfpay", "preselfpay_amt", "inscp_scp_amt")),
    ("medfee_sumamt", ("fund_pay_sumamt", "psn_part_amt", "hosp_part_amt")),
    ("psn_part_amt", ("acct_pay", "psn_cash_pay")),
    ("fund_pay_sumamt", _FUND_PARTS),
)


def settlement_violations(s: Settlement, *, cancellation: bool) -> list[str]:
    """Every §5.8 sum rule the settlement breaks, as text; [] when it is consistent.

    A settlement (2206/2207/2303/2304/2260) must carry every term: the fields are
    required in the spec table.  A cancellation (2208/2305/2261) answered with null
    terms cannot be checked on that rule (the real 2208 sample has psn_part_amt and
    hosp_part_amt null, §5.9), so such a rule is skipped - but the total is required.
    `hifdm_pay` is newer and optional: it joins the fund sum when present.
    """
    problems = []
    if s.medfee_sumamt is None:
        return ["medfee_sumamt missing"]
    for total_name, part_names in _RULES:
        total = getattr(s, total_name)
        parts = [getattr(s, p) for p in part_names]
        if total_name == "fund_pay_sumamt" and s.hifdm_pay is not None:
            parts.append(s.hifdm_pay)
            part_names = part_names + ("hifdm_pay",)
        missing = [n for n, v in zip((total_name,) + tuple(part_names), [total] + parts)
                   if v is None]
        if missing:
            if not cancellation:
                problems.append(f"missing {', '.join(missing)}")
            continue
        if sum(parts, Decimal(0)) != total:
            problems.append(f"{total_name} {total} != {' + '.join(part_names)} "
                            f"({sum(parts, Decimal(0))})")
    return problems


@dataclass(frozen=True)
class ReconcileResult:                             # 3201 `stmtinfo` (§10.1)
    stmt_rslt: str
    setl_optins: Optional[str] = None
    stmt_rslt_dscr: Optional[str] = None

    @property
    def balanced(self) -> bool:
        # "0 = balanced" is the only code the sources agree on (README known gaps)
        return self.stmt_rslt == "0"

    @classmethod
    def from_output(cls, output: Mapping[str, Any]) -> "ReconcileResult":
        rec = node(output, "stmtinfo")
        if not isinstance(rec, Mapping) or rec.get("stmt_rslt") is None:
            raise ValueError("3201 answer without stmtinfo.stmt_rslt")
        fields = _pick(rec, cls)
        fields["stmt_rslt"] = str(fields["stmt_rslt"])
        return cls(**fields)


@dataclass(frozen=True)
class DetailReconcileResult:                       # 3202 `fileinfo` (§10.2 step 3)
    file_qury_no: str
    filename: Optional[str] = None
    dld_endtime: Optional[str] = None

    @classmethod
    def from_output(cls, output: Mapping[str, Any]) -> "DetailReconcileResult":
        rec = node(output, "fileinfo")
        if not isinstance(rec, Mapping) or not rec.get("file_qury_no"):
            raise ValueError("3202 answer without fileinfo.file_qury_no")
        return cls(**_pick(rec, cls))


# ============================================================== inpatient admission (2401 / 2404)
# Added after the other messages so that nothing above moves.  Field names: offline.md §5.10,
# completed from the source it cites (CQ Input_2401.cs / diseinfo.cs / Output_2401.cs /
# Input_2404.cs, newtouch-cloud/openhis @ ffa7e660) where the digest only says
# "diseinfo[] (adds maindiag_flag, adm_cond)".

@dataclass(frozen=True, kw_only=True)
class AdmissionDiagnosis(Record):
    """2401 `diseinfo[]` (CQ table 101 "入院诊断信息", diseinfo.cs): the 2203 diagnosis
    without `vali_flag` (CQ: "门诊诊断需要上传", outpatient only; the Guangzhou model
    RequestGzsiModel2401.cs keeps it, so it is optional here), plus `psn_no`,
    `maindiag_flag` (R) and `adm_cond` (入院病情, O)."""

    psn_no: str
    diag_type: str
    maindiag_flag: str
    diag_srt_no: str
    diag_code: str
    diag_name: str
    diag_dept: str
    dise_dor_no: str
    dise_dor_name: str
    diag_time: str
    adm_cond: Optional[str] = None
    vali_flag: Optional[str] = None


@dataclass(frozen=True, kw_only=True)
class AdmissionRequest(Record):
    """2401 入院办理 `mdtrtinfo` (§5.10; R as marked in CQ Input_2401.cs) + `diseinfo[]`.

    `ipt_no` is the national name (CQ, the digest); the Guangzhou model names the same
    field `ipt_otp_no` and `main_cond_dscr` `main_cond_desc` - such a site sends them
    through `extra`."""

    psn_no: str
    insutype: str
    begntime: str                                  # 入院时间 yyyy-MM-dd HH:mm:ss
    mdtrt_cert_type: str
    mdtrt_cert_no: str
    med_type: str                                  # 21 ordinary inpatient (§6)
    ipt_no: str                                    # the hospital's stay number
    atddr_no: str
    chfpdr_name: str
    adm_diag_dscr: str
    adm_dept_codg: str
    adm_dept_name: str
    adm_bed: str
    dscg_maindiag_code: str
    dscg_maindiag_name: str
    coner_name: Optional[str] = None
    tel: Optional[str] = None
    medrcdno: Optional[str] = None
    main_cond_dscr: Optional[str] = None
    dise_codg: Optional[str] = None
    dise_name: Optional[str] = None
    oprn_oprt_code: Optional[str] = None
    oprn_oprt_name: Optional[str] = None
    fpsc_no: Optional[str] = None
    matn_type: Optional[str] = None
    birctrl_type: Optional[str] = None
    latechb_flag: Optional[str] = None
    geso_val: Optional[str] = None
    fetts: Optional[str] = None
    fetus_cnt: Optional[str] = None
    pret_flag: Optional[str] = None
    birctrl_matn_date: Optional[str] = None
    dise_type_code: Optional[str] = None
    diseinfo: tuple[AdmissionDiagnosis, ...] = ()

    _NOT_WIRE = Record._NOT_WIRE + ("diseinfo",)


@dataclass(frozen=True)
class Admission:                                   # 2401 output `result` (§5.10)
    mdtrt_id: str

    @classmethod
    def from_output(cls, output: Any) -> "Admission":
        # `result` (CQ Output_2401.cs, the digest); `data` accepted like 2201's answer.
        rec = node(output, "result", "data")
        if not isinstance(rec, Mapping) or not rec.get("mdtrt_id"):
            raise ValueError("2401 answer without result.mdtrt_id")
        return cls(mdtrt_id=str(rec["mdtrt_id"]))


@dataclass(frozen=True, kw_only=True)
class CancelAdmissionRequest(Record):              # 2404 入院撤销 `data` (§5.10; CQ Input_2404.cs)
    mdtrt_id: str
    psn_no: str


# ============================================================== 2001 人员待遇享受检查 (benefit check)
# Not in the digest.  Field names, in one place, from the annotated spec tables in public code:
#   SZ  binzhe12123/Medical SZSI_Smart/Model/SYB/YBJS/RY2001.cs (Shenzhen, Guangdong: In2001 under
#       `data`, Out2001 with the table columns) and its caller SY.Com.Medical.WebApi/Controllers/
#       Clinic/SYBController.cs RYDY2001;
#   NMG newtouch-cloud/openhis @ b4fe7065 WinServiceAPI/NeiMengGuYiBaoApp/Models/Input/YiBao/Input_2001.cs;
#   ZS  S-117-John/nhis-web .../zsrm/service/qgyb/ZsrmQGService.java insCheck (input node `data`,
#       output node `trtinfo`, a list; trt_enjymnt_flag "1" = the benefit is enjoyed, checked
#       per fund_pay_type, e.g. 510100 maternity fund) and .../module/compay/ins/qgyb/InsQgybTrtinfo.java.
# trt_chk_type and the fund_pay_type values are dictionaries (D) not published.

BENEFIT_CHECK_OUTPUT_NODE = "trtinfo"
BENEFIT_ENJOYED = "1"            # trt_enjymnt_flag: 1 enjoys (ZS; a HIS UI shows 1 享受 / else 不享受)


@dataclass(frozen=True, kw_only=True)
class BenefitCheckRequest(Record):
    """2001 input `data` (R per RY2001.cs / Input_2001.cs).  `fixmedins_code` is required in
    the table; the client fills it from its configuration when not given."""

    psn_no: str
    insutype: str
    med_type: str
    begntime: str                                  # yyyy-MM-dd HH:mm:ss
    fixmedins_code: Optional[str] = None
    endtime: Optional[str] = None
    dise_codg: Optional[str] = None
    dise_name: Optional[str] = None
    oprn_oprt_code: Optional[str] = None           # required for day-surgery diseases
    oprn_oprt_name: Optional[str] = None
    matn_type: Optional[str] = None
    birctrl_type: Optional[str] = None


@dataclass(frozen=True)
class BenefitStatus:                               # 2001 `trtinfo[]`
    psn_no: Optional[str] = None
    trt_chk_type: Optional[str] = None             # 待遇检查类型 (D)
    fund_pay_type: Optional[str] = None            # 基金支付类型 (D)
    trt_enjymnt_flag: Optional[str] = None         # 基金款项待遇享受标志 (D)
    begndate: Optional[str] = None
    enddate: Optional[str] = None
    trt_chk_rslt: Optional[str] = None             # 待遇检查结果: why the benefit is not enjoyed

    @property
    def enjoyed(self) -> bool:
        return self.trt_enjymnt_flag == BENEFIT_ENJOYED


@dataclass(frozen=True)
class BenefitCheck:                                # 2001 output
    trtinfo: tuple[BenefitStatus, ...] = ()

    @property
    def restrictions(self) -> tuple[BenefitStatus, ...]:
        """The rows whose benefit is not enjoyed (each with its trt_chk_rslt)."""
        return tuple(t for t in self.trtinfo if not t.enjoyed)

    @classmethod
    def from_output(cls, output: Any) -> "BenefitCheck":
        if not isinstance(output, Mapping) or BENEFIT_CHECK_OUTPUT_NODE not in output:
            raise ValueError(f"2001 answer without {BENEFIT_CHECK_OUTPUT_NODE}")
        rows = _records(output.get(BENEFIT_CHECK_OUTPUT_NODE))
        return cls(trtinfo=tuple(BenefitStatus(**{k: (None if v is None else str(v))
                                                  for k, v in _pick(r, BenefitStatus).items()})
                                 for r in rows))


# ============================================================== 5201 就诊信息查询 (visit query)
# Not in the digest (offline.md has no query of a registration).  Field names, in one place,
# from public code that calls it:
#   CQ  newtouch-cloud/openhis @ ffa7e660 WinServiceAPI/YiBaoInterface/Models/Input/Input_5201.cs
#       (node `data`: psn_no, begntime, endtime, med_type, mdtrt_id, with the spec table's names);
#   SZ  binzhe12123/Medical SY.Com.Medical.Model/SYB/XXCX/JZ5201.cs (Shenzhen, Guangdong gateway:
#       In5201 psn_no R, begntime R, endtime R (yyyy-MM-dd HH:mm:ss), med_type R, mdtrt_id O;
#       Out5201 one row per visit: mdtrt_id, psn_no, insutype, begntime, endtime, med_type,
#       ipt_otp_no, ... and the person's certno, psn_name, tel - masked in the journal);
#   GK  an unidentified Java HIS (package com.geeke.medicareutils, index id 60254389734):
#       getPsnVisitData sends the same four inputs and reads the output node `mdtrtinfo`.
# Whether `mdtrtinfo` is a list or one object differs (SZ types rows, GK parses one object):
# both are read.  Whether a cancelled (2202) visit is still listed is not public: the flows
# only look for a visit they registered and lost the answer of, which nobody can have
# cancelled (its mdtrt_id was never known).

VISIT_QUERY_OUTPUT_NODE = "mdtrtinfo"


@dataclass(frozen=True, kw_only=True)
class VisitQueryRequest(Record):                   # 5201 `data`
    psn_no: str
    begntime: str                                  # yyyy-MM-dd HH:mm:ss
    endtime: str
    med_type: str
    mdtrt_id: Optional[str] = None


@dataclass(frozen=True)
class VisitInfo:                                   # 5201 `mdtrtinfo[]` (the fields the flows read)
    mdtrt_id: str
    psn_no: Optional[str] = None
    ipt_otp_no: Optional[str] = None
    insutype: Optional[str] = None
    med_type: Optional[str] = None
    begntime: Optional[str] = None
    endtime: Optional[str] = None


@dataclass(frozen=True)
class VisitList:                                   # 5201 output
    visits: tuple[VisitInfo, ...] = ()

    @classmethod
    def from_output(cls, output: Any) -> "VisitList":
        if not isinstance(output, Mapping):
            raise ValueError("5201 answer is not an object")
        rows = _records(output.get(VISIT_QUERY_OUTPUT_NODE))
        visits = []
        for r in rows:
            if r.get("mdtrt_id") in (None, ""):
                raise ValueError("5201 row without mdtrt_id")
            visits.append(VisitInfo(**{k: (None if v is None else str(v)) for k, v in _pick(r, VisitInfo).items()}))
        return cls(visits=tuple(visits))


# ============================================================== 1901 字典表查询 (dictionary)
# Input `data` (SZ binzhe12123/Medical SZSI_Smart/Model/SYB/JBXX/Dic1901.cs; NMG Input_1901.cs;
# ZS ZsrmQGService.java downLoadInsDict: node `data`, output `list`).  The input spells
# parentValue / valiFlag in camelCase in both tables; the output rows are camelCase in SZ and
# snake_case in NMG's Output_1901.cs, so both are read.  Which `type` lists the insured regions
# (参保地) is in no public source: OfflineConfig.region_dictionary_type must be set by the site.

DICTIONARY_OUTPUT_NODE = "list"


@dataclass(frozen=True, kw_only=True)
class DictionaryQuery(Record):
    type: str                                      # 字典类型
    admdvs: str                                    # 行政区划
    date: str                                      # 查询日期 yyyy-MM-dd
    parentValue: Optional[str] = None              # 父字典键值
    valiFlag: Optional[str] = None                 # 有效标志


_DICT_ALIASES = {"parent_value": "parentValue", "vali_flag": "valiFlag",
                 "create_user": "createUser", "create_date": "createDate"}


@dataclass(frozen=True)
class DictionaryEntry:                             # 1901 `list[]`
    type: Optional[str] = None
    label: Optional[str] = None                    # 字典标签 (the display name)
    value: Optional[str] = None                    # 字典键值 (the code)
    parentValue: Optional[str] = None
    sort: Optional[int] = None
    valiFlag: Optional[str] = None
    createUser: Optional[str] = None
    createDate: Optional[str] = None
    version: Optional[str] = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> "DictionaryEntry":
        rec = dict(row)
        for alias, name in _DICT_ALIASES.items():
            if rec.get(name) is None and rec.get(alias) is not None:
                rec[name] = rec[alias]
        fields = _pick(rec, cls)
        for k, v in list(fields.items()):
            if k == "sort":
                fields[k] = None if v in (None, "") else int(v)
            elif v is not None:
                fields[k] = str(v)
        if not fields.get("value"):
            raise ValueError("dictionary row without value")
        return cls(**fields)


@dataclass(frozen=True)
class DictionaryResult:
    entries: tuple[DictionaryEntry, ...] = ()

    @classmethod
    def from_output(cls, output: Any) -> "DictionaryResult":
        if not isinstance(output, Mapping) or DICTIONARY_OUTPUT_NODE not in output:
            raise ValueError(f"1901 answer without {DICTIONARY_OUTPUT_NODE}")
        return cls(entries=tuple(DictionaryEntry.from_row(r)
                                 for r in _records(output.get(DICTIONARY_OUTPUT_NODE))))


# ============================================================== 9101 / 9102 file transfer (§10.2)
# 9101 input `fsUploadIn` {in, filename, fixmedins_code}; output file_qury_no, filename,
# dld_endtime (CQ Input_9101.cs/Output_9101.cs; SZ Up9101.cs adds fixmedins_code to the output;
# NMG Output_9101.cs reads them at the top of `output`).  9102 input `fsDownloadIn`
# {file_qury_no, filename, fixmedins_code}; the reply body is the file itself (GZ, SZ
# SZSI_Smart/Controllers/SYBController.cs HttpPostFile, ZS NationalInsuranceUpDownService.java).

UPLOAD_NODE = "fsUploadIn"
DOWNLOAD_NODE = "fsDownloadIn"
UPLOAD_BYTES_FORMS = ("base64", "signed_array")   # .NET Convert.ToBase64String / Java byte[]


@dataclass(frozen=True)
class UploadedFile:                                # 9101 output
    file_qury_no: str
    filename: Optional[str] = None
    dld_endtime: Optional[str] = None
    fixmedins_code: Optional[str] = None

    @classmethod
    def from_output(cls, output: Any) -> "UploadedFile":
        rec = output
        if isinstance(output, Mapping) and not output.get("file_qury_no"):
            rec = node(output, "fileinfo", "result", "data")     # tolerated nesting
        if not isinstance(rec, Mapping) or not rec.get("file_qury_no"):
            raise ValueError("9101 answer without file_qury_no")
        return cls(**{k: (None if v is None else str(v)) for k, v in _pick(rec, cls).items()})


@dataclass(frozen=True)
class DownloadedFile:                              # 9102: where the reply body was written
    path: str
    size: int
    sha256: str


# ============================================================== 3202 files (§10.2)
# Detail file uploaded for 3202: one settlement per line, TAB-separated, zipped .txt, UTF-8
# (ZS ZsrmQGService.java uploadDetailedFile and NationalInsuranceUpDownService.java doZip).
DETAIL_FILE_COLUMNS = ("setl_id", "mdtrt_id", "psn_no", "medfee_sumamt", "fund_pay_sumamt",
                       "acct_pay", "refd_setl_flag")
# Result file downloaded by 9102 after 3202, in order (ZS NationalDict.ACC_DETAIL; CQ
# Output_3202.cs `result`); "null" stands for an empty value (ZS getZipContent).
RESULT_FILE_COLUMNS = ("psn_no", "mdtrt_id", "setl_id", "msgid", "stmt_rslt", "refd_setl_flag",
                       "memo", "medfee_sumamt", "fund_pay_sumamt", "acct_pay")
RESULT_FILE_MONEY = frozenset({"medfee_sumamt", "fund_pay_sumamt", "acct_pay"})
REFD_SETL_NORMAL, REFD_SETL_REFUND = "0", "1"      # refd_setl_flag (offline.md §6)
