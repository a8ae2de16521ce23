"""HTTP client of WeChat Pay APIv3 for the 医保 mixed order and its cash part.

Two steps per call (bridge/calls.py): ``prepare_*`` builds the body, encrypts the
sensitive fields, signs (§1.2) and returns a PreparedCall with no I/O, so that the
engine journals it first; ``send`` is the only I/O and never raises for remote trouble.
Every answer is classified by the table in outcomes.py:

* OK       - 2xx whose Wechatpay-Signature verifies (§1.3) and whose body parses and
             agrees with the request (echoed out_trade_no / out_refund_no / amounts);
* REJECTED - a 4xx business error (signed and verified, or unsigned when
             ``unsigned_errors = "accept"``); nothing happened;
* UNKNOWN  - timeout or reset after sending, 5xx, 202, an unsigned or badly signed 2xx,
             a body we cannot use, and the few 4xx codes that mean "it may already exist"
             (outcomes.INTERFACE_RULES);
* NOT_SENT - the connection never opened.

A REJECTED answer that says nothing about the request (rate limit, quota) has
``transient`` set (outcomes.result); the flow asks again later.

For /v3/med-ins/* the fine-grained reason is the number after the last "-" of
Request-ID (§1.6, §2.9); when present it is the result's ``code`` and the string code
goes in the message.  REJECTED results carry a WechatError as ``data``.

Nothing is retried here.  Merchant (直连) mode only: the service-provider paths of §1.1
are not implemented.
"""
from __future__ import annotations

import hashlib
import json
import os
import secrets
import time
import zlib
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional
from urllib.parse import quote, urlencode, urlsplit

import httpx
from loguru import logger

from bridge.calls import CallResult, Outcome, PreparedCall
from bridge.masking import mask_id, mask_name, mask_text, mask_value
from bridge.tls import client_context

from . import outcomes as oc
from .cipher import encrypt_sensitive
from .config import WechatPayConfig
from .messages import (BillFile, BillTicket, BillType, JsapiPrepay, JsapiPrepayRequest, MedInsOrder,
                       MedInsOrderRequest, MedInsRefundNotifyRequest, Refund, RefundRequest, Transaction,
                       to_fen)
from .signing import PlatformVerifier, VerificationError, authorization, has_signature, header, new_nonce, \
    pay_sign

_EXCERPT = 300


def dumps(obj: Any) -> bytes:
    """Serialise once; these exact bytes are signed and sent (§1.2 "byte identity")."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


@dataclass(frozen=True)
class WechatError:
    """A WeChat error answer (§1.6): the body's code/message/detail and the med-ins number."""

    http_status: int
    code: Optional[str]
    message: Optional[str]
    reason_number: Optional[str] = None
    request_id: Optional[str] = None
    detail: Any = None


def reason_number(request_id: Optional[str]) -> Optional[str]:
    """§1.6: the number after the last "-" of Request-ID (e.g. ``…-268529515``)."""
    if not request_id or "-" not in request_id:
        return None
    tail = request_id.rsplit("-", 1)[1].strip()
    return tail if tail.isdigit() and len(tail) >= 6 else None


class _Answer:
    """PreparedCall.decode for WeChat: needs the response headers to verify the signature
    (bridge/calls.py: decode(status, body, headers)).  Called with (status, body) only,
    an answer that needed verifying is UNKNOWN."""

    def __init__(self, client: "WechatPayClient", interface: str, msg_id: str,
                 parse: Optional[Callable[[dict], Any]], check: Optional[Callable[[Any], Optional[str]]],
                 medins: bool):
        self.client, self.interface, self.msg_id = client, interface, msg_id
        self.parse, self.check, self.medins = parse, check, medins

    def __call__(self, status: int, content: bytes, headers: Optional[Mapping[str, str]] = None) -> CallResult:
        return self.client._decode(self, status, content, headers or {})


class WechatPayClient:
    """One connection pool to WeChat Pay for one merchant's credentials."""

    def __init__(self, config: WechatPayConfig, *, transport: Optional[httpx.BaseTransport] = None,
                 clock: Callable[[], float] = time.time):
        self.config = config
        self._clock = clock
        self._verifier = PlatformVerifier(config.platform_keys, window_seconds=config.timestamp_window_seconds,
                                          clock=clock)
        self._http = httpx.Client(
            timeout=httpx.Timeout(config.timeout_seconds, connect=config.connect_timeout_seconds),
            transport=transport, verify=client_context(), follow_redirects=False)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "WechatPayClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ------------------------------------------------------------ prepare

    def prepare_jsapi_prepay(self, request: JsapiPrepayRequest) -> PreparedCall:
        """§2.1: the self-pay order for the cash part; gives prepay_id."""
        request.validate()
        if not (request.notify_url or self.config.notify_url):
            raise ValueError("notify_url is required (request or config)")
        body = request.body(appid=self.config.appid, mchid=self.config.mchid, notify_url=self.config.notify_url)
        return self._prepare(oc.PREPAY, "POST", "/v3/pay/transactions/jsapi", body,
                             keys={"out_trade_no": request.out_trade_no},
                             parse=JsapiPrepay.from_json)

    def prepare_query_transaction(self, out_trade_no: str) -> PreparedCall:
        """§2.1: the cash payment by out_trade_no (the mixed order's), with transaction_id."""
        path = f"/v3/pay/transactions/out-trade-no/{_seg(out_trade_no)}?" + urlencode({"mchid": self.config.mchid})

        def check(t: Transaction) -> Optional[str]:
            return None if t.out_trade_no == out_trade_no else f"answer is for out_trade_no {t.out_trade_no}"
        return self._prepare(oc.TRANSACTION_QUERY, "GET", path, None, keys={"out_trade_no": out_trade_no},
                             parse=Transaction.from_json, check=check)

    def prepare_close_transaction(self, out_trade_no: str) -> PreparedCall:
        """§2.1: close an unpaid cash order (204)."""
        path = f"/v3/pay/transactions/out-trade-no/{_seg(out_trade_no)}/close"
        return self._prepare(oc.TRANSACTION_CLOSE, "POST", path, {"mchid": self.config.mchid},
                             keys={"out_trade_no": out_trade_no}, parse=None)

    def prepare_medins_order(self, request: MedInsOrderRequest) -> PreparedCall:
        """§2.2: the mixed order.  Payer and relative name/ID digest are RSA-OAEP encrypted for
        the platform key, whose serial goes in Wechatpay-Serial."""
        request.validate()
        key = self.config.platform_key
        c = self.config
        body = request.body(appid=c.appid, encrypt=lambda text: encrypt_sensitive(key.public_key, text),
                            defaults={"callback_url": c.callback_url, "city_id": c.city_id,
                                      "med_inst_name": c.med_inst_name, "med_inst_no": c.med_inst_no,
                                      "channel_no": c.channel_no, "med_ins_test_env": c.med_ins_test_env,
                                      "insurance_only_cash_fee": c.insurance_only_cash_fee})
        for name in ("city_id", "med_inst_name", "med_inst_no"):
            if not body.get(name):
                raise ValueError(f"{name} is required (request or config)")
        masked = _mask_medins(body, request)
        expected_cash = to_fen("wechat_pay_cash_fee", request.wechat_pay_cash_fee)
        expected_total = to_fen("total_fee", request.total_fee)

        def check(order: MedInsOrder) -> Optional[str]:
            if order.out_trade_no is not None and order.out_trade_no != request.out_trade_no:
                return f"answer is for out_trade_no {order.out_trade_no}"
            if order.total_fee is not None and to_fen("total_fee", order.total_fee) != expected_total:
                return f"answer total_fee {order.total_fee} differs from the request"
            if order.wechat_pay_cash_fee is not None and \
                    to_fen("wechat_pay_cash_fee", order.wechat_pay_cash_fee) != expected_cash:
                return f"answer wechat_pay_cash_fee {order.wechat_pay_cash_fee} differs from the request"
            return None
        return self._prepare(oc.MEDINS_CREATE, "POST", "/v3/med-ins/orders", body,
                             keys={"out_trade_no": request.out_trade_no, "serial_no": request.serial_no,
                                   **({"pay_order_id": request.pay_order_id} if request.pay_order_id else {})},
                             parse=MedInsOrder.from_json, check=check, masked=masked,
                             extra_headers={"Wechatpay-Serial": key.serial})

    def prepare_query_medins_order(self, *, mix_trade_no: Optional[str] = None,
                                   out_trade_no: Optional[str] = None) -> PreparedCall:
        """§2.3: by mix_trade_no or by out_trade_no (exactly one)."""
        if bool(mix_trade_no) == bool(out_trade_no):
            raise ValueError("give exactly one of mix_trade_no and out_trade_no")
        if mix_trade_no:
            path, keys = f"/v3/med-ins/orders/mix-trade-no/{_seg(mix_trade_no)}", {"mix_trade_no": mix_trade_no}
        else:
            path, keys = f"/v3/med-ins/orders/out-trade-no/{_seg(out_trade_no)}", {"out_trade_no": out_trade_no}

        def check(order: MedInsOrder) -> Optional[str]:
            if mix_trade_no and order.mix_trade_no != mix_trade_no:
                return f"answer is for mix_trade_no {order.mix_trade_no}"
            if out_trade_no and order.out_trade_no not in (None, out_trade_no):
                return f"answer is for out_trade_no {order.out_trade_no}"
            return None
        return self._prepare(oc.MEDINS_QUERY, "GET", path, None, keys=keys, parse=MedInsOrder.from_json,
                             check=check)

    def prepare_refund(self, request: RefundRequest) -> PreparedCall:
        """§2.6: refund (part of) the cash payment.  Re-preparing the same request gives the
        same out_refund_no, WeChat's idempotency key; never invent a new one for a retry."""
        request.validate()
        body = request.body(notify_url=self.config.refund_notify_url)
        expected = to_fen("refund", request.refund)

        def check(refund: Refund) -> Optional[str]:
            if refund.out_refund_no != request.out_refund_no:
                return f"answer is for out_refund_no {refund.out_refund_no}"
            if refund.refund is not None and to_fen("refund", refund.refund) != expected:
                return f"answer refunds {refund.refund}, we asked for {request.refund}"
            return None
        keys = {"out_refund_no": request.out_refund_no}
        keys.update({k: v for k, v in (("out_trade_no", request.out_trade_no),
                                       ("transaction_id", request.transaction_id)) if v})
        return self._prepare(oc.REFUND_CREATE, "POST", "/v3/refund/domestic/refunds", body, keys=keys,
                             parse=Refund.from_json, check=check)

    def prepare_query_refund(self, out_refund_no: str) -> PreparedCall:
        path = f"/v3/refund/domestic/refunds/{_seg(out_refund_no)}"

        def check(refund: Refund) -> Optional[str]:
            return None if refund.out_refund_no == out_refund_no else \
                f"answer is for out_refund_no {refund.out_refund_no}"
        return self._prepare(oc.REFUND_QUERY, "GET", path, None, keys={"out_refund_no": out_refund_no},
                             parse=Refund.from_json, check=check)

    def prepare_medins_refund_notify(self, request: MedInsRefundNotifyRequest) -> PreparedCall:
        """§2.7: tell WeChat about the insurance refund the centre made (204)."""
        request.validate()
        path = "/v3/med-ins/refunds/notify?" + urlencode({"mix_trade_no": request.mix_trade_no})
        return self._prepare(oc.MEDINS_REFUND_NOTIFY, "POST", path, request.body(),
                             keys={"mix_trade_no": request.mix_trade_no, "out_refund_no": request.out_refund_no},
                             parse=None)

    def prepare_trade_bill(self, bill_date: str, bill_type: BillType = BillType.ALL,
                           gzip_file: bool = True) -> PreparedCall:
        """§3.1: apply for the day's trade bill (download URL + SHA1)."""
        params = {"bill_date": bill_date, "bill_type": BillType(bill_type).value}
        if gzip_file:
            params["tar_type"] = "GZIP"
        return self._prepare(oc.BILL_APPLY, "GET", "/v3/bill/tradebill?" + urlencode(params), None,
                             keys={"bill_date": bill_date}, parse=BillTicket.from_json)

    def prepare_download_bill(self, ticket: BillTicket) -> PreparedCall:
        """§3.2: GET the download URL, signed like any GET (path + query of that URL).
        Use ``download_to`` to send it: the file is streamed to disk."""
        parts = urlsplit(ticket.download_url)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        origin = f"{parts.scheme}://{parts.netloc}"
        return self._prepare(oc.BILL_DOWNLOAD, "GET", path, None, keys={}, parse=None, origin=origin)

    def cashier_params(self, *, mix_trade_no: str, prepay_id: Optional[str]) -> dict[str, str]:
        """§1.7: what ``wx.requestMedicalInsurancePay`` takes.  For INSURANCE_ONLY (no
        prepay_id) the cash fields are left out.  No secret is in it."""
        params = {"mixTradeNo": mix_trade_no}
        if prepay_id:
            timestamp, nonce = str(int(self._clock())), new_nonce()
            package = f"prepay_id={prepay_id}"
            params.update({"timeStamp": timestamp, "nonceStr": nonce, "package": package, "signType": "RSA",
                           "paySign": pay_sign(self.config.private_key, appid=self.config.appid,
                                               timestamp=timestamp, nonce=nonce, package=package)})
        return params

    def _prepare(self, interface: str, method: str, path_and_query: str, body_obj: Optional[dict], *,
                 keys: dict[str, str], parse: Optional[Callable[[dict], Any]],
                 check: Optional[Callable[[Any], Optional[str]]] = None, masked: Optional[dict] = None,
                 extra_headers: Optional[dict[str, str]] = None, origin: Optional[str] = None) -> PreparedCall:
        body = dumps(body_obj) if body_obj is not None else b""
        base = urlsplit(origin or self.config.base_url)
        full_path = (base.path.rstrip("/") if origin is None else "") + path_and_query
        url = f"{base.scheme}://{base.netloc}{full_path}"
        headers = {
            "Authorization": authorization(mchid=self.config.mchid, serial=self.config.merchant_serial,
                                           private_key=self.config.private_key, method=method,
                                           path_and_query=full_path, body=body,
                                           timestamp=str(int(self._clock())), nonce=new_nonce()),
            "Accept": "application/json",
            "User-Agent": "mibridge",
        }
        if body_obj is not None:
            headers["Content-Type"] = "application/json"
        headers.update(extra_headers or {})
        msg_id = f"{interface}-{secrets.token_hex(12)}"
        shown = masked if masked is not None else body_obj
        masked_request = json.dumps({"method": method, "path": full_path.split("?", 1)[0],
                                     "body": mask_value(shown) if shown is not None else None},
                                    ensure_ascii=False, separators=(",", ":"))
        answer = _Answer(self, interface, msg_id, parse, check, medins=path_and_query.startswith("/v3/med-ins/"))
        return PreparedCall(interface=interface, msg_id=msg_id, url=url, body=body, headers=headers,
                            masked_request=masked_request, decode=answer, keys=keys, method=method)

    # ------------------------------------------------------------ send

    def send(self, prepared: PreparedCall) -> CallResult:
        """Send the prepared call; never raises for remote trouble."""
        try:
            response = self._http.request(prepared.method, prepared.url, content=prepared.body or None,
                                          headers=prepared.headers)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            result = self._local(prepared, oc.NOT_SENT, f"not sent, connection failed: {type(exc).__name__}")
        except httpx.TimeoutException as exc:
            result = self._local(prepared, oc.TIMEOUT, f"timeout after the request may have been sent: "
                                                       f"{type(exc).__name__}")
        except httpx.TransportError as exc:
            result = self._local(prepared, oc.TRANSPORT_ERROR, f"transport error after the request may have "
                                                               f"been sent: {type(exc).__name__}")
        else:
            result = prepared.decode(response.status_code, response.content, response.headers)
        _log(prepared, result)
        return result

    def download_to(self, prepared: PreparedCall, ticket: BillTicket, dest_path: str) -> CallResult:
        """Send a prepared bill download, streaming the file to ``dest_path`` as received
        (gzip or plain) while computing the SHA1 of the decompressed bytes (§3.2).  The file
        is not signed; the hash from the signed apply answer vouches for it."""
        tmp = dest_path + ".part"
        try:
            with self._http.stream("GET", prepared.url, headers=prepared.headers) as response:
                if response.status_code != 200:
                    response.read()
                    return self._logged(prepared, prepared.decode(response.status_code, response.content,
                                                                  response.headers))
                digest, size, gzipped = hashlib.sha1(), 0, None
                inflater = None
                with open(tmp, "wb") as out:
                    for chunk in response.iter_raw():
                        if gzipped is None:
                            gzipped = chunk[:2] == b"\x1f\x8b"
                            inflater = zlib.decompressobj(16 + zlib.MAX_WBITS) if gzipped else None
                        out.write(chunk)
                        size += len(chunk)
                        digest.update(inflater.decompress(chunk) if inflater else chunk)
                    if inflater:
                        digest.update(inflater.flush())
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            return self._logged(prepared, self._local(prepared, oc.NOT_SENT, f"not sent: {type(exc).__name__}"))
        except (httpx.TransportError, zlib.error) as exc:
            _unlink(tmp)
            return self._logged(prepared, self._local(prepared, oc.TRANSPORT_ERROR,
                                                      f"download broke: {type(exc).__name__}: {exc}"))
        sha1 = digest.hexdigest()
        if sha1.lower() != ticket.hash_value.lower():
            _unlink(tmp)
            return self._logged(prepared, self._local(prepared, oc.HASH_MISMATCH,
                                                      f"bill SHA1 {sha1} != {ticket.hash_value}"))
        os.replace(tmp, dest_path)
        data = BillFile(path=dest_path, gzipped=bool(gzipped), sha1=sha1, size=size)
        return self._logged(prepared, CallResult(Outcome.OK, prepared.interface, prepared.msg_id, data=data,
                                                 http_status=200))

    def _logged(self, prepared: PreparedCall, result: CallResult) -> CallResult:
        _log(prepared, result)
        return result

    @staticmethod
    def _local(prepared: PreparedCall, code: str, reason: str) -> CallResult:
        return oc.result(prepared.interface, prepared.msg_id, code, reason)

    # ------------------------------------------------------------ decode

    def _decode(self, a: _Answer, status: int, content: bytes, headers: Mapping[str, str]) -> CallResult:
        excerpt = mask_text(content[:_EXCERPT].decode("utf-8", "replace"))

        def result(code: str, message: str, *, text: Optional[str] = excerpt, data: Any = None,
                   raw: Optional[dict] = None) -> CallResult:
            return oc.result(a.interface, a.msg_id, code, message, http_status=status, data=data,
                             response_text=text, raw=raw)

        if status >= 500:
            code, message = _error_code(content)
            return result(code or oc.HTTP_ERROR, f"HTTP {status} {code or ''}: {message or ''}".strip())
        signed = has_signature(headers)
        if signed or 200 <= status < 300 or self.config.unsigned_errors == "unknown":
            try:
                self._verifier.verify(headers, content)
            except VerificationError as exc:
                return result(oc.BAD_SIGNATURE, f"HTTP {status}: response signature refused: {exc}")
        if status == 202:
            return result(oc.ACCEPTED, "HTTP 202: accepted, result pending")
        if 200 <= status < 300:
            return self._decode_ok(a, status, content, excerpt, result)
        if 400 <= status < 500:
            try:
                body = json.loads(content) if content else {}
            except ValueError:
                body = {}
            if not isinstance(body, dict):
                body = {}
            request_id = header(headers, "Request-ID")
            number = reason_number(request_id) if a.medins else None
            wx_code = None if body.get("code") is None else str(body.get("code"))
            error = WechatError(http_status=status, code=wx_code, message=_str(body.get("message")),
                                reason_number=number, request_id=request_id, detail=body.get("detail"))
            code = number or wx_code or f"HTTP_{status}"
            if number and oc.is_transient_refusal(a.interface, wx_code, status):
                # A rate limit (429, FREQUENCY_LIMITED) or a refused signature (401 SIGN_ERROR)
                # says nothing about the request (channels.md §1.6, bridge/refusals.py), whatever
                # reason number its Request-ID carries: classified by the code, the number kept
                # in the message.  Taken as the number, it was a verdict (an order "refused").
                code = wx_code or f"HTTP_{status}"
            text = json.dumps(mask_value({"code": wx_code, "message": error.message, "detail": error.detail,
                                          "request_id": request_id}), ensure_ascii=False)
            message = " ".join(p for p in (wx_code, error.message) if p) or f"HTTP {status}"
            if number and code != number:
                message += f" (Request-ID reason {number})"
            return result(code, message, text=text, data=error, raw=body or None)
        return result(oc.HTTP_ERROR, f"unexpected HTTP {status}")

    def _decode_ok(self, a: _Answer, status: int, content: bytes, excerpt: str, result) -> CallResult:
        if a.parse is None:
            # close / refund notify / bill download error path: 204 (or an empty 200) is the success.
            return CallResult(Outcome.OK, a.interface, a.msg_id, http_status=status, response_text=excerpt or None)
        try:
            body = json.loads(content)
            if not isinstance(body, dict):
                raise ValueError("not a JSON object")
            typed = a.parse(body)
        except (ValueError, TypeError) as exc:
            return result(oc.BAD_RESPONSE, f"HTTP {status}: unusable answer: {exc}")
        text = json.dumps(mask_value(body), ensure_ascii=False, separators=(",", ":"))
        problem = a.check(typed) if a.check else None
        if problem:
            return result(oc.BAD_RESPONSE, problem, text=text, raw=body)
        return CallResult(Outcome.OK, a.interface, a.msg_id, data=typed, http_status=status,
                          response_text=text, raw=body)

    # ------------------------------------------------------------ one-step helpers

    def jsapi_prepay(self, request: JsapiPrepayRequest) -> CallResult:
        return self.send(self.prepare_jsapi_prepay(request))

    def medins_order(self, request: MedInsOrderRequest) -> CallResult:
        return self.send(self.prepare_medins_order(request))

    def query_medins_order(self, **kw: str) -> CallResult:
        return self.send(self.prepare_query_medins_order(**kw))

    def query_transaction(self, out_trade_no: str) -> CallResult:
        return self.send(self.prepare_query_transaction(out_trade_no))

    def refund(self, request: RefundRequest) -> CallResult:
        return self.send(self.prepare_refund(request))

    def query_refund(self, out_refund_no: str) -> CallResult:
        return self.send(self.prepare_query_refund(out_refund_no))

    def medins_refund_notify(self, request: MedInsRefundNotifyRequest) -> CallResult:
        return self.send(self.prepare_medins_refund_notify(request))

    def download_bill(self, bill_date: str, dest_path: str, bill_type: BillType = BillType.ALL) -> CallResult:
        """Apply for and download one day's bill to ``dest_path`` (safe reads only)."""
        applied = self.send(self.prepare_trade_bill(bill_date, bill_type))
        if not applied.ok:
            return applied
        return self.download_to(self.prepare_download_bill(applied.data), applied.data, dest_path)


def _seg(value: str) -> str:
    if not value:
        raise ValueError("an empty path parameter")
    return quote(value, safe="")


def _str(value: Any) -> Optional[str]:
    return None if value is None else str(value)


def _error_code(content: bytes) -> tuple[Optional[str], Optional[str]]:
    try:
        body = json.loads(content)
    except ValueError:
        return None, None
    if not isinstance(body, dict):
        return None, None
    return _str(body.get("code")), mask_text(_str(body.get("message")) or "")


def _mask_medins(body: dict, request: MedInsOrderRequest) -> dict:
    """The journal's view of a mixed order: masked plain name and ID instead of ciphertext,
    no pay_auth_no (also inside the passthrough JSON)."""
    shown = dict(body)

    def person(p) -> dict:
        return {"name": mask_name(p.name), "id_number": mask_id(p.id_number), "card_type": p.card_type.value
                if hasattr(p.card_type, "value") else p.card_type}
    shown["payer"] = person(request.payer)
    if request.relative:
        shown["relative"] = person(request.relative)
    passthrough = shown.get("passthrough_request_content")
    if passthrough:
        try:
            shown["passthrough_request_content"] = mask_value(json.loads(passthrough))
        except ValueError:
            shown["passthrough_request_content"] = "***"
    return shown


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _log(prepared: PreparedCall, result: CallResult) -> None:
    logger.info("wechatpay {} {} -> {} code={} {}", prepared.interface, prepared.msg_id, result.outcome.value,
                result.code, mask_text(result.message or ""))
