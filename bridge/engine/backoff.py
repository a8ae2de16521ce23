"""Retry delays: exponential with full jitter, capped.

Jitter keeps a crowd of rows that failed together (a platform outage) from
retrying together.  The RNG here only spreads load; nothing secret depends on it.
"""
from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    base: float = 2.0        # seconds before the first retry (before jitter)
    cap: float = 600.0       # never wait longer than this
    jitter: float = 0.5      # +-50 %

    def delay(self, attempt: int) -> float:
        raw = min(self.cap, self.base * (2 ** max(0, attempt - 1)))
        return max(0.0, raw * (1 + random.uniform(-self.jitter, self.jitter)))
