"""The offline two-designated platform behind the Guangdong gateway (offline.md §2-§9, §12).

Transactions: 9001 sign-in; 1101 person (by e-credential/payAuthNo, ID number, social-security
card; the envelope's insuplc_admdvs picks the insured region); 2001 benefit check; 1901
dictionary (the region list); 2201/2202 registration; 5201 visit query; 2203 visit; 2204/2205 fee
details; 2206/2207/2208 outpatient pre-settle/settle/cancel; 2260/2261 Guangdong one-shot
settle/cancel; 2401/2404 admission and its cancellation; 2301/2302 inpatient details;
2303/2304/2305 inpatient pre-settle/settle/cancel; 2601 reversal; fpy001 and tgdupc004
(facepay.py); 3201/3202/9101/9102 reconciliation (reconciliation.py).

Idempotency exactly where the digest puts it: by msgid (a repeated msgid with the same infno
answers the stored response of the first success, no new effect; offline.md §2, §12). A new
msgid is a new message: settling the same charge batch again with a new msgid settles twice
(unless config.single_settlement_per_batch), which is how a client's blind resend shows up.
Input nodes: both the national and the Guangzhou names are accepted (offline.md §5 table).
"""
from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Callable, Optional

from bridge.facepay import fields as F

from . import facepay
from .config import SimulatorConfig
from .facepay import FacePayError, RealAccounts
from .ledger import Ledger
from .persons import Coverage, Person, PersonError, Persons
from .split import ZERO, Split, split_bill
from .tokens import Tokens
from .wire import MoneyError, yuan

ENVELOPE_REQUIRED = ("infno", "msgid", "mdtrtarea_admvs", "recer_sys_code", "infver", "opter_type",
                     "opter", "opter_name", "inf_time", "fixmedins_code", "input")


def holds_account(p: Person, insutype: str, insuplc_admdvs: str) -> bool:
    """The personal account belongs to the person's first insurance (persons.py): only a
    visit under that insutype, in that region, may use it."""
    return (insutype, insuplc_admdvs or p.insuplc_admdvs) == (p.account_insutype(), p.insuplc_admdvs)


class OfflineError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _node(inp: dict, *names: str) -> dict:
    for n in names:
        v = inp.get(n)
        if isinstance(v, dict):
            return v
    raise OfflineError("输入节点缺失: " + "/".join(names))


def _rows(inp: dict, name: str) -> list:
    v = inp.get(name)
    if isinstance(v, dict) and isinstance(v.get("rows"), list):   # 2260's feedetail.rows
        v = v["rows"]
    if not isinstance(v, list) or not v:
        raise OfflineError(f"{name}不能为空")
    return v


def _req(node: dict, *names: str) -> None:
    missing = [n for n in names if node.get(n) in (None, "")]
    if missing:
        raise OfflineError("必填字段为空: " + ",".join(missing))


def _amt(node: dict, name: str) -> Decimal:
    try:
        return yuan(node.get(name), name)
    except MoneyError as exc:
        raise OfflineError(str(exc)) from None


def _now() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S")


@dataclass
class Visit:
    mdtrt_id: str
    psn_no: str
    insutype: str
    kind: str                     # "outpatient" | "inpatient"
    ipt_otp_no: str
    med_type: str = "11"
    active: bool = True
    details: dict[str, dict] = field(default_factory=dict)   # feedetl_sn -> detail (+ amount)
    insuplc_admdvs: str = ""      # region of the insurance the visit runs under
    psn_type: str = ""
    opter_type: str = ""          # envelope opter_type of the registering message (2 = kiosk)
    begntime: str = ""            # the visit's begntime as the registering message gave it (5201)
    fixmedins_code: str = ""      # the institution that registered it (5201 lists only its own)


@dataclass
class Settlement:
    setl_id: str
    msgid: str
    infno: str
    fixmedins_code: str
    mdtrt_id: str
    psn_no: str
    insutype: str
    med_type: str
    clr_type: str
    split: Split
    balc: Decimal
    setl_time: str
    batch: str
    facepay: bool
    valid: bool = True
    cancel_time: str = ""
    opter: str = ""          # the envelope's operator of the settling message
    insuplc_admdvs: str = ""  # the insurance's region = clr_optins / setl_optins of 3201
    psn_type: str = ""

    def public(self) -> dict:
        return {"setl_id": self.setl_id, "msgid": self.msgid, "infno": self.infno, "mdtrt_id": self.mdtrt_id,
                "psn_no": self.psn_no, "medfee_sumamt": str(self.split.total),
                "fund_pay_sumamt": str(self.split.fund), "acct_pay": str(self.split.acct),
                "psn_cash_pay": str(self.split.cash), "valid": self.valid, "facepay": self.facepay,
                "batch": self.batch, "opter": self.opter, "insutype": self.insutype,
                "insuplc_admdvs": self.insuplc_admdvs, "setl_time": self.setl_time,
                "cancel_time": self.cancel_time, "clr_type": self.clr_type}


class Offline:
    def __init__(self, cfg: SimulatorConfig, persons: Persons, tokens: Tokens, ledger: Ledger,
                 accounts: RealAccounts) -> None:
        self.cfg = cfg
        self.persons = persons
        self.tokens = tokens
        self.ledger = ledger
        self.accounts = accounts
        self._lock = threading.RLock()
        self._ids = itertools.count(1)
        self.reconciliation: Optional[Any] = None   # set by the server (reconciliation.py)
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.sign_nos: dict[str, dict] = {}
            self.visits: dict[str, Visit] = {}
            self.settlements: dict[str, Settlement] = {}
            self.messages: dict[str, dict] = {}     # msgid -> {infno, output, effect, reversed}

    def _id12(self) -> str:
        return f"{int(time.time()) % 100000:05d}{next(self._ids):07d}"

    # --- entry point ---------------------------------------------------------------------
    def handle(self, env: dict, path_infno: str) -> dict:
        """Returns the output object; raises OfflineError for an infcode -1 answer."""
        missing = [k for k in ENVELOPE_REQUIRED if env.get(k) in (None, "")]
        if missing:
            raise OfflineError("报文头字段缺失: " + ",".join(missing))
        infno, msgid = str(env["infno"]), str(env["msgid"])
        if infno != path_infno:
            raise OfflineError(f"交易编号{infno}与请求地址不符")
        if len(msgid) > 30:
            raise OfflineError("msgid长度超过30")
        if env["fixmedins_code"] not in self.cfg.institutions:
            raise OfflineError("定点医药机构编码不存在")
        if not isinstance(env["input"], dict):
            raise OfflineError("input必须是JSON对象")
        sign_no = env.get("sign_no") or ""
        if infno != "9001":
            if sign_no and sign_no not in self.sign_nos:
                raise OfflineError("签到编号无效")
            # OUR CHOICE: a sign_no serves the operator it was issued to.  offline.md §4 only
            # shows the GZ client signing in again when the operator changes; a centre that
            # refuses another operator's sign_no is our assumption, on by default so that a
            # client mixing operators fails loudly.  The text avoids "签到"/"sign_no": a
            # client treats those as "sign in again" and would hide the mix-up.
            if sign_no and self.cfg.bind_sign_no_to_operator and \
                    self.sign_nos[sign_no]["opter_no"] != str(env["opter"]):
                raise OfflineError("操作员与登记的操作员不一致")
            if not sign_no and self.cfg.require_sign_no:
                raise OfflineError("未签到")
        handler: Optional[Callable] = getattr(self, "_i" + infno, None)
        if handler is None:
            raise OfflineError(f"交易编号{infno}不存在")
        with self._lock:
            prior = self.messages.get(msgid)
            if prior is not None:
                if prior["infno"] != infno:
                    raise OfflineError("报文ID重复")
                return prior["output"]
            effect: list = []
            output = handler(env, env["input"], effect)
            self.messages[msgid] = {"infno": infno, "output": output,
                                    "effect": effect[0] if effect else None, "reversed": False,
                                    "fixmedins_code": env["fixmedins_code"]}
            return output

    def _person(self, env: dict, psn_no: Any) -> Person:
        person = self.persons.get(str(psn_no))
        if person is None:
            raise OfflineError("人员编号不存在")
        if env.get("insuplc_admdvs") in (None, ""):
            raise OfflineError("insuplc_admdvs不能为空(输入含psn_no时必填)")
        return person

    def _visit(self, node: dict, kind: Optional[str] = None) -> Visit:
        v = self.visits.get(str(node.get("mdtrt_id")))
        if v is None or not v.active:
            raise OfflineError("就诊信息不存在或已撤销")
        if str(node.get("psn_no")) != v.psn_no:
            raise OfflineError("人员编号与就诊信息不符")
        if kind and v.kind != kind:
            raise OfflineError("就诊类型不符")
        return v

    # --- 9001 / 1101 ---------------------------------------------------------------------
    def _i9001(self, env: dict, inp: dict, effect: list) -> dict:
        node = _node(inp, "signIn", "data")
        _req(node, "opter_no")
        if str(node["opter_no"]) in self.cfg.unknown_operators:
            raise OfflineError(f"操作员{node['opter_no']}未在医保登记")
        sign_no = f"{self.cfg.admdvs}{time.strftime('%Y%m%d%H%M%S')}{next(self._ids):010d}"
        self.sign_nos[sign_no] = {"opter_no": node["opter_no"], "fixmedins_code": env["fixmedins_code"]}
        out = {"sign_time": _now(), "sign_no": sign_no}
        # national node signinoutb; Guangzhou reads output.result (offline.md §4)
        return {"signinoutb": out, "result": dict(out)}

    def _resolve_cert(self, node: dict) -> Person:
        kind, no = str(node.get("mdtrt_cert_type", "")), str(node.get("mdtrt_cert_no", ""))
        person = None
        if kind == "01":     # e-credential token, or a channel payAuthNo (mobilepay.md §5.7)
            tok = self.tokens.peek("ecToken", no) or self.tokens.peek("payAuthNo", no)
            person = self.persons.get(tok.psn_no) if tok else None
        elif kind == "02":   # resident ID number
            person = self.persons.by_certno(no)
            name = node.get("psn_name")
            if person is not None and name not in (None, "") and str(name) != person.psn_name:
                raise OfflineError("证件号码与姓名不符")
        elif kind == "03":   # social-security card number + card identification code (§5.1)
            if node.get("card_sn") in (None, ""):
                raise OfflineError("就诊凭证类型为03时卡识别码card_sn必填")
            person = self.persons.by_card(no)
            if person is not None and str(node["card_sn"]) != person.card_sn:
                raise OfflineError("卡识别码与社会保障卡不符")
        else:
            raise OfflineError("就诊凭证类型错误")
        if person is None:
            raise OfflineError("未查询到人员信息")
        return person

    def _i1101(self, env: dict, inp: dict, effect: list) -> dict:
        node = _node(inp, "data")
        _req(node, "mdtrt_cert_type", "mdtrt_cert_no")
        p = self._resolve_cert(node)
        base = {"psn_no": p.psn_no, "psn_cert_type": p.psn_cert_type, "certno": p.certno,
                "psn_name": p.psn_name, "gend": p.gend, "naty": p.naty, "brdy": p.brdy,
                "age": Decimal(p.age(time.localtime().tm_year)), "expContent": None}
        coverages = p.coverages()
        # OUR CHOICE: the envelope's insuplc_admdvs (the region the patient chose, §2 #4)
        # limits the answer to that region's insurances; without it every region answers.
        region = str(env.get("insuplc_admdvs") or "")
        if region:
            coverages = [c for c in coverages if c.insuplc_admdvs == region]
            if not coverages:
                raise OfflineError(f"参保地{region}未查询到该人员参保信息")
        insu = [self._insuinfo(p, c) for c in coverages]
        return {"baseinfo": base, "insuinfo": insu, "idetinfo": [dict(i) for i in p.idetinfo]}

    @staticmethod
    def _insuinfo(p: Person, c: Coverage) -> dict:
        # The personal account belongs to the person's first insurance (persons.py).
        balc = p.balc if holds_account(p, c.insutype, c.insuplc_admdvs) else ZERO
        return {"balc": balc, "insutype": c.insutype, "psn_type": c.psn_type,
                "psn_insu_stas": c.psn_insu_stas, "psn_insu_date": c.psn_insu_date,
                "paus_insu_date": c.paus_insu_date, "cvlserv_flag": c.cvlserv_flag,
                "insuplc_admdvs": c.insuplc_admdvs, "emp_name": c.emp_name}

    # --- 2001 benefit check (field names: bridge/offline/messages.py sources) ------------
    def _i2001(self, env: dict, inp: dict, effect: list) -> dict:
        node = _node(inp, "data")
        _req(node, "psn_no", "insutype", "fixmedins_code", "med_type", "begntime")
        if str(node["fixmedins_code"]) != env["fixmedins_code"]:
            raise OfflineError("定点医药机构编号与报文头不符")
        p = self._person(env, node["psn_no"])
        held = [c for c in p.coverages() if c.insutype == str(node["insutype"])]
        if not held:
            raise OfflineError(f"该人员未参加险种{node['insutype']}")
        held = [c for c in held if c.insuplc_admdvs == env.get("insuplc_admdvs")]
        if not held:
            raise OfflineError("参保地医保区划与该险种参保地不符")
        # The one in force answers; a suspended one answers "not enjoyed" below.
        cov = next((c for c in held if c.active), held[0])
        med_type = str(node["med_type"])
        # [U] codes: trt_chk_type "01" and fund_pay_type <insutype>100 for the pooled fund are
        # this simulator's placeholders; the dictionaries are not public.
        rows = {cov.insutype + "100": self._trt(p, cov, cov.insutype + "100", None)}
        if not cov.active:
            rows[cov.insutype + "100"] = self._trt(p, cov, cov.insutype + "100",
                                                   "人员参保状态异常(暂停或终止参保),不享受待遇")
        for r in p.restrictions:
            if r.insutype == cov.insutype and r.med_type in (None, med_type):
                rows[r.fund_pay_type] = self._trt(p, cov, r.fund_pay_type, r.trt_chk_rslt)
        return {"trtinfo": list(rows.values())}

    @staticmethod
    def _trt(p: Person, cov: Coverage, fund_pay_type: str, refused: Optional[str]) -> dict:
        return {"psn_no": p.psn_no, "trt_chk_type": "01", "fund_pay_type": fund_pay_type,
                "trt_enjymnt_flag": "0" if refused else "1", "begndate": cov.psn_insu_date,
                "enddate": None, "trt_chk_rslt": refused}

    # --- 1901 dictionary: the insured regions this gateway clears for -------------------
    def _i1901(self, env: dict, inp: dict, effect: list) -> dict:
        node = _node(inp, "data")
        _req(node, "type", "admdvs", "date")
        if str(node["type"]) != self.cfg.region_dictionary_type:
            return {"list": []}          # other dictionaries are not simulated
        rows = [{"type": node["type"], "label": name, "value": code, "parentValue": code[:2] + "0000",
                 "sort": i + 1, "valiFlag": "1", "createUser": "sim", "createDate": "2020-01-01",
                 "version": "1"}
                for i, (code, name) in enumerate(sorted(self.cfg.insured_regions.items()))]
        return {"list": rows}

    # --- outpatient registration and details ---------------------------------------------
    def _i2201(self, env: dict, inp: dict, effect: list) -> dict:
        node = _node(inp, "data", "mdtrtinfo")
        _req(node, "psn_no", "insutype", "begntime", "mdtrt_cert_type", "mdtrt_cert_no", "ipt_otp_no",
             "atddr_no", "dr_name", "dept_code", "dept_name", "caty")
        p = self._person(env, node["psn_no"])
        cov = self._check_insured(p, node["insutype"], env)
        v = Visit(self._id12(), p.psn_no, cov.insutype, "outpatient", str(node["ipt_otp_no"]),
                  insuplc_admdvs=cov.insuplc_admdvs, psn_type=cov.psn_type,
                  opter_type=str(env.get("opter_type") or ""), begntime=str(node["begntime"]),
                  fixmedins_code=str(env["fixmedins_code"]))
        self.visits[v.mdtrt_id] = v
        return {"data": {"mdtrt_id": v.mdtrt_id, "psn_no": p.psn_no, "ipt_otp_no": v.ipt_otp_no,
                         "exp_content": None}}

    @staticmethod
    def _check_insured(p: Person, insutype: Any, env: dict) -> Coverage:
        """The insurance a visit runs under: `insutype` held in the region the envelope names
        (insuplc_admdvs, §2 #4: the region of the insurance, from 1101 insuinfo), in force.
        A person insured twice (persons.py) registers and settles under either."""
        held = [c for c in p.coverages() if c.insutype == str(insutype)]
        if not held:
            if not p.coverages():
                raise OfflineError("人员无参保信息,不能享受待遇")
            raise OfflineError("险种类型与参保信息不符")
        region = str(env.get("insuplc_admdvs") or "")
        held = [c for c in held if c.insuplc_admdvs == region]
        if not held:
            raise OfflineError(f"参保地医保区划{region}与该险种参保地不符")
        cov = next((c for c in held if c.active), None)
        if cov is None:
            raise OfflineError("人员参保状态异常(暂停参保),不能享受待遇")
        return cov

    # --- 5201 visit query (field names: bridge/offline/messages.py sources) ---------------
    def _i5201(self, env: dict, inp: dict, effect: list) -> dict:
        """The person's visits at this institution whose begntime is in [begntime, endtime]
        and whose medical type is med_type (mdtrt_id narrows it to one).  OUR CHOICE where no
        source says: a visit cancelled by 2202 (or 2404) is not listed - every other call
        answers it as "就诊信息不存在或已撤销" - and the rows are a list."""
        node = _node(inp, "data")
        _req(node, "psn_no", "begntime", "endtime", "med_type")
        p = self._person(env, node["psn_no"])
        lo, hi = str(node["begntime"]), str(node["endtime"])
        for t in (lo, hi):
            try:
                time.strptime(t, "%Y-%m-%d %H:%M:%S")
            except ValueError:
                raise OfflineError(f"时间格式错误: {t}") from None
        want = node.get("mdtrt_id")
        rows = [v for v in self.visits.values()
                if v.psn_no == p.psn_no and v.active and v.fixmedins_code == env["fixmedins_code"]
                and lo <= v.begntime <= hi and v.med_type == str(node["med_type"])
                and want in (None, "", v.mdtrt_id)]
        return {"mdtrtinfo": [{"mdtrt_id": v.mdtrt_id, "psn_no": v.psn_no, "psn_cert_type": p.psn_cert_type,
                               "certno": p.certno, "psn_name": p.psn_name, "gend": p.gend, "insutype": v.insutype,
                               "psn_type": v.psn_type, "begntime": v.begntime, "endtime": None,
                               "med_type": v.med_type, "ipt_otp_no": v.ipt_otp_no, "insu_optins": v.insuplc_admdvs}
                              for v in sorted(rows, key=lambda v: v.mdtrt_id)]}

    def _valid_settlements(self, mdtrt_id: str) -> list[Settlement]:
        return [s for s in self.settlements.values() if s.mdtrt_id == mdtrt_id and s.valid]

    def _i2202(self, env: dict, inp: dict, effect: list) -> dict:
        node = _node(inp, "data", "mdtrtinfo")
        _req(node, "psn_no", "mdtrt_id", "ipt_otp_no")
        v = self._visit(node, "outpatient")
        if str(node["ipt_otp_no"]) != v.ipt_otp_no:
            raise OfflineError("门诊号与挂号信息不符")
        if self._valid_settlements(v.mdtrt_id):
            raise OfflineError("该就诊存在有效结算,不能撤销挂号")
        v.active = False
        return {}

    def _i2203(self, env: dict, inp: dict, effect: list) -> dict:
        node = _node(inp, "mdtrtinfo", "data")
        _req(node, "mdtrt_id", "psn_no", "med_type", "begntime")
        v = self._visit(node)
        v.med_type = str(node["med_type"])
        return {}

    def _add_details(self, rows: list, batch_field: Optional[str], kind: str) -> list:
        out = []
        for row in rows:
            req = ["feedetl_sn", "mdtrt_id", "psn_no", "fee_ocur_time", "med_list_codg",
                   "medins_list_codg", "det_item_fee_sumamt", "cnt", "pric"]
            if batch_field:
                req.append(batch_field)
            _req(row, *req)
            v = self._visit(row, kind)
            if kind == "inpatient" and self._valid_settlements(v.mdtrt_id):
                raise OfflineError("已结算的住院就诊不能再上传费用")
            sn = str(row["feedetl_sn"])
            if sn in v.details:
                raise OfflineError(f"费用明细流水号{sn}重复")
            amt = _amt(row, "det_item_fee_sumamt")
            v.details[sn] = {"batch": str(row.get(batch_field, "")) if batch_field else "", "amount": amt,
                             "setl_id": None}
            out.append({"feedetl_sn": sn, "det_item_fee_sumamt": amt, "cnt": row["cnt"], "pric": row["pric"],
                        "pric_uplmt_amt": row["pric"], "selfpay_prop": Decimal("0"),
                        "fulamt_ownpay_amt": ZERO, "overlmt_amt": ZERO, "preselfpay_amt": ZERO,
                        "inscp_scp_amt": amt, "chrgitm_lv": "01", "med_chrgitm_type": "",
                        "bas_medn_flag": "0", "hi_nego_drug_flag": "0", "chld_medc_flag": "0",
                        "list_sp_item_flag": "0", "lmt_used_flag": "0", "drt_reim_flag": "0", "memo": ""})
        return out

    def _i2204(self, env: dict, inp: dict, effect: list) -> dict:
        return {"result": self._add_details(_rows(inp, "feedetail"), "chrg_bchno", "outpatient")}

    def _i2205(self, env: dict, inp: dict, effect: list) -> dict:
        node = _node(inp, "data")
        _req(node, "mdtrt_id", "chrg_bchno", "psn_no")
        v = self._visit(node, "outpatient")
        batch = str(node["chrg_bchno"])
        for sn, d in list(v.details.items()):
            if batch in ("0000", d["batch"]):
                if d["setl_id"] and self.settlements[d["setl_id"]].valid:
                    if batch != "0000":
                        raise OfflineError("费用明细已结算,不能撤销")
                    continue
                del v.details[sn]
        return {}

    # --- settlement core -----------------------------------------------------------------
    def _billable(self, v: Visit, batch: Optional[str]) -> list[tuple[str, dict]]:
        rows = [(sn, d) for sn, d in v.details.items() if batch is None or d["batch"] == batch]
        if self.cfg.single_settlement_per_batch:
            rows = [(sn, d) for sn, d in rows
                    if not (d["setl_id"] and self.settlements[d["setl_id"]].valid)]
        return rows

    def _compute(self, env: dict, node: dict, v: Visit, batch: Optional[str],
                 total_given: Optional[Decimal]) -> tuple[Split, Person, Optional[dict], list]:
        p = self._person(env, v.psn_no)
        cov = self._check_insured(p, node.get("insutype") or v.insutype, env)
        if (cov.insutype, cov.insuplc_admdvs) != (v.insutype, v.insuplc_admdvs):
            raise OfflineError("险种类型或参保地与就诊信息不符")
        rows = self._billable(v, batch)
        if not rows:
            raise OfflineError("没有可结算的费用明细(请先上传费用明细)")
        total = sum((d["amount"] for _, d in rows), ZERO)
        if total_given is not None and total_given != total:
            raise OfflineError(f"医疗费总额{total_given}与明细合计{total}不符")
        try:
            ext = facepay.facepay_requested(node)
            if ext is not None and not holds_account(p, v.insutype, v.insuplc_admdvs):
                raise OfflineError("该险种无个人账户(实账),不能刷脸实账支付")
            if ext is not None:
                # Settlement re-checks enablement and the real account, and needs the current
                # UnionPay balance for the split, so 2207/2304 query it too (facepay.md step 4).
                available = self.accounts.balance(env["fixmedins_code"], p)
            else:
                # Outside face-pay mode any account (real or notional) pays acct_pay the usual way.
                use = (str(node.get("acct_used_flag", "0")) == "1" and p.has_account
                       and holds_account(p, v.insutype, v.insuplc_admdvs))
                available = p.balc if use else ZERO
        except FacePayError as exc:
            raise OfflineError(str(exc)) from None
        return split_bill(total, self.cfg.fund_ratio(v.insutype), available), p, ext, rows

    def _setlinfo(self, s: Split, p: Person, u: Any, mdtrt_id: str, med_type: str, clr_type: str,
                  balc: Decimal, setl_id: Optional[str], msgid: Optional[str], setl_time: Optional[str],
                  sign: int = 1) -> dict:
        neg = (lambda d: -d) if sign < 0 else (lambda d: d)
        return {
            "mdtrt_id": mdtrt_id, "setl_id": setl_id, "psn_no": p.psn_no, "psn_name": p.psn_name,
            "psn_cert_type": p.psn_cert_type, "certno": p.certno, "gend": p.gend, "naty": p.naty,
            "brdy": p.brdy, "age": Decimal(p.age(time.localtime().tm_year)), "insutype": u.insutype,
            "psn_type": u.psn_type or p.psn_type, "cvlserv_flag": p.cvlserv_flag, "setl_time": setl_time,
            "mdtrt_cert_type": "02", "med_type": med_type, "medfee_sumamt": neg(s.total),
            "fulamt_ownpay_amt": ZERO, "overlmt_selfpay": ZERO, "preselfpay_amt": ZERO,
            "inscp_scp_amt": neg(s.total), "act_pay_dedc": ZERO, "hifp_pay": neg(s.fund),
            "pool_prop_selfpay": Decimal(1) - s.fund_ratio, "cvlserv_pay": ZERO, "hifes_pay": ZERO,
            "hifmi_pay": ZERO, "hifob_pay": ZERO, "maf_pay": ZERO, "oth_pay": ZERO, "hifdm_pay": ZERO,
            "fund_pay_sumamt": neg(s.fund), "psn_part_amt": neg(s.acct + s.cash), "acct_pay": neg(s.acct),
            "psn_cash_pay": neg(s.cash), "hosp_part_amt": ZERO, "balc": balc, "acct_mulaid_pay": ZERO,
            "medins_setl_id": msgid, "clr_optins": u.insuplc_admdvs or p.insuplc_admdvs, "clr_way": "1",
            "clr_type": clr_type,
            "psn_setlway": "01", "med_sumfee": neg(s.total), "memo": None}

    @staticmethod
    def _setldetail(s: Split, u: Any, sign: int = 1) -> list:
        """`u`: the visit or settlement (its insutype)."""
        # fund_pay_type codes: 310200 named in offline.md §5.8; <insutype>100 for the pool is [U].
        lines = []
        if s.fund:
            lines.append({"fund_pay_type": u.insutype + "100", "inscp_scp_amt": sign * s.total,
                          "crt_payb_lmt_amt": None, "fund_payamt": sign * s.fund,
                          "fund_pay_type_name": "基本医疗保险统筹基金", "setl_proc_info": None})
        if s.acct:
            lines.append({"fund_pay_type": "310200", "inscp_scp_amt": sign * s.total,
                          "crt_payb_lmt_amt": None, "fund_payamt": sign * s.acct,
                          "fund_pay_type_name": "城镇职工基本医疗保险个人账户基金", "setl_proc_info": None})
        return lines

    def _presettle(self, env: dict, node: dict, v: Visit, batch: Optional[str], clr_type: str,
                   total_given: Optional[Decimal]) -> tuple[dict, list]:
        s, p, _, _ = self._compute(env, node, v, batch, total_given)
        info = self._setlinfo(s, p, v, v.mdtrt_id, v.med_type, clr_type, p.balc - s.acct, None, None, None)
        return info, self._setldetail(s, v)

    def _settle(self, env: dict, node: dict, v: Visit, batch: Optional[str], clr_type: str,
                total_given: Optional[Decimal], effect: list) -> tuple[dict, list]:
        if self.cfg.single_settlement_per_batch and batch is not None:
            if any(s.batch == batch for s in self._valid_settlements(v.mdtrt_id)):
                raise OfflineError("该收费批次已结算")
        s, p, ext, rows = self._compute(env, node, v, batch, total_given)
        setl_id = self._id12()
        try:
            if ext is not None:
                self.accounts.deduct(setl_id, v.mdtrt_id, p, s.acct)
            elif s.acct:
                self.persons.debit(p.psn_no, s.acct)
        except (FacePayError, PersonError) as exc:
            raise OfflineError(str(exc)) from None
        balc = self.persons.get(p.psn_no).balc
        now = _now()
        st = Settlement(setl_id, env["msgid"], env["infno"], env["fixmedins_code"], v.mdtrt_id, p.psn_no,
                        v.insutype, v.med_type, clr_type, s, balc, now, batch or "", ext is not None,
                        opter=str(env["opter"]), insuplc_admdvs=v.insuplc_admdvs, psn_type=v.psn_type)
        self.settlements[setl_id] = st
        for _, d in rows:
            d["setl_id"] = setl_id
        self.ledger.record("offline.settlement", setl_id, s.total, msgid=env["msgid"], infno=env["infno"],
                           fund=str(s.fund), acct=str(s.acct), cash=str(s.cash))
        effect.append(("settle", setl_id))
        info = self._setlinfo(s, p, v, v.mdtrt_id, v.med_type, clr_type, balc, setl_id, env["msgid"], now)
        return info, self._setldetail(s, v)

    def _cancel(self, env: dict, node: dict, effect: list) -> tuple[dict, list]:
        _req(node, "setl_id", "mdtrt_id", "psn_no")
        st = self.settlements.get(str(node["setl_id"]))
        if st is None or st.mdtrt_id != str(node["mdtrt_id"]) or st.psn_no != str(node["psn_no"]):
            raise OfflineError("结算信息不存在")
        if not st.valid:
            raise OfflineError("该结算已撤销")
        p = self._person(env, st.psn_no)
        try:
            self._give_back(st, refund_real=facepay.exp_content(node) is not None)
        except FacePayError as exc:
            # facepay.md: if the UnionPay refund fails, the settlement is not cancelled either.
            raise OfflineError(str(exc)) from None
        st.valid = False
        st.cancel_time = _now()
        self.ledger.record("offline.cancellation", st.setl_id, st.split.total, msgid=env["msgid"])
        effect.append(("cancel", st.setl_id))
        balc = self.persons.get(p.psn_no).balc
        # Cancellation answers carry the negated amounts and the restored balance (offline.md §5.9);
        # setl_id is the original one [U].
        info = self._setlinfo(st.split, p, st, st.mdtrt_id, st.med_type, st.clr_type, balc, st.setl_id,
                              env["msgid"], st.cancel_time, sign=-1)
        return info, self._setldetail(st.split, st, sign=-1)

    def _give_back(self, st: Settlement, refund_real: bool) -> None:
        """Return the account part of a settlement being undone."""
        if st.facepay:
            # Without the original expContent only the settlement is cancelled (facepay.md).
            if refund_real:
                self.accounts.refund(st.setl_id)
        elif st.split.acct:
            self.persons.credit(st.psn_no, st.split.acct)

    # --- 2206/2207/2208 --------------------------------------------------------------------
    def _outpatient_node(self, inp: dict) -> tuple[dict, Visit]:
        node = _node(inp, "data", "mdtrtinfo")
        _req(node, "psn_no", "mdtrt_cert_type", "mdtrt_cert_no", "med_type", "medfee_sumamt", "psn_setlway",
             "mdtrt_id", "chrg_bchno", "acct_used_flag", "insutype")
        v = self._visit(node, "outpatient")
        v.med_type = str(node["med_type"])
        return node, v

    def _i2206(self, env: dict, inp: dict, effect: list) -> dict:
        node, v = self._outpatient_node(inp)
        info, detail = self._presettle(env, node, v, str(node["chrg_bchno"]), "11", _amt(node, "medfee_sumamt"))
        return {"setlinfo": info, "setldetail": detail, "expContent": None}

    def _i2207(self, env: dict, inp: dict, effect: list) -> dict:
        node, v = self._outpatient_node(inp)
        info, detail = self._settle(env, node, v, str(node["chrg_bchno"]), "11",
                                    _amt(node, "medfee_sumamt"), effect)
        return {"setlinfo": info, "setldetail": detail, "expContent": None}

    def _i2208(self, env: dict, inp: dict, effect: list) -> dict:
        info, detail = self._cancel(env, _node(inp, "data", "mdtrtinfo"), effect)
        return {"setlinfo": info, "setldetail": detail}

    # --- 2260/2261: Guangdong one-shot ----------------------------------------------------
    def _i2260(self, env: dict, inp: dict, effect: list) -> dict:
        node = _node(inp, "mdtrtinfo")
        _req(node, "psn_no", "mdtrt_cert_type", "mdtrt_cert_no", "setl_flag", "insutype", "med_type",
             "begntime", "ipt_op_no")
        p = self._person(env, node["psn_no"])
        cov = self._check_insured(p, node["insutype"], env)
        rows = _rows(inp, "feedetail")
        v = Visit(self._id12(), p.psn_no, cov.insutype, "outpatient", str(node["ipt_op_no"]), str(node["med_type"]),
                  insuplc_admdvs=cov.insuplc_admdvs, psn_type=cov.psn_type,
                  opter_type=str(env.get("opter_type") or ""), begntime=str(node["begntime"]),
                  fixmedins_code=str(env["fixmedins_code"]))
        cut = []
        for i, row in enumerate(rows):
            amt = _amt(row, "det_item_fee_sumamt")
            sn = str(row.get("feedetl_sn") or i + 1)
            v.details[sn] = {"batch": v.mdtrt_id, "amount": amt, "setl_id": None}
            cut.append({"feedetl_sn": sn, "det_item_fee_sumamt": amt, "inscp_scp_amt": amt,
                        "fulamt_ownpay_amt": ZERO, "overlmt_amt": ZERO, "preselfpay_amt": ZERO})
        flag = str(node["setl_flag"])
        if flag == "0":
            self.visits[v.mdtrt_id] = v   # the trial needs the visit only while computing
            try:
                info, detail = self._presettle(env, node, v, None, "11", None)
            finally:
                del self.visits[v.mdtrt_id]
        elif flag == "1":
            self.visits[v.mdtrt_id] = v
            try:
                info, detail = self._settle(env, node, v, None, "11", None, effect)
            except OfflineError:
                del self.visits[v.mdtrt_id]
                raise
        else:
            raise OfflineError("setl_flag须为0或1")
        return {"setlInfo": info, "setldetail": detail, "voladetail": [], "detlcutinfo": {"rows": cut}}

    def _i2261(self, env: dict, inp: dict, effect: list) -> dict:
        info, detail = self._cancel(env, _node(inp, "mdtrtinfo", "data"), effect)
        return {"setlInfo": info, "setldetail": detail}

    # --- inpatient -------------------------------------------------------------------------
    def _i2401(self, env: dict, inp: dict, effect: list) -> dict:
        node = _node(inp, "mdtrtinfo")
        _req(node, "psn_no", "insutype", "begntime", "med_type", "ipt_no", "atddr_no", "chfpdr_name",
             "adm_diag_dscr", "adm_dept_codg", "adm_dept_name", "adm_bed", "dscg_maindiag_code",
             "dscg_maindiag_name")
        p = self._person(env, node["psn_no"])
        cov = self._check_insured(p, node["insutype"], env)
        v = Visit(self._id12(), p.psn_no, cov.insutype, "inpatient", str(node["ipt_no"]), str(node["med_type"]),
                  insuplc_admdvs=cov.insuplc_admdvs, psn_type=cov.psn_type,
                  opter_type=str(env.get("opter_type") or ""), begntime=str(node["begntime"]),
                  fixmedins_code=str(env["fixmedins_code"]))
        self.visits[v.mdtrt_id] = v
        effect.append(("admit", v.mdtrt_id))
        return {"result": {"mdtrt_id": v.mdtrt_id}}

    def _i2404(self, env: dict, inp: dict, effect: list) -> dict:
        node = _node(inp, "data")
        _req(node, "mdtrt_id", "psn_no")
        v = self._visit(node, "inpatient")
        if self._valid_settlements(v.mdtrt_id):
            raise OfflineError("该住院存在有效结算,不能撤销入院")
        v.active = False
        return {}

    def _i2301(self, env: dict, inp: dict, effect: list) -> dict:
        return {"result": self._add_details(_rows(inp, "feedetail"), None, "inpatient")}

    def _i2302(self, env: dict, inp: dict, effect: list) -> dict:
        node = _node(inp, "data", "feeinfo")
        _req(node, "feedetl_sn", "mdtrt_id", "psn_no")
        v = self._visit(node, "inpatient")
        sn = str(node["feedetl_sn"])
        targets = list(v.details) if sn == "0000" else [sn]
        for t in targets:
            d = v.details.get(t)
            if d is None:
                raise OfflineError(f"费用明细{t}不存在")
            if d["setl_id"] and self.settlements[d["setl_id"]].valid:
                if sn != "0000":
                    raise OfflineError("费用明细已结算,不能撤销")
                continue
            del v.details[t]
        return {}

    def _inpatient_node(self, inp: dict, *names: str) -> tuple[dict, Visit]:
        node = _node(inp, *names)
        _req(node, "psn_no", "mdtrt_id", "medfee_sumamt", "acct_used_flag", "insutype", "mid_setl_flag")
        return node, self._visit(node, "inpatient")

    def _i2303(self, env: dict, inp: dict, effect: list) -> dict:
        node, v = self._inpatient_node(inp, "data")
        info, detail = self._presettle(env, node, v, None, "21", _amt(node, "medfee_sumamt"))
        return {"setlinfo": info, "setldetail": detail}

    def _i2304(self, env: dict, inp: dict, effect: list) -> dict:
        node, v = self._inpatient_node(inp, "data", "mdtrtinfo")
        info, detail = self._settle(env, node, v, None, "21", _amt(node, "medfee_sumamt"), effect)
        return {"setlinfo": info, "setldetail": detail}

    def _i2305(self, env: dict, inp: dict, effect: list) -> dict:
        info, detail = self._cancel(env, _node(inp, "data", "mdtrtinfo"), effect)
        return {"setlinfo": info, "setldetail": detail}

    # --- 2601 reversal (offline.md §9.4) -----------------------------------------------------
    def _i2601(self, env: dict, inp: dict, effect: list) -> dict:
        node = inp.get("data") if isinstance(inp.get("data"), dict) else inp
        _req(node, "psn_no", "omsgid", "oinfno")
        omsgid, oinfno = str(node["omsgid"]), str(node["oinfno"])
        if oinfno not in self.cfg.reversible_infnos:
            raise OfflineError(f"交易{oinfno}不允许冲正")
        orig = self.messages.get(omsgid)
        if orig is None or orig["fixmedins_code"] != env["fixmedins_code"]:
            raise OfflineError("原交易不存在")
        if orig["infno"] != oinfno:
            raise OfflineError("原交易编号不符")
        if orig["reversed"]:
            return {}   # a repeated reversal changes nothing
        kind, ref = orig["effect"]
        try:
            if kind == "settle":
                st = self.settlements[ref]
                if st.psn_no != str(node["psn_no"]):
                    raise OfflineError("人员编号与原交易不符")
                if not st.valid:
                    raise OfflineError("原结算已撤销,无需冲正")
                self._give_back(st, refund_real=True)
                st.valid = False
                st.cancel_time = _now()
            elif kind == "cancel":
                st = self.settlements[ref]
                if st.valid:
                    raise OfflineError("原撤销已被冲正")
                if st.facepay:
                    self.accounts.rededuct(st.setl_id)
                elif st.split.acct:
                    self.persons.debit(st.psn_no, st.split.acct)
                st.valid = True
                st.cancel_time = ""
            else:   # admission
                v = self.visits[ref]
                if self._valid_settlements(ref):
                    raise OfflineError("该住院存在有效结算,不能冲正入院")
                v.active = False
        except (FacePayError, PersonError) as exc:
            raise OfflineError(str(exc)) from None
        orig["reversed"] = True
        self.ledger.record("offline.reversal", ref, ZERO, omsgid=omsgid, oinfno=oinfno)
        return {}

    def refund_at_centre(self, setl_id: str) -> None:
        """A cancellation the centre makes on its own - the reconciliation control
        "extra_refund" (reconciliation.py): money goes back as on 2208, no message logged."""
        with self._lock:
            st = self.settlements.get(str(setl_id))
            if st is None or not st.valid:
                raise ValueError("settlement unknown or already cancelled")
            try:
                self._give_back(st, refund_real=True)
            except (FacePayError, PersonError) as exc:
                raise ValueError(str(exc)) from None
            st.valid = False
            st.cancel_time = _now()
            self.ledger.record("offline.cancellation", st.setl_id, st.split.total, via="centre")

    # --- face-pay extension interfaces ----------------------------------------------------------
    def _ifpy001(self, env: dict, inp: dict, effect: list) -> dict:
        node = _node(inp, F.INPUT_NODE)
        _req(node, F.SETL_ID)
        st = self.settlements.get(str(node[F.SETL_ID]))
        if st is None or st.fixmedins_code != env["fixmedins_code"]:
            raise OfflineError("结算信息不存在")
        try:
            facepay.check_settlement_keys(node, st)
        except FacePayError as exc:
            raise OfflineError(str(exc)) from None
        return {F.OUTPUT_NODE: facepay.fpy001_output(st, self.accounts.status(st.setl_id))}

    def _itgdupc004(self, env: dict, inp: dict, effect: list) -> dict:
        node = _node(inp, F.INPUT_NODE)
        st = self.settlements.get(str(node.get(F.SETL_ID)))
        if st is None or st.fixmedins_code != env["fixmedins_code"]:
            raise OfflineError("结算信息不存在")
        try:
            facepay.check_settlement_keys(node, st)
            return {F.OUTPUT_NODE: facepay.mpc004(self.accounts, node)}
        except FacePayError as exc:
            raise OfflineError(str(exc)) from None

    # --- reconciliation (delegated) -------------------------------------------------------------
    def _i3201(self, env: dict, inp: dict, effect: list) -> dict:
        return self.reconciliation.totals(env, inp)

    def _i3202(self, env: dict, inp: dict, effect: list) -> dict:
        return self.reconciliation.details(env, inp)

    def _i9101(self, env: dict, inp: dict, effect: list) -> dict:
        return self.reconciliation.upload(env, inp)

    def _i9102(self, env: dict, inp: dict, effect: list) -> dict:
        return self.reconciliation.download(env, inp)

    def public(self) -> dict:
        with self._lock:
            return {k: s.public() for k, s in self.settlements.items()}

    def public_sign_ins(self) -> list[dict]:
        with self._lock:
            return [{"sign_no": k, "opter_no": v["opter_no"]} for k, v in self.sign_nos.items()]

    def public_visits(self) -> dict:
        """Registrations/admissions and their fee details, so that tests can see the effect
        of 2201/2202/2204/2205/2301/2302/2401 (which move no money and so are not in the ledger)."""
        with self._lock:
            return {k: {"psn_no": v.psn_no, "kind": v.kind, "active": v.active,
                        "med_type": v.med_type, "details": sorted(v.details)}
                    for k, v in self.visits.items()}

    def public_visit_identity(self) -> dict:
        """Under which insurance, region, outpatient number and operator type each visit was
        registered (kept apart from public_visits, whose shape tests compare whole)."""
        with self._lock:
            return {k: {"insutype": v.insutype, "insuplc_admdvs": v.insuplc_admdvs,
                        "ipt_otp_no": v.ipt_otp_no, "opter_type": v.opter_type}
                    for k, v in self.visits.items()}
