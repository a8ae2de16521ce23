"""WeChat Pay 医保 (channels.md §2, mobilepay.md §10): prepays, mixed orders, refunds, notices.

State (channels.md §10.1): `prepays[out_trade_no]`, `mix_orders[mix_trade_no]` (indexed by
out_trade_no), `refunds[out_refund_no]`, `med_refund_notices[(mix_trade_no, out_refund_no)]`.
The request signature is checked before anything here runs (channel_fronts.py); amounts are
integer fen.

The link to the centre (mobilepay.py): a mixed order names the centre's `pay_order_id`; at
creation its insurance fees must equal the centre's 6202 split (fund = med_ins_gov_fee, personal
account = med_ins_self_fee, cash = med_ins_cash_fee), its `serial_no` the medOrgOrd, its
`pay_auth_no` the one 6202 used, and the encrypted payer the insured person. When the patient
pays in the cashier (POST /__sim__/wechat/pay), the centre settles the insurance legs (ordStas 6,
6302 to the hospital) and the cash leg is charged here on the JSAPI prepay with the same
out_trade_no. Then `MEDICAL_INSURANCE.SUCCESS` goes to the order's callback_url and
`TRANSACTION.SUCCESS` to the prepay's notify_url (two callbacks, two URLs, §0.1 step 6).

Choices where channels.md is silent (docs/platform-choices.md, "Simulator: channels"):
* HTTP status and `code` per /v3/med-ins number (§10.4 item 8): 404 ORDER_NOT_EXIST for
  268529515, 400 ALREADY_EXISTS for 268512536 (mobilepay.md §8), 400 RULE_LIMIT for the amount
  checks and the bureau's 268510610, 400 PARAM_ERROR otherwise; the number is the tail of Request-ID.
* CASH_ONLY (§2.2 "the four med_ins_*_fee sum to 0"): the three insurance fees must be 0; the
  cash fee only has to satisfy the amount formulas.
* Amount formulas: total with wechat_pay_cash_fee + Σreduce -> 268529477, total with
  med_ins_cash_fee + Σadd -> 268529481, wechat_pay_cash_fee -> 268529476 (also a prepay whose
  amount differs).
* A reused out_refund_no with the same order, amount and total returns the refund unchanged;
  any difference is 400 INVALID_REQUEST (§2.6 says this is a design choice).
* A refund more than what is left: 400 INVALID_REQUEST. `trade_state` becomes REFUND after a
  refund succeeds (§2.1 [uncertain]).
* The mixed order after refunds (§2.8, §10.4 item 5): a part becomes *_REFUND only when all of
  it is refunded (cash by successful refunds, insurance by refund notices whose
  med_refund_total_fee = gov + self + other); MIX_PAY_REFUND when every part it has is refunded.
* `paid_time` RFC 3339 (W1; §10.4 item 16); `passthrough_response_content` a JSON string with
  the centre's payOrdId, ordStas and setlId (its real content is the bureau's, not public).
"""
from __future__ import annotations

import hashlib
import json
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Optional

from loguru import logger

from . import channel_clock, channel_crypto
from .channel_callbacks import ChannelCallbacks
from .channel_clock import ChannelClock
from .channel_ledger import Legs
from .config import SimulatorConfig
from .faults import Fault
from .mobilepay import MobilePay, MpcError, Order
from .persons import Persons
from .tokens import Tokens
from .wechatpay_wire import WireError, callback as sealed_callback
from .wire import dumps

MIX_PAY_TYPES = ("CASH_ONLY", "INSURANCE_ONLY", "CASH_AND_INSURANCE")
ORDER_TYPES = ("REG_PAY", "DIAG_PAY", "COVID_EXAM_PAY", "IN_HOSP_PAY", "PHARMACY_PAY", "INSURANCE_PAY",
               "INT_REG_PAY", "INT_RE_DIAG_PAY", "INT_RX_PAY", "COVID_ANTIGEN_PAY", "MED_PAY")
ADD_TYPES = ("DEFAULT_ADD_TYPE", "FREIGHT", "OTHER_MEDICAL_EXPENSES")
REDUCE_TYPES = ("DEFAULT_REDUCE_TYPE", "HOSPITAL_REDUCE", "PHARMACY_DISCOUNT", "DISCOUNT", "PRE_PAYMENT",
                "DEPOSIT_DEDUCTION")
INSURANCE_ORDER_FIELDS = ("pay_order_id", "pay_auth_no", "geo_location", "med_ins_order_create_time")

# §2.9 numbers -> (HTTP status, code, message); see the module note for the status/code choice.
MEDINS_ERRORS = {
    "268529515": (404, "ORDER_NOT_EXIST", "订单不存在"),
    "268512536": (400, "ALREADY_EXISTS", "订单已存在"),
    "268510603": (400, "PARAM_ERROR", "openid与appid不匹配"),
    "268545961": (400, "PARAM_ERROR", "证件号摘要与医保电子凭证绑定信息不一致"),
    "268545962": (400, "PARAM_ERROR", "姓名与医保电子凭证绑定信息不一致"),
    "268545963": (400, "PARAM_ERROR", "用户未绑定医保电子凭证"),
    "268547120": (400, "PARAM_ERROR", "PAY_AUTH_NO校验失败"),
    "268545967": (400, "PARAM_ERROR", "未找到对应授权信息"),
    "268510610": (400, "RULE_LIMIT", "医保局结算校验失败"),
    "268529477": (400, "RULE_LIMIT", "订单总金额校验失败"),
    "268529476": (400, "RULE_LIMIT", "自费金额校验失败"),
    "268529481": (400, "RULE_LIMIT", "混合支付金额校验失败"),
    "268529474": (400, "PARAM_ERROR", "纯自费订单字段组合错误"),
    "268529475": (400, "PARAM_ERROR", "医保订单字段组合错误"),
    "268560650": (400, "INVALID_REQUEST", "用户已输入密码，不能关单"),
    "268435461": (400, "PARAM_ERROR", "非法参数"),
}


def medins_error(number: str, message: Optional[str] = None) -> WireError:
    status, code, text = MEDINS_ERRORS[number]
    return WireError(status, code, message or text, number=number)


def param_error(message: str, field_name: Optional[str] = None) -> WireError:
    detail = {"location": "body", "field": field_name} if field_name else None
    return WireError(400, "PARAM_ERROR", message, detail=detail)


def _fen(value: Decimal) -> int:
    return int((value * 100).to_integral_value())


def _int(body: dict, name: str, required: bool = True, default: int = 0) -> int:
    v = body.get(name)
    if v is None:
        if required:
            raise param_error(f"缺少参数{name}", name)
        return default
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise param_error(f"{name}须为非负整数（分）", name)
    return v


def _str(body: dict, name: str, required: bool = True) -> str:
    v = body.get(name)
    if v in (None, ""):
        if required:
            raise param_error(f"缺少参数{name}", name)
        return ""
    if not isinstance(v, str):
        raise param_error(f"{name}须为字符串", name)
    return v


def _rfc3339_ok(text: str) -> bool:
    try:
        datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return False
    return "T" in text and (text.endswith("Z") or text[-6] in "+-")


@dataclass
class Prepay:
    out_trade_no: str
    appid: str
    mchid: str
    openid: str
    total: int
    description: str
    notify_url: str
    prepay_id: str
    attach: str = ""
    request_key: tuple = ()
    trade_state: str = "NOTPAY"
    transaction_id: str = ""
    success_at: Optional[datetime] = None
    ref: str = ""                   # the legs key: the centre payOrdId, else out_trade_no
    mix_trade_no: str = ""

    def view(self) -> dict:
        out: dict[str, Any] = {"appid": self.appid, "mchid": self.mchid, "out_trade_no": self.out_trade_no,
                               "trade_type": "JSAPI", "trade_state": self.trade_state,
                               "trade_state_desc": _TRADE_STATE_DESC.get(self.trade_state, ""),
                               "attach": self.attach, "payer": {"openid": self.openid},
                               "amount": {"total": self.total, "currency": "CNY"}}
        if self.success_at is not None:
            out.update({"transaction_id": self.transaction_id, "bank_type": "OTHERS",
                        "success_time": channel_clock.rfc3339(self.success_at)})
            out["amount"].update({"payer_total": self.total, "payer_currency": "CNY"})
        return out


_TRADE_STATE_DESC = {"NOTPAY": "未支付", "SUCCESS": "支付成功", "REFUND": "转入退款", "CLOSED": "已关闭",
                     "USERPAYING": "用户支付中", "PAYERROR": "支付失败"}


@dataclass
class MixOrder:
    mix_trade_no: str
    out_trade_no: str
    request: dict
    mix_pay_type: str
    pay_order_id: str
    ins_fen: int                      # gov + self + other
    cash_fen: int                     # wechat_pay_cash_fee
    mix_pay_status: str = "MIX_PAY_CREATED"
    self_pay_status: str = "SELF_PAY_CREATED"
    med_ins_pay_status: str = "MED_INS_PAY_CREATED"
    paid_time: str = ""
    passthrough_response_content: str = ""
    med_ins_fail_reason: str = ""
    ins_refunded_fen: int = 0

    def view(self) -> dict:
        out = {k: v for k, v in self.request.items() if k not in ("payer", "relative")}
        out.update({"mix_trade_no": self.mix_trade_no, "mix_pay_status": self.mix_pay_status,
                    "self_pay_status": self.self_pay_status, "med_ins_pay_status": self.med_ins_pay_status})
        if self.paid_time:
            out["paid_time"] = self.paid_time
        if self.passthrough_response_content:
            out["passthrough_response_content"] = self.passthrough_response_content
        if self.med_ins_pay_status == "MED_INS_PAY_FAIL":
            out["med_ins_fail_reason"] = self.med_ins_fail_reason
        return out


@dataclass
class Refund:
    refund_id: str
    out_refund_no: str
    transaction_id: str
    out_trade_no: str
    refund: int
    total: int
    created_at: datetime
    key: tuple
    notify_url: str = ""
    reason: str = ""
    by: str = "hospital"              # "centre" under the centre_returns_cash reading
    status: str = "PROCESSING"
    success_at: Optional[datetime] = None
    settle_after: float = 0.0         # epoch seconds; 0 = only by polls
    polls_left: Optional[int] = None  # a refund fault: settle after this many queries
    end_status: str = "SUCCESS"

    def view(self) -> dict:
        out: dict[str, Any] = {
            "refund_id": self.refund_id, "out_refund_no": self.out_refund_no,
            "transaction_id": self.transaction_id, "out_trade_no": self.out_trade_no, "channel": "ORIGINAL",
            "user_received_account": "支付用户零钱", "create_time": channel_clock.rfc3339(self.created_at),
            "status": self.status, "funds_account": "AVAILABLE",
            "amount": {"total": self.total, "refund": self.refund, "from": [], "payer_total": self.total,
                       "payer_refund": self.refund, "settlement_refund": self.refund,
                       "settlement_total": self.total, "discount_refund": 0, "currency": "CNY",
                       "refund_fee": 0},
            "promotion_detail": []}
        if self.success_at is not None:
            out["success_time"] = channel_clock.rfc3339(self.success_at)
        return out


class WeChatPay:
    def __init__(self, cfg: SimulatorConfig, mobilepay: MobilePay, tokens: Tokens, persons: Persons,
                 legs: Legs, callbacks: ChannelCallbacks, clock: ChannelClock) -> None:
        self.cfg = cfg
        self.mobilepay = mobilepay
        self.tokens = tokens
        self.persons = persons
        self.legs = legs
        self.callbacks = callbacks
        self.clock = clock
        # One lock with the centre: a payment here settles there, and a 6203 there may return
        # cash here (centre_returns_cash); two locks could deadlock.
        self.lock = mobilepay.lock
        self._generation = 0
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self._generation += 1
            self.prepays: dict[str, Prepay] = {}
            self.prepay_ids: dict[str, str] = {}
            self.transactions: dict[str, str] = {}
            self.mix_orders: dict[str, MixOrder] = {}
            self.mix_by_out_trade_no: dict[str, str] = {}
            self.refunds: dict[str, Refund] = {}
            self.med_refund_notices: dict[tuple[str, str], dict] = {}
            self.used_auth: dict[str, str] = {}
            self.centre_returns: list[dict] = []

    # --- dispatch ----------------------------------------------------------------------
    def handle(self, interface: str, params: dict, query: dict, body: Optional[dict], headers: Any,
               fault: Optional[Fault]) -> tuple[int, Optional[dict]]:
        with self.lock:
            if interface == "wechat.jsapi":
                return 200, self._jsapi(body or {})
            if interface == "wechat.transaction_query":
                return 200, self._transaction_query(params, query)
            if interface == "wechat.close":
                return self._close(params["out_trade_no"], body or {})
            if interface == "wechat.medins_order":
                return 200, self._mix_create(body or {}, headers)
            if interface == "wechat.medins_query":
                return 200, self._mix_find(params).view()
            if interface == "wechat.medins_refund_notify":
                return self._med_refund_notify(query, body or {})
            if interface == "wechat.refund":
                return 200, self._refund(body or {}, fault)
            if interface == "wechat.refund_query":
                return 200, self._refund_query(params["out_refund_no"])
            if interface == "wechat.abnormal_refund":
                return 200, self._abnormal_refund(params["refund_id"], body or {})
        raise WireError(404, "NOT_FOUND", "接口不存在")

    # --- JSAPI prepay (§2.1) -----------------------------------------------------------
    def _jsapi(self, body: dict) -> dict:
        appid, mchid = _str(body, "appid"), _str(body, "mchid")
        if appid != self.cfg.wechat_appid:
            raise param_error("appid与商户号未绑定", "appid")
        if mchid != self.cfg.wechat_mchid:
            raise param_error("mchid与请求头不一致", "mchid")
        out_trade_no = _str(body, "out_trade_no")
        if not 6 <= len(out_trade_no) <= 32:
            raise param_error("out_trade_no长度须为6-32", "out_trade_no")
        description, notify_url = _str(body, "description"), _str(body, "notify_url")
        amount = body.get("amount")
        payer = body.get("payer")
        if not isinstance(amount, dict) or not isinstance(payer, dict):
            raise param_error("缺少参数amount或payer")
        total = _int(amount, "total")
        if total <= 0:
            raise param_error("amount.total须大于0", "amount.total")
        if amount.get("currency", "CNY") != "CNY":
            raise param_error("currency须为CNY", "amount.currency")
        openid = _str(payer, "openid")
        key = (appid, openid, total, description)
        prior = self.prepays.get(out_trade_no)
        if prior is not None:
            if prior.trade_state in ("SUCCESS", "REFUND"):
                raise WireError(400, "ORDER_PAID", "该订单已支付")
            if prior.trade_state != "NOTPAY" or prior.request_key != key:
                raise WireError(400, "INVALID_REQUEST", "商户订单号重复，请求参数与原订单不一致")
            return {"prepay_id": prior.prepay_id}
        prepay_id = "wx" + time.strftime("%d%H%M%S") + secrets.token_hex(12)
        p = Prepay(out_trade_no, appid, mchid, openid, total, description, notify_url, prepay_id,
                   attach=str(body.get("attach") or ""), request_key=key, ref=out_trade_no)
        self.prepays[out_trade_no] = p
        self.prepay_ids[prepay_id] = out_trade_no
        return {"prepay_id": prepay_id}

    def _transaction_query(self, params: dict, query: dict) -> dict:
        if query.get("mchid") != self.cfg.wechat_mchid:
            raise param_error("mchid与请求头不一致", "mchid")
        otn = params.get("out_trade_no") or self.transactions.get(params.get("transaction_id", ""))
        p = self.prepays.get(otn or "")
        if p is None:
            raise WireError(404, "ORDER_NOT_EXIST", "订单不存在")
        return p.view()

    def _close(self, out_trade_no: str, body: dict) -> tuple[int, None]:
        if body.get("mchid") != self.cfg.wechat_mchid:
            raise param_error("mchid与请求头不一致", "mchid")
        p = self.prepays.get(out_trade_no)
        if p is None:
            raise WireError(404, "ORDER_NOT_EXIST", "订单不存在")
        mix = self.mix_orders.get(self.mix_by_out_trade_no.get(out_trade_no, ""))
        if mix is not None and mix.mix_pay_status == "MIX_PAY_USER_PAYING":
            raise medins_error("268560650")
        if p.trade_state in ("SUCCESS", "REFUND"):
            raise WireError(400, "ORDER_PAID", "订单已支付，不能关单")
        p.trade_state = "CLOSED"
        return 204, None

    # --- mixed order (§2.2) ------------------------------------------------------------
    def _mix_create(self, body: dict, headers: Any) -> dict:
        serial = str(headers.get("Wechatpay-Serial") or "")
        if serial != self.cfg.wechat_platform_serial:
            raise WireError(400, "PARAM_ERROR", "Wechatpay-Serial缺失或不是有效的微信支付公钥ID",
                            detail={"location": "header", "field": "Wechatpay-Serial"})
        mix_type = _str(body, "mix_pay_type")
        if mix_type not in MIX_PAY_TYPES:
            raise param_error("mix_pay_type取值错误", "mix_pay_type")
        if _str(body, "order_type") not in ORDER_TYPES:
            raise param_error("order_type取值错误", "order_type")
        if _str(body, "appid") != self.cfg.wechat_appid:
            raise param_error("appid与商户号未绑定", "appid")
        _str(body, "openid")
        out_trade_no = _str(body, "out_trade_no")
        callback_url = _str(body, "callback_url")
        if "?" in callback_url or not callback_url.startswith(("https://", "http://")):
            raise param_error("callback_url须为不带参数的URL", "callback_url")
        total = _int(body, "total_fee")
        gov, self_fee, other = (_int(body, n, required=False) for n in
                                ("med_ins_gov_fee", "med_ins_self_fee", "med_ins_other_fee"))
        ins_cash = _int(body, "med_ins_cash_fee", required=False)
        cash = _int(body, "wechat_pay_cash_fee", required=False)
        adds = self._details(body, "cash_add_detail", "cash_add_fee", "cash_add_type", ADD_TYPES)
        reduces = self._details(body, "cash_reduce_detail", "cash_reduce_fee", "cash_reduce_type", REDUCE_TYPES)
        if out_trade_no in self.mix_by_out_trade_no:
            raise medins_error("268512536")
        prepay_id = body.get("prepay_id")
        has_ins_fields = [n for n in INSURANCE_ORDER_FIELDS if body.get(n) not in (None, "")]
        if mix_type == "CASH_ONLY":
            if cash <= 0 or not prepay_id or gov + self_fee + other != 0 or has_ins_fields:
                raise medins_error("268529474")
        else:
            if len(has_ins_fields) != len(INSURANCE_ORDER_FIELDS):
                raise medins_error("268529475", "医保订单须传pay_order_id、pay_auth_no、geo_location、"
                                                "med_ins_order_create_time")
            if mix_type == "INSURANCE_ONLY" and (cash != 0 or prepay_id):
                raise medins_error("268529475")
            if mix_type == "CASH_AND_INSURANCE" and (cash <= 0 or not prepay_id):
                raise medins_error("268529475")
        # mobilepay.md §10 amount rules (fen)
        if total != gov + self_fee + other + cash + reduces:
            raise medins_error("268529477")
        if total != gov + self_fee + other + ins_cash + adds:
            raise medins_error("268529481")
        if cash != ins_cash + adds - reduces:
            raise medins_error("268529476")
        prepay = None
        if cash > 0:
            otn = self.prepay_ids.get(str(prepay_id))
            prepay = self.prepays.get(otn or "")
            if prepay is None or otn != out_trade_no:
                raise medins_error("268529476", "prepay_id不存在或与out_trade_no不对应")
            if prepay.total != cash:
                raise medins_error("268529476", "预下单金额与wechat_pay_cash_fee不一致")
            if prepay.trade_state != "NOTPAY":
                raise param_error("预下单状态不允许下单", "prepay_id")
            if prepay.openid != body["openid"]:
                raise medins_error("268510603")
        centre: Optional[Order] = None
        if mix_type != "CASH_ONLY":
            centre = self._check_centre(body, gov, self_fee, other, ins_cash)
        mix_trade_no = time.strftime("%Y%m%d%H%M%S") + channel_crypto.random_digits(18)
        mix = MixOrder(mix_trade_no, out_trade_no, dict(body), mix_type,
                       centre.pay_ord_id if centre else "", gov + self_fee + other, cash)
        if cash == 0:
            mix.self_pay_status = "NO_SELF_PAY"
        if mix_type == "CASH_ONLY":
            mix.med_ins_pay_status = "NO_MED_INS_PAY"
        self.mix_orders[mix_trade_no] = mix
        self.mix_by_out_trade_no[out_trade_no] = mix_trade_no
        if centre is not None:
            centre.channel, centre.channel_ref = "wechat", mix_trade_no
            self.used_auth[str(body["pay_auth_no"])] = mix_trade_no
        if prepay is not None:
            prepay.mix_trade_no = mix_trade_no
            prepay.ref = centre.pay_ord_id if centre else out_trade_no
        return mix.view()

    @staticmethod
    def _details(body: dict, name: str, fee: str, kind: str, kinds: tuple) -> int:
        items = body.get(name) or []
        if not isinstance(items, list):
            raise param_error(f"{name}须为数组", name)
        total = 0
        for item in items:
            if not isinstance(item, dict) or item.get(kind) not in kinds:
                raise param_error(f"{name}.{kind}取值错误", name)
            total += _int(item, fee)
        return total

    def _check_centre(self, body: dict, gov: int, self_fee: int, other: int, ins_cash: int) -> Order:
        """The bureau's side of the mixed order: the centre order, its split, the auth, the payer."""
        order = self.mobilepay.orders.get(str(body["pay_order_id"]))
        if order is None or order.ord_stas not in ("1", "2"):
            raise medins_error("268510610", "医保订单不存在或状态不允许支付")
        if order.channel:
            raise medins_error("268510610", "医保订单已关联其他渠道订单")
        if body.get("serial_no") != order.med_org_ord:
            raise medins_error("268510610", "serial_no与医保订单的医疗机构订单号不一致")
        if body.get("med_inst_no") not in (None, "", order.org_codg):
            raise medins_error("268510610", "med_inst_no与医保订单的定点机构不一致")
        if (gov, self_fee, other, ins_cash) != (_fen(order.fund), _fen(order.acct), 0, _fen(order.cash)):
            raise medins_error("268510610", "医保预结算金额与订单金额不一致")
        if not _rfc3339_ok(str(body["med_ins_order_create_time"])):
            raise param_error("med_ins_order_create_time须为RFC3339格式", "med_ins_order_create_time")
        auth = str(body["pay_auth_no"])
        tok = self.tokens.find("payAuthNo", auth)
        if tok is None or tok.psn_no != order.psn_no or auth != order.pay_auth_no:
            raise medins_error("268547120")
        if tok.expires_at < time.time() or auth in self.used_auth:
            raise medins_error("268545967")
        self._check_passthrough(body, order, auth)
        person = self.persons.get(order.psn_no)
        who = body.get("relative") if body.get("pay_for_relatives") else body.get("payer")
        if not isinstance(who, dict) or not who.get("name") or not who.get("id_digest"):
            raise medins_error("268435461", "缺少payer.name或payer.id_digest")
        try:
            name = channel_crypto.oaep_decrypt(self.cfg.wechat_platform_private_key or "", str(who["name"]))
            digest = channel_crypto.oaep_decrypt(self.cfg.wechat_platform_private_key or "",
                                                 str(who["id_digest"]))
        except channel_crypto.CryptoError:
            raise medins_error("268435461", "敏感字段解密失败") from None
        if person is None or digest != hashlib.md5(person.certno.upper().encode()).hexdigest():
            raise medins_error("268545961")
        if name != person.psn_name:
            raise medins_error("268545962")
        return order

    @staticmethod
    def _check_passthrough(body: dict, order: Order, auth: str) -> None:
        """mobilepay.md §10: passthrough_request_content must carry payAuthNo, payOrdId, setlLatlnt."""
        raw = body.get("passthrough_request_content")
        try:
            content = json.loads(raw) if isinstance(raw, str) and len(raw.encode("utf-8")) <= 2048 else None
        except ValueError:
            content = None
        if not isinstance(content, dict) or any(not content.get(k) for k in ("payAuthNo", "payOrdId", "setlLatlnt")):
            raise medins_error("268545967", "未找到对应授权信息（passthrough_request_content须含payAuthNo、payOrdId、"
                                            "setlLatlnt）")
        if content["payAuthNo"] != auth or content["payOrdId"] != order.pay_ord_id:
            raise medins_error("268545967")

    def _mix_find(self, params: dict) -> MixOrder:
        mtn = params.get("mix_trade_no") or self.mix_by_out_trade_no.get(params.get("out_trade_no", ""), "")
        mix = self.mix_orders.get(mtn)
        if mix is None:
            raise medins_error("268529515")
        return mix

    # --- the patient pays in the cashier (control) -------------------------------------
    def pay(self, body: dict) -> dict:
        """POST /__sim__/wechat/pay {"mix_trade_no" | "out_trade_no", "outcome"?, paySign...}.

        outcome: "success" (default); "insurance_fail" (cash taken, insurance failed:
        MIX_PAY_FAIL + SELF_PAY_SUCCESS, §2.4); "user_paying" (password being entered, nothing
        moves); "abandon" (the user leaves; the order stays as it is). With "paySign" (and
        timeStamp, nonceStr, package) the cashier checks it like wx.requestMedicalInsurancePay."""
        outcome = str(body.get("outcome") or "success")
        if outcome not in ("success", "insurance_fail", "user_paying", "abandon"):
            raise ValueError("outcome must be success, insurance_fail, user_paying or abandon")
        events: list[tuple] = []
        with self.lock:
            mix = self.mix_orders.get(str(body.get("mix_trade_no") or "")) or self.mix_orders.get(
                self.mix_by_out_trade_no.get(str(body.get("out_trade_no") or ""), ""))
            prepay = self.prepays.get(mix.out_trade_no if mix else str(body.get("out_trade_no") or ""))
            if mix is None and prepay is None:
                raise LookupError("no such mixed order or prepay")
            if mix is not None and mix.cash_fen == 0:
                prepay = None
            if body.get("paySign") is not None:
                self._check_pay_sign(body, prepay)
            if outcome == "abandon":
                return self._paid_view(mix, prepay)
            if mix is None:
                events += self._pay_cash_only(prepay)
            else:
                events += self._pay_mixed(mix, prepay, outcome)
            result = self._paid_view(mix, prepay)
        for event in events:
            self._send(*event)
        return result

    def _check_pay_sign(self, body: dict, prepay: Optional[Prepay]) -> None:
        """§1.7: appId\\ntimeStamp\\nnonceStr\\npackage\\n, SHA256withRSA with the merchant key."""
        package = str(body.get("package") or "")
        if prepay is None or package != "prepay_id=" + prepay.prepay_id:
            raise ValueError("package does not name this order's prepay_id")
        text = f"{self.cfg.wechat_appid}\n{body.get('timeStamp')}\n{body.get('nonceStr')}\n{package}\n"
        if not channel_crypto.rsa_verify(self.cfg.wechat_merchant_public_key or "", text.encode("utf-8"),
                                         str(body["paySign"])):
            raise ValueError("paySign does not verify")

    def _paid_view(self, mix: Optional[MixOrder], prepay: Optional[Prepay]) -> dict:
        return {"mix_order": mix.view() if mix else None, "transaction": prepay.view() if prepay else None}

    def _pay_cash_only(self, prepay: Prepay) -> list[tuple]:
        if prepay.trade_state != "NOTPAY":
            raise ValueError(f"the prepay is {prepay.trade_state}")
        self._take_cash(prepay)
        return [self._transaction_event(prepay)]

    def _pay_mixed(self, mix: MixOrder, prepay: Optional[Prepay], outcome: str) -> list[tuple]:
        if mix.mix_pay_status not in ("MIX_PAY_CREATED", "MIX_PAY_USER_PAYING"):
            raise ValueError(f"the mixed order is {mix.mix_pay_status}")
        if outcome == "user_paying":
            mix.mix_pay_status = "MIX_PAY_USER_PAYING"
            return []
        now = self.clock.now()
        if prepay is not None and prepay.trade_state != "NOTPAY":
            self._fail(mix, f"自费订单状态为{prepay.trade_state}", cash_taken=False)
            return []
        centre: Optional[Order] = None
        if mix.mix_pay_type != "CASH_ONLY" and outcome == "success":
            try:
                centre = self.mobilepay.settle_for_channel(mix.pay_order_id)
            except MpcError as exc:
                self._fail(mix, exc.message, cash_taken=False)
                return []
        events: list[tuple] = []
        if prepay is not None:
            self._take_cash(prepay)
            events.append(self._transaction_event(prepay))
        if outcome == "insurance_fail":
            self._fail(mix, "医保结算失败（模拟）", cash_taken=prepay is not None)
            return events
        mix.mix_pay_status = "MIX_PAY_SUCCESS"
        mix.self_pay_status = "SELF_PAY_SUCCESS" if prepay is not None else "NO_SELF_PAY"
        mix.med_ins_pay_status = "MED_INS_PAY_SUCCESS" if centre is not None else "NO_MED_INS_PAY"
        mix.paid_time = channel_clock.rfc3339(now)
        if centre is not None:
            mix.passthrough_response_content = dumps({"payOrdId": centre.pay_ord_id, "ordStas": centre.ord_stas,
                                                      "setlId": centre.setl_id})
        # The mixed callback first, then the cash one (an out_of_order fault swaps them).
        return [self._medins_event(mix)] + events

    def _fail(self, mix: MixOrder, reason: str, cash_taken: bool) -> None:
        mix.mix_pay_status = "MIX_PAY_FAIL"
        if mix.cash_fen:
            mix.self_pay_status = "SELF_PAY_SUCCESS" if cash_taken else "SELF_PAY_FAIL"
        if mix.mix_pay_type != "CASH_ONLY":
            mix.med_ins_pay_status = "MED_INS_PAY_FAIL"
            mix.med_ins_fail_reason = reason

    def _take_cash(self, prepay: Prepay) -> None:
        prepay.trade_state = "SUCCESS"
        prepay.success_at = self.clock.now()
        prepay.transaction_id = "42000" + prepay.success_at.strftime("%Y%m%d") + channel_crypto.random_digits(15)
        self.transactions[prepay.transaction_id] = prepay.out_trade_no
        self.legs.cash_charge("wechat", prepay.ref, Decimal(prepay.total) / 100, key=prepay.transaction_id,
                              out_trade_no=prepay.out_trade_no)

    # --- callbacks ---------------------------------------------------------------------
    def _medins_event(self, mix: MixOrder) -> tuple:
        resource = {k: v for k, v in mix.view().items() if k != "med_ins_fail_reason"}
        return ("wechat.notify.medins", "MEDICAL_INSURANCE.SUCCESS", mix.mix_trade_no,
                str(mix.request.get("callback_url")), resource, None, "medical_insurance", "医保混合收款成功")

    def _transaction_event(self, p: Prepay) -> tuple:
        resource = dict(p.view(), trade_state="SUCCESS")
        return ("wechat.notify.transaction", "TRANSACTION.SUCCESS", p.out_trade_no, p.notify_url, resource,
                "transaction", "transaction", "支付成功")

    def _refund_event(self, r: Refund) -> tuple:
        resource = {"mchid": self.cfg.wechat_mchid, "transaction_id": r.transaction_id,
                    "out_trade_no": r.out_trade_no, "refund_id": r.refund_id, "out_refund_no": r.out_refund_no,
                    "refund_status": r.status, "user_received_account": "支付用户零钱",
                    "amount": {"total": r.total, "refund": r.refund, "payer_total": r.total,
                               "payer_refund": r.refund}}
        if r.success_at is not None:
            resource["success_time"] = channel_clock.rfc3339(r.success_at)
        summary = {"SUCCESS": "退款成功", "ABNORMAL": "退款异常", "CLOSED": "退款关闭"}[r.status]
        return ("wechat.notify.refund", "REFUND." + r.status, r.out_refund_no, r.notify_url, resource,
                "refund", "refund", summary)

    def _send(self, interface: str, event_type: str, key: str, url: str, resource: dict,
              original_type: Optional[str], aad: str, summary: str) -> None:
        event_id = "EV-" + time.strftime("%Y%m%d%H%M%S") + channel_crypto.random_digits(8)

        def build(fault: Optional[str]) -> tuple[bytes, dict]:
            return sealed_callback(self.cfg, event_type, resource, original_type, aad, summary,
                                   event_id=event_id, fault=fault)
        self.callbacks.enqueue("wechat", interface, event_type, key, url, build)

    # --- cash refunds (§2.6) -----------------------------------------------------------
    def _refund(self, body: dict, fault: Optional[Fault]) -> dict:
        orn = _str(body, "out_refund_no")
        if not 1 <= len(orn) <= 64:
            raise param_error("out_refund_no长度须为1-64", "out_refund_no")
        tid, otn = body.get("transaction_id"), body.get("out_trade_no")
        p = self.prepays.get(self.transactions.get(str(tid), "") if tid else str(otn or ""))
        amount = body.get("amount")
        if not isinstance(amount, dict):
            raise param_error("缺少参数amount", "amount")
        refund, total = _int(amount, "refund"), _int(amount, "total")
        if amount.get("currency", "CNY") != "CNY":
            raise param_error("currency须为CNY", "amount.currency")
        if p is None:
            raise WireError(404, "ORDER_NOT_EXIST", "订单不存在")
        key = (p.out_trade_no, refund, total)
        prior = self.refunds.get(orn)
        if prior is not None:
            if prior.key != key:
                raise WireError(400, "INVALID_REQUEST", "out_refund_no已使用，请求参数与原退款不一致")
            self._advance(prior, poll=False)
            return prior.view()
        if p.trade_state not in ("SUCCESS", "REFUND"):
            raise WireError(400, "INVALID_REQUEST", "订单未支付，不能退款")
        if total != p.total:
            raise param_error("amount.total与原订单金额不一致", "amount.total")
        if refund <= 0:
            raise param_error("amount.refund须大于0", "amount.refund")
        if refund > p.total - self._reserved(p.out_trade_no):
            raise WireError(400, "INVALID_REQUEST", "申请退款金额超过订单可退金额")
        r = self._new_refund(p, orn, refund, key, str(body.get("notify_url") or ""), "hospital")
        r.reason = str(body.get("reason") or "")
        kind = fault.fault if fault else None
        if kind in ("refund_processing", "refund_abnormal", "refund_closed"):
            r.settle_after = 0.0
            r.polls_left = int(fault.code) if fault.code else 2
            r.end_status = {"refund_processing": "SUCCESS", "refund_abnormal": "ABNORMAL",
                            "refund_closed": "CLOSED"}[kind]
        else:
            self._arm_timer(r)
        return r.view()

    def _new_refund(self, p: Prepay, orn: str, refund: int, key: tuple, notify_url: str, by: str) -> Refund:
        now = self.clock.now()
        r = Refund("50" + now.strftime("%Y%m%d") + channel_crypto.random_digits(19), orn, p.transaction_id,
                   p.out_trade_no, refund, p.total, now, key, notify_url=notify_url, by=by,
                   settle_after=time.time() + self.cfg.wechat_refund_settle_seconds)
        self.refunds[orn] = r
        return r

    def _reserved(self, out_trade_no: str) -> int:
        return sum(r.refund for r in self.refunds.values()
                   if r.out_trade_no == out_trade_no and r.status in ("PROCESSING", "SUCCESS", "ABNORMAL"))

    def _arm_timer(self, r: Refund) -> None:
        generation = self._generation
        delay = max(0.0, r.settle_after - time.time())

        def fire() -> None:
            events: list[tuple] = []
            with self.lock:
                if generation == self._generation and r.status == "PROCESSING" and r.polls_left is None:
                    events = self._settle(r)
            for e in events:
                self._send(*e)
        t = threading.Timer(delay, fire)
        t.daemon = True
        t.start()

    def _advance(self, r: Refund, poll: bool) -> None:
        events: list[tuple] = []
        if r.status == "PROCESSING":
            if r.polls_left is not None:
                if poll:
                    r.polls_left -= 1
                if r.polls_left <= 0:
                    events = self._settle(r)
            elif r.settle_after and time.time() >= r.settle_after:
                events = self._settle(r)
        for e in events:   # enqueue only: delivery happens on the callbacks thread
            self._send(*e)

    def _settle(self, r: Refund) -> list[tuple]:
        r.status = r.end_status
        r.polls_left = None
        p = self.prepays[r.out_trade_no]
        if r.status == "SUCCESS":
            r.success_at = self.clock.now()
            self.legs.cash_refund("wechat", p.ref, Decimal(r.refund) / 100, key=r.out_refund_no, by=r.by,
                                  out_trade_no=p.out_trade_no)
            p.trade_state = "REFUND"
            mix = self.mix_orders.get(p.mix_trade_no)
            if mix is not None:
                self._restate(mix)
        return [self._refund_event(r)] if r.notify_url else []

    def _refund_query(self, out_refund_no: str) -> dict:
        r = self.refunds.get(out_refund_no)
        if r is None:
            raise WireError(404, "RESOURCE_NOT_EXISTS", "退款单不存在")
        self._advance(r, poll=True)
        return r.view()

    def _abnormal_refund(self, refund_id: str, body: dict) -> dict:
        r = next((x for x in self.refunds.values() if x.refund_id == refund_id), None)
        if r is None or r.out_refund_no != body.get("out_refund_no"):
            raise WireError(404, "RESOURCE_NOT_EXISTS", "退款单不存在")
        if r.status != "ABNORMAL":
            raise WireError(400, "INVALID_REQUEST", "退款单状态不是ABNORMAL")
        r.status, r.end_status, r.polls_left = "PROCESSING", "SUCCESS", None
        r.settle_after = time.time() + self.cfg.wechat_refund_settle_seconds
        self._arm_timer(r)
        return r.view()

    # --- the insurance refund notify (§2.7) ---------------------------------------------
    def _med_refund_notify(self, query: dict, body: dict) -> tuple[int, None]:
        mix = self.mix_orders.get(str(query.get("mix_trade_no") or ""))
        if mix is None:
            raise medins_error("268529515")
        fees = [_int(body, n) for n in ("med_refund_total_fee", "med_refund_gov_fee", "med_refund_self_fee",
                                        "med_refund_other_fee")]
        refund_time, orn = _str(body, "refund_time"), _str(body, "out_refund_no")
        if not _rfc3339_ok(refund_time):
            raise param_error("refund_time须为RFC3339格式", "refund_time")
        if fees[0] != fees[1] + fees[2] + fees[3]:
            raise param_error("med_refund_total_fee须等于统筹、个账、其他退款之和", "med_refund_total_fee")
        notice = {"med_refund_total_fee": fees[0], "med_refund_gov_fee": fees[1], "med_refund_self_fee": fees[2],
                  "med_refund_other_fee": fees[3], "refund_time": refund_time, "out_refund_no": orn}
        prior = self.med_refund_notices.get((mix.mix_trade_no, orn))
        if prior is not None:
            if {k: v for k, v in prior.items() if k != "received_at"} != notice:
                raise WireError(400, "INVALID_REQUEST", "out_refund_no已通知，内容不一致")
            return 204, None
        if mix.med_ins_pay_status not in ("MED_INS_PAY_SUCCESS", "MED_INS_PAY_REFUND"):
            raise WireError(400, "INVALID_REQUEST", "医保部分未支付成功，不能通知退款")
        req = mix.request
        if (mix.ins_refunded_fen + fees[0] > mix.ins_fen or fees[1] > req.get("med_ins_gov_fee", 0)
                or fees[2] > req.get("med_ins_self_fee", 0) or fees[3] > req.get("med_ins_other_fee", 0)):
            raise WireError(400, "INVALID_REQUEST", "医保退款金额超过医保支付金额")
        mix.ins_refunded_fen += fees[0]
        self.med_refund_notices[(mix.mix_trade_no, orn)] = dict(notice, received_at=channel_clock.text(
            self.clock.now()))
        self._restate(mix)
        return 204, None

    def _restate(self, mix: MixOrder) -> None:
        if mix.mix_pay_status not in ("MIX_PAY_SUCCESS", "MIX_PAY_REFUND"):
            return
        if mix.cash_fen:
            refunded = sum(r.refund for r in self.refunds.values()
                           if r.out_trade_no == mix.out_trade_no and r.status == "SUCCESS")
            if refunded >= mix.cash_fen:
                mix.self_pay_status = "SELF_PAY_REFUND"
        if mix.ins_fen and mix.ins_refunded_fen >= mix.ins_fen:
            mix.med_ins_pay_status = "MED_INS_PAY_REFUND"
        if (mix.self_pay_status in ("SELF_PAY_REFUND", "NO_SELF_PAY")
                and mix.med_ins_pay_status in ("MED_INS_PAY_REFUND", "NO_MED_INS_PAY")):
            mix.mix_pay_status = "MIX_PAY_REFUND"

    # --- the centre_returns_cash reading (§2.7, §10.4 item 4) -----------------------------
    def centre_cash_return(self, order: Order, cash: Decimal, app_refd_sn: str, refd_type: str) -> None:
        """Called by the centre's 6203 (under the shared lock) when it names cash.

        Under "hospital_refunds_cash" (the default, channels.md §2.7's conservative reading) the
        centre moves no cash. Under "centre_returns_cash" the WeChat side gives the cash of the
        mixed order back itself, as a refund `by: centre`, reducing what is left to refund; a
        hospital that also refunds then finds nothing left (or, partially, refunds twice, which
        the legs show)."""
        if self.cfg.wechat_cash_after_6203 != "centre_returns_cash" or order.channel != "wechat":
            return
        mix = self.mix_orders.get(order.channel_ref)
        p = self.prepays.get(mix.out_trade_no) if mix else None
        record = {"payOrdId": order.pay_ord_id, "appRefdSn": app_refd_sn, "refdType": refd_type,
                  "cash": str(cash), "done": False, "reason": ""}
        self.centre_returns.append(record)
        amount = _fen(cash)
        if p is None or p.trade_state not in ("SUCCESS", "REFUND"):
            record["reason"] = "no paid cash leg in WeChat"
        elif amount > p.total - self._reserved(p.out_trade_no):
            record["reason"] = "more than what is left to refund in WeChat"
        else:
            r = self._new_refund(p, "CENTRE" + app_refd_sn, amount, (p.out_trade_no, amount, p.total), "", "centre")
            self._settle(r)
            record["done"] = True
            record["out_refund_no"] = r.out_refund_no
        if not record["done"]:
            logger.info("simulated centre could not return cash for {}: {}", order.pay_ord_id, record["reason"])

    # --- inspection ----------------------------------------------------------------------
    def public(self) -> dict:
        with self.lock:
            return {
                "prepays": {k: dict(p.view(), prepay_id=p.prepay_id, notify_url=p.notify_url,
                                    mix_trade_no=p.mix_trade_no) for k, p in self.prepays.items()},
                "mix_orders": {k: m.view() for k, m in self.mix_orders.items()},
                "refunds": {k: dict(r.view(), by=r.by, notify_url=r.notify_url) for k, r in self.refunds.items()},
                "med_refund_notices": [dict(v, mix_trade_no=k[0]) for k, v in self.med_refund_notices.items()],
                "centre_cash_returns": [dict(x) for x in self.centre_returns],
            }
