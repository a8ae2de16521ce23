"""What a platform's reconciliation works with during one run, and the retry rule for its calls.

None of the reconciliation's calls moves money (3201, 3202, 9101, 9102, 6301, bill downloads):
a call that was not sent, got no answer, or was refused for a passing reason (busy, rate
limit, signature: bridge/refusals.py) is simply made again, a few times, a little apart.  A
refusal that is a verdict is returned to the caller."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Optional

from loguru import logger

from bridge.calls import CallResult, Outcome
from bridge.db.store import Store
from bridge.reconcile.hospital import Book
from bridge.reconcile.model import Item
from bridge.reconcile.runs import Runs
from bridge.reconcile.settings import ReconcileSettings

Progress = Callable[[str, int, Optional[int]], None]


class ReconcileError(RuntimeError):
    """The run cannot go on (a call kept failing, a file was unreadable): it ends failed with
    this message and is retried later."""


@dataclass
class RunContext:
    store: Store
    runs: Runs
    run_id: int
    day: str
    settings: ReconcileSettings
    work_dir: str
    progress: Progress = lambda step, done, total: None
    sleep: Callable[[float], None] = time.sleep
    written: int = 0
    calls: list = field(default_factory=list)

    @property
    def book(self) -> Book:
        return Book(self.store, self.settings.page_size)

    def step(self, name: str, done: int = 0, total: Optional[int] = None, force: bool = True) -> None:
        self.progress(name, done, total)
        self.runs.beat(self.run_id, step=name, done=done, total=total, force=force)

    def tick(self, name: str, done: int, total: Optional[int] = None) -> None:
        """Progress inside a long step (the heartbeat is throttled)."""
        self.progress(name, done, total)
        self.runs.beat(self.run_id, step=name, done=done, total=total)

    def write(self, items: list[Item]) -> None:
        if items:
            self.written += self.runs.add_items(self.run_id, items)

    def call(self, what: str, send: Callable[[], CallResult]) -> CallResult:
        """Send (a fresh prepare each time), repeating what may be repeated."""
        attempts = self.settings.call_attempts
        for n in range(1, attempts + 1):
            r = send()
            self.calls.append({"call": what, "outcome": r.outcome.value, "code": r.code,
                               "message": (r.message or "")[:200]})
            if r.ok or (r.outcome is Outcome.REJECTED and not r.transient):
                return r
            logger.warning("reconciliation run {}: {} {} ({}), try {} of {}", self.run_id, what, r.outcome.value,
                           r.message, n, attempts)
            if n < attempts:
                self.runs.beat(self.run_id, force=True)
                self.sleep(self.settings.call_retry_seconds)
        return r
