"""The WeChat ``access_token`` cache (channels.md §4.1).

One token per appid, fetched centrally: each classic ``/cgi-bin/token`` fetch
invalidates the previous token, so every sender in the process shares this cache.
Thread-safe; only one refresh runs at a time (others wait for it and then use its
token); the token is refreshed ``margin`` seconds before it expires.  If a refresh
fails while the old token is still valid, the old one keeps being used.
"""
from __future__ import annotations

import threading
import time
from typing import Callable, NamedTuple, Optional


class TokenUnavailable(Exception):
    """No valid token could be obtained; ``code`` is WeChat's errcode when it gave one."""

    def __init__(self, message: str, code: Optional[str] = None):
        super().__init__(message)
        self.code = code


class Token(NamedTuple):
    value: str
    expires_in: int          # seconds, as WeChat says (≤ 7200)


class AccessTokenCache:
    """``fetch(force)`` does the I/O and returns a Token or raises TokenUnavailable;
    ``force`` asks for a new token even if WeChat would hand back the current one
    (stable_token ``force_refresh``; limited to 20 a day, so used only after WeChat
    itself called our token invalid)."""

    def __init__(self, fetch: Callable[[bool], Token], *, margin_seconds: int = 300,
                 clock: Callable[[], float] = time.monotonic):
        self._fetch = fetch
        self._margin = margin_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._value: Optional[str] = None
        self._expires_at = 0.0
        self._force_next = False

    def get(self) -> str:
        with self._lock:
            now = self._clock()
            if self._value is not None and not self._force_next and now < self._expires_at - self._margin:
                return self._value
            force = self._force_next
            try:
                token = self._fetch(force)
            except TokenUnavailable:
                if self._value is not None and not self._force_next and now < self._expires_at:
                    return self._value       # still valid: ride out the failed refresh
                raise
            if not token.value or token.expires_in <= 0:
                raise TokenUnavailable("WeChat answered without access_token / expires_in")
            self._value, self._expires_at, self._force_next = token.value, now + token.expires_in, False
            return self._value

    def invalidate(self, value: str) -> None:
        """WeChat called ``value`` invalid (40001/42001): the next get() fetches a new one,
        unless another thread already replaced it."""
        with self._lock:
            if self._value == value:
                self._force_next = True
