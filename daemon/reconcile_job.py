"""[reconciliation]: the daily reconciliation job, and the reconciliation the CLI runs.

    [reconciliation]
    at = "10:30"                # local time of the daily run; the channels' bills of day D exist
                                # after 10:00 on D+1 (channels.md §3.1, §8)
    days_back = 1               # which day it reconciles: yesterday
    platforms = ["offline", "mobilepay"]
    retry_minutes = 30          # a run that failed (a platform down) is tried again this much later,
    max_tries = 6               # this often, the same day
    # and every setting of bridge/reconcile/settings.py ReconcileSettings, e.g.
    offline_api = "national"    # or "guangzhou"
    centre_query = "all"        # mobile pay: 6301 for every order of the day

The job never holds a request: it writes results (mi_recon_*), a report for the HIS
(mi_inbox rows of type reconciliation) and a review list (mi_v_recon_review).  It goes through
the daemon's APScheduler (daemon/jobs.py), one run at a time.
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta
from loguru import logger
from pydantic import Field

from daemon.wiring import Wiring
from daemon.config import Config, ConfigError, register_section, validate_section
from daemon.platforms import _values, section_model

_AT = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
_EXTRA = {"at": (str, "10:30"), "days_back": (int, Field(1, ge=0, le=90)),
          "platforms": (list[str], Field(default_factory=lambda: ["offline", "mobilepay"])),
          "retry_minutes": (float, Field(30.0, gt=0)), "max_tries": (int, Field(6, ge=1, le=48))}


def _model():
    from bridge.reconcile.settings import ReconcileSettings
    return section_model("reconciliation", [(ReconcileSettings, ())], extra=_EXTRA)


register_section("reconciliation", _model())


class JobSettings:
    def __init__(self, at: str, days_back: int, platforms: list[str], retry_minutes: float, max_tries: int):
        m = _AT.match(at)
        if not m:
            raise ConfigError(f"[reconciliation] at: {at!r} is not HH:MM")
        unknown = set(platforms) - {"offline", "mobilepay"}
        if unknown or not platforms:
            raise ConfigError(f"[reconciliation] platforms: use offline and/or mobilepay, not {sorted(unknown)}")
        self.hour, self.minute = int(m.group(1)), int(m.group(2))
        self.days_back, self.platforms = days_back, list(platforms)
        self.retry_minutes, self.max_tries = retry_minutes, max_tries


def parts(cfg: Config):
    """(ReconcileSettings, JobSettings): from [reconciliation], or the defaults without it."""
    from bridge.reconcile.settings import ReconcileSettings

    raw = cfg.platforms.get("reconciliation") or {}
    m = validate_section("reconciliation", raw)
    try:
        settings = ReconcileSettings(**_values(m, ReconcileSettings))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"[reconciliation]: {exc}") from None
    return settings, JobSettings(m.at, m.days_back, m.platforms, m.retry_minutes, m.max_tries)


def reconcilers(services: dict, settings) -> dict:
    """The platforms this configuration can reconcile, from the wired clients."""
    from bridge.reconcile.channels import sources
    from bridge.reconcile.mobilepay import MobilePayReconciler
    from bridge.reconcile.offline import OfflineReconciler

    out = {}
    if services.get("offline") is not None:
        out["offline"] = OfflineReconciler(services["offline"])
    bills = sources(services, tuple(settings.channels))
    if services.get("mobilepay") is not None or bills:
        mp_settings = services.get("mobilepay.settings")
        wx_settings = services.get("wechatpay.settings")
        out["mobilepay"] = MobilePayReconciler(
            services.get("mobilepay"), bills, default_id_type=getattr(mp_settings, "default_id_type", "01"),
            wechat_cash_after_6203=getattr(wx_settings, "cash_after_6203", "hospital_refunds_cash"))
    return out


def build(store_factory, settings, services: dict, progress=None):
    from bridge.reconcile.runner import Reconciliation
    return Reconciliation(store_factory, settings, reconcilers(services, settings), progress=progress)


def wiring(cfg: Config, services: dict) -> Wiring:
    settings, job = parts(cfg)
    return Wiring(jobs=[daily_job(settings, job, services)])


def daily_job(settings, job: JobSettings, services: dict):
    """The APScheduler job: at the configured time, reconcile the day `days_back` ago on each
    platform; a failed platform is tried again `retry_minutes` later, up to `max_tries` times.
    At start, a day that should have run and has no completed run yet runs at once."""
    from bridge.reconcile import days

    def run_day(daemon, day: str, platforms: list[str], attempt: int) -> None:
        rec = build(daemon.new_store, settings, services)
        missing = [p for p in platforms if p not in rec.reconcilers]
        if missing:
            logger.warning("reconciliation: {} not configured here (no client); skipped", ", ".join(missing))
        failed = []
        for platform in platforms:
            if platform in missing:
                continue
            result = rec.run(day, platform)
            if result.state == "done":
                logger.info("reconciliation {} {}: {} item(s), {}", day, platform, result.items,
                            "balanced" if result.balanced else "differences (mi_v_recon_review)")
            elif result.state == "busy":
                logger.info("reconciliation {} {}: {}", day, platform, result.error)
            else:
                failed.append(platform)
        if failed and attempt < job.max_tries and daemon.scheduler is not None:
            when = datetime.now() + timedelta(minutes=job.retry_minutes)
            logger.warning("reconciliation {} {}: failed; try {} of {} at {:%H:%M}", day, ", ".join(failed),
                           attempt + 1, job.max_tries, when)
            daemon.scheduler.add_job(run_day, "date", run_date=when, args=[daemon, day, failed, attempt + 1],
                                     id=f"reconcile-retry-{day}-{attempt + 1}", replace_existing=True,
                                     name="reconciliation retry")
        elif failed:
            logger.error("reconciliation {} {}: failed {} times; see mi_v_recon_days and run "
                         "'mibridge reconcile --date {}' once the cause is fixed", day, ", ".join(failed), attempt, day)

    def daily(daemon) -> None:
        run_day(daemon, days.days_before(days.today(), job.days_back), job.platforms, 1)

    def catch_up(daemon) -> None:
        """Started after today's run time: run the day now unless a run of it completed."""
        now = datetime.now()
        if (now.hour, now.minute) < (job.hour, job.minute):
            return
        day = days.days_before(days.today(), job.days_back)
        store = daemon.new_store()
        try:
            done = {r[0] for r in store.query("SELECT platform FROM mi_recon_run WHERE recon_day = :d AND state = 'done'",
                                              {"d": day})}
        except Exception as exc:
            logger.warning("reconciliation catch-up: cannot read mi_recon_run ({}); the daily run will do it",
                           type(exc).__name__)
            return
        finally:
            store.close()
        todo = [p for p in job.platforms if p not in done]
        if todo:
            run_day(daemon, day, todo, 1)

    def add(scheduler, daemon) -> None:
        scheduler.add_job(daily, "cron", hour=job.hour, minute=job.minute, args=[daemon], id="reconciliation",
                          name="daily reconciliation", misfire_grace_time=3600)
        scheduler.add_job(catch_up, "date", run_date=datetime.now() + timedelta(seconds=5), args=[daemon],
                          id="reconciliation-catch-up", name="reconciliation catch-up")
    return add

