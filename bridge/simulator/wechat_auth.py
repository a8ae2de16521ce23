"""WeChat 医保 authorisation: the patient's auth code exchanged for a payAuthNo (channels.md §5,
§10.1 "Auth: auth_codes[code] -> {openid, pay_auth_no | family_pay_auth_no, expires, used}").

The patient finishes the 医保 authorisation mini-program, which hands the hospital's
mini-program an auth code (here: POST /__sim__/wechat/auth_code {"openid", "psn_no",
"family"?} -> {"auth_code"}).  The hospital's back end exchanges it:

    POST /api/mipuserquery/userQuery/<partner id>          interface wechat.auth_query
    headers god-portal-timestamp (ms), god-portal-signature = hex HMAC-SHA256(partner
            secret, partner id + timestamp), god-portal-request-id
    body    {"qrcode": <auth code>, "openid": <the patient's openid>}

channels.md §5 found the body and the answer's names ({qrcode, openid}; pay_auth_no or
family_pay_auth_no, starting with AUTH), not the endpoint, its authentication or its
envelope [uncertain]; the path and headers follow the public hospital code
docs/platform-choices.md cites ("WeChat payAuthNo exchange").  The envelope is the
simulator's choice [U]: {"code": 0, "message": "success", "data": {"pay_auth_no": ...}};
a refusal is HTTP 200 {"code": <non-zero>, "message"}, a bad signature HTTP 401
{"code": "SIGN_FAIL"}.

A code is single use and lives pay_auth_ttl_seconds; the payAuthNo it gives is the centre's
(the same token /__sim__/mobilepay/authorize issues), so 6201/6202 and the mixed order
accept it.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from typing import Any

from .config import SimulatorConfig
from .persons import Persons
from .tokens import Tokens

PATH_PREFIX = "/api/mipuserquery/userQuery/"


class AuthError(Exception):
    def __init__(self, status: int, code: Any, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def body(self) -> dict:
        return {"code": self.code, "message": self.message}


class WeChatAuth:
    def __init__(self, cfg: SimulatorConfig, tokens: Tokens, persons: Persons) -> None:
        self.cfg = cfg
        self.tokens = tokens
        self.persons = persons
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.codes: dict[str, dict] = {}
            self.exchanges: list[dict] = []

    # --- the patient (control) -----------------------------------------------------------
    def issue(self, body: dict) -> dict:
        openid, psn_no = str(body.get("openid") or ""), str(body.get("psn_no") or "")
        person = self.persons.get(psn_no)
        if not openid or person is None:
            raise ValueError("give the patient's openid and a known psn_no")
        code = "AC" + secrets.token_hex(12)
        with self._lock:
            self.codes[code] = {"openid": openid, "psn_no": person.psn_no, "admdvs": person.insuplc_admdvs,
                                "family": bool(body.get("family")), "used": False,
                                "expires_at": time.time() + self.cfg.pay_auth_ttl_seconds}
        return {"auth_code": code}

    def public(self) -> dict:
        with self._lock:
            return {"codes": {k: {"openid": c["openid"], "psn_no": c["psn_no"], "family": c["family"],
                                  "used": c["used"], "expires_at": int(c["expires_at"])}
                              for k, c in self.codes.items()},
                    "exchanges": list(self.exchanges)}

    # --- the hospital's back end ---------------------------------------------------------
    def _check_signature(self, partner: str, headers: Any) -> None:
        ts = str(headers.get("god-portal-timestamp") or "")
        given = str(headers.get("god-portal-signature") or "")
        if partner != self.cfg.wechat_auth_partner_id:
            raise AuthError(401, "SIGN_FAIL", "unknown partner")
        if not ts.isdigit() or abs(time.time() - int(ts) / 1000.0) > self.cfg.wechat_max_skew_seconds:
            raise AuthError(401, "SIGN_FAIL", "timestamp missing or out of window")
        want = hmac.new(self.cfg.wechat_auth_partner_secret.encode(), (partner + ts).encode(),
                        hashlib.sha256).hexdigest()
        if not hmac.compare_digest(want, given) or not headers.get("god-portal-request-id"):
            raise AuthError(401, "SIGN_FAIL", "signature verification failed")

    def exchange(self, partner: str, headers: Any, body: Any) -> tuple[int, dict]:
        try:
            self._check_signature(partner, headers)
            if not isinstance(body, dict) or not body.get("qrcode") or not body.get("openid"):
                raise AuthError(200, 1000, "参数错误: qrcode and openid are required")
            with self._lock:
                c = self.codes.get(str(body["qrcode"]))
                if c is None:
                    raise AuthError(200, 1001, "授权码无效")
                if c["used"]:
                    raise AuthError(200, 1002, "授权码已使用")
                if c["expires_at"] < time.time():
                    raise AuthError(200, 1003, "授权码已过期")
                if c["openid"] != str(body["openid"]):
                    raise AuthError(200, 1004, "授权码与用户不匹配")
                c["used"] = True
                self.exchanges.append({"qrcode": str(body["qrcode"]), "openid": c["openid"], "psn_no": c["psn_no"]})
            tok = self.tokens.issue("payAuthNo", c["psn_no"], self.cfg.pay_auth_ttl_seconds, "AUTH" + c["admdvs"])
            name = "family_pay_auth_no" if c["family"] else "pay_auth_no"
            return 200, {"code": 0, "message": "success", "data": {name: tok.value}}
        except AuthError as exc:
            return exc.status, exc.body()
