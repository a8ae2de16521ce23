"""The Orders page: the order book for a finance clerk (issue 14 items 21 and 36, issue 15 §1).

It reads only the views migration 004 made for it, the same ones the HIS may read:
mi_v_orders (one row per payment, its insurance fund / personal-account / cash parts and
what was refunded of each) and mi_v_order_refunds (each refund, reversal or cancellation).
The daemon's login has SELECT on both (grants.sql); the console writes nothing here.

    GET /orders          search: business key or order number (a payment's, or one of its
                         refunds'), insured person number, settle days from / to, status,
                         platform, channel; newest first, a page at a time (keyset on order_id:
                         the book only grows, so a page never shifts under the clerk)
    GET /orders.csv      the same search, every matching order (up to EXPORT_MAX), for a
                         spreadsheet: UTF-8 with a BOM so that Excel reads the Chinese

Personal data: the book keeps no name, ID number or phone; the insured person number
(psn_no) is shown masked like an ID number (bridge.masking.mask_id).  Amounts are
Decimal with two places, never floats.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Callable, Optional

from flask import Flask, Response, g, render_template, request
from loguru import logger

from bridge.masking import mask_id, mask_text
from daemon.console.filters import (PATIENT, SearchForm, day_field, day_text, id_field, key_field, select_field,
                                    size_field)
from daemon.console.i18n import Words
from wtforms import StringField
from wtforms.validators import Length, Regexp

STATUSES = ("paid", "partly_refunded", "refunded", "reversed", "cancelled")
PLATFORMS = ("mobilepay", "facepay", "kiosk")
CHANNELS = ("wechat", "alipay", "none", "unknown")
LEGS = ("total", "fund", "account", "cash")
EXPORT_MAX = 10_000
CENT = Decimal("0.01")

ORDER_COLUMNS = ("order_id", "settle_day", "platform", "channel", "kind", "business_key", "platform_order_id",
                 "status", "total_amount", "fund_amount", "account_amount", "cash_amount", "refunded_total",
                 "refunded_fund", "refunded_account", "refunded_cash", "net_amount", "refund_count", "psn_no",
                 "out_trade_no", "mix_trade_no", "ref_no", "term_seq_no", "outbox_id")
REFUND_COLUMNS = ("refund_id", "order_id", "platform", "platform_order_id", "refund_type", "kind", "business_key",
                  "payment_key", "refund_ref", "out_refund_no", "state", "total_amount", "fund_amount",
                  "account_amount", "cash_amount", "refund_day", "outbox_id")


def money(v) -> Optional[Decimal]:
    """A stored amount as Decimal with two places (SQLite may hand back text or a number)."""
    if v is None or v == "":
        return None
    return Decimal(str(v)).quantize(CENT)


# -- the search -------------------------------------------------------------------------------
@dataclass(frozen=True)
class OrderFilter:
    key: str = ""
    patient: str = ""
    day_from: Optional[str] = None
    day_to: Optional[str] = None
    status: str = ""
    platform: str = ""
    channel: str = ""
    size: int = 50
    before: Optional[int] = None        # older than this order_id (the next page)
    after: Optional[int] = None         # newer than this order_id (the previous page)


class OrderForm(SearchForm):
    key = key_field()
    patient = StringField("patient", filters=[lambda v: v.strip() if isinstance(v, str) else v],
                          validators=[Length(max=40, message="bad_patient"), Regexp(PATIENT, message="bad_patient")])
    day_from = day_field("day_from")
    day_to = day_field("day_to")
    status = select_field("status", STATUSES)
    platform = select_field("platform", PLATFORMS)
    channel = select_field("channel", CHANNELS)
    size = size_field()
    before = id_field("before")
    after = id_field("after")

    def checks(self) -> bool:
        ok = self.check_range(self.day_from, self.day_to)
        if self.before.data is not None and self.after.data is not None:
            self.after.errors.append("both_directions")
            ok = False
        return ok

    def filter(self) -> OrderFilter:
        return OrderFilter(key=self.key.data or "", patient=self.patient.data or "",
                           day_from=day_text(self.day_from.data), day_to=day_text(self.day_to.data),
                           status=self.status.data or "", platform=self.platform.data or "",
                           channel=self.channel.data or "", size=int(self.size.data or 50),
                           before=self.before.data, after=self.after.data)


def conditions(f: OrderFilter) -> tuple[list[str], dict]:
    """The WHERE terms of a search on mi_v_orders, with their bound values (never text in SQL)."""
    where, params = [], {}
    if f.key:
        # The payment's own keys, or the business key of one of its refunds (a clerk often
        # holds the refund's slip).  Each is indexed in mi_order / mi_order_refund.
        where.append("(business_key = :key OR platform_order_id = :key_order OR out_trade_no = :key_trade"
                     " OR order_id IN (SELECT r.order_id FROM mi_v_order_refunds r WHERE r.business_key = :key_refund))")
        params.update(key=f.key, key_order=f.key, key_trade=f.key, key_refund=f.key)
    if f.patient:
        where.append("psn_no = :patient")
        params["patient"] = f.patient
    if f.day_from:
        where.append("settle_day >= :day_from")
        params["day_from"] = f.day_from
    if f.day_to:
        where.append("settle_day <= :day_to")
        params["day_to"] = f.day_to
    for name in ("status", "platform", "channel"):
        value = getattr(f, name)
        if value:
            where.append(f"{name} = :{name}")
            params[name] = value
    return where, params


def first_rows(dialect: str, sql: str, n: int, offset: int = 0) -> str:
    """The first n rows (after `offset`) of an ORDER BY query, as each database writes it."""
    n, offset = int(n), int(offset)
    if dialect in ("oracle", "sqlserver"):
        return f"{sql} OFFSET {offset} ROWS FETCH NEXT {n} ROWS ONLY"
    return f"{sql} LIMIT {n}" + (f" OFFSET {offset}" if offset else "")


def orders_sql(f: OrderFilter, dialect: str, *, limit: Optional[int] = None) -> tuple[str, dict]:
    """One page of the search, newest first: `size` + 1 rows, the extra one says there is more.
    `after` reads upwards (oldest first): the caller turns it round."""
    where, params = conditions(f)
    order = "order_id DESC"
    if f.before is not None:
        where.append("order_id < :before")
        params["before"] = f.before
    elif f.after is not None:
        where.append("order_id > :after")
        params["after"] = f.after
        order = "order_id ASC"
    sql = f"SELECT {', '.join(ORDER_COLUMNS)} FROM mi_v_orders"
    if where:
        sql += " WHERE " + " AND ".join(where)
    return first_rows(dialect, f"{sql} ORDER BY {order}", limit if limit is not None else f.size + 1), params


def _order(r) -> dict:
    d = dict(zip(ORDER_COLUMNS, r))
    for c in ("total_amount", "fund_amount", "account_amount", "cash_amount", "refunded_total", "refunded_fund",
              "refunded_account", "refunded_cash", "net_amount"):
        d[c] = money(d[c])
    d["order_id"], d["refund_count"] = int(d["order_id"]), int(d["refund_count"] or 0)
    d["outbox_id"] = None if d["outbox_id"] is None else int(d["outbox_id"])
    d["psn_no"] = mask_id(str(d["psn_no"])) if d["psn_no"] else ""
    d["refunds"] = []
    return d


def _refund(r) -> dict:
    d = dict(zip(REFUND_COLUMNS, r))
    for c in ("total_amount", "fund_amount", "account_amount", "cash_amount"):
        d[c] = money(d[c])
    d["refund_id"] = int(d["refund_id"])
    d["order_id"] = None if d["order_id"] is None else int(d["order_id"])
    d["outbox_id"] = None if d["outbox_id"] is None else int(d["outbox_id"])
    return d


@dataclass
class OrdersPage:
    orders: list[dict]
    newer: Optional[int]        # the `after` of the page before, or None on the newest page
    older: Optional[int]        # the `before` of the next page, or None on the last


def search(store, f: OrderFilter) -> OrdersPage:
    sql, params = orders_sql(f, store.dialect.name)
    rows = [_order(r) for r in store.query(sql, params)]
    more = len(rows) > f.size
    rows = rows[:f.size]
    if f.after is not None:
        rows.reverse()
        newer = rows[0]["order_id"] if more and rows else None
        older = rows[-1]["order_id"] if rows else f.after + 1
    else:
        newer = rows[0]["order_id"] if f.before is not None and rows else None
        older = rows[-1]["order_id"] if more else None
    attach_refunds(store, rows)
    return OrdersPage(rows, newer, older)


def attach_refunds(store, orders: list[dict]) -> None:
    """Each order's refunds, oldest first, under it."""
    if not orders:
        return
    by_id = {o["order_id"]: o for o in orders}
    ids = {f"o{n}": oid for n, oid in enumerate(by_id)}
    rows = store.query(f"""SELECT {', '.join(REFUND_COLUMNS)} FROM mi_v_order_refunds
                            WHERE order_id IN ({', '.join(':' + k for k in ids)}) ORDER BY refund_id""", ids)
    for r in rows:
        d = _refund(r)
        by_id[d["order_id"]]["refunds"].append(d)


def unmatched_refunds(store, f: OrderFilter, limit: int = 50) -> list[dict]:
    """Refunds and reversals whose payment is not in the book (mi_order_refund.state unmatched),
    for the same key, platform and days (their refund day): money that left with nothing to
    hold it against.  Not shown when the search is about something refunds do not have."""
    if f.status or f.channel or f.patient or f.before is not None or f.after is not None:
        return []
    where, params = ["order_id IS NULL"], {}
    if f.key:
        where.append("(business_key = :key OR platform_order_id = :key_order)")
        params.update(key=f.key, key_order=f.key)
    if f.platform:
        where.append("platform = :platform")
        params["platform"] = f.platform
    if f.day_from:
        where.append("refund_day >= :day_from")
        params["day_from"] = f.day_from
    if f.day_to:
        where.append("refund_day <= :day_to")
        params["day_to"] = f.day_to
    sql = first_rows(store.dialect.name, f"SELECT {', '.join(REFUND_COLUMNS)} FROM mi_v_order_refunds "
                                         f"WHERE {' AND '.join(where)} ORDER BY refund_id DESC", limit)
    return [_refund(r) for r in store.query(sql, params)]


# -- CSV --------------------------------------------------------------------------------------
CSV_COLUMNS = ("order_id", "settle_day", "platform", "channel", "kind", "business_key", "platform_order_id",
               "status", "total_amount", "fund_amount", "account_amount", "cash_amount", "refunded_total",
               "refunded_fund", "refunded_account", "refunded_cash", "net_amount", "refund_count", "psn_no",
               "out_trade_no", "mix_trade_no", "ref_no", "term_seq_no", "outbox_id")


def csv_cell(v) -> str:
    """A cell a spreadsheet shows as text: a value that starts like a formula gets a quote
    (OWASP, "CSV Injection"); amounts are plain Decimal text."""
    if v is None:
        return ""
    text = mask_text(str(v)) if not isinstance(v, (Decimal, int)) else str(v)
    if text[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + text
    return text


def export(store, f: OrderFilter) -> Optional[str]:
    """Every order of the search as CSV text, or None when more than EXPORT_MAX match (the
    clerk narrows the dates instead of getting a file that silently lacks rows)."""
    whole = replace(f, before=None, after=None)
    sql, params = orders_sql(whole, store.dialect.name, limit=EXPORT_MAX + 1)
    rows = store.query(sql, params)
    if len(rows) > EXPORT_MAX:
        return None
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow(CSV_COLUMNS)
    for r in rows:
        d = _order(r)
        w.writerow([csv_cell(d[c]) for c in CSV_COLUMNS])
    return "\ufeff" + out.getvalue()


# -- the pages ----------------------------------------------------------------------------------
def register(app: Flask, store: Callable, words: Words) -> None:
    def _form():
        form = OrderForm(request.args)
        return form, form.validate()

    @app.get("/orders")
    def orders():
        form, ok = _form()
        if not ok:
            logger.info("console: orders search refused: {}", form.errors)
            return render_template("orders.html", form=form, page=None, unmatched=[], export_error=None), 400
        f = form.filter()
        s = store()
        return render_template("orders.html", form=form, page=search(s, f), unmatched=unmatched_refunds(s, f),
                               export_error=None, query=_query(f))

    @app.get("/orders.csv")
    def orders_csv():
        form, ok = _form()
        if not ok:
            return render_template("orders.html", form=form, page=None, unmatched=[], export_error=None), 400
        f = form.filter()
        text = export(store(), f)
        if text is None:
            return render_template("orders.html", form=form, page=None, unmatched=[],
                                   export_error=words.message("too_many_to_export", n=EXPORT_MAX)), 400
        logger.info("console: orders exported as CSV by {}", _who())
        name = "orders-" + "-".join(p for p in (f.day_from, f.day_to) if p) if (f.day_from or f.day_to) else "orders"
        return Response(text, mimetype="text/csv",
                        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'})


def _who() -> str:
    u = g.get("user") or {}
    return f"{u.get('name')} ({u.get('role')})"


def _query(f: OrderFilter) -> dict:
    """The search as URL arguments (for the paging and export links), without the page."""
    out = {k: v for k, v in (("key", f.key), ("patient", f.patient), ("day_from", f.day_from),
                             ("day_to", f.day_to), ("status", f.status), ("platform", f.platform),
                             ("channel", f.channel)) if v}
    if f.size != 50:
        out["size"] = f.size
    return out
