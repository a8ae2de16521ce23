"""The mobile-pay centre's orders and rules (mobilepay.md §5, §6.1, §9).

Routes (mobilepay.md §0 table, relative to the simulator's base URL):
    POST /org/local/api/hos/uldFeeInfo        6201 upload fee details -> payOrdId, payToken
    POST /org/local/api/hos/pay_order         6202 place payment order -> split, ordStas 1/2
    POST /org/local/api/hos/refund_Order      6203 refund (idempotent by appRefdSn)
    POST /org/local/api/hos/query_order_info  6301 settlement query
    POST /org/local/api/hos/revoke_order      6401 revoke while unpaid (ordStas 0/1/2 -> 12)
The order stays unpaid after 6202 until the patient pays in the channel, simulated by
POST /__sim__/mobilepay/pay {"payOrdId"}: ordStas -> 6, the personal account is debited,
and the 6302 notice goes to the hospital's callback URL. An order that a WeChat mixed order or
an Alipay medical order references is paid in that channel's cashier instead
(/__sim__/wechat/pay, /__sim__/alipay/pay), which settles the insurance legs here through
`settle_for_channel` and takes the cash in the channel.

Money legs (channel_ledger.py): a settlement records the fund and personal-account legs; the
cash leg is recorded by the channel that took it ("external" for the legacy control above). A
6203 gives back the fund and personal-account legs it names; the cash it names is only the
centre's bookkeeping (refunded.cash, ordStas 9-11): the cash itself comes back through the
channel's refund, or through `cash_return` when a channel plays the reading in which the centre
returns it (channels.md §2.7, §10.4).

Non-zero `code` values are not public (§6.3 [U]); this simulator answers every rejection
with code -1 and a message.

The insurance paid under is the one 6201 names (§5.1 `insutype`, with the region in
`insuCode` and, where sent, `insuplcAdmdvs`), not the person's first: a person insured twice
(persons.py) pays under either.  6201 is refused when the person does not hold that
insutype, holds it in another region than the one named, or holds it suspended.  The
personal account belongs to the person's first insurance: only an order under that one may
use it.
"""
from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Callable, Optional

from .callbacks import CallbackSender
from .channel_ledger import Legs
from .config import SimulatorConfig
from .ledger import Ledger
from .persons import Coverage, Person, PersonError, Persons
from .split import ZERO, split_bill
from .tokens import TokenError, Tokens
from .wire import MoneyError, yuan

ERROR_CODE = -1

PATHS = {
    "/org/local/api/hos/uldFeeInfo": "6201",
    "/org/local/api/hos/pay_order": "6202",
    "/org/local/api/hos/refund_Order": "6203",
    "/org/local/api/hos/query_order_info": "6301",
    "/org/local/api/hos/revoke_order": "6401",
}

UNPAID = ("0", "1", "2")
SETTLED = ("3", "4", "5", "6")
REFUND_STATES = ("7", "8", "9", "10", "11")


class MpcError(Exception):
    def __init__(self, message: str, code: int = ERROR_CODE) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


@dataclass
class Order:
    pay_ord_id: str
    pay_token: str
    org_codg: str
    med_org_ord: str
    chrg_bchno: str
    mdtrt_id: str
    psn_no: str
    insutype: str
    med_type: str
    fee_sumamt: Decimal
    insuplc_admdvs: str = ""          # the region of the insurance paid under (6201 insuCode)
    psn_type: str = ""                # that insurance's person type
    ord_stas: str = "0"
    fund: Decimal = ZERO
    acct: Decimal = ZERO
    cash: Decimal = ZERO
    fund_ratio: Decimal = ZERO
    setl_type: str = ""
    setl_id: str = ""
    trace_time: str = ""
    revs_token: str = ""
    refunded_fund: Decimal = ZERO
    refunded_acct: Decimal = ZERO
    refunded_cash: Decimal = ZERO
    refunds: dict[str, dict] = field(default_factory=dict)   # appRefdSn -> result
    pay_auth_no: str = ""             # the payAuthNo 6202 consumed (a channel order re-checks it)
    channel: Optional[str] = None     # "wechat" / "alipay" once a channel order references it
    channel_ref: str = ""             # that channel's order number (mix_trade_no, out_trade_no)

    def public(self) -> dict:
        return {"payOrdId": self.pay_ord_id, "medOrgOrd": self.med_org_ord, "orgCodg": self.org_codg,
                "psnNo": self.psn_no, "ordStas": self.ord_stas, "feeSumamt": str(self.fee_sumamt),
                "fundPay": str(self.fund), "psnAcctPay": str(self.acct), "ownPayAmt": str(self.cash),
                "refunded": {"fund": str(self.refunded_fund), "acct": str(self.refunded_acct),
                             "cash": str(self.refunded_cash)},
                "refunds": len(self.refunds), "channel": self.channel, "channel_ref": self.channel_ref}


def _require(data: dict, names: tuple[str, ...]) -> None:
    missing = [n for n in names if data.get(n) in (None, "", [])]
    if missing:
        raise MpcError("必填字段缺失: " + ",".join(missing))


def _money(data: dict, name: str) -> Decimal:
    try:
        return yuan(data.get(name), name)
    except MoneyError as exc:
        raise MpcError(f"金额格式错误: {exc}") from None


def _now14() -> str:
    return time.strftime("%Y%m%d%H%M%S")


class MobilePay:
    def __init__(self, cfg: SimulatorConfig, persons: Persons, tokens: Tokens, ledger: Ledger,
                 callbacks: CallbackSender) -> None:
        self.cfg = cfg
        self.persons = persons
        self.tokens = tokens
        self.ledger = ledger
        self.callbacks = callbacks
        self._lock = threading.RLock()
        self.lock = self._lock        # the channels share it (a payment there settles here)
        self.orders: dict[str, Order] = {}
        self._seq = 0
        self.legs = Legs(ledger)
        # Called (under the lock) when a 6203 names cash: (order, cash, appRefdSn, refdType).
        # The channels set it to play the centre_returns_cash reading (channels.md §2.7).
        self.cash_return: Optional[Callable[[Order, Decimal, str, str], None]] = None

    def reset(self) -> None:
        with self._lock:
            self.orders.clear()

    def handle(self, interface: str, data: dict) -> dict:
        with self._lock:
            return getattr(self, "_f" + interface)(data)

    # --- helpers -------------------------------------------------------------------
    def _person_for(self, data: dict, psn_no: Optional[str] = None) -> Person:
        person = self.persons.get(psn_no or str(data.get("psnNo")))
        if person is None:
            raise MpcError("人员不存在")
        if str(data.get("idNo", "")).upper() != person.certno.upper():
            raise MpcError("证件号码与人员信息不符")
        if data.get("userName") != person.psn_name:
            raise MpcError("姓名与人员信息不符")
        return person

    @staticmethod
    def _chosen_insurance(person: Person, data: dict) -> Coverage:
        """The insurance 6201 names: `insutype` in the region `insuCode` (and `insuplcAdmdvs`
        where sent) names, held and in force (§5.1; 1101 insuinfo gives the pairs)."""
        insutype = str(data["insutype"])
        held = [c for c in person.coverages() if c.insutype == insutype]
        if not held:
            raise MpcError("人员无参保信息,不能享受待遇" if not person.coverages() else "险种类型与参保信息不符")
        for name in ("insuCode", "insuplcAdmdvs"):
            region = data.get(name)
            if region not in (None, ""):
                held = [c for c in held if c.insuplc_admdvs == str(region)]
                if not held:
                    raise MpcError(f"参保地{region}与该险种参保信息不符")
        active = [c for c in held if c.active]
        if not active:
            raise MpcError("人员参保状态异常,不能享受待遇")
        return active[0]

    def _order(self, data: dict) -> Order:
        order = self.orders.get(str(data.get("payOrdId")))
        if order is None:
            raise MpcError("订单不存在")
        if "payToken" in data and data.get("payToken") != order.pay_token:
            raise MpcError("payToken校验失败")
        if data.get("orgCodg") not in (None, "") and data["orgCodg"] != order.org_codg:
            raise MpcError("机构编码与订单不符")
        return order

    def _new_id(self, prefix: str, admdvs: str) -> str:
        self._seq += 1
        return f"{prefix}{admdvs}{_now14()}{self._seq:07d}"

    # --- 6201 ----------------------------------------------------------------------
    def _f6201(self, data: dict) -> dict:
        _require(data, ("orgCodg", "psnNo", "insutype", "medOrgOrd", "idNo", "userName", "idType",
                        "medType", "medfeeSumamt", "chrgBchno", "feeType", "psnSetlway", "feedetailList"))
        if not data.get("ecToken") and not data.get("payAuthNo"):
            raise MpcError("ecToken与payAuthNo不能同时为空")
        if data["orgCodg"] not in self.cfg.institutions:
            raise MpcError("定点机构不存在")
        person = self._person_for(data)
        insurance = self._chosen_insurance(person, data)
        if data.get("payAuthNo"):
            tok = self.tokens.peek("payAuthNo", data["payAuthNo"])
            if tok is None or tok.psn_no != person.psn_no:
                raise MpcError("未找到对应授权信息")
        elif self.tokens.peek("ecToken", data["ecToken"]) is None:
            raise MpcError("ecToken无效或已过期")
        details = data["feedetailList"]
        if not isinstance(details, list) or not details:
            raise MpcError("费用明细不能为空")
        total = _money(data, "medfeeSumamt")
        detail_sum = sum((_money(d, "detItemFeeSumamt") for d in details), ZERO)
        if detail_sum != total:
            raise MpcError(f"明细金额合计{detail_sum}与总金额{total}不符")
        for o in self.orders.values():
            if o.org_codg == data["orgCodg"] and o.med_org_ord == data["medOrgOrd"]:
                same = (o.psn_no == person.psn_no and o.fee_sumamt == total and o.ord_stas == "0")
                if self.cfg.duplicate_medorgord == "return_same" and same:
                    return {"payOrdId": o.pay_ord_id, "payToken": o.pay_token, "mdtrtId": o.mdtrt_id}
                raise MpcError("医药机构订单号重复")
        order = Order(
            pay_ord_id=self._new_id("ORD", insurance.insuplc_admdvs), pay_token=secrets.token_hex(16),
            org_codg=data["orgCodg"], med_org_ord=data["medOrgOrd"], chrg_bchno=data["chrgBchno"],
            mdtrt_id=str(data.get("mdtrtId") or self._new_id("", "")[-12:]), psn_no=person.psn_no,
            insutype=insurance.insutype, med_type=str(data["medType"]), fee_sumamt=total,
            insuplc_admdvs=insurance.insuplc_admdvs, psn_type=insurance.psn_type)
        self.orders[order.pay_ord_id] = order
        # mdtrtId is echoed because some clients read it from 6201 (§5.1 [U]).
        return {"payOrdId": order.pay_ord_id, "payToken": order.pay_token, "mdtrtId": order.mdtrt_id}

    # --- 6202 ----------------------------------------------------------------------
    def _f6202(self, data: dict) -> dict:
        _require(data, ("payAuthNo", "payOrdId", "payToken", "orgCodg", "orgBizSer", "mdtrtId",
                        "chrgBchno", "feeType"))
        order = self._order(data)
        if data["chrgBchno"] != order.chrg_bchno:
            raise MpcError("收费批次号与上传时不符")
        if order.ord_stas != "0":
            raise MpcError(f"订单状态{order.ord_stas}不允许下单")
        try:
            self.tokens.consume("payAuthNo", data["payAuthNo"], order.psn_no)
        except TokenError as exc:
            raise MpcError(str(exc)) from None
        person = self.persons.get(order.psn_no)
        # The account belongs to the first insurance: an order under another one cannot use it.
        use_acct = (str(data.get("acctUsedFlag", "")) == "1" and person.has_account
                    and (order.insutype, order.insuplc_admdvs) == (person.account_insutype(), person.insuplc_admdvs))
        s = split_bill(order.fee_sumamt, self.cfg.fund_ratio(order.insutype),
                       person.balc if use_acct else ZERO)
        order.fund, order.acct, order.cash, order.fund_ratio = s.fund, s.acct, s.cash, s.fund_ratio
        order.pay_auth_no = str(data["payAuthNo"])
        order.ord_stas = "2" if s.cash > 0 else "1"
        if s.cash == 0 and self.cfg.direct_settle_zero_cash:
            # §5.2/§9: with nothing left to pay, some regions settle in 6202 itself (ordStas 6).
            self.callbacks.send(order.pay_ord_id, self._complete(order))
        return {**self._amounts(order), "payOrdId": order.pay_ord_id, "ordStas": order.ord_stas,
                "extData": {"preSetl": self._pre_setl(order, person)}}

    def _amounts(self, o: Order) -> dict:
        return {"feeSumamt": o.fee_sumamt, "ownPayAmt": o.cash, "psnAcctPay": o.acct, "fundPay": o.fund,
                "deposit": ZERO, "acctMulaidPay": ZERO, "hospPartAmt": ZERO, "othFeeAmt": ZERO,
                "selfAcctPay": ZERO}

    def _pre_setl(self, o: Order, p: Person) -> dict:
        return {"mdtrt_id": o.mdtrt_id, "psn_no": p.psn_no, "psn_name": p.psn_name, "certno": p.certno,
                "gend": p.gend, "brdy": p.brdy, "age": Decimal(p.age(time.localtime().tm_year)),
                "naty": p.naty, "insutype": o.insutype, "psn_type": o.psn_type,
                "cvlserv_flag": p.cvlserv_flag, "med_type": o.med_type, "psn_cert_type": p.psn_cert_type,
                "medfee_sumamt": o.fee_sumamt, "fulamt_ownpay_amt": ZERO, "overlmt_selfpay": ZERO,
                "preselfpay_amt": ZERO, "inscp_scp_amt": o.fee_sumamt, "hifp_pay": o.fund,
                "pool_prop_selfpay": Decimal(1) - o.fund_ratio, "cvlserv_pay": ZERO, "hifes_pay": ZERO,
                "hifmi_pay": ZERO, "hifob_pay": ZERO, "maf_pay": ZERO, "oth_pay": ZERO,
                "fund_pay_sumamt": o.fund, "psn_part_amt": o.acct + o.cash, "acct_pay": o.acct,
                "psn_cash_pay": o.cash, "hosp_part_amt": ZERO, "balc": p.balc - o.acct,
                "acct_mulaid_pay": ZERO}

    # --- the patient pays in the channel (control endpoint) -------------------------
    def pay(self, pay_ord_id: str) -> dict:
        with self._lock:
            order = self.orders.get(pay_ord_id)
            if order is None:
                raise MpcError("订单不存在")
            if order.ord_stas not in ("1", "2"):
                raise MpcError(f"订单状态{order.ord_stas}不能支付")
            if order.channel:
                raise MpcError(f"订单已关联{order.channel}渠道订单{order.channel_ref}，须在该渠道收银台支付")
            notice = self._complete(order, cash_channel="external")
        self.callbacks.send(order.pay_ord_id, notice)
        return order.public()

    def settle_for_channel(self, pay_ord_id: str) -> Order:
        """The channel's cashier settles the insurance part: ordStas -> 6 and the 6302 notice.

        The channel records the cash leg itself. Raises MpcError when the order cannot settle
        (the channel then reports the insurance part as failed)."""
        with self._lock:
            order = self.orders.get(pay_ord_id)
            if order is None:
                raise MpcError("订单不存在")
            if order.ord_stas not in ("1", "2"):
                raise MpcError(f"订单状态{order.ord_stas}不能支付")
            notice = self._complete(order, cash_channel=None)
        self.callbacks.send(order.pay_ord_id, notice)
        return order

    def _complete(self, order: Order, cash_channel: Optional[str] = "external") -> dict:
        """Charge a pre-settled order and return its 6302 notice."""
        with self._lock:
            try:
                if order.acct:
                    self.persons.debit(order.psn_no, order.acct)
            except PersonError as exc:
                raise MpcError(str(exc)) from None
            order.ord_stas = "6"
            order.setl_type = "ALL" if order.cash > 0 else "HI"
            order.trace_time = _now14()
            order.setl_id = self._new_id("", "")[-12:]
            order.revs_token = secrets.token_hex(16)
            self.ledger.record("mobilepay.charge", order.pay_ord_id, order.fee_sumamt,
                               fund=str(order.fund), acct=str(order.acct), cash=str(order.cash))
            self.legs.insurance_charge(order.pay_ord_id, order.fund, order.acct)
            if cash_channel:
                self.legs.cash_charge(cash_channel, order.pay_ord_id, order.cash, key=order.pay_ord_id)
            return self._notice(order)

    def _notice(self, o: Order) -> dict:
        """6302 fields (mobilepay.md §5.6); extData.setlinfo in FSI-2207 camelCase."""
        return {"callType": "02", "payOrdId": o.pay_ord_id, "medOrgOrd": o.med_org_ord,
                "traceTime": o.trace_time, "feeSumamt": o.fee_sumamt, "ownPayAmt": o.cash,
                "psnAcctPay": o.acct, "fundPay": o.fund, "setlType": o.setl_type,
                "revsToken": o.revs_token, "orgCode": o.org_codg,
                "orgName": self.cfg.institutions.get(o.org_codg, ""), "hiChrgTime": o.trace_time,
                "extData": {"setlinfo": [{
                    "setlId": o.setl_id, "mdtrtId": o.mdtrt_id, "psnNo": o.psn_no,
                    "medfeeSumamt": o.fee_sumamt, "fundPaySumamt": o.fund, "acctPay": o.acct,
                    "psnCashPay": o.cash, "hifpPay": o.fund, "hospPartAmt": ZERO,
                    "insutype": o.insutype, "psnType": o.psn_type, "medType": o.med_type,
                    "setlTime": time.strftime("%Y-%m-%d %H:%M:%S")}]}}

    # --- 6301 ----------------------------------------------------------------------
    def _f6301(self, data: dict) -> dict:
        _require(data, ("payOrdId", "orgCodg", "payToken", "idNo", "userName", "idType"))
        order = self._order(data)
        self._person_for(data, order.psn_no)
        out: dict[str, Any] = {"payOrdId": order.pay_ord_id, "ordStas": order.ord_stas}
        # Amounts once the order has been settled (§5.4), kept through later refunds.
        if order.ord_stas in SETTLED + REFUND_STATES:
            out.update({"feeSumamt": order.fee_sumamt, "ownPayAmt": order.cash,
                        "psnAcctPay": order.acct, "fundPay": order.fund, "setlType": order.setl_type,
                        "callType": "02", "medOrgOrd": order.med_org_ord,
                        "traceTime": order.trace_time, "revsToken": order.revs_token})
        return out

    # --- 6401 ----------------------------------------------------------------------
    def _f6401(self, data: dict) -> dict:
        _require(data, ("payOrdId", "orgCodg", "payToken", "idNo", "userName", "idType"))
        order = self._order(data)
        self._person_for(data, order.psn_no)
        if order.ord_stas not in UNPAID:
            raise MpcError(f"订单状态{order.ord_stas}不允许撤销")
        order.ord_stas = "12"
        self.ledger.record("mobilepay.revoke", order.pay_ord_id, ZERO)
        return {"payOrdId": order.pay_ord_id, "ordStas": order.ord_stas}

    # --- 6203 ----------------------------------------------------------------------
    def _f6203(self, data: dict) -> dict:
        _require(data, ("payOrdId", "appRefdSn", "appRefdTime", "totlRefdAmt", "cashRefdAmt", "refdType"))
        if bool(data.get("ecToken")) == bool(data.get("payAuthNo")):
            raise MpcError("ecToken与payAuthNo必须且只能传一个")
        order = self._order(data)
        sn = str(data["appRefdSn"])
        total = _money(data, "totlRefdAmt")
        cash = _money(data, "cashRefdAmt")
        acct = _money(data, "psnAcctRefdAmt") if data.get("psnAcctRefdAmt") not in (None, "") else ZERO
        fund = _money(data, "fundRefdAmt") if data.get("fundRefdAmt") not in (None, "") else ZERO
        prior = order.refunds.get(sn)
        if prior is not None:   # idempotent by appRefdSn (§8, §9)
            if prior["amounts"] != (total, fund, acct, cash):
                raise MpcError("退款流水号重复且金额不一致")
            return dict(prior["result"])
        for other in self.orders.values():
            if other is not order and sn in other.refunds:
                raise MpcError("退款流水号已用于其他订单")
        if order.ord_stas not in SETTLED + ("8", "9", "10", "11"):
            raise MpcError(f"订单状态{order.ord_stas}不允许退款")
        if cash + acct + fund != total:
            raise MpcError("退款金额不平: 现金+个账+统筹≠总额")
        if min(cash, acct, fund) < 0 or total <= 0:
            raise MpcError("退款金额必须为正")
        left_fund = order.fund - order.refunded_fund
        left_acct = order.acct - order.refunded_acct
        left_cash = order.cash - order.refunded_cash
        kind = data["refdType"]
        if kind == "ALL":
            if (fund, acct, cash) != (left_fund, left_acct, left_cash):
                raise MpcError("全部退款金额须等于原结算各项可退金额")
        elif kind == "CASH":
            if fund or acct:
                raise MpcError("仅退现金时统筹和个账退款须为0")
        elif kind == "HI":
            if cash:
                raise MpcError("仅退医保时现金退款须为0")
            # The insurance settlement is cancelled as a whole (as FSI cancels 2207 whole).
            if (fund, acct) != (left_fund, left_acct):
                raise MpcError("医保部分须全额退款")
        else:
            raise MpcError("refdType须为ALL/CASH/HI")
        if fund > left_fund or acct > left_acct or cash > left_cash:
            raise MpcError("退款金额超过可退金额")
        if acct:
            self.persons.credit(order.psn_no, acct)
        order.refunded_fund += fund
        order.refunded_acct += acct
        order.refunded_cash += cash
        order.ord_stas = self._refund_state(order)
        now = _now14()
        result: dict[str, Any] = {"refdSn": self._new_id("RFD", ""), "refStatus": "SUCC"}
        if fund or acct:
            # spelled hiRefdSn (the digest also reports hiFefdSn in one C# DTO, §5.3 [U])
            result.update({"hiRefdSn": self._new_id("HIR", ""), "hiTrnsDate": now[:8],
                           "hiTrnsTime": now[8:]})
        order.refunds[sn] = {"amounts": (total, fund, acct, cash), "result": result}
        self.ledger.record("mobilepay.refund", order.pay_ord_id, total, appRefdSn=sn,
                           fund=str(fund), acct=str(acct), cash=str(cash))
        self.legs.insurance_refund(order.pay_ord_id, fund, acct, key=sn)
        if cash and self.cash_return is not None:
            self.cash_return(order, cash, sn, str(kind))
        return dict(result)

    @staticmethod
    def _refund_state(o: Order) -> str:
        """ordStas after a refund (§6.1 codes 7-11)."""
        hi_all = o.refunded_fund == o.fund and o.refunded_acct == o.acct
        hi_none = not o.refunded_fund and not o.refunded_acct
        cash_all = o.refunded_cash == o.cash
        cash_none = not o.refunded_cash
        if hi_all and cash_all:
            return "7"
        if hi_all and not hi_none and cash_none:
            return "8"
        if hi_all and not hi_none:
            return "11"
        if hi_none and cash_all:
            return "9"
        return "10"

    def mark_refund_exp(self, result: dict) -> dict:
        return {**result, "refStatus": "EXP"}

    def public(self) -> dict:
        with self._lock:
            return {k: o.public() for k, o in self.orders.items()}
