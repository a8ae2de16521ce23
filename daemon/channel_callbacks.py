"""The WSGI apps where WeChat Pay and Alipay post their callbacks, mounted on a
daemon/http_server.py listener beside the 6302 endpoint (same waitress limits: threads,
idle timeout, body and header sizes; the JSON nesting check here).

Per callback:
  1. POST only (405), a body (400), within the listener's size (413) and, for WeChat, its
     JSON nesting limit (400);
  2. verified before anything is written.  WeChat (channels.md §1.3-§1.4): a configured
     Wechatpay-Serial, the timestamp within the window, the RSA signature over
     timestamp\\nnonce\\nbody\\n, the WECHATPAY/SIGNTEST/ probe refused, the resource
     decrypted with the APIv3 key (AEAD_AES_256_GCM) and naming our mchid/appid
     (bridge/wechatpay/callback.py).  Alipay (§6.4): RSA2 over the sorted parameters
     without sign/sign_type, our app_id and seller_id (bridge/alipay/notify.py).  A forged
     callback gets 401 (WeChat) / 400 (Alipay) and nothing is written;
  3. recorded once in mi_notice (a repeat only counts) and its open request made due now
     (bridge/channels/notices.py).  Nothing here moves a request on: the flow compares the
     callback with its own query;
  4. a callback for a request that ended, or one we cannot place, is recorded, logged and
     handed to ``on_unmatched`` (the flows' notice check);
  5. answered as the channel expects: WeChat 204 with no body, failures 4xx/5xx with
     {"code": "FAIL", "message": ...} so that it retries (§1.4); Alipay the plain text
     ``success``, anything else makes it resend (§6.4).  A database failure answers 500,
     so the channel sends the callback again.

Every refusal is logged (with the peer and the reason, never the body); no traceback
reaches an answer.  One database connection per waitress worker thread (ThreadStores).
"""
from __future__ import annotations

import json
import time
from http import HTTPStatus
from typing import Callable, Optional

from loguru import logger

from bridge.channels import notices
from bridge.db.store import Store
from daemon.http_server import HttpLimits, json_depth_exceeds, read_body
from daemon.thread_stores import ThreadStores


def _answer(start_response, status: int, body: bytes = b"", content_type: Optional[str] = None,
            extra: Optional[dict] = None) -> list[bytes]:
    headers = dict(extra or {})
    if status != 204:                   # RFC 9110 §15.3.5: a 204 has no content and no Content-Length
        headers["Content-Type"] = content_type or "application/json"
        headers["Content-Length"] = str(len(body))
    start_response(f"{status} {HTTPStatus(status).phrase}", list(headers.items()))
    return [] if status == 204 else [body]


def _headers(environ: dict) -> dict[str, str]:
    """The request headers as a name -> value mapping (WSGI gives HTTP_WECHATPAY_SERIAL ...)."""
    out = {}
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            out[key[5:].replace("_", "-").title()] = value
    if environ.get("CONTENT_TYPE"):
        out["Content-Type"] = environ["CONTENT_TYPE"]
    return out


class _CallbackApp:
    """What both channels' apps share: the HTTP checks, the store, the recording."""

    channel = "?"

    def __init__(self, new_store: Callable[[], Store], limits: Optional[HttpLimits] = None,
                 on_notice: Optional[Callable[[], None]] = None,
                 on_unmatched: Optional[notices.Unmatched] = None):
        self.stores = ThreadStores(new_store)
        self.limits = limits or HttpLimits()
        self.on_notice = on_notice
        self.on_unmatched = on_unmatched

    # -- answers, one pair per channel ---------------------------------------------
    def ok(self, start_response) -> list[bytes]:
        raise NotImplementedError

    def fail(self, start_response, status: int, message: str) -> list[bytes]:
        raise NotImplementedError

    # -- HTTP ----------------------------------------------------------------------
    def __call__(self, environ, start_response):
        peer = environ.get("REMOTE_ADDR")
        method = environ.get("REQUEST_METHOD")
        if method != "POST":
            logger.info("{} callback: {} from {} refused (POST only)", self.channel, method, peer)
            return self.fail(start_response, 405, "POST only")
        try:
            body = read_body(environ, self.limits)
        except ValueError:
            logger.warning("{} callback: body from {} over {} bytes refused", self.channel, peer,
                           self.limits.max_body_bytes)
            return self.fail(start_response, 413, "body too large")
        except Exception as exc:
            logger.warning("{} callback: could not read the body from {} ({}: {})", self.channel, peer,
                           type(exc).__name__, exc)
            return self.fail(start_response, 400, "unreadable body")
        if not body:
            logger.warning("{} callback: empty body from {} refused", self.channel, peer)
            return self.fail(start_response, 400, "empty body")
        return self.handle(environ, body, peer, start_response)

    def handle(self, environ, body: bytes, peer, start_response):
        raise NotImplementedError

    def record(self, notice: notices.ChannelNotice, start_response):
        """Record a verified callback and answer; a database failure answers 500 (resend)."""
        try:
            result = notices.record_and_wake(self.stores.get(), notice, self.on_unmatched)
        except Exception as exc:
            # The database, or the notice check the flows hooked in (on_unmatched): either way
            # the channel sends the callback again, and a repeat only counts.
            logger.error("{} callback {} could not be recorded or checked ({}: {}); asking the channel to send "
                         "it again", self.channel, notice.natural, type(exc).__name__, exc)
            self.stores.drop()
            return self.fail(start_response, 500, "temporarily unable to record")
        line = notices.describe(notice, result)
        if result.verdict in ("woken", "open"):
            logger.info("{} callback: {}", self.channel, line)
        else:
            # An ended request, or a number we never gave: kept for the notice check / a person.
            logger.warning("{} callback: {}", self.channel, line)
        if self.on_notice is not None:
            self.on_notice()
        return self.ok(start_response)

    def close(self) -> None:
        self.stores.close()


class WechatCallbacks(_CallbackApp):
    """MEDICAL_INSURANCE.SUCCESS (callback_url), TRANSACTION.SUCCESS (the JSAPI notify_url),
    REFUND.* (the refund notify_url): one app, the event type says which."""

    channel = "wechatpay"

    def __init__(self, config, settings, new_store: Callable[[], Store], limits: Optional[HttpLimits] = None,
                 on_notice=None, on_unmatched=None, clock: Optional[Callable[[], float]] = None):
        from bridge.wechatpay.signing import PlatformVerifier

        super().__init__(new_store, limits, on_notice, on_unmatched)
        self.config = config
        self.settings = settings
        self.verifier = PlatformVerifier(config.platform_keys, window_seconds=config.timestamp_window_seconds,
                                         clock=clock or time.time)

    def ok(self, start_response):
        return _answer(start_response, 204)

    def fail(self, start_response, status, message):
        body = json.dumps({"code": "FAIL", "message": message}, ensure_ascii=False).encode("utf-8")
        return _answer(start_response, status, body, "application/json", {"Allow": "POST"} if status == 405 else None)

    def handle(self, environ, body, peer, start_response):
        from bridge.wechatpay.callback import ForgedCallback, InvalidCallback, parse_callback

        if json_depth_exceeds(body, self.limits.max_json_depth):
            logger.warning("wechatpay callback from {}: JSON nested deeper than {} refused", peer,
                           self.limits.max_json_depth)
            return self.fail(start_response, 400, "JSON nested too deep")
        try:
            event = parse_callback(self.config, _headers(environ), body, verifier=self.verifier)
        except ForgedCallback as exc:
            logger.warning("wechatpay callback from {} refused as forged: {}", peer, exc)
            return self.fail(start_response, 401, "signature verification failed")
        except InvalidCallback as exc:
            logger.warning("wechatpay callback from {} refused: {}", peer, exc)
            return self.fail(start_response, 400, "not a usable callback")
        except Exception as exc:        # a parser bug or a pathological body: still an answer
            logger.opt(exception=True).error("wechatpay callback from {}: could not be parsed ({}: {})", peer,
                                             type(exc).__name__, exc)
            return self.fail(start_response, 500, "internal error")
        return self.record(notices.wechat_notice(event, self.settings.order_prefix), start_response)


class AlipayNotifies(_CallbackApp):
    """The async notifies of trades and refunds (notify_url) and of the medical order
    (call_url, in the same §6.4 form as far as is known: channels.md §10.4 item 10)."""

    channel = "alipay"

    def __init__(self, config, settings, new_store: Callable[[], Store], limits: Optional[HttpLimits] = None,
                 on_notice=None, on_unmatched=None):
        super().__init__(new_store, limits, on_notice, on_unmatched)
        self.config = config
        self.settings = settings

    def ok(self, start_response):
        return _answer(start_response, 200, b"success", "text/plain;charset=utf-8")

    def fail(self, start_response, status, message):
        return _answer(start_response, status, b"fail", "text/plain;charset=utf-8",
                       {"Allow": "POST"} if status == 405 else None)

    def handle(self, environ, body, peer, start_response):
        from bridge.alipay.notify import ForgedNotify, InvalidNotify, parse_notify

        try:
            notice = parse_notify(self.config, body)
        except ForgedNotify as exc:
            logger.warning("alipay notify from {} refused as forged: {}", peer, exc)
            return self.fail(start_response, 400, "forged")
        except InvalidNotify as exc:
            logger.warning("alipay notify from {} refused: {}", peer, exc)
            return self.fail(start_response, 400, "invalid")
        except Exception as exc:
            logger.opt(exception=True).error("alipay notify from {}: could not be parsed ({}: {})", peer,
                                             type(exc).__name__, exc)
            return self.fail(start_response, 500, "internal error")
        return self.record(notices.alipay_notice(notice, self.settings.order_prefix), start_response)
