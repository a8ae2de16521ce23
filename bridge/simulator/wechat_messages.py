"""api.weixin.qq.com: access_token and messages to patients (channels.md §4).

* `GET /cgi-bin/token?grant_type=client_credential&appid=&secret=`: a new token each time; the
  previous one keeps working for `wechat_token_grace_seconds` (§4.1, about 5 minutes).
* `POST /cgi-bin/stable_token`: the same token while valid; a new one within 5 minutes of expiry
  or with force_refresh; independent of /cgi-bin/token (§4.1).
* `POST /cgi-bin/message/subscribe/send?access_token=`: the mini-program's subscribe message
  (§4.2). A send consumes one one-off subscription of (openid, template_id); with none left the
  answer is 43101 "user refused" ([uncertain] that a send consumes one, general knowledge).
  Subscriptions come from the patient: POST /__sim__/wechat/subscribe {openid, template_id,
  count (default 1; -1 = long-term)} or {openid, template_id, refuse: true}.
* `POST /cgi-bin/message/template/send?access_token=`: the official account's template message
  (§4.3), with the official account's token; no subscription needed.

Errors are `{errcode, errmsg}` with HTTP 200 (§4.1 [uncertain]). Messages sent are kept for
GET /__sim__/wechat/messages.
"""
from __future__ import annotations

import secrets
import threading
import time
from typing import Any

from .config import SimulatorConfig

STATES = ("developer", "trial", "formal")


class MessageError(Exception):
    def __init__(self, errcode: int, errmsg: str) -> None:
        super().__init__(errmsg)
        self.errcode = errcode
        self.errmsg = errmsg

    def body(self) -> dict:
        return {"errcode": self.errcode, "errmsg": self.errmsg}


class WeChatMessages:
    def __init__(self, cfg: SimulatorConfig) -> None:
        self.cfg = cfg
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            # token -> {appid, expires_at, invalid_after, stable}
            self.tokens: dict[str, dict] = {}
            self.subscriptions: dict[tuple[str, str], int] = {}
            self.sent: list[dict] = []
            self._msgid = 1000

    def _apps(self) -> dict[str, str]:
        return {self.cfg.wechat_appid: self.cfg.wechat_app_secret,
                self.cfg.wechat_oa_appid: self.cfg.wechat_oa_secret}

    def _check_app(self, appid: Any, secret: Any) -> str:
        apps = self._apps()
        if appid not in apps:
            raise MessageError(40013, "invalid appid")
        if secret != apps[appid]:
            raise MessageError(40001, "invalid credential, access_token is invalid or not latest")
        return str(appid)

    def _issue(self, appid: str, stable: bool) -> dict:
        token = secrets.token_urlsafe(96)     # §4.1: reserve >= 512 characters; real ones are ~150
        info = {"appid": appid, "expires_at": time.time() + self.cfg.wechat_token_ttl_seconds,
                "invalid_after": None, "stable": stable}
        self.tokens[token] = info
        return {"access_token": token, "expires_in": self.cfg.wechat_token_ttl_seconds}

    # --- §4.1 ----------------------------------------------------------------------------
    def token(self, query: dict) -> dict:
        if query.get("grant_type") != "client_credential":
            raise MessageError(40002, "invalid grant_type")
        with self._lock:
            appid = self._check_app(query.get("appid"), query.get("secret"))
            grace = time.time() + self.cfg.wechat_token_grace_seconds
            for info in self.tokens.values():
                if info["appid"] == appid and not info["stable"] and info["invalid_after"] is None:
                    info["invalid_after"] = grace
            return self._issue(appid, stable=False)

    def stable_token(self, body: dict) -> dict:
        if body.get("grant_type") != "client_credential":
            raise MessageError(40002, "invalid grant_type")
        with self._lock:
            appid = self._check_app(body.get("appid"), body.get("secret"))
            now = time.time()
            current = [(t, i) for t, i in self.tokens.items()
                       if i["appid"] == appid and i["stable"] and i["invalid_after"] is None]
            if current and not body.get("force_refresh"):
                tok, info = current[-1]
                if info["expires_at"] - now > 300:
                    return {"access_token": tok, "expires_in": int(info["expires_at"] - now)}
            for _, info in current:
                info["invalid_after"] = now
            return self._issue(appid, stable=True)

    def expire_tokens(self) -> int:
        """Control: every token expires now (the next send gets 42001)."""
        with self._lock:
            for info in self.tokens.values():
                info["expires_at"] = time.time() - 1
            return len(self.tokens)

    def _token_app(self, query: dict) -> str:
        info = self.tokens.get(str(query.get("access_token") or ""))
        now = time.time()
        if info is None or (info["invalid_after"] is not None and info["invalid_after"] < now):
            raise MessageError(40001, "invalid credential, access_token is invalid or not latest")
        if info["expires_at"] < now:
            raise MessageError(42001, "access_token expired")
        return info["appid"]

    # --- §4.2 / §4.3 -------------------------------------------------------------------
    @staticmethod
    def _check_data(data: Any) -> None:
        if not isinstance(data, dict) or not data:
            raise MessageError(47003, "argument invalid! data is empty")
        for key, value in data.items():
            if not isinstance(value, dict) or not isinstance(value.get("value"), str):
                raise MessageError(47003, f"argument invalid! data.{key}.value invalid")

    def _check_template(self, template_id: Any) -> None:
        if not template_id or (self.cfg.wechat_template_ids and template_id not in self.cfg.wechat_template_ids):
            raise MessageError(40037, "invalid template_id")

    def subscribe_send(self, query: dict, body: dict) -> dict:
        with self._lock:
            if self._token_app(query) != self.cfg.wechat_appid:
                raise MessageError(40001, "invalid credential, access_token is invalid or not latest")
            touser, template_id = body.get("touser"), body.get("template_id")
            if not touser or not isinstance(touser, str):
                raise MessageError(40003, "invalid openid")
            self._check_template(template_id)
            self._check_data(body.get("data"))
            if body.get("miniprogram_state") not in (None, "", *STATES):
                raise MessageError(47003, "argument invalid! miniprogram_state invalid")
            left = self.subscriptions.get((touser, str(template_id)), 0)
            if left == 0:
                raise MessageError(43101, "user refuse to accept the msg")
            if left > 0:
                self.subscriptions[(touser, str(template_id))] = left - 1
            return self._record("subscribe", body)

    def template_send(self, query: dict, body: dict) -> dict:
        with self._lock:
            if self._token_app(query) != self.cfg.wechat_oa_appid:
                raise MessageError(40001, "invalid credential, access_token is invalid or not latest")
            if not body.get("touser") or not isinstance(body.get("touser"), str):
                raise MessageError(40003, "invalid openid")
            self._check_template(body.get("template_id"))
            self._check_data(body.get("data"))
            return self._record("template", body)

    def _record(self, kind: str, body: dict) -> dict:
        self._msgid += 1
        msgid = int(time.strftime("%y%m%d%H%M")) * 10000 + self._msgid
        self.sent.append({"kind": kind, "msgid": msgid, "touser": body.get("touser"),
                          "template_id": body.get("template_id"), "page": body.get("page"),
                          "url": body.get("url"), "miniprogram": body.get("miniprogram"),
                          "miniprogram_state": body.get("miniprogram_state"),
                          "client_msg_id": body.get("client_msg_id"), "data": body.get("data"),
                          "at": time.strftime("%Y-%m-%d %H:%M:%S")})
        return {"errcode": 0, "errmsg": "ok", "msgid": msgid}

    # --- the patient's side (control) ------------------------------------------------------
    def subscribe(self, body: dict) -> dict:
        openid, template_id = body.get("openid"), body.get("template_id")
        if not openid or not template_id:
            raise ValueError("openid and template_id are required")
        with self._lock:
            key = (str(openid), str(template_id))
            if body.get("refuse"):
                self.subscriptions[key] = 0
            else:
                count = int(body.get("count", 1))
                current = self.subscriptions.get(key, 0)
                self.subscriptions[key] = -1 if count < 0 or current < 0 else current + count
            return {"openid": openid, "template_id": template_id, "remaining": self.subscriptions[key]}

    def public(self) -> dict:
        with self._lock:
            return {"sent": [dict(m) for m in self.sent],
                    "subscriptions": [{"openid": k[0], "template_id": k[1], "remaining": v}
                                      for k, v in self.subscriptions.items()],
                    "tokens": len(self.tokens)}
