"""`mibridge reconcile` and `mibridge orders`: the reconciliation by hand, and the order book for
a finance clerk.  Tables and the progress display use rich (https://rich.readthedocs.io): it
aligns Chinese text by its display width and draws a live progress line only on a terminal.

    mibridge reconcile --date 2024-03-01 [--platform offline|mobilepay|all]
        exit status 0: every platform balanced; 1: differences (mi_v_recon_review);
        3: a platform could not be reconciled (not configured, busy, or the run failed)
    mibridge orders [--date D] [--key K] [--status S] [--channel C] [--platform P] [--json]
"""
from __future__ import annotations

import json
import sys
from decimal import Decimal

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from daemon.cliargs import DATABASE_DRIVERS, database_words

EXIT_BALANCED, EXIT_DIFFERENCES, EXIT_FAILED = 0, 1, 3


def one_line(what: str, work) -> int:
    """No traceback for the user: a database or platform error is one line (the details go to
    the log) and exit status 1; bad input stays the CLI's own exit status 2."""
    from loguru import logger

    from daemon.config import ConfigError
    try:
        return work()
    except (ValueError, ConfigError, FileNotFoundError, KeyboardInterrupt):
        raise
    except Exception as exc:
        logger.opt(exception=exc).debug("{} failed", what)
        if type(exc).__module__.split(".")[0] in DATABASE_DRIVERS:
            print(f"mibridge: {what} failed: database error: {database_words(exc)}", file=sys.stderr)
            return 1
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        print(f"mibridge: {what} failed: {type(exc).__name__}: {first}", file=sys.stderr)
        return 1


def _services(cfg):
    from daemon.app import build
    return build(cfg).services


def _close(services: dict) -> None:
    for svc in services.values():
        close = getattr(svc, "close", None)
        if callable(close):
            try:
                close()
            except Exception:
                pass


def cmd_reconcile(args, cfg, store_factory) -> int:
    from bridge.reconcile import days
    from daemon.reconcile_job import build, parts

    day = days.parse_day(args.date) if args.date else None
    settings, job = parts(cfg)
    if day is None:
        day = days.days_before(days.today(), job.days_back)
    wanted = job.platforms if args.platform == "all" else [args.platform]
    out = _console()
    err = Console(stderr=True)
    services = _services(cfg)
    results = []
    try:
        with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), console=err, transient=True,
                      disable=args.quiet or not err.is_terminal) as bar:
            task = bar.add_task("starting", total=None)

            def progress(step: str, done: int, total):
                bar.update(task, description=f"{day} {step}", completed=done, total=total)
            rec = build(store_factory, settings, services, progress=progress)
            for platform in wanted:
                bar.update(task, description=f"{day} {platform}", completed=0, total=None)
                results.append(rec.run(day, platform))
    finally:
        _close(services)
    _summary(out, results)
    if any(r.state != "done" for r in results):
        return EXIT_FAILED
    return EXIT_BALANCED if all(r.balanced for r in results) else EXIT_DIFFERENCES


def _summary(out: Console, results) -> None:
    from bridge.reconcile.model import DIFFERENCES

    t = Table(title="reconciliation", title_justify="left")
    for col in ("day", "platform", "run", "state", "items", "balanced", *DIFFERENCES):
        t.add_column(col, justify="right" if col in ("run", "items") + DIFFERENCES else "left")
    for r in results:
        t.add_row(r.day, r.platform, "" if r.run_id is None else str(r.run_id), r.state,
                  str(r.items) if r.state == "done" else "",
                  {True: "yes", False: "NO", None: ""}[r.balanced],
                  *[str(r.counts.get(c, 0)) if r.state == "done" else "" for c in DIFFERENCES])
    out.print(t)
    for r in results:
        if r.state != "done":
            out.print(f"{r.day} {r.platform}: {r.state}: {r.error}")
        elif r.remark:
            out.print(f"{r.day} {r.platform}: {r.remark}")
    diffs = [(r, d) for r in results for d in r.differences]
    if diffs:
        d_t = Table(title="differences (all of them: SELECT * FROM mi_v_recon_review)", title_justify="left")
        for col in ("platform", "order", "leg", "class", "hospital", "platform amount", "channel", "business key",
                    "note"):
            d_t.add_column(col, justify="right" if col in ("hospital", "platform amount", "channel") else "left",
                           overflow="fold")
        for r, d in diffs:
            d_t.add_row(r.platform, d["order_key"], d["leg"], d["diff_class"], _m(d["hospital_amount"]),
                        _m(d["platform_amount"]), _m(d["channel_amount"]), d["business_key"] or "", d["note"] or "")
        out.print(d_t)
    reported = [r for r in results if r.state == "done"]
    for r in reported:
        if r.reported:
            out.print(f"{r.day} {r.platform}: report for the HIS: mi_inbox rows of type reconciliation "
                      f"(outbox id {r.report_outbox_id})")
        else:
            out.print(f"{r.day} {r.platform}: the same differences as the previous run: the HIS has them already")


def _console() -> Console:
    """stdout; wide when it is a file or a pipe, so that no column is cut."""
    c = Console()
    return c if c.is_terminal else Console(width=200)


def _m(v) -> str:
    return "" if v is None else str(v)


ORDER_COLUMNS = ("order_id", "settle_day", "platform", "channel", "business_key", "platform_order_id", "status",
                 "total_amount", "fund_amount", "account_amount", "cash_amount", "refunded_total", "refunded_fund",
                 "refunded_account", "refunded_cash", "refund_count", "last_refund_key", "out_trade_no",
                 "mix_trade_no", "trade_no", "ref_no", "term_seq_no")
MONEY = {c for c in ORDER_COLUMNS if c.endswith("_amount") or c.startswith("refunded_")}


def cmd_orders(args, store) -> int:
    from bridge.reconcile import days
    from bridge.reconcile.runs import page

    where, params = [], {}
    if args.date:
        where.append("settle_day = :d")
        params["d"] = days.parse_day(args.date)
    for opt, col in (("key", "business_key"), ("status", "status"), ("channel", "channel"),
                     ("platform", "platform")):
        value = getattr(args, opt)
        if value:
            where.append(f"{col} = :{opt}")
            params[opt] = value
    sql = f"SELECT {', '.join(ORDER_COLUMNS)} FROM mi_v_orders"
    if where:
        sql += " WHERE " + " AND ".join(where)
    rows = store.query(page(store, sql + " ORDER BY order_id DESC", args.limit), params)
    found = []
    for r in rows:
        d = dict(zip(ORDER_COLUMNS, r))
        for c in MONEY:
            d[c] = None if d[c] is None else str(Decimal(str(d[c])).quantize(Decimal("0.01")))
        d["order_id"], d["refund_count"] = int(d["order_id"]), int(d["refund_count"])
        found.append(d)
    if args.json:
        print(json.dumps(found, ensure_ascii=False, indent=2))
        return 0
    out = _console()
    t = Table(title=f"orders ({len(found)}{'+' if len(found) == args.limit else ''})", title_justify="left")
    for col, head in (("settle_day", "day"), ("platform", "platform"), ("channel", "channel"),
                      ("business_key", "business key"), ("platform_order_id", "order"), ("status", "status"),
                      ("total_amount", "total"), ("fund_amount", "insurance"), ("account_amount", "account"),
                      ("cash_amount", "cash"), ("refunded_total", "refunded"), ("refund_count", "refunds"),
                      ("last_refund_key", "last refund")):
        t.add_column(head, justify="right" if col in MONEY or col == "refund_count" else "left", overflow="fold")
    for d in found:
        t.add_row(*[("" if d[c] is None else str(d[c])) for c in (
            "settle_day", "platform", "channel", "business_key", "platform_order_id", "status", "total_amount",
            "fund_amount", "account_amount", "cash_amount", "refunded_total", "refund_count", "last_refund_key")])
    out.print(t)
    if not found:
        print("no order matches", file=sys.stderr)
    return 0
