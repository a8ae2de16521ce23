"""The Reconciliation page: each day's and platform's result of the daily reconciliation
(issue 14; docs/reconciliation.md), and the differences with what a finance clerk does about
each.

    GET /reconciliation          the days (default: the last 14), per platform: the latest
                                 finished run (mi_v_recon_days) - balanced or not, items
                                 matched and differing; a day the daily job should have run
                                 and did not is shown as "not run"
    GET /reconciliation/<day>    that day: per platform the counts by class
                                 (mi_v_reconciliation), every run of the day with its state
                                 (mi_recon_run: running, done, failed, abandoned - the views
                                 show finished runs only), and the differences
                                 (mi_v_recon_review), a page at a time, each with what to do

Rights: the daemon's login (the console's) has SELECT on these views and on mi_recon_run
(grants.sql); the console writes nothing here.

Why there is no "reconcile again" button: issues 14 and 15 give the re-run to the CLI
(`mibridge reconcile --date D`) and the daily job (which retries a failed run); the console's
actions are requeue / resolve / cancel of a request, each audited in mi_audit against its
outbox row, and a run has no outbox row to audit against.  The page shows the command.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

from flask import Flask, render_template, request
from loguru import logger

from bridge.masking import mask_text
from bridge.reconcile import days
from daemon.console.filters import SearchForm, day_field, day_text, id_field, select_field, size_field
from daemon.console.i18n import Words
from daemon.console.orders import first_rows, money

PLATFORMS = ("offline", "mobilepay")
CLASSES = ("balanced", "hospital_only", "platform_only", "channel_only", "amount_differs", "unchecked")
DIFFERENCES = CLASSES[1:]
DEFAULT_DAYS = 14
MAX_DAYS = 366
MAX_PAGE = 100_000

DAY_COLUMNS = ("recon_day", "platform", "run_id", "state", "balanced", "items_total", "items_differ", "started_at",
               "finished_at", "error_message")
RUN_COLUMNS = ("id", "platform", "state", "step", "progress_done", "progress_total", "balanced", "items_total",
               "items_differ", "started_at", "finished_at", "error_message", "report_outbox_id")
DIFF_COLUMNS = ("platform", "order_key", "leg", "diff_class", "hospital_amount", "platform_amount", "channel_amount",
                "business_key", "channel", "channel_ref", "hospital_state", "platform_state", "note", "order_id")


# -- the searches -------------------------------------------------------------------------------
@dataclass(frozen=True)
class DaysFilter:
    day_from: str
    day_to: str
    platform: str = ""


class DaysForm(SearchForm):
    max_days = MAX_DAYS
    day_from = day_field("day_from")
    day_to = day_field("day_to")
    platform = select_field("platform", PLATFORMS)

    def checks(self) -> bool:
        return self.check_range(self.day_from, self.day_to)

    def filter(self, today: str) -> DaysFilter:
        last = day_text(self.day_to.data) or today
        first = day_text(self.day_from.data) or days.days_before(last, DEFAULT_DAYS - 1)
        return DaysFilter(first, last, self.platform.data or "")


@dataclass(frozen=True)
class DiffFilter:
    day: str
    platform: str = ""
    diff_class: str = ""
    page: int = 1
    size: int = 50


class DayForm(SearchForm):
    platform = select_field("platform", PLATFORMS)
    diff_class = select_field("class", DIFFERENCES)
    page = id_field("page")
    size = size_field()

    def checks(self) -> bool:
        if self.page.data is not None and self.page.data > MAX_PAGE:
            self.page.errors.append("bad_number")
            return False
        return True

    def filter(self, day: str) -> DiffFilter:
        return DiffFilter(day, self.platform.data or "", self.diff_class.data or "", self.page.data or 1,
                          int(self.size.data or 50))


def days_sql(f: DaysFilter) -> tuple[str, dict]:
    sql = f"SELECT {', '.join(DAY_COLUMNS)} FROM mi_v_recon_days WHERE recon_day >= :day_from AND recon_day <= :day_to"
    params = {"day_from": f.day_from, "day_to": f.day_to}
    if f.platform:
        sql += " AND platform = :platform"
        params["platform"] = f.platform
    return sql + " ORDER BY recon_day DESC, platform", params


def differences_sql(f: DiffFilter, dialect: str) -> tuple[str, dict]:
    """One page of a day's differences (size + 1 rows: the extra one says there is more)."""
    sql = f"SELECT {', '.join(DIFF_COLUMNS)} FROM mi_v_recon_review WHERE recon_day = :day"
    params: dict = {"day": f.day}
    if f.platform:
        sql += " AND platform = :platform"
        params["platform"] = f.platform
    if f.diff_class:
        sql += " AND diff_class = :diff_class"
        params["diff_class"] = f.diff_class
    return first_rows(dialect, sql + " ORDER BY platform, order_key, leg", f.size + 1, (f.page - 1) * f.size), params


# -- the reads ------------------------------------------------------------------------------------
def _int(v) -> Optional[int]:
    return None if v is None else int(v)


def day_rows(store, f: DaysFilter, expected: list[str], last_due: Optional[str]) -> list[dict]:
    """The finished runs of the range, and a "not run" row for each day up to `last_due` on
    which an expected platform has none."""
    sql, params = days_sql(f)
    found = []
    for r in store.query(sql, params):
        d = dict(zip(DAY_COLUMNS, r))
        for c in ("run_id", "balanced", "items_total", "items_differ"):
            d[c] = _int(d[c])
        d["matched"] = None if d["items_total"] is None else d["items_total"] - (d["items_differ"] or 0)
        d["error_message"] = mask_text(d["error_message"]) if d["error_message"] else ""
        found.append(d)
    have = {(d["recon_day"], d["platform"]) for d in found}
    if last_due:
        day = min(f.day_to, last_due)
        while day >= f.day_from:
            for p in expected:
                if (not f.platform or p == f.platform) and (day, p) not in have:
                    found.append({"recon_day": day, "platform": p, "state": None})
            day = days.days_before(day, 1)
    return sorted(found, key=lambda d: (d["recon_day"], d["platform"]), reverse=True)


def summary(store, day: str, platform: str) -> list[dict]:
    """Per platform: the latest finished run (mi_v_recon_days) and its items by class."""
    params = {"day": day}
    where = "recon_day = :day"
    if platform:
        where += " AND platform = :platform"
        params["platform"] = platform
    out = {}
    for r in store.query(f"SELECT {', '.join(DAY_COLUMNS)} FROM mi_v_recon_days WHERE {where} ORDER BY platform",
                         params):
        d = dict(zip(DAY_COLUMNS, r))
        for c in ("run_id", "balanced", "items_total", "items_differ"):
            d[c] = _int(d[c])
        d["error_message"] = mask_text(d["error_message"]) if d["error_message"] else ""
        d["classes"] = {c: 0 for c in CLASSES}
        out[d["platform"]] = d
    for p, cls, n in store.query(f"SELECT platform, diff_class, COUNT(*) FROM mi_v_reconciliation WHERE {where} "
                                 "GROUP BY platform, diff_class", params):
        if p in out:
            out[p]["classes"][cls] = int(n)
    return list(out.values())


def runs(store, day: str, platform: str) -> list[dict]:
    """Every run of the day, newest first (the history: a re-run keeps the older rows)."""
    params = {"day": day}
    sql = f"SELECT {', '.join(RUN_COLUMNS)} FROM mi_recon_run WHERE recon_day = :day"
    if platform:
        sql += " AND platform = :platform"
        params["platform"] = platform
    out = []
    for r in store.query(sql + " ORDER BY id DESC", params):
        d = dict(zip(RUN_COLUMNS, r))
        for c in ("id", "progress_done", "progress_total", "balanced", "items_total", "items_differ",
                  "report_outbox_id"):
            d[c] = _int(d[c])
        d["error_message"] = mask_text(d["error_message"]) if d["error_message"] else ""
        out.append(d)
    return out


@dataclass
class DiffPage:
    rows: list[dict]
    more: bool


def differences(store, f: DiffFilter) -> DiffPage:
    sql, params = differences_sql(f, store.dialect.name)
    rows = []
    for r in store.query(sql, params):
        d = dict(zip(DIFF_COLUMNS, r))
        for c in ("hospital_amount", "platform_amount", "channel_amount"):
            d[c] = money(d[c])
        d["note"] = mask_text(d["note"]) if d["note"] else ""
        d["order_id"] = _int(d["order_id"])
        rows.append(d)
    return DiffPage(rows[:f.size], len(rows) > f.size)


# -- the pages --------------------------------------------------------------------------------------
def job_settings(platforms: dict) -> tuple[list[str], int]:
    """(the platforms the daily job reconciles, its days_back); no platforms without [reconciliation]."""
    section = platforms.get("reconciliation")
    if not section:
        return [], 1
    wanted = [p for p in (section.get("platforms") or list(PLATFORMS)) if p in PLATFORMS]
    back = section.get("days_back", 1)
    return wanted, back if isinstance(back, int) and back >= 0 else 1


def register(app: Flask, store: Callable, words: Words, platforms: dict) -> None:
    expected, days_back = job_settings(platforms or {})

    @app.get("/reconciliation")
    def reconciliation():
        form = DaysForm(request.args)
        if not form.validate():
            logger.info("console: reconciliation search refused: {}", form.errors)
            return render_template("reconciliation.html", form=form, rows=None, expected=expected), 400
        today = days.today()
        f = form.filter(today)
        rows = day_rows(store(), f, expected, days.days_before(today, days_back) if expected else None)
        return render_template("reconciliation.html", form=form, f=f, rows=rows, expected=expected)

    @app.get("/reconciliation/<day>")
    def reconciliation_day(day: str):
        try:
            day = days.parse_day(day) if len(day) <= 10 else ""
        except ValueError:
            day = ""
        if not day:
            return render_template("error.html", code=404, key="unknown_day"), 404
        form = DayForm(request.args)
        if not form.validate():
            return render_template("recon_day.html", form=form, day=day, summary=None), 400
        f = form.filter(day)
        s = store()
        return render_template("recon_day.html", form=form, day=day, f=f, summary=summary(s, day, f.platform),
                               runs=runs(s, day, f.platform), diffs=differences(s, f),
                               query={k: v for k, v in (("platform", f.platform), ("diff_class", f.diff_class),
                                                        ("size", f.size if f.size != 50 else None)) if v})
