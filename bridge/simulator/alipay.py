"""Alipay for 医保移动支付 (channels.md §7-§9): authorisation, medical orders, cash trades, refunds.

State (channels.md §10.1): `med_orders[chnl_ord_sn]` (indexed by out_trade_no), `trades[trade_no]`
(the cash trade, indexed by out_trade_no), `refunds[(trade_no, out_request_no)]`, `sent_messages`.
The signature is checked before anything here runs (channel_fronts.py); amounts are yuan strings.

Two ways to create the order, as `alipay_order_api` allows:
* "payment": `alipay.commerce.medical.payment.createandpay` (§7.2; answer wrapped in `data`) and
  `alipay.commerce.medical.payment.query` (§7.4; wrapped in `result_data`, asked by `chnl_order_sn`);
* "trade": the trade variant of §7.3, which channels.md could not name. The official SDK has it:
  `alipay.commerce.medical.trade.createandpay` (医保移动支付创单并支付; `extend_params` is the
  `InsurancePayExtendParams` {medical_card_id = payAuthNo, medical_card_inst_id = NATHSA}) and
  `alipay.commerce.medical.trade.query`, both answering flat fields (alipay-sdk-java-all
  `AlipayCommerceMedicalTradeCreateandpayModel` / `...Response`, `AlipayCommerceMedicalTradeQueryResponse`;
  index ids 22141764912, 22133321833, 22136953830).
Both link to the centre order (`pay_order_id`, `med_org_ord`, the 6202 split: gov_amount = fund,
account_amount = personal account, real_amount = cash, `pay_auth_no` = the 6202 one) and, when
real_amount > 0, open a cash trade (WAIT_BUYER_PAY) with the same out_trade_no. The patient pays
at POST /__sim__/alipay/pay: the centre settles the insurance legs, the cash trade succeeds, and a
notify goes to `call_url` / `result_notify_url`. The cash comes back by `alipay.trade.refund`
(§7.5), idempotent by (trade, out_request_no) with `fund_change` N on a repeat.

Choices where channels.md is silent (docs/platform-choices.md, "Simulator: channels"):
* status values (§10.4 item 10): medical_pay_status / status WAIT_PAY, PAY_SUCCESS, PAY_FAIL,
  REFUND_SUCCESS; own_pay_status = the cash trade's trade_status.
* the notify to call_url / result_notify_url (§7.2 format unknown): a §6.4 form notify with
  notify_type trade_status_sync, the trade fields of alipay.trade.query and the order's medical
  fields (pay_order_id, med_org_ord, medical_pay_status, own_pay_status, gov_amount,
  account_amount, real_amount); a refund sends one with refund_fee, gmt_refund and out_biz_no.
* business refusals of the medical methods carry sub_codes of the simulator's own, prefixed
  `SIM_` (the real ones are not public); the trade methods use ACQ.TRADE_NOT_EXIST (§6.3),
  ACQ.TRADE_STATUS_ERROR and ACQ.REFUND_AMT_NOT_EQUAL_TOTAL (general knowledge).
* `medical_insurance_info` (§7.6, only when asked in query_options): a JSON string with
  pay_order_id, gov_amount, account_amount, real_amount (the real structure is not public).
* auth query result_code "SUCCESS"; a user not yet authorised gets auth_stas "0" and auth_url.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Optional

from . import channel_clock, channel_crypto
from .alipay_wire import AlipayError, notify
from .channel_callbacks import ChannelCallbacks
from .channel_clock import ChannelClock
from .channel_ledger import Legs
from .config import SimulatorConfig
from .mobilepay import MobilePay, MpcError, Order
from .persons import Persons
from .split import ZERO
from .tokens import Tokens
from .wire import MoneyError, dumps, yuan

WAIT, PAID, FAILED, REFUNDED = "WAIT_PAY", "PAY_SUCCESS", "PAY_FAIL", "REFUND_SUCCESS"


def biz_error(sub_code: str, message: str) -> AlipayError:
    return AlipayError("40004", sub_code, message)


def _money(biz: dict, name: str, required: bool = True) -> Decimal:
    v = biz.get(name)
    if v in (None, ""):
        if required:
            raise AlipayError("40002", "isv.missing-parameter", f"缺少参数{name}")
        return ZERO
    try:
        d = yuan(v, name)
    except MoneyError:
        raise AlipayError("40002", "isv.invalid-parameter", f"{name}金额格式错误") from None
    if d < 0:
        raise AlipayError("40002", "isv.invalid-parameter", f"{name}不能为负")
    return d


def _need(biz: dict, *names: str) -> None:
    for n in names:
        if biz.get(n) in (None, ""):
            raise AlipayError("40002", "isv.missing-parameter", f"缺少参数{n}")


@dataclass
class Trade:
    trade_no: str
    out_trade_no: str
    total: Decimal
    subject: str
    buyer_id: str
    ref: str                          # the legs key: the centre payOrdId, else out_trade_no
    chnl_ord_sn: str
    created_at: datetime
    status: str = "WAIT_BUYER_PAY"
    paid_at: Optional[datetime] = None
    refunded: Decimal = ZERO

    def view(self, query_options: Any = None, medical: Optional[dict] = None) -> dict:
        out: dict[str, Any] = {"trade_no": self.trade_no, "out_trade_no": self.out_trade_no,
                               "buyer_logon_id": "138******00", "buyer_user_id": self.buyer_id,
                               "trade_status": self.status, "total_amount": str(self.total)}
        if self.paid_at is not None:
            out.update({"receipt_amount": str(self.total), "buyer_pay_amount": str(self.total),
                        "invoice_amount": str(self.total), "send_pay_date": channel_clock.text(self.paid_at),
                        "fund_bill_list": [{"fund_channel": "ALIPAYACCOUNT", "amount": str(self.total)}]})
        if isinstance(query_options, list) and "medical_insurance_info" in query_options and medical:
            out["medical_insurance_info"] = dumps(medical)
        return out


@dataclass
class MedOrder:
    chnl_ord_sn: str
    api: str                          # "payment" (§7.2) or "trade" (§7.3 variant)
    biz: dict
    out_trade_no: str
    med_org_ord: str
    pay_order_id: str
    user: str
    total: Decimal
    gov: Decimal
    acct: Decimal
    other: Decimal
    real: Decimal
    notify_url: str
    pay_url: str
    created_at: datetime
    medical_status: str = WAIT
    trade_no: str = ""
    paid_at: Optional[datetime] = None
    error_reason: str = ""
    refunded_at: Optional[datetime] = None


@dataclass
class Refund:
    trade_no: str
    out_trade_no: str
    out_request_no: str
    amount: Decimal
    reason: str
    at: datetime
    status: str = "REFUND_SUCCESS"


class Alipay:
    def __init__(self, cfg: SimulatorConfig, mobilepay: MobilePay, tokens: Tokens, persons: Persons,
                 legs: Legs, callbacks: ChannelCallbacks, clock: ChannelClock) -> None:
        self.cfg = cfg
        self.mobilepay = mobilepay
        self.tokens = tokens
        self.persons = persons
        self.legs = legs
        self.callbacks = callbacks
        self.clock = clock
        self.lock = mobilepay.lock          # shared with the centre (see wechatpay.py)
        self._seq = 0
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.med_orders: dict[str, MedOrder] = {}
            self.by_out_trade_no: dict[str, str] = {}
            self.trades: dict[str, Trade] = {}
            self.trade_by_out: dict[str, str] = {}
            self.refunds: dict[tuple[str, str], Refund] = {}
            self.sent_messages: list[dict] = []
            self.authorised: dict[str, str] = {}   # alipay_user_id -> psn_no
            self.used_auth: set[str] = set()

    def _id(self, prefix: str = "") -> str:
        self._seq += 1
        return prefix + time.strftime("%Y%m%d") + f"{self._seq:06d}" + channel_crypto.random_digits(14)

    # --- dispatch ----------------------------------------------------------------------
    def handle(self, method: str, biz: dict, base_url: str) -> dict:
        """The inner object of the `..._response` (code 10000 added by the front)."""
        with self.lock:
            if method == "alipay.commerce.medical.authinfo.auth.query":
                return self._auth_query(biz, base_url)
            if method in ("alipay.commerce.medical.payment.createandpay", "alipay.commerce.medical.trade.createandpay"):
                api = "payment" if ".payment." in method else "trade"
                if self.cfg.alipay_order_api not in ("both", api):
                    raise AlipayError("40002", "isv.invalid-method", "不存在的方法名", gateway=True)
                return self._create(api, biz, base_url)
            if method in ("alipay.commerce.medical.payment.query", "alipay.commerce.medical.trade.query"):
                api = "payment" if ".payment." in method else "trade"
                if self.cfg.alipay_order_api not in ("both", api):
                    raise AlipayError("40002", "isv.invalid-method", "不存在的方法名", gateway=True)
                return self._query(api, biz)
            if method == "alipay.trade.query":
                return self._trade_query(biz)
            if method == "alipay.trade.refund":
                return self._refund(biz)
            if method == "alipay.trade.fastpay.refund.query":
                return self._refund_query(biz)
            if method == "alipay.open.app.mini.templatemessage.send":
                return self._message(biz)
        raise AlipayError("40002", "isv.invalid-method", "不存在的方法名", gateway=True)

    # --- §7.1 authorisation --------------------------------------------------------------
    def authorise(self, body: dict) -> dict:
        """Control: the patient authorises in Alipay's e-voucher page."""
        user, psn_no = str(body.get("alipay_user_id") or ""), str(body.get("psn_no") or "")
        if not user or self.persons.get(psn_no) is None:
            raise ValueError("alipay_user_id and a known psn_no are required")
        with self.lock:
            self.authorised[user] = psn_no
        return {"alipay_user_id": user, "psn_no": psn_no}

    def _auth_query(self, biz: dict, base_url: str) -> dict:
        user = str(biz.get("alipay_user_id") or biz.get("open_id") or "")
        if not user:
            raise AlipayError("40002", "isv.missing-parameter", "缺少参数alipay_user_id或open_id")
        _need(biz, "org_code")
        if biz.get("ol_biz_type_code") == "04107" and not biz.get("org_app_id"):
            raise AlipayError("40002", "isv.missing-parameter", "ol_biz_type_code为04107时org_app_id必填")
        data: dict[str, Any] = {"req_biz_no": biz.get("req_biz_no"), "openapi_app_id": self.cfg.alipay_app_id,
                                "medical_card_inst_id": "NATHSA", "rels_pay_flag": "0"}
        psn_no = self.authorised.get(user)
        if psn_no is None:
            data.update({"auth_stas": "0", "auth_url": f"{base_url}/alipay/auth?user={user}"})
            return {"data": data, "result_code": "SUCCESS"}
        person = self.persons.get(psn_no)
        data.update({"auth_stas": "1", "auth_no": self._id("AN"), "auth_time": channel_clock.text(datetime.now()),
                     "insu_org": person.insuplc_admdvs, "medical_card_id": "MC" + psn_no[-12:],
                     "medical_card_status": "1"})
        if biz.get("ol_biz_type_code") == "04107":
            tok = self.tokens.issue("payAuthNo", psn_no, self.cfg.pay_auth_ttl_seconds,
                                    "AUTH" + person.insuplc_admdvs)
            data["pay_auth_no"] = tok.value
        return {"data": data, "result_code": "SUCCESS"}

    # --- §7.2 / §7.3 create ------------------------------------------------------------
    def _create(self, api: str, biz: dict, base_url: str) -> dict:
        user = str(biz.get("alipay_user_id") or biz.get("open_id") or "")
        if not user:
            raise AlipayError("40002", "isv.missing-parameter", "缺少参数alipay_user_id或open_id")
        _need(biz, "out_trade_no", "med_org_ord", "org_no")
        notify_url = str(biz.get("call_url") if api == "payment" else biz.get("result_notify_url") or "")
        total, gov = _money(biz, "total_amount"), _money(biz, "gov_amount", required=False)
        acct, other = _money(biz, "account_amount", required=False), _money(biz, "other_amount", required=False)
        real = _money(biz, "real_amount", required=False)
        if gov + acct + other + real != total:
            raise biz_error("SIM_AMOUNT_MISMATCH", "total_amount须等于gov_amount+account_amount+other_amount+real_amount")
        otn = str(biz["out_trade_no"])
        prior = self.med_orders.get(self.by_out_trade_no.get(otn, ""))
        if prior is not None:
            if prior.biz != biz or prior.api != api:
                raise biz_error("SIM_ORDER_EXISTS", "out_trade_no已存在且请求参数不一致")
            return self._create_answer(prior)
        insurance = bool(biz.get("pay_order_id"))
        centre: Optional[Order] = None
        if insurance:
            centre = self._check_centre(api, biz, gov, acct, other, real, total)
        elif gov or acct or other:
            raise biz_error("SIM_CENTRE_ORDER_INVALID", "医保金额非零时pay_order_id必填")
        if api == "trade" and not biz.get("subject"):
            raise AlipayError("40002", "isv.missing-parameter", "缺少参数subject")
        now = self.clock.now()
        sn = self._id("MED")
        order = MedOrder(sn, api, dict(biz), otn, str(biz["med_org_ord"]), str(biz.get("pay_order_id") or ""),
                         user, total, gov, acct, other, real, notify_url,
                         f"{base_url}/alipay/cashier?chnl_ord_sn={sn}", now)
        if real > 0:
            t = Trade(self._id(), otn, real, str(biz.get("subject") or "医保移动支付自费部分"), user,
                      centre.pay_ord_id if centre else otn, sn, now)
            self.trades[t.trade_no] = t
            self.trade_by_out[otn] = t.trade_no
            order.trade_no = t.trade_no
        self.med_orders[sn] = order
        self.by_out_trade_no[otn] = sn
        if centre is not None:
            centre.channel, centre.channel_ref = "alipay", otn
            self.used_auth.add(str(biz["pay_auth_no"]))
        return self._create_answer(order)

    def _check_centre(self, api: str, biz: dict, gov: Decimal, acct: Decimal, other: Decimal, real: Decimal,
                      total: Decimal) -> Order:
        order = self.mobilepay.orders.get(str(biz["pay_order_id"]))
        if order is None or order.ord_stas not in ("1", "2") or order.channel:
            raise biz_error("SIM_CENTRE_ORDER_INVALID", "医保订单不存在或状态不允许支付")
        if biz["med_org_ord"] != order.med_org_ord or biz["org_no"] != order.org_codg:
            raise biz_error("SIM_CENTRE_ORDER_INVALID", "med_org_ord或org_no与医保订单不一致")
        if (total, gov, acct, other, real) != (order.fee_sumamt, order.fund, order.acct, ZERO, order.cash):
            raise biz_error("SIM_AMOUNT_MISMATCH", "金额与医保预结算结果不一致")
        auth = str(biz.get("pay_auth_no") or "")
        if api == "trade":
            ext = biz.get("extend_params") or {}
            if not isinstance(ext, dict) or ext.get("medical_card_inst_id", "NATHSA") != "NATHSA":
                raise biz_error("SIM_AUTH_INVALID", "extend_params.medical_card_inst_id须为NATHSA")
            if ext.get("medical_card_id") not in (None, "", auth):
                raise biz_error("SIM_AUTH_INVALID", "extend_params.medical_card_id须为支付授权码")
        tok = self.tokens.find("payAuthNo", auth)
        if tok is None or tok.psn_no != order.psn_no or auth != order.pay_auth_no:
            raise biz_error("SIM_AUTH_INVALID", "PAY_AUTH_NO校验失败")
        if tok.expires_at < time.time() or auth in self.used_auth:
            raise biz_error("SIM_AUTH_INVALID", "未找到对应授权信息")
        return order

    def _create_answer(self, o: MedOrder) -> dict:
        if o.api == "payment":
            return {"data": {"chnl_ord_sn": o.chnl_ord_sn, "med_org_ord": o.med_org_ord,
                             "out_trade_no": o.out_trade_no, "pay_order_id": o.pay_order_id,
                             "pay_url": o.pay_url, "status": o.medical_status},
                    "result_code": "SUCCESS"}
        out = {"trade_no": o.chnl_ord_sn, "out_trade_no": o.out_trade_no, "med_org_ord": o.med_org_ord,
               "pay_order_id": o.pay_order_id, "pay_url": o.pay_url, "order_type": o.biz.get("order_type"),
               "chrg_bch_no": o.biz.get("chrg_bch_no"), "rels_pay_flag": "0"}
        if o.trade_no:
            out["alipay_trade_no"] = o.trade_no
        return {k: v for k, v in out.items() if v not in (None, "")}

    # --- §7.4 query and the trade variant's query ------------------------------------------
    def _find(self, biz: dict) -> Optional[MedOrder]:
        sn = biz.get("chnl_order_sn") or biz.get("chnl_ord_sn")
        if sn:
            return self.med_orders.get(str(sn))
        if biz.get("trade_no"):
            o = self.med_orders.get(str(biz["trade_no"]))
            if o is not None:
                return o
            t = self.trades.get(str(biz["trade_no"]))
            return self.med_orders.get(t.chnl_ord_sn) if t else None
        for name in ("out_trade_no", "med_org_ord", "pay_order_id"):
            if biz.get(name):
                return next((o for o in self.med_orders.values() if getattr(o, name) == biz[name]), None)
        raise AlipayError("40002", "isv.missing-parameter", "缺少订单查询条件")

    def _amounts(self, o: MedOrder) -> dict:
        centre = self.mobilepay.orders.get(o.pay_order_id)
        med_refund = (centre.refunded_fund + centre.refunded_acct) if centre else ZERO
        trade = self.trades.get(o.trade_no)
        return {"medical_refund_amount": str(med_refund), "real_refund_amount": str(trade.refunded if trade else ZERO)}

    def _status_of(self, o: MedOrder) -> tuple[str, str]:
        trade = self.trades.get(o.trade_no)
        medical = o.medical_status
        centre = self.mobilepay.orders.get(o.pay_order_id)
        if centre is not None and medical == PAID and centre.refunded_fund == centre.fund \
                and centre.refunded_acct == centre.acct and (centre.fund or centre.acct):
            medical = REFUNDED
        return medical, trade.status if trade else ""

    def _query(self, api: str, biz: dict) -> dict:
        o = self._find(biz)
        if o is None:
            raise biz_error("SIM_ORDER_NOT_EXIST", "订单不存在")
        medical, own = self._status_of(o)
        amounts = self._amounts(o)
        if api == "payment":
            data = {"total_amount": str(o.total), "gov_amount": str(o.gov), "account_amount": str(o.acct),
                    "other_amount": str(o.other), "real_amount": str(o.real), "medical_pay_status": medical,
                    "own_pay_status": own, "pay_type": "MIXED_PAYMENT" if o.real > 0 else "MEDICAL_PAYMENT",
                    "error_reason": o.error_reason, "gmt_out_create": o.biz.get("gmt_out_create"),
                    "gmt_paid": channel_clock.text(o.paid_at) if o.paid_at else None,
                    "med_org_ord": o.med_org_ord, "pay_order_id": o.pay_order_id, "chnl_ord_sn": o.chnl_ord_sn,
                    "out_trade_no": o.out_trade_no, "trade_no": o.trade_no, "org_no": o.biz.get("org_no"),
                    "openapi_app_id": self.cfg.alipay_app_id, "pid": self.cfg.alipay_pid, "rels_pay_flag": "0",
                    **amounts}
            return {"result_data": {k: v for k, v in data.items() if v not in (None, "")},
                    "result_code": "SUCCESS"}
        trade = self.trades.get(o.trade_no)
        out = {"trade_no": o.chnl_ord_sn, "alipay_trade_no": o.trade_no, "out_trade_no": o.out_trade_no,
               "total_amount": str(o.total), "gov_amount": str(o.gov), "account_amount": str(o.acct),
               "other_amount": str(o.other), "real_amount": str(o.real), "medical_pay_status": medical,
               "own_pay_status": own, "trade_status": medical, "med_org_ord": o.med_org_ord,
               "pay_order_id": o.pay_order_id, "org_no": o.biz.get("org_no"), "order_type": o.biz.get("order_type"),
               "chrg_bch_no": o.biz.get("chrg_bch_no"), "gmt_out_create": o.biz.get("gmt_out_create"),
               "gmt_medical_paid": channel_clock.text(o.paid_at) if o.paid_at and o.pay_order_id else None,
               "gmt_own_paid": channel_clock.text(trade.paid_at) if trade and trade.paid_at else None,
               "refund_amount": str(Decimal(amounts["medical_refund_amount"]) + Decimal(amounts["real_refund_amount"])),
               "subject": o.biz.get("subject"), "rels_pay_flag": "0"}
        return {k: v for k, v in out.items() if v not in (None, "")}

    # --- the patient pays (control) ----------------------------------------------------
    def pay(self, body: dict) -> dict:
        """POST /__sim__/alipay/pay {"out_trade_no" | "chnl_ord_sn", "outcome"?}.
        outcome: "success" (default), "insurance_fail" (cash taken, insurance failed), "abandon"."""
        outcome = str(body.get("outcome") or "success")
        if outcome not in ("success", "insurance_fail", "abandon"):
            raise ValueError("outcome must be success, insurance_fail or abandon")
        events: list[dict] = []
        with self.lock:
            o = self.med_orders.get(str(body.get("chnl_ord_sn") or "")) or self.med_orders.get(
                self.by_out_trade_no.get(str(body.get("out_trade_no") or ""), ""))
            if o is None:
                raise LookupError("no such Alipay medical order")
            if outcome == "abandon":
                return self.public_order(o)
            if o.medical_status != WAIT:
                raise ValueError(f"the order is {o.medical_status}")
            if o.pay_order_id and outcome == "success":
                try:
                    self.mobilepay.settle_for_channel(o.pay_order_id)
                except MpcError as exc:
                    o.medical_status, o.error_reason = FAILED, exc.message
                    return self.public_order(o)
            now = self.clock.now()
            trade = self.trades.get(o.trade_no)
            if trade is not None:
                trade.status, trade.paid_at = "TRADE_SUCCESS", now
                self.legs.cash_charge("alipay", trade.ref, trade.total, key=trade.trade_no,
                                      out_trade_no=trade.out_trade_no)
            if outcome == "insurance_fail" and o.pay_order_id:
                o.medical_status, o.error_reason = FAILED, "医保结算失败（模拟）"
            else:
                o.medical_status, o.paid_at = PAID, now
            events.append(self._pay_notify(o, trade))
            result = self.public_order(o)
        for params in events:
            self._send("payment", o.out_trade_no, o.notify_url, params)
        return result

    def _notify_base(self) -> dict:
        return {"notify_time": channel_clock.text(datetime.now()), "notify_type": "trade_status_sync",
                "notify_id": channel_crypto.random_text(32).lower(), "app_id": self.cfg.alipay_app_id,
                "charset": "utf-8", "version": "1.0", "seller_id": self.cfg.alipay_pid}

    def _pay_notify(self, o: MedOrder, trade: Optional[Trade]) -> dict:
        medical, own = self._status_of(o)
        params = dict(self._notify_base(), out_trade_no=o.out_trade_no, pay_order_id=o.pay_order_id,
                      med_org_ord=o.med_org_ord, medical_pay_status=medical, own_pay_status=own,
                      gov_amount=str(o.gov), account_amount=str(o.acct), real_amount=str(o.real))
        if o.api == "payment":
            params["chnl_ord_sn"] = o.chnl_ord_sn
        if trade is not None:
            params.update(trade_no=trade.trade_no, trade_status=trade.status, total_amount=str(trade.total),
                          receipt_amount=str(trade.total), buyer_id=trade.buyer_id,
                          gmt_create=channel_clock.text(trade.created_at),
                          gmt_payment=channel_clock.text(trade.paid_at) if trade.paid_at else "")
        return {k: v for k, v in params.items() if v not in (None, "")}

    def _send(self, kind: str, key: str, url: str, params: dict) -> None:
        def build(defect: Optional[str]) -> tuple[bytes, dict]:
            return notify(self.cfg, params, defect)
        self.callbacks.enqueue("alipay", "alipay.notify", kind, key, url, build)

    # --- §7.6 trade query ----------------------------------------------------------------
    def _trade(self, biz: dict) -> Trade:
        trade = self.trades.get(str(biz.get("trade_no") or "")) or self.trades.get(
            self.trade_by_out.get(str(biz.get("out_trade_no") or ""), ""))
        if trade is None:
            if not biz.get("trade_no") and not biz.get("out_trade_no"):
                raise AlipayError("40002", "isv.missing-parameter", "trade_no和out_trade_no不能同时为空")
            raise biz_error("ACQ.TRADE_NOT_EXIST", "交易不存在")
        return trade

    def _trade_query(self, biz: dict) -> dict:
        trade = self._trade(biz)
        o = self.med_orders.get(trade.chnl_ord_sn)
        medical = {"pay_order_id": o.pay_order_id, "gov_amount": str(o.gov), "account_amount": str(o.acct),
                   "real_amount": str(o.real)} if o else None
        return trade.view(biz.get("query_options"), medical)

    # --- §7.5 refunds ----------------------------------------------------------------------
    def _refund(self, biz: dict) -> dict:
        trade = self._trade(biz)
        amount = _money(biz, "refund_amount")
        if amount <= 0:
            raise AlipayError("40002", "isv.invalid-parameter", "refund_amount须大于0")
        orn = str(biz.get("out_request_no") or trade.out_trade_no)
        prior = self.refunds.get((trade.trade_no, orn))
        if prior is not None:
            if prior.amount != amount:
                raise biz_error("ACQ.REFUND_AMT_NOT_EQUAL_TOTAL", "退款请求号已使用，退款金额与原请求不一致")
            return self._refund_answer(trade, prior, fund_change="N")
        if trade.status not in ("TRADE_SUCCESS",):
            raise biz_error("ACQ.TRADE_STATUS_ERROR", "交易状态不合法")
        if amount > trade.total - trade.refunded:
            raise biz_error("ACQ.REFUND_AMT_NOT_EQUAL_TOTAL", "退款金额超限")
        now = self.clock.now()
        r = Refund(trade.trade_no, trade.out_trade_no, orn, amount, str(biz.get("refund_reason") or ""), now)
        self.refunds[(trade.trade_no, orn)] = r
        trade.refunded += amount
        if trade.refunded == trade.total:
            trade.status = "TRADE_CLOSED"
        self.legs.cash_refund("alipay", trade.ref, amount, key=orn, by="hospital", out_trade_no=trade.out_trade_no)
        o = self.med_orders.get(trade.chnl_ord_sn)
        if o is not None and o.notify_url:
            params = dict(self._notify_base(), trade_no=trade.trade_no, out_trade_no=trade.out_trade_no,
                          out_biz_no=orn, trade_status=trade.status, total_amount=str(trade.total),
                          refund_fee=str(trade.refunded), gmt_refund=channel_clock.text(now))
            self._send("refund", orn, o.notify_url, params)
        return self._refund_answer(trade, r, fund_change="Y")

    @staticmethod
    def _refund_answer(trade: Trade, r: Refund, fund_change: str) -> dict:
        return {"trade_no": trade.trade_no, "out_trade_no": trade.out_trade_no, "buyer_logon_id": "138******00",
                "buyer_user_id": trade.buyer_id, "fund_change": fund_change, "refund_fee": str(trade.refunded),
                "gmt_refund_pay": channel_clock.text(r.at), "out_request_no": r.out_request_no}

    def _refund_query(self, biz: dict) -> dict:
        trade = self._trade(biz)
        orn = str(biz.get("out_request_no") or trade.out_trade_no)
        r = self.refunds.get((trade.trade_no, orn))
        if r is None:
            return {}     # §7.5: code 10000 and nothing else = no such refund (yet)
        return {"trade_no": trade.trade_no, "out_trade_no": trade.out_trade_no, "out_request_no": orn,
                "refund_reason": r.reason, "total_amount": str(trade.total), "refund_amount": str(r.amount),
                "refund_status": r.status, "gmt_refund_pay": channel_clock.text(r.at)}

    # --- §9 messages -----------------------------------------------------------------------
    def _message(self, biz: dict) -> dict:
        _need(biz, "to_user_id", "user_template_id", "data")
        raw = biz["data"]
        try:
            data = json.loads(raw) if isinstance(raw, str) else None
        except ValueError:
            data = None
        if not isinstance(data, dict) or not all(isinstance(v, dict) and "value" in v for v in data.values()):
            raise AlipayError("40002", "isv.invalid-parameter", "data须为JSON字符串{\"keyword1\":{\"value\":\"...\"}}")
        self.sent_messages.append({"to_user_id": biz["to_user_id"], "user_template_id": biz["user_template_id"],
                                   "page": biz.get("page"), "form_id": biz.get("form_id"), "data": data,
                                   "at": channel_clock.text(datetime.now())})
        return {}

    # --- inspection -------------------------------------------------------------------------
    def public_order(self, o: MedOrder) -> dict:
        medical, own = self._status_of(o)
        return {"chnl_ord_sn": o.chnl_ord_sn, "api": o.api, "out_trade_no": o.out_trade_no,
                "pay_order_id": o.pay_order_id, "med_org_ord": o.med_org_ord, "total_amount": str(o.total),
                "gov_amount": str(o.gov), "account_amount": str(o.acct), "real_amount": str(o.real),
                "medical_pay_status": medical, "own_pay_status": own, "trade_no": o.trade_no,
                "pay_url": o.pay_url, "error_reason": o.error_reason, "notify_url": o.notify_url,
                **self._amounts(o)}

    def public(self) -> dict:
        with self.lock:
            return {"med_orders": {k: self.public_order(o) for k, o in self.med_orders.items()},
                    "trades": {k: t.view() for k, t in self.trades.items()},
                    "refunds": [{"trade_no": r.trade_no, "out_trade_no": r.out_trade_no,
                                 "out_request_no": r.out_request_no, "refund_amount": str(r.amount),
                                 "refund_status": r.status, "gmt_refund_pay": channel_clock.text(r.at)}
                                for r in self.refunds.values()],
                    "sent_messages": [dict(m) for m in self.sent_messages]}
