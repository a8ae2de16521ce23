"""9001 sign-in state: one sign_no per operator per day (digest offline.md §4).

The platform hands out a `sign_no` that goes into every later envelope.  It is
renewed when the local day changes, optionally after a maximum age (GZ re-signs
after one hour), and when the platform says the sign-in is no longer valid.
Thread-safe: concurrent callers for one operator cause a single 9001.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Callable, Optional

from bridge.calls import CallResult
from bridge.offline.messages import SignInResult


@dataclass(frozen=True)
class _Held:
    sign_no: str
    signed_at: datetime


class SignIn:
    def __init__(self, sign_in: Callable[[str], CallResult[SignInResult]], *,
                 max_age_seconds: Optional[int] = None,
                 clock: Callable[[], datetime] = datetime.now):
        """`sign_in(opter)` performs one 9001 for that operator and returns its result."""
        self._sign_in = sign_in
        self._max_age = max_age_seconds
        self._clock = clock
        self._held: dict[str, _Held] = {}
        self._guard = threading.Lock()
        self._per_operator: dict[str, threading.Lock] = {}

    def _valid(self, held: Optional[_Held]) -> bool:
        if held is None:
            return False
        now = self._clock()
        if held.signed_at.date() != now.date():
            return False
        if self._max_age is not None and (now - held.signed_at).total_seconds() >= self._max_age:
            return False
        return True

    def current(self, opter: str) -> Optional[str]:
        """The valid sign_no for the operator, or None.  No I/O."""
        with self._guard:
            held = self._held.get(opter)
        return held.sign_no if self._valid(held) else None

    def ensure(self, opter: str) -> tuple[Optional[str], Optional[CallResult[SignInResult]]]:
        """(sign_no, None) when signed in, signing in first if needed;
        (None, failed 9001 result) when the sign-in did not succeed."""
        with self._guard:
            lock = self._per_operator.setdefault(opter, threading.Lock())
        with lock:
            sign_no = self.current(opter)
            if sign_no is not None:
                return sign_no, None
            result = self._sign_in(opter)
            if not result.ok or result.data is None:
                return None, result
            with self._guard:
                self._held[opter] = _Held(result.data.sign_no, self._clock())
            return result.data.sign_no, None

    def accept(self, opter: str, sign_no: str) -> None:
        """Hold a sign_no obtained by an explicit 9001."""
        with self._guard:
            self._held[opter] = _Held(sign_no, self._clock())

    def invalidate(self, opter: str, sign_no: Optional[str] = None) -> None:
        """Forget the operator's sign_no (only if it is still `sign_no`, when given, so a
        late answer to an old call cannot throw away a fresh sign-in)."""
        with self._guard:
            held = self._held.get(opter)
            if held is not None and (sign_no is None or held.sign_no == sign_no):
                del self._held[opter]
