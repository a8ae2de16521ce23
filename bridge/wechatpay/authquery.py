"""WeChat 医保 authorisation: the patient's auth code -> payAuthNo (channels.md §5).

The mini-program sends the patient to the 医保 authorisation mini-program, which navigates
back with an auth code; the hospital's back end exchanges ``{qrcode: <auth code>, openid}``
at Tencent's user-query service for ``pay_auth_no`` (the patient's own) or
``family_pay_auth_no`` (a relative's; both at once is an error), sometimes ``auth_no``, a
value that starts with ``AUTH`` (§5).

channels.md found no public Tencent document for the endpoint (§10.4 item 1).  Public
hospital code agrees on its shape (docs/platform-choices.md "WeChat payAuthNo exchange"):

* ``POST <host>/api/mipuserquery/userQuery/<partner id>`` with a JSON body
  ``{"qrcode", "openid"}`` - a Java client demo (test host
  ``mip-receiver.tengmed.com/testapi/...``, index id 13722421937), a TypeScript hospital
  back end (``test-receiver.wecity.qq.com`` + ``/api/mipuserquery/userQuery/50010828``,
  body ``{qrcode, openid}``, the three answer names, the ``AUTH`` check; index ids
  60251270677, 68308737035, 65758524607), a hospital's relay log (``.../api/mipuserquery/
  userQuery/20003892``, index id 54886175551);
* headers ``god-portal-timestamp`` (milliseconds), ``god-portal-signature`` = hex
  HMAC-SHA256(partner secret, partner id + timestamp) and ``god-portal-request-id`` (the
  Java demo; the same "god-portal" partner signature other Tencent health platforms use).

Not known: the production host (the URL is the setting ``auth_query_url``, whole, with the
partner id), and the answer's envelope: the three names are looked for at any depth, as
the TypeScript back end does.  So the exchange is off unless configured.

Outcomes (bridge/calls.py): the grant -> OK (``data`` an AuthGrant); an answer without a
usable grant, or with both kinds -> REJECTED with the answer's own code and message when it
has them; 5xx, a timeout or a reset after sending, a body that is not JSON -> UNKNOWN
(asking again is harmless: it is a read, and a code already exchanged is refused, never
doubled); no connection -> NOT_SENT.  The auth code and payAuthNo never reach the journal
or a log (masked as secrets).
"""
from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional

import httpx
from loguru import logger

from bridge.calls import CallResult, Outcome, PreparedCall
from bridge.masking import mask_text, mask_value
from bridge.tls import client_context

from . import outcomes as oc
from .config import WechatPayConfig

AUTH_QUERY = "wechat.medins.auth_query"
GRANT_NAMES = ("pay_auth_no", "family_pay_auth_no", "auth_no")


@dataclass(frozen=True)
class AuthGrant:
    pay_auth_no: str = ""        # never logged, never in flow_data: a secret (mi_secret)
    family: bool = False         # a relative's authorisation (亲情付)

    def __repr__(self) -> str:   # the value is a secret
        return f"AuthGrant(family={self.family})"


def signature(partner_secret: str, partner_id: str, timestamp: str) -> str:
    return hmac.new(partner_secret.encode("utf-8"), (partner_id + timestamp).encode("utf-8"),
                    hashlib.sha256).hexdigest()


def _find(obj: Any, name: str) -> Optional[str]:
    if isinstance(obj, dict):
        v = obj.get(name)
        if isinstance(v, str) and v:
            return v
        for x in obj.values():
            found = _find(x, name)
            if found:
                return found
    elif isinstance(obj, list):
        for x in obj:
            found = _find(x, name)
            if found:
                return found
    return None


class PayAuthQuery:
    def __init__(self, config: WechatPayConfig, *, transport: Optional[httpx.BaseTransport] = None,
                 clock: Callable[[], float] = time.time):
        if not config.auth_query_url:
            raise ValueError("auth_query_url is not configured: the WeChat payAuthNo exchange is off")
        self.config = config
        self._clock = clock
        self._http = httpx.Client(
            timeout=httpx.Timeout(config.timeout_seconds, connect=config.connect_timeout_seconds),
            transport=transport, verify=client_context(), follow_redirects=False)

    def close(self) -> None:
        self._http.close()

    def prepare(self, auth_code: str, openid: str) -> PreparedCall:
        if not auth_code or not openid:
            raise ValueError("the auth code and the patient's openid are required")
        c = self.config
        request_id = secrets.token_hex(16)
        timestamp = str(int(self._clock() * 1000))
        body = json.dumps({"qrcode": auth_code, "openid": openid}, separators=(",", ":")).encode("utf-8")
        headers = {"Content-Type": "application/json", "Accept": "application/json",
                   "god-portal-timestamp": timestamp, "god-portal-request-id": request_id,
                   "god-portal-signature": signature(c.auth_partner_secret, c.auth_partner_id, timestamp)}
        msg_id = f"{AUTH_QUERY}-{request_id[:24]}"
        masked = json.dumps({"qrcode": "***", "openid": openid}, separators=(",", ":"))
        return PreparedCall(interface=AUTH_QUERY, msg_id=msg_id, url=c.auth_query_url, body=body, headers=headers,
                            masked_request=masked, decode=_decode(msg_id), keys={"request_id": request_id})

    def send(self, prepared: PreparedCall) -> CallResult:
        try:
            response = self._http.post(prepared.url, content=prepared.body, headers=prepared.headers)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            result = oc.result(AUTH_QUERY, prepared.msg_id, oc.NOT_SENT, f"not sent, connection failed: "
                                                                         f"{type(exc).__name__}")
        except httpx.TransportError as exc:
            result = oc.result(AUTH_QUERY, prepared.msg_id, oc.TIMEOUT if isinstance(exc, httpx.TimeoutException)
                               else oc.TRANSPORT_ERROR, f"no answer after sending: {type(exc).__name__}")
        else:
            result = prepared.decode(response.status_code, response.content)
        logger.info("wechat auth query {} -> {} code={} {}", prepared.msg_id, result.outcome.value, result.code,
                    mask_text(result.message or ""))
        return result


def _without_grants(obj: Any) -> Any:
    """The answer for the journal: every grant name's value replaced (mask_value knows
    pay_auth_no only)."""
    if isinstance(obj, dict):
        return {k: ("***" if k in GRANT_NAMES else _without_grants(v)) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_without_grants(v) for v in obj]
    return obj


def _decode(msg_id: str) -> Callable[..., CallResult]:
    def decode(status: int, content: bytes, headers: Any = None) -> CallResult:
        try:
            body = json.loads(content)
        except ValueError:
            body = None
        text = json.dumps(mask_value(_without_grants(body)), ensure_ascii=False)[:500] if body is not None else \
            mask_text(content[:200].decode("utf-8", "replace"))

        def result(code: str, message: str) -> CallResult:
            return oc.result(AUTH_QUERY, msg_id, code, message, http_status=status, response_text=text)
        if status >= 500:
            return result(oc.HTTP_ERROR, f"HTTP {status} from the user query")
        if not isinstance(body, dict):
            return result(oc.BAD_RESPONSE, f"HTTP {status}: the answer is not a JSON object")
        own, family = _find(body, "pay_auth_no"), _find(body, "family_pay_auth_no")
        grant = own or family or _find(body, "auth_no")
        code = next((str(body[k]) for k in ("code", "errcode", "resultCode", "ret") if body.get(k) is not None), None)
        said = next((str(body[k]) for k in ("message", "msg", "errmsg", "resultMessage") if body.get(k)), "")
        if own and family:
            return result("BOTH_GRANTS", "the answer carries both pay_auth_no and family_pay_auth_no")
        if status != 200 or not grant:
            return result(code or f"HTTP_{status}", mask_text(said) or "no pay_auth_no in the answer")
        if not grant.upper().startswith("AUTH"):
            return result("NOT_AN_AUTH_NO", "the answer's pay_auth_no does not start with AUTH")
        return CallResult(Outcome.OK, AUTH_QUERY, msg_id, data=AuthGrant(grant, family=bool(family)),
                          code=code, http_status=status, response_text=text)
    return decode
