"""Patient messages on WeChat: the mini-program subscribe message (§4.2) and the
official-account template message (§4.3), with the shared access_token (§4.1).

Same two steps as the payment client: ``prepare_message`` renders the configured
template (no I/O, no token: the journal never sees a token); ``send`` obtains the
token from the cache, posts, and on 40001/42001 (token invalid or expired) refreshes
once and posts again (nothing was sent under a refused token).  Outcomes follow
outcomes.py; 43101 (user refused) is a REJECTED final not-sent, not a fault.  A
message never moves money, so nothing here may affect a payment.
"""
from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional

import httpx
from loguru import logger

from bridge.calls import CallResult, Outcome, PreparedCall
from bridge.masking import ID_FIELDS, NAME_FIELDS, PHONE_FIELDS, mask_id, mask_name, mask_phone, mask_text
from bridge.tls import client_context

from . import outcomes as oc
from .config import WechatPayConfig
from .token import AccessTokenCache, Token, TokenUnavailable

TOKEN_INVALID = ("40001", "40014", "42001")


@dataclass(kw_only=True)
class PatientMessage:
    event: str                           # a key of config.templates ("registration_paid", "refund_done" ...)
    touser: str                          # openid: the mini-program's, or the 公众号's for kind "official"
    values: Mapping[str, Any]            # what the template's fields mapping refers to
    page: Optional[str] = None           # overrides the template's page


@dataclass(frozen=True)
class MessageSent:
    msgid: Optional[str]


def _mask_source(source: str, value: str) -> str:
    key = source.lower()
    if key in NAME_FIELDS or key.endswith("name"):
        return mask_name(value)
    if key in ID_FIELDS:
        return mask_id(value)
    if key in PHONE_FIELDS:
        return mask_phone(value)
    return mask_text(value)


class WechatMessenger:
    def __init__(self, config: WechatPayConfig, *, transport: Optional[httpx.BaseTransport] = None,
                 clock: Callable[[], float] = time.monotonic):
        self.config = config
        self._http = httpx.Client(
            timeout=httpx.Timeout(config.timeout_seconds, connect=config.connect_timeout_seconds),
            transport=transport, verify=client_context(), follow_redirects=False)
        self._caches: dict[str, AccessTokenCache] = {}
        for appid, secret in ((config.appid, config.app_secret),
                              (config.official_appid, config.official_app_secret)):
            if appid and secret:
                self._caches[appid] = AccessTokenCache(self._fetcher(appid, secret),
                                                       margin_seconds=config.token_refresh_margin_seconds,
                                                       clock=clock)

    def close(self) -> None:
        self._http.close()

    def token_cache(self, appid: str) -> AccessTokenCache:
        return self._caches[appid]

    # ------------------------------------------------------------ prepare

    def prepare_message(self, message: PatientMessage) -> PreparedCall:
        template = self.config.template(message.event)
        if template is None:
            raise ValueError(f"no message template configured for {message.event!r}")
        if not message.touser:
            raise ValueError("touser (openid) is required")
        data, shown = {}, {}
        for key, source in template.fields.items():
            if source not in message.values or message.values[source] in (None, ""):
                raise ValueError(f"template {message.event}: value {source!r} for {key} is missing")
            value = str(message.values[source])
            data[key] = {"value": value}
            shown[key] = {"value": _mask_source(source, value)}
        page = message.page if message.page is not None else template.page
        if template.kind == "subscribe":
            interface, path, appid = oc.SUBSCRIBE_MESSAGE, "/cgi-bin/message/subscribe/send", self.config.appid
            body: dict[str, Any] = {"touser": message.touser, "template_id": template.template_id, "data": data,
                                    "miniprogram_state": self.config.miniprogram_state, "lang": "zh_CN"}
            if page:
                body["page"] = page
        else:
            interface, path, appid = oc.TEMPLATE_MESSAGE, "/cgi-bin/message/template/send", \
                self.config.official_appid
            body = {"touser": message.touser, "template_id": template.template_id, "data": data}
            if template.url:
                body["url"] = template.url
            if page:
                # §4.3: when both url and miniprogram are given, the mini-program wins.
                body["miniprogram"] = {"appid": self.config.appid, "pagepath": page}
        msg_id = f"{interface}-{secrets.token_hex(12)}"
        if interface == oc.TEMPLATE_MESSAGE:
            body["client_msg_id"] = msg_id[-32:]      # §4.3: WeChat's own duplicate guard
        masked = {**body, "data": shown}
        answer = _MessageAnswer(self, interface, msg_id, appid)
        return PreparedCall(interface=interface, msg_id=msg_id, url=self.config.message_url(path),
                            body=json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8"),
                            headers={"Content-Type": "application/json"},
                            masked_request=json.dumps(masked, ensure_ascii=False, separators=(",", ":")),
                            decode=answer, keys={"event": message.event})

    # ------------------------------------------------------------ send

    def send(self, prepared: PreparedCall) -> CallResult:
        answer = prepared.decode
        cache = self._caches.get(getattr(answer, "appid", ""))
        if cache is None:
            return self._log(prepared, _local(prepared, oc.NOT_SENT, "no app secret configured for this appid"))
        result = None
        for attempt in (1, 2):
            try:
                token = cache.get()
            except TokenUnavailable as exc:
                return self._log(prepared, _local(prepared, oc.NOT_SENT,
                                                  f"not sent, no access_token: {exc} (errcode {exc.code})"))
            result = self._post(prepared, token)
            if result.code in TOKEN_INVALID and attempt == 1:
                cache.invalidate(token)
                continue
            break
        return self._log(prepared, result)

    def _post(self, prepared: PreparedCall, token: str) -> CallResult:
        try:
            response = self._http.post(prepared.url, params={"access_token": token}, content=prepared.body,
                                       headers=prepared.headers)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            return _local(prepared, oc.NOT_SENT, f"not sent, connection failed: {type(exc).__name__}")
        except httpx.TimeoutException as exc:
            return _local(prepared, oc.TIMEOUT, f"timeout after sending: {type(exc).__name__}")
        except httpx.TransportError as exc:
            return _local(prepared, oc.TRANSPORT_ERROR, f"transport error after sending: {type(exc).__name__}")
        return prepared.decode(response.status_code, response.content)

    def _log(self, prepared: PreparedCall, result: CallResult) -> CallResult:
        logger.info("wechat message {} {} -> {} code={} {}", prepared.interface, prepared.msg_id,
                    result.outcome.value, result.code, mask_text(result.message or ""))
        return result

    # ------------------------------------------------------------ token fetch

    def _fetcher(self, appid: str, secret: str) -> Callable[[bool], Token]:
        def fetch(force: bool) -> Token:
            try:
                if self.config.token_api == "stable":
                    response = self._http.post(self.config.message_url("/cgi-bin/stable_token"),
                                               json={"grant_type": "client_credential", "appid": appid,
                                                     "secret": secret, "force_refresh": force})
                else:
                    response = self._http.get(self.config.message_url("/cgi-bin/token"),
                                              params={"grant_type": "client_credential", "appid": appid,
                                                      "secret": secret})
            except httpx.HTTPError as exc:
                raise TokenUnavailable(f"token request failed: {type(exc).__name__}") from None
            try:
                body = response.json()
            except ValueError:
                raise TokenUnavailable(f"token answer is not JSON (HTTP {response.status_code})") from None
            if not isinstance(body, dict):
                raise TokenUnavailable("token answer is not a JSON object")
            if body.get("errcode") not in (None, 0):
                raise TokenUnavailable(f"WeChat refused the token: {mask_text(str(body.get('errmsg')))}",
                                       code=str(body.get("errcode")))
            value, expires_in = body.get("access_token"), body.get("expires_in")
            if not isinstance(value, str) or not isinstance(expires_in, int):
                raise TokenUnavailable("token answer lacks access_token / expires_in")
            return Token(value, expires_in)
        return fetch


@dataclass
class _MessageAnswer:
    messenger: WechatMessenger = field(repr=False)
    interface: str
    msg_id: str
    appid: str

    def __call__(self, status: int, content: bytes, headers: Optional[Mapping[str, str]] = None) -> CallResult:
        excerpt = mask_text(content[:300].decode("utf-8", "replace"))
        try:
            body = json.loads(content)
        except ValueError:
            body = None
        if status >= 500:
            return self._result(oc.HTTP_ERROR, f"HTTP {status} from WeChat", status, excerpt)
        if not isinstance(body, dict) or "errcode" not in body:
            return self._result(oc.BAD_RESPONSE, f"HTTP {status}: no errcode in the answer", status, excerpt)
        errcode = str(body.get("errcode"))
        if errcode == "0" and status == 200:
            msgid = body.get("msgid")
            return CallResult(Outcome.OK, self.interface, self.msg_id,
                              data=MessageSent(None if msgid is None else str(msgid)), code="0",
                              message=str(body.get("errmsg") or "ok"), http_status=status, response_text=excerpt)
        return self._result(errcode, mask_text(str(body.get("errmsg") or "")), status, excerpt)

    def _result(self, code: str, message: str, status: int, text: str) -> CallResult:
        return oc.result(self.interface, self.msg_id, code, message, http_status=status, response_text=text)


def _local(prepared: PreparedCall, code: str, reason: str) -> CallResult:
    return oc.result(prepared.interface, prepared.msg_id, code, reason)
