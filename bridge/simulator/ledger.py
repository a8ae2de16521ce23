"""Every money movement the simulated platforms commit, for GET /__sim__/state.

Tests count these to catch double charges: a blind resend that the platform does not
deduplicate shows up as a second "mobilepay.charge" or "offline.settlement".

The "insurance.*" and "cash.*" kinds are the money legs of a mobile payment, one event per leg
movement (channel_ledger.py writes and sums them): the centre moves the fund and personal-account
legs, a channel (or, for the legacy control, an unmodelled "external" one) moves the cash leg.
"mobilepay.refund" stays the centre's record of a 6203, whatever cash it names.
"""
from __future__ import annotations

import threading
import time
from collections import Counter
from decimal import Decimal


KINDS = (
    "mobilepay.charge",      # the patient paid a mobile-pay order (fund + account + cash)
    "mobilepay.refund",      # a 6203 refund that moved money
    "mobilepay.revoke",      # 6401
    "offline.settlement",    # 2207 / 2304 / 2260 settle
    "offline.cancellation",  # 2208 / 2305 / 2261
    "offline.reversal",      # 2601
    "account.deduction",     # real-account (UnionPay) deduction
    "account.refund",        # real-account (UnionPay) refund
    "terminal.notice",       # cn.nhsa.settle.notify received
    "insurance.charge",      # fund + personal account taken at the centre
    "insurance.refund",      # fund + personal account given back by the centre (6203)
    "cash.charge",           # the cash leg taken in a channel (channel=wechat|alipay|external)
    "cash.refund",           # the cash leg given back to the patient by a channel
)


class Ledger:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: list[dict] = []

    def reset(self) -> None:
        with self._lock:
            self._events.clear()

    def record(self, kind: str, ref: str, amount: Decimal, **extra) -> None:
        assert kind in KINDS, kind
        with self._lock:
            self._events.append({"kind": kind, "ref": ref, "amount": str(amount),
                                 "at": time.strftime("%Y-%m-%d %H:%M:%S"), **extra})

    def counts(self) -> dict[str, int]:
        with self._lock:
            seen = Counter(e["kind"] for e in self._events)
            return {k: seen.get(k, 0) for k in KINDS}

    def events(self) -> list[dict]:
        with self._lock:
            return [dict(e) for e in self._events]
