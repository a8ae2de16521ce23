"""The Orders and Reconciliation pages in headless Chromium: a finance clerk finds an order
by its business key, reads each leg and the refunds under it, opens the request, pages
through the book; a wrong search is named next to its field; a day's reconciliation with
its differences and what to do; the Chinese text is drawn with a Chinese font.  On SQLite,
and on PostgreSQL and MariaDB as the daemon's login with the shipped grants.  Screenshots
under the test's tmp dir."""
from __future__ import annotations

import pytest

from tests.ops.conftest import serve
from tests.ops.helpers import PSN, console_env, fill, fill_book
from tests.ops.test_console_browser import DESKTOP, TABLET, sign_in
from tests.sql.test_grants import logins  # noqa: F401  (the fixture)


def _shot(page, tmp_path, name: str) -> None:
    d = tmp_path / "screens"
    d.mkdir(exist_ok=True)
    page.screenshot(path=str(d / f"{name}.png"), full_page=True)
    assert (d / f"{name}.png").stat().st_size > 5000


def _no_overflow(page) -> None:
    assert page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0
    assert "Traceback" not in page.content()


def test_a_clerk_finds_an_order_reads_its_legs_and_refunds_and_opens_the_request(browser, console, tmp_path):
    ctx = browser.new_context(viewport=DESKTOP)
    page = ctx.new_page()
    sign_in(page, console, "victor")                 # a viewer may read the book
    page.click("#nav-orders")
    page.wait_for_url("**/orders")
    page.fill("#f-key", "RF-MP-1b")                   # the slip of one of its refunds
    with page.expect_navigation():
        page.click("#f-apply")
    orders = page.locator("#orders tbody.order")
    assert orders.count() == 1
    order = orders.first
    payment = order.locator("tr.payment")
    assert "INV-MP-1" in payment.inner_text() and "部分退款" in payment.inner_text()
    assert payment.locator("td.leg-fund").inner_text().strip() == "70.00"
    assert payment.locator("td.leg-account").inner_text().split() == ["30.00", "−30.00"]
    assert payment.locator("td.leg-cash").inner_text().split() == ["20.00", "−5.50"]
    assert payment.locator("td.net").inner_text().strip() == "84.50"
    assert "4401************2345" in payment.inner_text() and PSN not in page.content()
    refunds = order.locator("tr.refund")
    assert refunds.count() == 2
    assert "RF-MP-1a" in refunds.nth(0).inner_text() and "−5.50" in refunds.nth(0).inner_text()
    assert "RF-MP-1b" in refunds.nth(1).inner_text() and "2024-03-02" in refunds.nth(1).inner_text()
    _no_overflow(page)
    _shot(page, tmp_path, "orders-found")
    # The refund's own request, then the payment's, on the detail page that already exists.
    with page.expect_navigation():
        refunds.nth(1).locator("a.request-link").click()
    assert page.url.endswith(f"/rows/{console.book['rf2']}") and "RF-MP-1b" in page.inner_text("h1")
    page.go_back()
    with page.expect_navigation():
        payment.locator("a.request-link").click()
    assert page.url.endswith(f"/rows/{console.book['mp1']}")
    # The CSV of the same search, masked.
    page.goto(console.url + "/orders?key=INV-MP-1")
    with page.expect_download() as dl:
        page.click("#export-csv")
    text = open(dl.value.path(), encoding="utf-8-sig").read()
    assert "INV-MP-1" in text and "120.00" in text and PSN not in text and "4401************2345" in text
    ctx.close()


def test_paging_through_the_book(browser, console, tmp_path):
    ctx = browser.new_context(viewport=TABLET)
    page = ctx.new_page()
    sign_in(page, console, "victor")
    page.goto(console.url + "/orders")
    page.select_option("#f-size", "25")
    page.select_option("#f-channel", "wechat")
    with page.expect_navigation():
        page.click("#f-apply")
    first = page.locator("#orders a.request-link").all_inner_texts()
    assert len(first) == 25 and page.locator("#page-newer").count() == 0
    _no_overflow(page)
    _shot(page, tmp_path, "orders-page-1-tablet")
    with page.expect_navigation():
        page.click("#page-older")
    second = page.locator("#orders tr.payment a.request-link").all_inner_texts()
    assert len(second) == 6 and not set(first) & set(second)        # 30 bulk + INV-MP-1, wechat
    assert page.locator("#page-older").count() == 0 and "channel=wechat" in page.url
    with page.expect_navigation():
        page.click("#page-newer")
    assert page.locator("#orders a.request-link").all_inner_texts() == first
    ctx.close()


def test_a_wrong_search_is_named_next_to_its_field_and_nothing_is_searched(browser, console, tmp_path):
    ctx = browser.new_context(viewport=DESKTOP)
    page = ctx.new_page()
    sign_in(page, console, "victor")
    page.goto(console.url + "/orders")
    page.fill("#f-day_from", "2024-03-02")
    page.fill("#f-day_to", "2024-03-01")
    with page.expect_navigation() as nav:
        page.click("#f-apply")
    assert nav.value.status == 400
    assert "开始日期晚于结束日期" in page.inner_text("label:has(#f-day_to) .field-error")
    assert page.locator("#search-error").is_visible() and page.locator("#orders").count() == 0
    assert page.input_value("#f-day_from") == "2024-03-02"          # what was typed stays
    _shot(page, tmp_path, "orders-refused")
    # What a browser's form cannot send, a hand-made URL can: each is named.
    resp = page.goto(console.url + "/orders?patient=44-01&size=7&before=x")
    assert resp.status == 400
    assert "最多 40 个字母或数字" in page.inner_text("label:has(#f-patient) .field-error")
    assert "不是可选的值" in page.inner_text("label:has(#f-size) .field-error")
    assert "应为正整数" in page.inner_text("#orders-search")
    resp = page.goto(console.url + "/reconciliation/2024-02-31")
    assert resp.status == 404 and "不是有效的日期" in page.inner_text("#error")
    ctx.close()


def test_a_days_reconciliation_its_differences_and_what_to_do(browser, console, tmp_path):
    ctx = browser.new_context(viewport=DESKTOP)
    page = ctx.new_page()
    sign_in(page, console, "olga")
    page.click("#nav-reconciliation")
    page.wait_for_url("**/reconciliation")
    page.fill("#f-day_from", "2024-02-28")
    page.fill("#f-day_to", "2024-03-02")
    with page.expect_navigation():
        page.click("#f-apply")
    off = page.locator("#day-2024-03-01-offline")
    assert off.locator("td").nth(3).inner_text().strip() in ("否 no", "否", "no")
    assert [off.locator("td").nth(i).inner_text() for i in (4, 5, 6)] == ["5", "2", "3"]
    assert "未运行" in page.inner_text("#day-2024-02-29-mobilepay")   # the job should have run, and did not
    _no_overflow(page)
    _shot(page, tmp_path, "reconciliation")
    with page.expect_navigation():
        off.locator("a").first.click()
    assert "/reconciliation/2024-03-01" in page.url
    summary = page.inner_text("#summary-offline")
    assert "金额不符" in summary and "平台有, 医院无" in summary
    rows = page.locator("#diff-table tbody.difference")
    assert rows.count() == 3
    z = page.locator("#diff-table tbody.class-hospital_only")
    assert "SETL-Z-7" in z.inner_text() and "5.00" in z.inner_text()
    assert "核实之前切勿再次向患者收费" in z.locator("p.todo").inner_text()
    assert "110101199003071234" not in page.content() and "110101********1234" in page.inner_text("#diff-table")
    runs = page.inner_text("#run-table")
    assert "3201: connection refused" in runs and "失败" in runs
    # No action here: the page says how a run is made again, and has no form that posts but sign-out.
    assert "mibridge reconcile --date 2024-03-01 --platform offline" in page.inner_text("#rerun")
    assert page.locator("main form[method=post]").count() == 0
    _no_overflow(page)
    _shot(page, tmp_path, "reconciliation-day")
    page.select_option("#f-diff_class", "amount_differs")
    with page.expect_navigation():
        page.click("#f-apply")
    assert page.locator("#diff-table tbody.difference").count() == 1 and "10.01" in page.inner_text("#diff-table")
    # From a difference to its order in the book.
    with page.expect_navigation():
        page.click("#diff-table a:has-text('INV-Y-8')")
    assert "/orders?key=INV-Y-8" in page.url and page.locator("#no-orders").is_visible()
    page.goto(console.url + "/reconciliation/2024-03-02")
    assert "进行中" in page.inner_text("#run-table") and page.locator("#no-run").is_visible()
    _shot(page, tmp_path, "reconciliation-running")
    ctx.close()


@pytest.mark.parametrize("path, selector", [("/orders", "h1 span[lang=zh]"),
                                            ("/reconciliation/2024-03-01", "#summary-offline h2 span[lang=zh]")])
def test_the_chinese_text_is_drawn_with_a_chinese_font(browser, console, path, selector):
    """Which fonts Chromium really drew the text with (DevTools CSS.getPlatformFontsForNode):
    a fallback without Chinese glyphs would show boxes; the screenshots would not say so."""
    ctx = browser.new_context(viewport=DESKTOP)
    page = ctx.new_page()
    sign_in(page, console, "victor")
    page.goto(console.url + path)
    cdp = ctx.new_cdp_session(page)
    cdp.send("DOM.enable")
    cdp.send("CSS.enable")
    root = cdp.send("DOM.getDocument")["root"]["nodeId"]
    node = cdp.send("DOM.querySelector", {"nodeId": root, "selector": selector})["nodeId"]
    assert node, selector
    fonts = cdp.send("CSS.getPlatformFontsForNode", {"nodeId": node})["fonts"]
    assert fonts and all(any(w in f["familyName"] for w in ("CJK", "WenQuanYi", "Micro Hei", "YaHei"))
                         for f in fonts), fonts
    ctx.close()


def test_the_pages_in_a_browser_as_the_daemons_login_with_the_shipped_grants(browser, logins, monkeypatch,  # noqa: F811
                                                                             tmp_path):
    daemon = logins.store("daemon")
    ids = fill(daemon)
    book = fill_book(daemon, bulk=2)
    daemon.close()
    console, stop = serve(console_env(monkeypatch), logins.url, ids, book, lambda: logins.store("daemon"))
    try:
        ctx = browser.new_context(viewport=DESKTOP)
        page = ctx.new_page()
        sign_in(page, console, "victor")
        page.goto(console.url + "/orders")
        page.fill("#f-key", "INV-FP-3")
        with page.expect_navigation():
            page.click("#f-apply")
        payment = page.locator("#orders tr.payment")
        assert payment.count() == 1 and "已撤销" in payment.inner_text() and "REF77" in payment.inner_text()
        assert "CX-FP-3" in page.inner_text("#orders tr.refund")
        _shot(page, tmp_path, f"orders-{logins.dialect}")
        page.goto(console.url + "/reconciliation/2024-03-01")
        assert page.locator("#diff-table tbody.difference").count() == 3 and "3201: connection refused" in \
            page.inner_text("#run-table")
        _no_overflow(page)
        _shot(page, tmp_path, f"reconciliation-day-{logins.dialect}")
        ctx.close()
    finally:
        stop()
