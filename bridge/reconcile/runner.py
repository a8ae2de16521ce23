"""One reconciliation run, start to end: take the day (one run per day and platform at a
time), let the platform's reconciler write its items, then finish in one transaction with the
report for the HIS, and drop the older runs' results.  Any failure ends the run `failed` with
the reason (mi_v_recon_days shows it) and the next run starts again from the beginning; a
killed run is taken over by the next one once its heartbeat is stale."""
from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

from loguru import logger

from bridge.db.store import Store
from bridge.reconcile import report
from bridge.reconcile.context import Progress, ReconcileError, RunContext
from bridge.reconcile.model import BALANCED, CLASSES
from bridge.reconcile.runs import RunBusy, RunLost, Runs
from bridge.reconcile.settings import ReconcileSettings

DONE, FAILED, BUSY = "done", "failed", "busy"


@dataclass
class RunResult:
    day: str
    platform: str
    state: str                                   # done | failed | busy
    run_id: Optional[int] = None
    balanced: Optional[bool] = None
    counts: dict = field(default_factory=dict)
    differences: list = field(default_factory=list)   # the first few, for a summary table
    report_outbox_id: Optional[int] = None
    reported: bool = False
    error: Optional[str] = None
    remark: str = ""

    @property
    def items(self) -> int:
        return sum(self.counts.values())


class Reconciliation:
    def __init__(self, store_factory: Callable[[], Store], settings: ReconcileSettings, reconcilers: dict, *,
                 progress: Optional[Progress] = None, sleep: Callable[[float], None] = time.sleep):
        """`reconcilers`: platform -> an object with run(ctx) (offline.OfflineReconciler,
        mobilepay.MobilePayReconciler)."""
        self.store_factory = store_factory
        self.settings = settings
        self.reconcilers = reconcilers
        self.progress = progress or (lambda step, done, total: None)
        self.sleep = sleep

    def run(self, day: str, platform: str, *, show: int = 20) -> RunResult:
        reconciler = self.reconcilers.get(platform)
        if reconciler is None:
            return RunResult(day, platform, FAILED, error=f"{platform} is not configured here")
        store = self.store_factory()
        runs = Runs(store, stale_seconds=self.settings.stale_seconds)
        try:
            run_id = runs.start(day, platform)
        except RunBusy as exc:
            store.close()
            return RunResult(day, platform, BUSY, error=str(exc))
        work = tempfile.mkdtemp(prefix=f"mibridge-recon-{run_id}-", dir=self.settings.work_dir or None)
        ctx = RunContext(store, runs, run_id, day, self.settings, work, progress=self.progress, sleep=self.sleep)
        try:
            logger.info("reconciliation run {}: {} {} started", run_id, day, platform)
            outcome = reconciler.run(ctx)
            ctx.step("report")
            counts = runs.counts(run_id)
            differ = sum(n for c, n in counts.items() if c != BALANCED)
            remark = ""
            if getattr(outcome, "balanced", None) is False and not differ:
                remark = "3201 did not balance, yet 3202 lists no differing settlement (the count?)"
            balanced = differ == 0 and not remark
            digest = runs.digest(run_id, self.settings.page_size)
            previous = runs.previous_digest(day, platform, run_id)
            rep = None
            if previous != digest:
                rep = report.build(day, platform, run_id, counts, balanced, runs.differences(run_id),
                                   self.settings.report_max_rows, remark)
            runs.note(run_id, calls=ctx.calls[-200:], outcome=getattr(outcome, "__dict__", {}), remark=remark)
            outbox_id = runs.complete(run_id, balanced=balanced, counts=counts, digest=digest, report=rep)
            runs.supersede(day, platform, run_id)
            shown = []
            for d in runs.differences(run_id, page_size=max(show, 10)):
                if len(shown) >= show:
                    break
                shown.append(d)
            logger.info("reconciliation run {}: {} {} done, {} item(s), {} difference(s){}", run_id, day, platform,
                        sum(counts.values()), differ, "" if rep else " (the HIS has them already: no new report)")
            return RunResult(day, platform, DONE, run_id, balanced, {c: counts.get(c, 0) for c in CLASSES}, shown,
                             outbox_id, rep is not None, remark=remark)
        except (ReconcileError, RunLost) as exc:
            return self._failed(runs, run_id, day, platform, str(exc))
        except Exception as exc:
            logger.opt(exception=exc).error("reconciliation run {} failed", run_id)
            return self._failed(runs, run_id, day, platform, f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}")
        finally:
            shutil.rmtree(work, ignore_errors=True)
            store.close()

    def _failed(self, runs: Runs, run_id: int, day: str, platform: str, message: str) -> RunResult:
        logger.warning("reconciliation run {}: {} {} failed: {}", run_id, day, platform, message)
        try:
            runs.fail(run_id, message)
        except Exception as exc:     # the database went away: the heartbeat goes stale, the next run takes over
            logger.warning("reconciliation run {} could not be marked failed ({}); the next run takes it over",
                           run_id, type(exc).__name__)
        return RunResult(day, platform, FAILED, run_id, error=message)
