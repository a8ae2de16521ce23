"""HTTP fronts of the simulated channels: route, verify, call the channel, sign the answer.

WeChatPayFront (api.mch.weixin.qq.com and api.weixin.qq.com, both served here; channels.md §11):
    POST /v3/pay/transactions/jsapi                              wechat.jsapi
    GET  /v3/pay/transactions/out-trade-no/{no}?mchid=           wechat.transaction_query
    GET  /v3/pay/transactions/id/{transaction_id}?mchid=         wechat.transaction_query
    POST /v3/pay/transactions/out-trade-no/{no}/close            wechat.close
    POST /v3/med-ins/orders                                      wechat.medins_order
    GET  /v3/med-ins/orders/mix-trade-no/{no}, .../out-trade-no/{no}   wechat.medins_query
    POST /v3/med-ins/refunds/notify?mix_trade_no=                wechat.medins_refund_notify
    POST /v3/refund/domestic/refunds                             wechat.refund
    GET  /v3/refund/domestic/refunds/{out_refund_no}             wechat.refund_query
    POST /v3/refund/domestic/refunds/{refund_id}/apply-abnormal-refund   wechat.abnormal_refund
    GET  /v3/bill/tradebill?bill_date=&bill_type=&tar_type=      wechat.tradebill
    GET  /v3/billdownload/file?token=                            wechat.billdownload (answer unsigned)
    GET  /cgi-bin/token, POST /cgi-bin/stable_token              wechat.token, wechat.stable_token
    POST /api/mipuserquery/userQuery/{partner id}                wechat.auth_query (§5; HMAC-signed,
                                                                 not WeChat Pay's signature: wechat_auth.py)
    POST /cgi-bin/message/subscribe/send?access_token=           wechat.subscribe_send
    POST /cgi-bin/message/template/send?access_token=            wechat.template_send
  Every /v3 request's Authorization is verified first (401 SIGN_ERROR, nothing done); every /v3
  answer but the bill file is signed with the platform key, errors included (§1.6, W4).
AlipayFront (openapi.alipay.com/gateway.do; the bill host):
    GET|POST /gateway.do                                         the method name is the interface
    GET  /downloadBillFile.resource?...&token=                   alipay.billdownload
  The RSA2 signature is verified first (error_response 40002 isv.invalid-signature, nothing done).
The interface names are what faults are armed on (faults.py).
"""
from __future__ import annotations

import re
from typing import Any, Optional
from urllib.parse import parse_qsl, unquote, urlsplit

from loguru import logger

from . import alipay_wire, wechatpay_wire
from .alipay_wire import AlipayError
from .faults import Fault
from .wechat_messages import MessageError
from .wechatpay import MEDINS_ERRORS
from .wechatpay_wire import WireError
from .wire import dumps, loads

_SEG = r"([^/?]+)"
WECHAT_ROUTES: list[tuple[str, re.Pattern, str, tuple[str, ...]]] = [
    ("POST", re.compile(r"^/v3/pay/transactions/jsapi$"), "wechat.jsapi", ()),
    ("GET", re.compile(rf"^/v3/pay/transactions/out-trade-no/{_SEG}$"), "wechat.transaction_query", ("out_trade_no",)),
    ("GET", re.compile(rf"^/v3/pay/transactions/id/{_SEG}$"), "wechat.transaction_query", ("transaction_id",)),
    ("POST", re.compile(rf"^/v3/pay/transactions/out-trade-no/{_SEG}/close$"), "wechat.close", ("out_trade_no",)),
    ("POST", re.compile(r"^/v3/med-ins/orders$"), "wechat.medins_order", ()),
    ("GET", re.compile(rf"^/v3/med-ins/orders/mix-trade-no/{_SEG}$"), "wechat.medins_query", ("mix_trade_no",)),
    ("GET", re.compile(rf"^/v3/med-ins/orders/out-trade-no/{_SEG}$"), "wechat.medins_query", ("out_trade_no",)),
    ("POST", re.compile(r"^/v3/med-ins/refunds/notify$"), "wechat.medins_refund_notify", ()),
    ("POST", re.compile(r"^/v3/refund/domestic/refunds$"), "wechat.refund", ()),
    ("GET", re.compile(rf"^/v3/refund/domestic/refunds/{_SEG}$"), "wechat.refund_query", ("out_refund_no",)),
    ("POST", re.compile(rf"^/v3/refund/domestic/refunds/{_SEG}/apply-abnormal-refund$"), "wechat.abnormal_refund",
     ("refund_id",)),
    ("GET", re.compile(r"^/v3/bill/tradebill$"), "wechat.tradebill", ()),
    ("GET", re.compile(r"^/v3/billdownload/file$"), "wechat.billdownload", ()),
    ("GET", re.compile(r"^/cgi-bin/token$"), "wechat.token", ()),
    ("POST", re.compile(r"^/cgi-bin/stable_token$"), "wechat.stable_token", ()),
    ("POST", re.compile(r"^/cgi-bin/message/subscribe/send$"), "wechat.subscribe_send", ()),
    ("POST", re.compile(r"^/cgi-bin/message/template/send$"), "wechat.template_send", ()),
    ("POST", re.compile(rf"^/api/mipuserquery/userQuery/{_SEG}$"), "wechat.auth_query", ("partner_id",)),
]
SIGNATURE_FAULTS = ("bad_signature", "wrong_serial", "skew", "probe")
ALIPAY_GATEWAY = "/gateway.do"
ALIPAY_BILL = "/downloadBillFile.resource"


class Reply:
    """HTTP status, body and optional headers (server.Reply's shape, plus headers)."""

    def __init__(self, status: int, body: bytes, headers: Optional[dict] = None,
                 ctype: str = "application/json; charset=utf-8") -> None:
        self.status = status
        self.body = body
        self.headers = headers or {}
        self.ctype = ctype


def _query(raw_path: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(raw_path).query, keep_blank_values=True))


def base_url(headers: Any) -> str:
    return "http://" + str(headers.get("Host") or "127.0.0.1")


class WeChatPayFront:
    methods = ("GET", "POST")
    bad_signature_commits = True     # a bad answer signature does not undo the effect

    def __init__(self, sim: Any) -> None:
        self.sim = sim

    @staticmethod
    def matches(path: str) -> bool:
        return path.startswith(("/v3/", "/cgi-bin/", "/api/mipuserquery/"))

    def route(self, method: str, raw_path: str, body: bytes = b"") -> Optional[tuple[str, dict]]:
        path = urlsplit(raw_path).path
        for m, pattern, interface, names in WECHAT_ROUTES:
            found = pattern.match(path)
            if found and m == method:
                return interface, {n: unquote(v) for n, v in zip(names, found.groups())}
        return None

    # --- answers ---------------------------------------------------------------------------
    def _signed(self, status: int, obj: Optional[dict], fault: Optional[str] = None,
                number: Optional[str] = None) -> Reply:
        body = b"" if obj is None else dumps(obj).encode("utf-8")
        headers = wechatpay_wire.signed_headers(self.sim.cfg, body, fault=fault, number=number)
        return Reply(status, body, headers)

    def _error(self, exc: WireError, fault: Optional[str] = None) -> Reply:
        body = exc.body()
        return Reply(exc.status, body,
                     wechatpay_wire.signed_headers(self.sim.cfg, body, fault=fault, number=exc.number))

    @staticmethod
    def _errcode(code: int, message: str) -> Reply:
        return Reply(200, dumps({"errcode": code, "errmsg": message}).encode("utf-8"))

    def rejection(self, interface: str, fault: Fault) -> Reply:
        """business_error: the platform refuses without doing anything (code = a §2.9 number,
        a §1.6 code string, or for /cgi-bin an errcode)."""
        code = str(fault.code or "")
        if interface == "wechat.auth_query":
            return Reply(200, dumps({"code": int(code) if code.isdigit() else 1001,
                                     "message": fault.message or "授权码无效"}).encode("utf-8"))
        if interface in ("wechat.token", "wechat.stable_token", "wechat.subscribe_send", "wechat.template_send"):
            return self._errcode(int(code) if code.lstrip("-").isdigit() else -1, fault.message or "system error")
        if code in MEDINS_ERRORS:
            status, text_code, text = MEDINS_ERRORS[code]
            return self._error(WireError(status, text_code, fault.message or text, number=code))
        status = {"ORDER_NOT_EXIST": 404, "RESOURCE_NOT_EXISTS": 404, "NOT_FOUND": 404, "SIGN_ERROR": 401,
                  "SYSTEM_ERROR": 500, "FREQUENCY_LIMITED": 429}.get(code or "SYSTEM_ERROR", 400)
        return self._error(WireError(status, code or "SYSTEM_ERROR", fault.message or "系统错误"))

    # --- the request -------------------------------------------------------------------------
    def serve(self, method: str, raw_path: str, body: bytes, headers: Any, fault: Optional[Fault],
              routed: tuple[str, dict]) -> Reply:
        interface, params = routed
        kind = fault.fault if fault else None
        query = _query(raw_path)
        if raw_path.startswith("/cgi-bin/"):
            return self._cgi(interface, query, body)
        if interface == "wechat.auth_query":
            try:
                parsed = loads(body) if body else None
            except (ValueError, UnicodeDecodeError):
                parsed = None
            status, out = self.sim.channels.auth.exchange(params["partner_id"], headers, parsed)
            return Reply(status, dumps(out).encode("utf-8"))
        sig_fault = kind if kind in SIGNATURE_FAULTS else None
        try:
            wechatpay_wire.verify_request(self.sim.cfg, method, raw_path, body, headers)
            parsed: Optional[dict] = None
            if method == "POST":
                try:
                    parsed = loads(body) if body else {}
                except (ValueError, UnicodeDecodeError):
                    raise WireError(400, "PARAM_ERROR", "请求体不是合法的JSON", detail={"location": "body"}) from None
                if not isinstance(parsed, dict):
                    raise WireError(400, "PARAM_ERROR", "请求体须为JSON对象", detail={"location": "body"})
            ch = self.sim.channels
            if interface == "wechat.tradebill":
                return self._signed(200, ch.bills.wechat_apply(query, base_url(headers), kind == "hash_mismatch"),
                                    sig_fault)
            if interface == "wechat.billdownload":
                return Reply(200, ch.bills.wechat_download(query), ctype="application/octet-stream")
            status, out = ch.wechat.handle(interface, params, query, parsed, headers, fault)
            return self._signed(status, out, sig_fault)
        except WireError as exc:
            return self._error(exc, sig_fault)
        except Exception:   # no traceback reaches the caller; the details go to the log
            logger.exception("simulated WeChat Pay failed on {}", interface)
            return self._error(WireError(500, "SYSTEM_ERROR", "系统错误"))

    def _cgi(self, interface: str, query: dict, body: bytes) -> Reply:
        msgs = self.sim.channels.messages
        try:
            if interface == "wechat.token":
                return Reply(200, dumps(msgs.token(query)).encode("utf-8"))
            try:
                parsed = loads(body) if body else {}
            except (ValueError, UnicodeDecodeError):
                raise MessageError(47001, "data format error") from None
            if not isinstance(parsed, dict):
                raise MessageError(47001, "data format error")
            if interface == "wechat.stable_token":
                out = msgs.stable_token(parsed)
            elif interface == "wechat.subscribe_send":
                out = msgs.subscribe_send(query, parsed)
            else:
                out = msgs.template_send(query, parsed)
            return Reply(200, dumps(out).encode("utf-8"))
        except MessageError as exc:
            return Reply(200, dumps(exc.body()).encode("utf-8"))


class AlipayFront:
    methods = ("GET", "POST")
    bad_signature_commits = True

    def __init__(self, sim: Any) -> None:
        self.sim = sim

    @staticmethod
    def matches(path: str) -> bool:
        return path in (ALIPAY_GATEWAY, ALIPAY_BILL)

    def route(self, method: str, raw_path: str, body: bytes = b"") -> Optional[tuple[str, dict]]:
        parts = urlsplit(raw_path)
        if parts.path == ALIPAY_BILL:
            return ("alipay.billdownload", {}) if method == "GET" else None
        try:
            params = alipay_wire.parse_params(parts.query, body, "")
        except (UnicodeDecodeError, ValueError):
            params = {}
        return str(params.get("method") or "alipay.unknown"), {}

    def rejection(self, interface: str, fault: Fault) -> Reply:
        if interface == "alipay.billdownload":
            return Reply(200, (fault.message or "下载超时，请重新下载").encode("utf-8"), ctype="text/plain; charset=utf-8")
        code = str(fault.code or "ACQ.SYSTEM_ERROR")
        gw = "20000" if code.startswith(("isp.", "aop.")) else "40004"
        err = AlipayError(gw, code, fault.message or "系统繁忙")
        return Reply(200, alipay_wire.answer(self.sim.cfg, alipay_wire.response_key(interface), err.inner()))

    def serve(self, method: str, raw_path: str, body: bytes, headers: Any, fault: Optional[Fault],
              routed: tuple[str, dict]) -> Reply:
        interface, _ = routed
        cfg = self.sim.cfg
        ch = self.sim.channels
        kind = fault.fault if fault else None
        if interface == "alipay.billdownload":
            data = ch.bills.alipay_download(_query(raw_path))
            if data is None:   # §8: an expired link answers a page saying so, not the file
                return Reply(200, "下载超时，请重新下载".encode("utf-8"), ctype="text/plain; charset=utf-8")
            return Reply(200, data, ctype="application/octet-stream")
        try:
            params = alipay_wire.parse_params(urlsplit(raw_path).query, body, str(headers.get("Content-Type") or ""))
        except (UnicodeDecodeError, ValueError):
            params = {}
        key = alipay_wire.response_key(interface)
        if kind == "unsigned_error":     # §6.3: an error answer without sign; nothing done
            err = AlipayError("20000", "isp.unknown-error", fault.message or "系统繁忙")
            return Reply(200, alipay_wire.answer(cfg, "error_response", err.inner(), signed=False))
        try:
            biz = alipay_wire.verify_request(cfg, params)
            if interface == "alipay.data.dataservice.bill.downloadurl.query":
                inner = ch.bills.alipay_url(biz, base_url(headers))
            else:
                inner = ch.alipay.handle(interface, biz, base_url(headers))
        except AlipayError as exc:
            if exc.gateway:
                return Reply(200, alipay_wire.answer(cfg, "error_response", exc.inner()))
            return Reply(200, alipay_wire.answer(cfg, key, exc.inner(), bad=kind == "bad_signature"))
        except Exception:
            logger.exception("simulated Alipay failed on {}", interface)
            err = AlipayError("20000", "isp.unknown-error", "系统繁忙")
            return Reply(200, alipay_wire.answer(cfg, key, err.inner()))
        return Reply(200, alipay_wire.answer(cfg, key, {"code": "10000", "msg": "Success", **inner},
                                             bad=kind == "bad_signature"))
