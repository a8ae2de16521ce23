"""HTTP client of the mobile-payment centre: 6201, 6202, 6203, 6301, 6401.

Follows the two-step contract of bridge/calls.py: ``prepare_*`` builds, signs and
encrypts without I/O; ``send`` posts and classifies.  Nothing is retried here:
whether a call may be repeated is the flow's decision (digest §7.3).

There is no payAuthNo exchange in this client: the 2.0 centre never issues
payAuthNo, the channel (WeChat, Alipay) does (digest §5.7).

Classification in ``send``/``decode``:

* OK       - HTTP 2xx, verified envelope, code "0", business data as expected
             (for 6203: refStatus SUCC).
* REJECTED - a verified envelope with code != "0" (its code and message kept),
             transient when the text says busy / rate-limited / signature
             (bridge/refusals.py: asked again later, never taken as a verdict);
             UNKNOWN instead when 6202/6203/6401 is answered "in progress / result
             unknown" (it may still be booked);
             6401 answered ``success: false``; 6203 refStatus FAIL (code "FAIL",
             §7.2: not refunded).
* NOT_SENT - the TCP/TLS connection could not be opened (refused, DNS failure,
             connect timeout, no free pooled connection): no byte of the request
             left this machine, so nothing can have happened remotely; or HTTP 429
             (RFC 6585: refused for its rate, not processed).  The flow may send the
             same request again; for 6201 there is no payOrdId to query yet anyway.
* UNKNOWN  - timeout, reset or other transport error once the request may have
             left, HTTP 5xx, a body that is not JSON, does not decrypt or does not
             verify, code missing, or verified data that contradicts the request or
             itself (payOrdId echo, amount sum); 6203 refStatus EXP (code "EXP", §7.2:
             outcome unknown, query 6301 first).
"""
from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any, Callable, Optional

import httpx

from bridge import refusals
from bridge.calls import CallResult, Outcome, PreparedCall
from bridge.masking import mask_text, mask_value
from bridge.tls import client_context

from .config import MobilePayConfig
from .envelope import Envelope, EnvelopeError, compact_json, loads
from .messages import (
    PayOrderRequest, PayOrderResponse, QueryOrderRequest, QueryOrderResponse, RefStatus,
    RefundRequest, RefundResponse, RevokeOrderRequest, RevokeOrderResponse, UploadFeeRequest, UploadFeeResponse,
    from_data, to_data,
)

# Bearer credentials that mask_value does not know yet: single-use authorisation
# and the reversal token.  Kept out of the journal like payToken.
_EXTRA_SECRETS = ("payAuthNo", "revsToken")
# Relays that wrap the business object once more (digest §2.2, S6 unwrapLegacyFsiData).
_RELAY_WRAPPERS = ("data", "output", "body")
_BODY_EXCERPT = 200
_MOVES_MONEY = ("6202", "6203", "6401")


def _masked_json(obj: Any) -> str:
    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: ("***" if k in _EXTRA_SECRETS else strip(v)) for k, v in value.items()}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value
    return compact_json(mask_value(strip(obj)))


def _unwrap(data: dict) -> dict:
    if len(data) == 1:
        (key, inner), = data.items()
        if key in _RELAY_WRAPPERS and isinstance(inner, dict):
            return inner
    return data


class MobilePayClient:
    """One connection pool to one centre, for one institution's credentials."""

    def __init__(self, config: MobilePayConfig, *, transport: Optional[httpx.BaseTransport] = None):
        self._config = config
        self._envelope = Envelope(config)
        self._http = httpx.Client(
            timeout=httpx.Timeout(config.timeout_seconds, connect=config.connect_timeout_seconds),
            transport=transport, verify=client_context(),
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "MobilePayClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ------------------------------------------------------------ prepare

    def prepare_upload_fee(self, request: UploadFeeRequest) -> PreparedCall:
        """6201.  msg_id is generated: medOrgOrd may legitimately be re-sent (§7.3)."""
        request.validate()
        request = replace(request, orgCodg=request.orgCodg or self._config.org_codg,
                          orgId=request.orgId or self._config.org_id or None)
        return self._prepare("6201", to_data(request), _new_id("6201"),
                             {"medOrgOrd": request.medOrgOrd, "chrgBchno": request.chrgBchno},
                             UploadFeeResponse, None)

    def prepare_pay_order(self, request: PayOrderRequest) -> PreparedCall:
        """6202.  msg_id is orgBizSer: unique per call, and 6202 is never re-sent (§7.3)."""
        request = replace(request, orgCodg=request.orgCodg or self._config.org_codg)

        def check(resp: PayOrderResponse) -> Optional[str]:
            if resp.payOrdId != request.payOrdId:
                return f"6202 answered for payOrdId {resp.payOrdId}, not {request.payOrdId}"
            if not resp.amounts_consistent():
                return "6202 amounts do not add up: ownPayAmt + psnAcctPay + fundPay != feeSumamt"
            return None
        return self._prepare("6202", to_data(request), request.orgBizSer,
                             {"payOrdId": request.payOrdId, "orgBizSer": request.orgBizSer,
                              "chrgBchno": request.chrgBchno}, PayOrderResponse, check)

    def prepare_refund(self, request: RefundRequest) -> PreparedCall:
        """6203.  msg_id is generated: a retry keeps the same appRefdSn (§7.3), so
        appRefdSn identifies the refund, not the message; it is in keys."""
        request.validate()
        return self._prepare("6203", to_data(request), _new_id("6203"),
                             {"payOrdId": request.payOrdId, "appRefdSn": request.appRefdSn},
                             RefundResponse, None)

    def prepare_query_order(self, request: QueryOrderRequest) -> PreparedCall:
        request = replace(request, orgCodg=request.orgCodg or self._config.org_codg)

        def check(resp: QueryOrderResponse) -> Optional[str]:
            if resp.payOrdId != request.payOrdId:
                return f"6301 answered for payOrdId {resp.payOrdId}, not {request.payOrdId}"
            if not resp.amounts_consistent():
                return "6301 amounts do not add up: ownPayAmt + psnAcctPay + fundPay != feeSumamt"
            return None
        return self._prepare("6301", to_data(request), _new_id("6301"),
                             {"payOrdId": request.payOrdId}, QueryOrderResponse, check)

    def prepare_revoke_order(self, request: RevokeOrderRequest) -> PreparedCall:
        request = replace(request, orgCodg=request.orgCodg or self._config.org_codg)
        return self._prepare("6401", to_data(request), _new_id("6401"),
                             {"payOrdId": request.payOrdId}, RevokeOrderResponse, None)

    def _prepare(self, interface: str, data: dict, msg_id: str, keys: dict[str, str],
                 response_type: type, check: Optional[Callable[[Any], Optional[str]]]) -> PreparedCall:
        envelope = self._envelope.seal(data)
        body = compact_json(envelope).encode("utf-8")

        def decode(http_status: int, content: bytes) -> CallResult:
            return self._decode(interface, msg_id, response_type, check, http_status, content)

        return PreparedCall(
            interface=interface, msg_id=msg_id, url=self._config.url(interface), body=body,
            headers={"Content-Type": "application/json"},
            masked_request=_masked_json(data), decode=decode, keys=keys,
        )

    # ------------------------------------------------------------ send

    def send(self, prepared: PreparedCall) -> CallResult:
        """POST the prepared call; never raises for remote trouble."""
        try:
            response = self._http.post(prepared.url, content=prepared.body, headers=prepared.headers)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            result = CallResult(Outcome.NOT_SENT, prepared.interface, prepared.msg_id,
                                message=f"not sent, connection failed: {type(exc).__name__}: {exc}")
        except httpx.TimeoutException as exc:
            result = _unknown(prepared, f"timeout after the request may have been sent: {type(exc).__name__}")
        except httpx.TransportError as exc:
            result = _unknown(prepared, f"transport error after the request may have been sent: "
                                        f"{type(exc).__name__}: {exc}")
        else:
            result = prepared.decode(response.status_code, response.content)
        return result

    def upload_fee(self, request: UploadFeeRequest) -> CallResult:
        return self.send(self.prepare_upload_fee(request))

    def pay_order(self, request: PayOrderRequest) -> CallResult:
        return self.send(self.prepare_pay_order(request))

    def refund(self, request: RefundRequest) -> CallResult:
        return self.send(self.prepare_refund(request))

    def query_order(self, request: QueryOrderRequest) -> CallResult:
        return self.send(self.prepare_query_order(request))

    def revoke_order(self, request: RevokeOrderRequest) -> CallResult:
        return self.send(self.prepare_revoke_order(request))

    # ------------------------------------------------------------ decode

    def _decode(self, interface: str, msg_id: str, response_type: type,
                check: Optional[Callable[[Any], Optional[str]]],
                http_status: int, content: bytes) -> CallResult:
        def unknown(reason: str, text: Optional[str] = None, code: Optional[str] = None) -> CallResult:
            return CallResult(Outcome.UNKNOWN, interface, msg_id, code=code, message=reason,
                              http_status=http_status, response_text=text)

        excerpt = mask_text(content[:_BODY_EXCERPT].decode("utf-8", "replace"))
        if http_status >= 500:
            return unknown(f"HTTP {http_status} from the centre", excerpt)
        if http_status == refusals.RATE_LIMITED_STATUS:
            return CallResult(Outcome.NOT_SENT, interface, msg_id, http_status=http_status,
                              message=f"not sent: HTTP {http_status} (rate limited)", response_text=excerpt)
        try:
            message = loads(content)
        except ValueError:
            return unknown(f"HTTP {http_status}: the body is not JSON", excerpt)
        try:
            opened = self._envelope.open(message)
        except EnvelopeError as exc:
            claimed = ""
            if isinstance(message, dict) and "code" in message:
                claimed = f" (unverified code={message.get('code')!s}, message={message.get('message')!s})"
            return unknown(f"HTTP {http_status}: {exc}{mask_text(claimed)}", excerpt)

        code, platform_message = opened.code, opened.message
        data = _unwrap(opened.data) if opened.data is not None else None
        text = _masked_json({"code": code, "message": platform_message, "data": data})
        if code is None:
            return unknown("verified response without a code", text)
        if code != "0":
            if interface in _MOVES_MONEY and refusals.still_processing(platform_message):
                # "being processed / result unknown": it may still be booked (query 6301 first).
                return unknown(f"{interface} answered {code}: {platform_message}", text, code)
            return CallResult(Outcome.REJECTED, interface, msg_id, code=code, message=platform_message,
                              http_status=http_status, response_text=text, raw=data,
                              transient=refusals.is_transient(platform_message))
        if not 200 <= http_status < 300:
            return unknown(f"HTTP {http_status} with code 0", text, code)

        if response_type is RevokeOrderResponse:
            return self._decode_revoke(interface, msg_id, http_status, code, opened.fields, data, text)
        if data is None:
            return unknown("code 0 but no business data", text, code)
        if response_type is RefundResponse and "hiRefdSn" not in data and "hiFefdSn" in data:
            # §12.7: one source spells the insurance refund serial hiFefdSn.
            data = {**data, "hiRefdSn": data["hiFefdSn"]}
        try:
            typed = from_data(response_type, data)
        except (ValueError, TypeError) as exc:
            return unknown(f"unexpected {interface} business data: {exc}", text, code)
        problem = check(typed) if check else None
        if problem:
            return unknown(problem, text, code)
        if response_type is RefundResponse and typed.refStatus is not RefStatus.SUCC:
            # §7.2: FAIL = not refunded (nothing happened: REJECTED); EXP = outcome unknown,
            # query 6301 before anything else (UNKNOWN).  Code = the refStatus.
            outcome = Outcome.REJECTED if typed.refStatus is RefStatus.FAIL else Outcome.UNKNOWN
            return CallResult(outcome, interface, msg_id, data=typed, code=typed.refStatus.value,
                              message=f"6203 refStatus {typed.refStatus.value}",
                              http_status=http_status, response_text=text, raw=data)
        return CallResult(Outcome.OK, interface, msg_id, data=typed, code=code, message=platform_message,
                          http_status=http_status, response_text=text, raw=data)

    @staticmethod
    def _decode_revoke(interface: str, msg_id: str, http_status: int, code: str, fields: dict,
                       data: Optional[dict], text: str) -> CallResult:
        # S6 judges 6401 by ``success`` plus ``message``, apparently on the outer
        # level; look in the business data first, then outside.  Absent: code 0 decides.
        source = data if data and "success" in data else fields
        raw_success = source.get("success", True)
        success = raw_success is True or str(raw_success).lower() == "true"
        message = source.get("message", fields.get("message"))
        message = None if message is None else str(message)
        typed = RevokeOrderResponse(success=success, message=message)
        outcome = Outcome.OK if success else Outcome.REJECTED
        return CallResult(outcome, interface, msg_id, data=typed, code=code, message=message,
                          http_status=http_status, response_text=text, raw=data)


def _new_id(interface: str) -> str:
    return f"{interface}-{uuid.uuid4().hex}"


def _unknown(prepared: PreparedCall, reason: str) -> CallResult:
    return CallResult(Outcome.UNKNOWN, prepared.interface, prepared.msg_id, message=reason)
