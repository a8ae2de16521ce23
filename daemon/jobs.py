"""Scheduled jobs (APScheduler 3.x, in the daemon's process).

    lease recovery   every [daemon] recovery_interval s: expired leases -> in_doubt / pending / held
    purge            nightly at [daemon] purge_hour: finished, consumed rows older than purge_keep_days

In-doubt rows need no job of their own: workers claim them like pending rows
(when their next_attempt_at comes) and run the flow's resolver, which queries
the platform.  Flows that need more (9001 sign-in, reconciliation) add jobs
through Daemon(extra_jobs=[...]): callables that take (scheduler, daemon).

Each job opens its own short-lived connection and never overlaps itself
(max_instances=1, coalesce=True), so a slow database cannot pile jobs up.
"""
from __future__ import annotations

import time

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, EVENT_JOB_MISSED
from apscheduler.schedulers.background import BackgroundScheduler
from loguru import logger

from bridge.engine import events


class Failed(int):
    """What a job round that failed returns (0, so callers counting rows are
    unaffected): the scheduler's listener records the run as failed."""


FAILED = Failed(0)


def _run(daemon, what: str, work) -> int:
    """One job round on its own short-lived connection; a failure is logged
    and the next round tries again (the scheduler keeps the job)."""
    store = daemon.new_store()
    try:
        return work(store)
    except Exception as exc:
        logger.warning("{} failed this round ({}: {})", what, type(exc).__name__, exc)
        return FAILED
    finally:
        store.close()


def recover_leases(daemon) -> int:
    def work(store):
        n = store.recover_expired_leases()
        events.emit("rescue", rows=n)
        if n:
            logger.warning("lease recovery: {} row(s) whose worker vanished were returned to work", n)
            daemon.wake.set()
        return n
    return _run(daemon, "lease recovery", work)


def purge(daemon) -> int:
    days = daemon.config.daemon.purge_keep_days

    def work(store):
        n = store.purge(days)
        logger.info("purge: {} finished request(s) older than {} days removed", n, days)
        return n
    return _run(daemon, "purge", work)


def start_scheduler(daemon, extra_jobs) -> BackgroundScheduler:
    dc = daemon.config.daemon
    sched = BackgroundScheduler(job_defaults={"max_instances": 1, "coalesce": True,
                                              "misfire_grace_time": 60})
    sched.add_job(recover_leases, "interval", seconds=dc.recovery_interval, args=[daemon],
                  id="lease-recovery", name="lease recovery")
    sched.add_job(purge, "cron", hour=dc.purge_hour, minute=17, args=[daemon], id="purge", name="purge")
    for add in extra_jobs:
        add(sched, daemon)
    sched.add_listener(lambda ev: _record(daemon, sched, ev), EVENT_JOB_EXECUTED | EVENT_JOB_ERROR | EVENT_JOB_MISSED)
    sched.start()
    # Recover at once: rows left running by a crashed predecessor need not wait.
    recover_leases(daemon)
    return sched


def _record(daemon, sched, ev) -> None:
    """Every job's last run, for the console and the metrics."""
    job = sched.get_job(ev.job_id)
    if ev.code == EVENT_JOB_MISSED:
        result = "missed"
    elif ev.exception is not None or isinstance(getattr(ev, "retval", None), Failed):
        result = "failed"
    else:
        result = "ok"
    daemon.job_runs[ev.job_id] = {"name": job.name if job else ev.job_id, "at": time.time(), "result": result,
                                  "scheduled": ev.scheduled_run_time.timestamp() if ev.scheduled_run_time else None}
    events.emit("job", job=ev.job_id, result=result, seconds=None)
