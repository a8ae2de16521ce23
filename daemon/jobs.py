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

from apscheduler.schedulers.background import BackgroundScheduler
from loguru import logger


def _run(daemon, what: str, work) -> int:
    """One job round on its own short-lived connection; a failure is logged
    and the next round tries again (the scheduler keeps the job)."""
    store = daemon.new_store()
    try:
        return work(store)
    except Exception as exc:
        logger.warning("{} failed this round ({}: {})", what, type(exc).__name__, exc)
        return 0
    finally:
        store.close()


def recover_leases(daemon) -> int:
    def work(store):
        n = store.recover_expired_leases()
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
    sched.start()
    # Recover at once: rows left running by a crashed predecessor need not wait.
    recover_leases(daemon)
    return sched
