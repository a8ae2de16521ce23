"""Alipay OpenAPI client (classic gateway) for 医保 payments, refunds, bills and messages.

Two steps per call (bridge/calls.py): ``prepare_*`` builds the common parameters and
``biz_content``, signs them (RSA2, §6.2) and returns a PreparedCall without I/O;
``send`` POSTs the form and classifies with outcomes.py:

* OK       - HTTP 200, the ``<method>_response`` node verifies over its raw text (§6.3),
             ``code`` 10000, and the business object is usable and agrees with the request;
             for the medical APIs, their ``data`` / ``result_data`` is present;
* REJECTED - a verified (or, with ``unsigned_errors = "accept"``, unsigned) answer whose
             code is not 10000, unless the table says otherwise; a medical API's
             ``result_code`` without data;
* UNKNOWN  - timeout or reset after sending, HTTP errors, 20000 / ACQ.SYSTEM_ERROR, a
             signed answer that does not verify, an unsigned 10000, an unusable body,
             ACQ.DISCORDANT_REPEAT_REQUEST, and a refund without ``fund_change=Y``;
* NOT_SENT - the connection never opened.
"""
from __future__ import annotations

import json
import os
import secrets
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Mapping, Optional
from urllib.parse import urlencode

import httpx
from loguru import logger

from bridge.calls import CallResult, Outcome, PreparedCall
from bridge.masking import NAME_FIELDS, mask_name, mask_text, mask_value
from bridge.tls import client_context

from . import outcomes as oc
from .config import AlipayConfig
from .messages import (CHINA, AuthInfo, AuthQueryRequest, BillUrl, DownloadedBill, MedicalOrder,
                       MedicalOrderRequest, MedicalPayment, MedicalQueryRequest, RefundRequest, RefundResult,
                       RefundState, TemplateMessageRequest, Trade, alipay_time)
from .signing import SignedResponse, VerificationError, rsa2_sign, sign_content

SUCCESS = "10000"
# Credentials mask_value does not know: the channel certification code, and the e-voucher
# authorisation carried as medical_card_id in the §7.3 variant (pay_auth_no is known to it).
_EXTRA_SECRETS = ("org_chnl_crtf_code", "medical_card_id", "auth_no")


def _masked(obj: Any) -> Any:
    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: ("***" if k in _EXTRA_SECRETS else strip(v)) for k, v in value.items()}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value
    return mask_value(strip(obj))


MSG_ID_MAX = 64     # mi_journal.msg_id and mi_outbox.current_call are VARCHAR(64)


def message_id(method: str) -> str:
    """The journal's id of one call: the method without its "alipay." and 24 random hex
    digits.  Alipay's method names run to 46 characters
    (alipay.data.dataservice.bill.downloadurl.query): with the prefix and the suffix they
    would not fit the journal's 64 (the call is then never journalled, so never sent)."""
    name = method[len("alipay."):] if method.startswith("alipay.") else method
    return f"{name[-(MSG_ID_MAX - 25):]}-{secrets.token_hex(12)}"


@dataclass(frozen=True)
class AlipayError:
    code: Optional[str]
    msg: Optional[str]
    sub_code: Optional[str]
    sub_msg: Optional[str]
    signed: bool


@dataclass
class _Answer:
    """PreparedCall.decode: (HTTP status, body) -> CallResult."""

    client: "AlipayClient"
    interface: str
    msg_id: str
    parse: Callable[[Mapping[str, Any]], Any]
    wrapper: Optional[str]                  # "data" / "result_data" for the medical APIs
    check: Optional[Callable[[Any], Optional[str]]]
    method: str = ""                        # the Alipay method (its answer is "<method>_response")

    def __call__(self, status: int, content: bytes, headers: Any = None) -> CallResult:
        return self.client._decode(self, status, content)


class AlipayClient:
    def __init__(self, config: AlipayConfig, *, transport: Optional[httpx.BaseTransport] = None,
                 clock: Callable[[], float] = time.time):
        self.config = config
        self._clock = clock
        self._http = httpx.Client(
            timeout=httpx.Timeout(config.timeout_seconds, connect=config.connect_timeout_seconds),
            transport=transport, verify=client_context(), follow_redirects=False)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "AlipayClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ------------------------------------------------------------ prepare

    def prepare_auth_query(self, request: AuthQueryRequest) -> PreparedCall:
        """§7.1 alipay.commerce.medical.authinfo.auth.query -> payAuthNo (when authorised)."""
        c = self.config
        biz = request.biz_content(org_code=c.org_no, org_app_id=c.org_app_id,
                                  org_chnl_crtf_code=c.org_chnl_crtf_code, ins_code=c.ins_code)
        keys = {"req_biz_no": request.req_biz_no} if request.req_biz_no else {}
        return self._prepare(oc.AUTH_QUERY, biz, parse=AuthInfo.from_json, wrapper="data", keys=keys)

    def prepare_medical_order(self, request: MedicalOrderRequest) -> PreparedCall:
        """§7.2 (config.order_api "medical") or the §7.3 variant ("trade")."""
        request.validate()
        c = self.config
        if not c.org_no:
            raise ValueError("org_no is required (config)")
        if c.order_api == "medical":
            interface, wrapper = oc.MEDICAL_CREATE, "data"
            biz = request.medical_biz_content(org_no=c.org_no, merchant_name=c.merchant_name,
                                              payment_city_code=c.payment_city_code, call_url=c.call_url)
        else:
            interface, wrapper = oc.MEDICAL_TRADE_CREATE, None
            biz = request.trade_biz_content(org_no=c.org_no, call_url=c.call_url, notify_url=c.notify_url,
                                            sys_service_provider_id=c.sys_service_provider_id)

        def check(order: MedicalOrder) -> Optional[str]:
            for name in ("med_org_ord", "pay_order_id", "out_trade_no"):
                echoed = getattr(order, name)
                if echoed is not None and echoed != getattr(request, name):
                    return f"answer is for {name} {echoed}"
            return None
        return self._prepare(interface, biz, parse=MedicalOrder.from_json, wrapper=wrapper, check=check,
                             keys={"med_org_ord": request.med_org_ord, "pay_order_id": request.pay_order_id,
                                   "out_trade_no": request.out_trade_no})

    def prepare_medical_query(self, request: MedicalQueryRequest) -> PreparedCall:
        """§7.4, or with order_api "trade" the §7.3 variant's query (the order was created by
        that variant's createandpay, so it is asked there too)."""
        biz = request.biz_content(org_no=self.config.org_no)
        if self.config.order_api == "trade":
            return self._prepare_trade_variant_query(request, biz)

        def check(payment: MedicalPayment) -> Optional[str]:
            for name in ("med_org_ord", "pay_order_id", "out_trade_no"):
                echoed, asked = getattr(payment, name), getattr(request, name)
                if echoed is not None and asked and echoed != asked:
                    return f"answer is for {name} {echoed}"
            return None
        keys = {k: v for k, v in biz.items() if k in ("med_org_ord", "pay_order_id", "out_trade_no")}
        return self._prepare(oc.MEDICAL_QUERY, biz, parse=MedicalPayment.from_json, wrapper="result_data",
                             check=check, keys=keys)

    def _prepare_trade_variant_query(self, request: MedicalQueryRequest, biz: dict) -> PreparedCall:
        # The variant names the medical order trade_no (its createandpay answers trade_no =
        # the order, alipay_trade_no = the cash trade): ask by out_trade_no / med_org_ord /
        # pay_order_id, never by a chnl_order_sn it does not know.
        biz = {k: v for k, v in biz.items() if k not in ("chnl_order_sn", "trade_no")}
        if request.chnl_order_sn:
            biz["trade_no"] = request.chnl_order_sn

        def parse(node: Mapping[str, Any]) -> MedicalPayment:
            flat = dict(node)
            flat["chnl_ord_sn"] = node.get("trade_no")
            flat["trade_no"] = node.get("alipay_trade_no")
            flat["gmt_paid"] = node.get("gmt_medical_paid") or node.get("gmt_own_paid")
            return MedicalPayment.from_json(flat)

        def check(payment: MedicalPayment) -> Optional[str]:
            for name in ("med_org_ord", "pay_order_id", "out_trade_no"):
                echoed, asked = getattr(payment, name), getattr(request, name)
                if echoed is not None and asked and echoed != asked:
                    return f"answer is for {name} {echoed}"
            return None
        keys = {k: v for k, v in biz.items() if k in ("med_org_ord", "pay_order_id", "out_trade_no")}
        return self._prepare(oc.MEDICAL_TRADE_QUERY, biz, parse=parse, check=check, keys=keys)

    def prepare_trade_query(self, *, out_trade_no: Optional[str] = None, trade_no: Optional[str] = None,
                            medical_info: bool = True) -> PreparedCall:
        """§7.6; ``medical_info`` asks for medical_insurance_info in query_options."""
        if bool(out_trade_no) == bool(trade_no):
            raise ValueError("give exactly one of out_trade_no and trade_no")
        biz: dict[str, Any] = {"out_trade_no": out_trade_no} if out_trade_no else {"trade_no": trade_no}
        if medical_info:
            biz["query_options"] = ["medical_insurance_info"]

        def check(trade: Trade) -> Optional[str]:
            if out_trade_no and trade.out_trade_no not in (None, out_trade_no):
                return f"answer is for out_trade_no {trade.out_trade_no}"
            if trade_no and trade.trade_no != trade_no:
                return f"answer is for trade_no {trade.trade_no}"
            return None
        return self._prepare(oc.TRADE_QUERY, biz, parse=Trade.from_json, check=check,
                             keys={k: v for k, v in biz.items() if k in ("out_trade_no", "trade_no")})

    def prepare_refund(self, request: RefundRequest) -> PreparedCall:
        """§7.5 alipay.trade.refund on the cash trade; out_request_no is the idempotency key."""
        request.validate()

        def check(result: RefundResult) -> Optional[str]:
            if request.out_trade_no and result.out_trade_no not in (None, request.out_trade_no):
                return f"answer is for out_trade_no {result.out_trade_no}"
            if request.trade_no and result.trade_no not in (None, request.trade_no):
                return f"answer is for trade_no {result.trade_no}"
            return None
        keys = {"out_request_no": request.out_request_no}
        keys.update({k: v for k, v in (("out_trade_no", request.out_trade_no), ("trade_no", request.trade_no)) if v})
        return self._prepare(oc.REFUND, request.biz_content(), parse=RefundResult.from_json, check=check,
                             keys=keys)

    def prepare_refund_query(self, *, out_request_no: str, out_trade_no: Optional[str] = None,
                             trade_no: Optional[str] = None) -> PreparedCall:
        if bool(out_trade_no) == bool(trade_no):
            raise ValueError("give exactly one of out_trade_no and trade_no")
        biz = {"out_trade_no": out_trade_no} if out_trade_no else {"trade_no": trade_no}
        biz.update({"out_request_no": out_request_no, "query_options": ["gmt_refund_pay"]})

        def check(state: RefundState) -> Optional[str]:
            if state.out_request_no not in (None, out_request_no):
                return f"answer is for out_request_no {state.out_request_no}"
            return None
        return self._prepare(oc.REFUND_QUERY, biz, parse=RefundState.from_json, check=check,
                             keys={"out_request_no": out_request_no})

    def prepare_bill_url(self, bill_date: str, bill_type: str = "trade") -> PreparedCall:
        """§8: the download URL of a day's (yyyy-MM-dd) or month's (yyyy-MM) bill.  The URL
        expires 30 s after issue: download right after."""
        if bill_type not in ("trade", "signcustomer"):
            raise ValueError("bill_type must be trade or signcustomer")
        return self._prepare(oc.BILL_URL, {"bill_type": bill_type, "bill_date": bill_date},
                             parse=BillUrl.from_json, keys={"bill_date": bill_date})

    def prepare_template_message(self, request: TemplateMessageRequest) -> PreparedCall:
        """§9: the template (or subscribe) message, rendered from config.templates."""
        template = self.config.templates.get(request.event)
        if template is None:
            raise ValueError(f"no Alipay message template configured for {request.event!r}")
        if not request.to_user:
            raise ValueError("to_user is required")
        data, shown = {}, {}
        for key, source in template.fields.items():
            value = request.values.get(source)
            if value in (None, ""):
                raise ValueError(f"template {request.event}: value {source!r} for {key} is missing")
            data[key] = {"value": str(value)}
            masked = mask_name(str(value)) if source.lower() in NAME_FIELDS or source.lower().endswith("name") \
                else mask_text(str(value))
            shown[key] = {"value": masked}
        user_field = "to_user_id" if self.config.message_user_id == "user_id" else "to_open_id"
        biz = {user_field: request.to_user, "user_template_id": template.template_id,
               "page": request.page if request.page is not None else template.page,
               # §9: data is a JSON *string*.
               "data": json.dumps(data, ensure_ascii=False, separators=(",", ":"))}
        if request.form_id:
            biz["form_id"] = request.form_id
        masked_biz = {**biz, "data": shown}
        return self._prepare(oc.TEMPLATE_MESSAGE, {k: v for k, v in biz.items() if v not in (None, "")},
                             parse=lambda node: node, keys={"event": request.event}, masked=masked_biz,
                             interface=oc.TEMPLATE_MESSAGE_CALL)

    def _prepare(self, method: str, biz: dict, *, parse: Callable[[Mapping[str, Any]], Any],
                 wrapper: Optional[str] = None, check: Optional[Callable[[Any], Optional[str]]] = None,
                 keys: Optional[dict] = None, masked: Optional[dict] = None,
                 interface: Optional[str] = None) -> PreparedCall:
        """``interface``: the call's name in the journal and the flows' step tables, when the
        method's own name is longer than the journal's 40 characters (outcomes.py)."""
        c = self.config
        interface = interface or oc.interface_of(method)
        params = {
            "app_id": c.app_id, "method": method, "format": "JSON", "charset": "utf-8", "sign_type": "RSA2",
            "timestamp": alipay_time(datetime.fromtimestamp(self._clock(), CHINA)), "version": "1.0",
            "biz_content": json.dumps(biz, ensure_ascii=False, separators=(",", ":")),
        }
        if c.notify_url and method in (oc.REFUND, oc.MEDICAL_TRADE_CREATE):
            params["notify_url"] = c.notify_url
        params["sign"] = rsa2_sign(c.private_key, sign_content(params))
        msg_id = message_id(interface)
        shown = masked if masked is not None else biz
        masked_request = json.dumps({"method": method, "biz_content": _masked(shown)}, ensure_ascii=False,
                                    separators=(",", ":"))
        return PreparedCall(interface=interface, msg_id=msg_id, url=c.gateway_url,
                            body=urlencode(params).encode("ascii"),
                            headers={"Content-Type": "application/x-www-form-urlencoded;charset=utf-8"},
                            masked_request=masked_request,
                            decode=_Answer(self, interface, msg_id, parse, wrapper, check, method),
                            keys={k: str(v) for k, v in (keys or {}).items() if v})

    # ------------------------------------------------------------ send

    def send(self, prepared: PreparedCall) -> CallResult:
        try:
            response = self._http.post(prepared.url, content=prepared.body, headers=prepared.headers)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            result = _local(prepared, oc.NOT_SENT, f"not sent, connection failed: {type(exc).__name__}")
        except httpx.TimeoutException as exc:
            result = _local(prepared, oc.TIMEOUT, f"timeout after the request may have been sent: "
                                                  f"{type(exc).__name__}")
        except httpx.TransportError as exc:
            result = _local(prepared, oc.TRANSPORT_ERROR, f"transport error after the request may have been "
                                                          f"sent: {type(exc).__name__}")
        else:
            result = prepared.decode(response.status_code, response.content)
        return _log(prepared, result)

    def download_bill(self, url: BillUrl, dest_path: str) -> CallResult:
        """§8: stream the bill zip to ``dest_path``.  The URL carries its own short-lived
        token; the file is not signed (nothing to verify beyond the zip's own CRCs)."""
        msg_id = f"{oc.BILL_DOWNLOAD}-{secrets.token_hex(12)}"
        tmp, size = dest_path + ".part", 0
        try:
            with self._http.stream("GET", url.bill_download_url) as response:
                if response.status_code != 200:
                    return _log_raw(oc.BILL_DOWNLOAD, msg_id, oc.result(
                        oc.BILL_DOWNLOAD, msg_id, f"HTTP_{response.status_code}",
                        f"bill download answered HTTP {response.status_code} (expired link?)",
                        http_status=response.status_code))
                with open(tmp, "wb") as out:
                    for chunk in response.iter_raw():
                        out.write(chunk)
                        size += len(chunk)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            return _log_raw(oc.BILL_DOWNLOAD, msg_id, oc.result(oc.BILL_DOWNLOAD, msg_id, oc.NOT_SENT,
                                                                f"not sent: {type(exc).__name__}"))
        except httpx.TransportError as exc:
            _unlink(tmp)
            return _log_raw(oc.BILL_DOWNLOAD, msg_id, oc.result(oc.BILL_DOWNLOAD, msg_id, oc.TRANSPORT_ERROR,
                                                                f"download broke: {type(exc).__name__}"))
        os.replace(tmp, dest_path)
        return _log_raw(oc.BILL_DOWNLOAD, msg_id, CallResult(Outcome.OK, oc.BILL_DOWNLOAD, msg_id,
                                                             data=DownloadedBill(dest_path, size), http_status=200))

    # ------------------------------------------------------------ decode

    def _decode(self, a: _Answer, status: int, content: bytes) -> CallResult:
        excerpt = mask_text(content[:300].decode("utf-8", "replace"))

        gateway: list[Optional[str]] = [None]

        def result(code: str, message: str, *, text: Optional[str] = excerpt, data: Any = None,
                   raw: Optional[dict] = None) -> CallResult:
            return oc.result(a.interface, a.msg_id, code, message, http_status=status, data=data,
                             response_text=text, raw=raw, gateway_code=gateway[0])

        if status != 200:
            return result(oc.HTTP_ERROR, f"HTTP {status} from the Alipay gateway")
        try:
            answer = SignedResponse(content.decode("utf-8"), a.method or a.interface)
        except (UnicodeDecodeError, ValueError) as exc:
            return result(oc.BAD_RESPONSE, f"unusable answer: {exc}")
        node = answer.node
        code = None if node.get("code") is None else str(node.get("code"))
        gateway[0] = code
        sub_code = None if node.get("sub_code") in (None, "") else str(node.get("sub_code"))
        text = json.dumps(_masked(node), ensure_ascii=False, separators=(",", ":"))
        signed = answer.sign is not None
        if signed or code == SUCCESS or self.config.unsigned_errors == "unknown":
            try:
                answer.verify(self.config.public_key)
            except VerificationError as exc:
                return result(oc.BAD_SIGNATURE, f"answer refused: {exc}", text=text)
        if code != SUCCESS:
            error = AlipayError(code=code, msg=_s(node.get("msg")), sub_code=sub_code,
                                sub_msg=_s(node.get("sub_msg")), signed=signed)
            message = " ".join(p for p in (code, error.msg, sub_code, error.sub_msg) if p)
            return result(sub_code or code or oc.BAD_RESPONSE, mask_text(message), text=text, data=error, raw=node)
        business: Mapping[str, Any] = node
        if a.wrapper is not None:
            inner = node.get(a.wrapper)
            if isinstance(inner, str):       # some gateways send nested objects as JSON text
                try:
                    inner = json.loads(inner)
                except ValueError:
                    inner = None
            if not isinstance(inner, dict) or not inner:
                result_code = _s(node.get("result_code"))
                if result_code:
                    return result(result_code, mask_text(f"{result_code} {_s(node.get('error_message')) or ''}"),
                                  text=text, raw=node)
                return result(oc.BAD_RESPONSE, f"10000 without {a.wrapper} or result_code", text=text, raw=node)
            business = inner
        try:
            typed = a.parse(business)
        except (ValueError, TypeError) as exc:
            return result(oc.BAD_RESPONSE, f"unusable {a.interface} answer: {exc}", text=text, raw=node)
        problem = a.check(typed) if a.check else None
        if problem:
            return result(oc.BAD_RESPONSE, problem, text=text, raw=node)
        if a.interface == oc.REFUND and typed.fund_change != "Y":
            return result(oc.REFUND_UNCONFIRMED, f"refund answered fund_change={typed.fund_change}: "
                                                 "confirm with the refund query", text=text, data=typed, raw=node)
        if a.interface == oc.REFUND_QUERY and not typed.found:
            return result(oc.REFUND_NOT_FOUND, "no refund with this out_request_no (yet)", text=text, raw=node)
        return CallResult(Outcome.OK, a.interface, a.msg_id, data=typed, code=code, message=_s(node.get("msg")),
                          http_status=status, response_text=text, raw=node)

    # ------------------------------------------------------------ one-step helpers

    def auth_query(self, request: AuthQueryRequest) -> CallResult:
        return self.send(self.prepare_auth_query(request))

    def medical_order(self, request: MedicalOrderRequest) -> CallResult:
        return self.send(self.prepare_medical_order(request))

    def medical_query(self, request: MedicalQueryRequest) -> CallResult:
        return self.send(self.prepare_medical_query(request))

    def trade_query(self, **kw: Any) -> CallResult:
        return self.send(self.prepare_trade_query(**kw))

    def refund(self, request: RefundRequest) -> CallResult:
        return self.send(self.prepare_refund(request))

    def refund_query(self, **kw: Any) -> CallResult:
        return self.send(self.prepare_refund_query(**kw))

    def fetch_bill(self, bill_date: str, dest_path: str, bill_type: str = "trade") -> CallResult:
        """Ask for the URL and download at once (the link lives 30 s)."""
        asked = self.send(self.prepare_bill_url(bill_date, bill_type))
        if not asked.ok:
            return asked
        return self.download_bill(asked.data, dest_path)

    def template_message(self, request: TemplateMessageRequest) -> CallResult:
        return self.send(self.prepare_template_message(request))


def _s(value: Any) -> Optional[str]:
    return None if value is None or value == "" else str(value)


def _local(prepared: PreparedCall, code: str, reason: str) -> CallResult:
    return oc.result(prepared.interface, prepared.msg_id, code, reason)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _log(prepared: PreparedCall, result: CallResult) -> CallResult:
    return _log_raw(prepared.interface, prepared.msg_id, result)


def _log_raw(interface: str, msg_id: str, result: CallResult) -> CallResult:
    logger.info("alipay {} {} -> {} code={} {}", interface, msg_id, result.outcome.value, result.code,
                mask_text(result.message or ""))
    return result
