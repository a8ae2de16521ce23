"""The console's Orders and Reconciliation pages without a browser: what the search forms
accept (each refusal named), the SQL the searches build, and what they find on every
database (the order book and reconciliation written by the real Store and Runs code)."""
from __future__ import annotations

import csv
import io
import re
from decimal import Decimal

import pytest
from werkzeug.datastructures import MultiDict

from bridge.db.store import Store
from daemon.console import create_app
from daemon.console.auth import load_secret_key, load_users
from daemon.console.orders import (EXPORT_MAX, OrderFilter, OrderForm, conditions, csv_cell, export, first_rows,
                                   orders_sql, search, unmatched_refunds)
from daemon.console.reconciliation import (DayForm, DaysFilter, DaysForm, DiffFilter, day_rows, differences,
                                           differences_sql, job_settings, runs, summary)
from tests.ops.helpers import PASSWORDS, PSN, console_env, fill, fill_book

D = Decimal


def _orders_form(**args) -> OrderForm:
    form = OrderForm(MultiDict(args))
    form.validate()
    return form


# -- validation: every refusal has its message ----------------------------------------------------
@pytest.mark.parametrize("args, field, message", [
    ({"day_from": "2024-13-01"}, "day_from", "bad_day"),
    ({"day_to": "01/03/2024"}, "day_to", "bad_day"),
    ({"day_from": "2024-03-02", "day_to": "2024-03-01"}, "day_to", "bad_range"),
    ({"status": "lost"}, "status", "bad_choice"),
    ({"platform": "mobilepay'; --"}, "platform", "bad_choice"),
    ({"channel": "paypal"}, "channel", "bad_choice"),
    ({"key": "A" * 65}, "key", "bad_key"),
    ({"key": "INV\x00-1"}, "key", "bad_key"),
    ({"patient": "4401-0000"}, "patient", "bad_patient"),
    ({"patient": "9" * 41}, "patient", "bad_patient"),
    ({"size": "7"}, "size", "bad_choice"),
    ({"size": "100000"}, "size", "bad_choice"),
    ({"before": "0"}, "before", "bad_number"),
    ({"before": "x1"}, "before", "bad_number"),
    ({"after": "-5"}, "after", "bad_number"),
    ({"before": "9", "after": "3"}, "after", "both_directions"),
])
def test_an_orders_search_is_refused_with_its_reason(args, field, message):
    form = _orders_form(**args)
    assert form.errors == {field: [message]}


def test_a_good_orders_search_becomes_a_filter():
    form = _orders_form(key="  INV-1 ", patient=PSN, day_from="2024-03-01", day_to="2024-03-01", status="refunded",
                        platform="mobilepay", channel="wechat", size="25", before="40", unknown="ignored")
    assert not form.errors
    assert form.filter() == OrderFilter(key="INV-1", patient=PSN, day_from="2024-03-01", day_to="2024-03-01",
                                        status="refunded", platform="mobilepay", channel="wechat", size=25,
                                        before=40)
    assert _orders_form().filter() == OrderFilter()          # nothing given: everything, 50 a page


@pytest.mark.parametrize("args, field, message", [
    ({"day_from": "2023-01-01", "day_to": "2024-03-01"}, "day_to", "range_too_long"),
    ({"day_from": "2024-03-05", "day_to": "2024-03-01"}, "day_to", "bad_range"),
    ({"day_to": "yesterday"}, "day_to", "bad_day"),
    ({"platform": "kiosk"}, "platform", "bad_choice"),
])
def test_a_reconciliation_search_is_refused_with_its_reason(args, field, message):
    form = DaysForm(MultiDict(args))
    assert not form.validate() and form.errors == {field: [message]}


def test_the_reconciliation_days_default_to_the_last_fourteen_and_a_year_is_allowed():
    form = DaysForm(MultiDict())
    assert form.validate()
    assert form.filter("2024-03-14") == DaysFilter("2024-03-01", "2024-03-14", "")
    form = DaysForm(MultiDict({"day_from": "2023-03-02", "day_to": "2024-03-01", "platform": "offline"}))
    assert form.validate() and form.filter("2024-05-01") == DaysFilter("2023-03-02", "2024-03-01", "offline")
    day = DayForm(MultiDict({"diff_class": "balanced"}))
    assert not day.validate() and day.errors == {"diff_class": ["bad_choice"]}   # the review lists differences only
    day = DayForm(MultiDict({"page": "100001"}))
    assert not day.validate() and day.errors == {"page": ["bad_number"]}
    day = DayForm(MultiDict({"page": "3", "diff_class": "unchecked", "size": "25"}))
    assert day.validate() and day.filter("2024-03-01") == DiffFilter("2024-03-01", "", "unchecked", 3, 25)


def test_the_daily_job_settings_the_page_expects():
    assert job_settings({}) == ([], 1)
    assert job_settings({"reconciliation": {"at": "10:30"}}) == (["offline", "mobilepay"], 1)
    assert job_settings({"reconciliation": {"platforms": ["mobilepay"], "days_back": 2}}) == (["mobilepay"], 2)


# -- the SQL the searches build ----------------------------------------------------------------------
def test_every_filter_is_a_bound_value_never_text_in_the_sql():
    hostile = "x' OR '1'='1"
    f = OrderFilter(key=hostile, patient="P1", day_from="2024-03-01", day_to="2024-03-02", status="paid",
                    platform="kiosk", channel="none")
    where, params = conditions(f)
    sql = " AND ".join(where)
    assert hostile not in sql and "2024-03-01" not in sql and "kiosk" not in sql
    assert params == {"key": hostile, "key_order": hostile, "key_trade": hostile, "key_refund": hostile,
                      "patient": "P1", "day_from": "2024-03-01", "day_to": "2024-03-02", "status": "paid",
                      "platform": "kiosk", "channel": "none"}
    assert conditions(OrderFilter()) == ([], {})


def test_a_page_asks_for_one_row_more_and_reads_upwards_for_the_newer_page():
    sql, params = orders_sql(OrderFilter(size=25, before=100), "postgresql")
    assert sql.endswith("WHERE order_id < :before ORDER BY order_id DESC LIMIT 26") and params == {"before": 100}
    sql, params = orders_sql(OrderFilter(size=25, after=100, status="paid"), "mysql")
    assert sql.endswith("AND order_id > :after ORDER BY order_id ASC LIMIT 26")
    sql, _ = orders_sql(OrderFilter(size=50), "oracle")
    assert sql.endswith("ORDER BY order_id DESC OFFSET 0 ROWS FETCH NEXT 51 ROWS ONLY")
    assert first_rows("sqlserver", "SELECT 1 ORDER BY 1", 10, 20) == \
        "SELECT 1 ORDER BY 1 OFFSET 20 ROWS FETCH NEXT 10 ROWS ONLY"
    assert first_rows("sqlite", "SELECT 1 ORDER BY 1", 10, 20) == "SELECT 1 ORDER BY 1 LIMIT 10 OFFSET 20"
    sql, params = differences_sql(DiffFilter("2024-03-01", "offline", "hospital_only", page=3, size=25), "postgresql")
    assert sql.endswith("ORDER BY platform, order_key, leg LIMIT 26 OFFSET 50")
    assert params == {"day": "2024-03-01", "platform": "offline", "diff_class": "hospital_only"}


def test_a_csv_cell_never_starts_a_formula_and_personal_data_in_text_is_masked():
    assert csv_cell("=HYPERLINK(\"x\")") == "'=HYPERLINK(\"x\")"
    assert [csv_cell(v) for v in ("+1", "-1", "@SUM(A1)", "INV-1")] == ["'+1", "'-1", "'@SUM(A1)", "INV-1"]
    assert csv_cell(D("12.50")) == "12.50" and csv_cell(None) == "" and csv_cell(7) == "7"
    assert csv_cell("call 13800138000") == "call 138****8000"


# -- on every database ----------------------------------------------------------------------------------
@pytest.fixture
def book(db_url):
    s = Store(db_url)
    ids = fill_book(s, bulk=12)
    yield s, ids
    s.close()


def _keys(page) -> list[str]:
    return [o["business_key"] for o in page.orders]


def test_the_searches_find_what_they_say(book):
    s, ids = book
    # By the payment's key, its order number, its channel trade number, or a refund's key.
    for key in ("INV-MP-1", "PO-MP-1", "OTN-MP-1", "RF-MP-1b"):
        assert _keys(search(s, OrderFilter(key=key))) == ["INV-MP-1"], key
    assert _keys(search(s, OrderFilter(key="nothing"))) == []
    assert _keys(search(s, OrderFilter(patient=PSN))) == ["INV-MP-1"]
    assert _keys(search(s, OrderFilter(day_from="2024-03-02", day_to="2024-03-02"))) == ["INV-MP-2"]
    assert _keys(search(s, OrderFilter(day_from="2024-03-01", day_to="2024-03-02"))) == \
        ["INV-FP-3", "INV-MP-2", "INV-MP-1"]
    assert _keys(search(s, OrderFilter(status="cancelled"))) == ["INV-FP-3"]
    assert _keys(search(s, OrderFilter(platform="facepay"))) == ["INV-FP-3"]
    assert _keys(search(s, OrderFilter(channel="alipay"))) == ["INV-MP-2"]
    assert _keys(search(s, OrderFilter(channel="wechat", day_to="2024-03-01"))) == \
        [f"INV-BULK-{n:03d}" for n in range(11, -1, -1)] + ["INV-MP-1"]


def test_an_order_shows_each_leg_and_its_refunds_as_decimals_and_the_patient_masked(book):
    s, ids = book
    [o] = search(s, OrderFilter(key="INV-MP-1")).orders
    assert (o["status"], o["platform"], o["channel"], o["settle_day"], o["outbox_id"]) == \
        ("partly_refunded", "mobilepay", "wechat", "2024-03-01", ids["mp1"])
    assert [o[c] for c in ("total_amount", "fund_amount", "account_amount", "cash_amount")] == \
        [D("120.00"), D("70.00"), D("30.00"), D("20.00")]
    assert [o[c] for c in ("refunded_total", "refunded_fund", "refunded_account", "refunded_cash", "net_amount")] == \
        [D("35.50"), D("0.00"), D("30.00"), D("5.50"), D("84.50")]
    assert all(type(o[c]) is Decimal and o[c].as_tuple().exponent == -2
               for c in ("total_amount", "refunded_cash", "net_amount"))
    assert o["psn_no"] == "4401************2345"
    assert [(r["business_key"], r["refund_type"], r["refund_day"], r["total_amount"], r["account_amount"],
             r["cash_amount"], r["outbox_id"]) for r in o["refunds"]] == [
        ("RF-MP-1a", "refund", "2024-03-01", D("5.50"), D("0.00"), D("5.50"), ids["rf1"]),
        ("RF-MP-1b", "refund", "2024-03-02", D("30.00"), D("30.00"), D("0.00"), ids["rf2"])]
    [fp] = search(s, OrderFilter(platform="facepay")).orders
    assert (fp["ref_no"], fp["term_seq_no"], fp["status"], fp["net_amount"]) == ("REF77", "T0001", "cancelled",
                                                                                 D("0.00"))
    assert [r["refund_type"] for r in fp["refunds"]] == ["cancellation"]
    # A refund whose payment the book lacks is listed apart, by its refund day.
    assert [r["business_key"] for r in unmatched_refunds(s, OrderFilter(day_from="2024-03-01"))] == ["RF-ORPHAN"]
    assert unmatched_refunds(s, OrderFilter(day_from="2024-03-02")) == []
    assert unmatched_refunds(s, OrderFilter(status="paid")) == []


def test_paging_walks_every_order_once_both_ways(book):
    s, _ = book
    everything = _keys(search(s, OrderFilter(size=200)))
    assert len(everything) == 15
    seen, f = [], OrderFilter(size=4)
    pages = []
    while True:
        page = search(s, f)
        pages.append(page)
        seen += _keys(page)
        if page.older is None:
            break
        f = OrderFilter(size=4, before=page.older)
    assert seen == everything and [len(p.orders) for p in pages] == [4, 4, 4, 3]
    assert pages[0].newer is None and pages[1].newer is not None
    # Back up from the last page: the newer pages are the same pages.
    back = search(s, OrderFilter(size=4, after=pages[3].newer))
    assert _keys(back) == _keys(pages[2]) and back.older == pages[2].older
    first = search(s, OrderFilter(size=4, after=search(s, OrderFilter(size=4, after=back.newer)).newer))
    assert _keys(first) == _keys(pages[0]) and first.newer is None


def test_the_csv_export_has_every_match_masked_and_refuses_too_many(book, monkeypatch):
    s, _ = book
    text = export(s, OrderFilter(channel="wechat", size=5, before=3))       # paging is not part of an export
    assert text.startswith("\ufeff")
    rows = list(csv.DictReader(io.StringIO(text[1:])))
    assert len(rows) == 13 and rows[0]["business_key"] == "INV-BULK-011" and rows[-1]["business_key"] == "INV-MP-1"
    mp1 = rows[-1]
    assert (mp1["total_amount"], mp1["refunded_cash"], mp1["net_amount"], mp1["psn_no"]) == \
        ("120.00", "5.50", "84.50", "4401************2345")
    assert PSN not in text
    monkeypatch.setattr("daemon.console.orders.EXPORT_MAX", 12)
    assert export(s, OrderFilter(channel="wechat")) is None
    assert EXPORT_MAX == 10_000


def test_the_reconciliation_by_day_platform_and_class(book):
    s, ids = book
    rows = day_rows(s, DaysFilter("2024-02-29", "2024-03-02"), ["offline", "mobilepay"], last_due="2024-03-01")
    got = [(r["recon_day"], r["platform"], r["state"], r.get("balanced"), r.get("items_total"), r.get("matched"),
            r.get("items_differ")) for r in rows]
    assert got == [("2024-03-01", "offline", "done", 0, 5, 2, 3), ("2024-03-01", "mobilepay", "done", 1, 1, 1, 0),
                   ("2024-02-29", "offline", None, None, None, None, None),
                   ("2024-02-29", "mobilepay", None, None, None, None, None)]
    # No job configured: no "not run" rows; a platform filter.
    assert [r["platform"] for r in day_rows(s, DaysFilter("2024-02-29", "2024-03-02", "mobilepay"), [], None)] == \
        ["mobilepay"]
    [off] = summary(s, "2024-03-01", "offline")
    assert off["run_id"] == ids["run_offline"] and off["classes"] == {
        "balanced": 2, "hospital_only": 1, "platform_only": 1, "channel_only": 0, "amount_differs": 1, "unchecked": 0}
    assert [(r["id"], r["state"]) for r in runs(s, "2024-03-01", "offline")] == \
        [(ids["run_offline"], "done"), (ids["run_failed"], "failed")]
    assert runs(s, "2024-03-01", "offline")[1]["error_message"] == "3201: connection refused"
    assert [(r["state"], r["step"]) for r in runs(s, "2024-03-02", "")] == [("running", "start")]
    assert summary(s, "2024-03-02", "") == []          # a run still going never shows as a result
    page = differences(s, DiffFilter("2024-03-01", size=2))
    assert [(d["order_key"], d["diff_class"], d["hospital_amount"], d["platform_amount"]) for d in page.rows] == \
        [("SETL-X-9", "platform_only", None, D("42.00")), ("SETL-Y-8", "amount_differs", D("10.00"), D("10.01"))]
    assert page.more and "110101199003071234" not in page.rows[0]["note"] and "110101********1234" in page.rows[0]["note"]
    last = differences(s, DiffFilter("2024-03-01", page=2, size=2))
    assert [d["order_key"] for d in last.rows] == ["SETL-Z-7"] and not last.more
    assert [d["order_key"] for d in differences(s, DiffFilter("2024-03-01", diff_class="hospital_only")).rows] == \
        ["SETL-Z-7"]


# -- the pages through Flask's test client, on every database ------------------------------------------------
def _client(db_url, monkeypatch, platforms=None, new_store=None):
    cfg = console_env(monkeypatch)
    app = create_app(cfg, load_users(cfg), load_secret_key(cfg), new_store or (lambda: Store(db_url)),
                     platforms=platforms)
    c = app.test_client()
    tok = re.search(r'name="csrf_token" value="([^"]+)"', c.get("/login").get_data(as_text=True)).group(1)
    assert c.post("/login", data={"name": "victor", "password": PASSWORDS["victor"], "csrf_token": tok}).status_code == 302
    return c


def _text(r) -> str:
    body = r.get_data(as_text=True)
    assert "Traceback" not in body
    return body


def test_the_pages_show_the_book_and_the_reconciliation_and_refuse_bad_input_in_words(book, db_url, monkeypatch):
    s, ids = book
    fill(s)
    c = _client(db_url, monkeypatch, {"reconciliation": {"platforms": ["offline", "mobilepay"]}})
    body = _text(c.get("/orders?key=INV-MP-1"))
    assert f'href="/rows/{ids["mp1"]}"' in body and f'href="/rows/{ids["rf2"]}"' in body
    assert "120.00" in body and "−30.00" in body and "部分退款" in body and "4401************2345" in body
    assert PSN not in body
    r = c.get("/orders?day_from=2024-03-02&day_to=2024-03-01&status=lost")
    body = _text(r)
    assert r.status_code == 400 and "开始日期晚于结束日期" in body and "Not one of the choices" in body
    assert 'id="orders"' not in body                      # no query ran
    r = c.get("/orders.csv?platform=facepay")
    assert r.status_code == 200 and r.mimetype == "text/csv" and "attachment" in r.headers["Content-Disposition"]
    assert "INV-FP-3" in r.get_data(as_text=True) and "INV-MP-1" not in r.get_data(as_text=True)
    body = _text(c.get("/reconciliation?day_from=2024-02-29&day_to=2024-03-01"))
    assert "2024-03-01" in body and "未运行" in body and 'href="/reconciliation/2024-03-01?platform=offline"' in body
    body = _text(c.get("/reconciliation/2024-03-01?platform=offline"))
    assert "SETL-Z-7" in body and "切勿再次向患者收费" in body and "Never charge the patient again" in body
    assert "110101199003071234" not in body and "mibridge reconcile --date 2024-03-01 --platform offline" in body
    assert 'id="do-rerun"' not in body and "<form method=\"post\"" not in body.split("<main>")[1]
    r = c.get("/reconciliation?day_from=2020-01-01&day_to=2024-03-01")
    assert r.status_code == 400 and "日期范围最多 366 天" in _text(r)
    r = c.get("/reconciliation/2024-02-30")
    assert r.status_code == 404 and "不是有效的日期" in _text(r)
    r = c.get("/reconciliation/2024-03-01?page=0")
    assert r.status_code == 400 and "应为正整数" in _text(r)


def test_a_database_error_on_the_pages_is_a_page_in_words(sqlite_url, monkeypatch):
    """The views missing (a database not migrated to 004): the error page, not a traceback."""
    s = Store(sqlite_url)
    s.execute("DROP VIEW mi_v_recon_review")
    s.execute("DROP VIEW mi_v_orders")
    s.close()
    c = _client(sqlite_url, monkeypatch)
    for path in ("/orders", "/orders.csv", "/reconciliation/2024-03-01"):
        r = c.get(path)
        body = _text(r)
        assert r.status_code == 500 and ("详情已写入日志" in body or "details are in the log" in body), path
        assert "mi_v_orders" not in body and "no such table" not in body

