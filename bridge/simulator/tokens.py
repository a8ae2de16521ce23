"""Authorisation tokens the channels and the face terminal issue, each bound to one person.

* payAuthNo: issued by the payment channel after the patient authorises (mobilepay.md §5.7);
  short-lived and single-use (consumed by 6202). Simulated by POST /__sim__/mobilepay/authorize.
* ecToken: the e-credential token from the face terminal's cn.nhsa.auth.check (offline.md §7.2);
  usable as 1101 mdtrt_cert_no with mdtrt_cert_type 01, and as ecToken in 6201.
* authNo: the terminal's real-person-auth serial, exchanged for identity by cn.nhsa.auth.check.
"""
from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass
from typing import Optional


@dataclass
class Token:
    kind: str
    value: str
    psn_no: str
    expires_at: float
    used: bool = False


class TokenError(ValueError):
    pass


class Tokens:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens: dict[str, Token] = {}
        self._seq = 0

    def reset(self) -> None:
        with self._lock:
            self._tokens.clear()

    def issue(self, kind: str, psn_no: str, ttl: float, prefix: str) -> Token:
        with self._lock:
            self._seq += 1
            value = f"{prefix}{time.strftime('%Y%m%d%H%M%S')}{self._seq:06d}{secrets.token_hex(4)}"
            tok = Token(kind, value, psn_no, time.time() + ttl)
            self._tokens[value] = tok
            return tok

    def peek(self, kind: str, value: str) -> Optional[Token]:
        """A valid (issued, unexpired, unused) token, or None."""
        with self._lock:
            tok = self._tokens.get(str(value))
            if tok is None or tok.kind != kind or tok.used or tok.expires_at < time.time():
                return None
            return tok

    def find(self, kind: str, value: str) -> Optional[Token]:
        """The token as issued, used or not (a channel re-checks a payAuthNo 6202 consumed)."""
        with self._lock:
            tok = self._tokens.get(str(value))
            return tok if tok is not None and tok.kind == kind else None

    def consume(self, kind: str, value: str, psn_no: str) -> None:
        with self._lock:
            tok = self._tokens.get(str(value))
            if tok is None or tok.kind != kind or tok.expires_at < time.time():
                raise TokenError("未找到对应授权信息")        # wording from mobilepay.md §5.7
            if tok.used or tok.psn_no != psn_no:
                raise TokenError("PAY_AUTH_NO 校验失败")
            tok.used = True
