"""The web console in a real browser (headless Chromium): sign-in, finding a
request by its business key, requeueing a held row with a note and seeing the
audit row, what a viewer may not do, wrong passwords, session fixation, CSRF on
every action, and every page at 1280x800 and at a tablet width (screenshots
under the test's tmp dir)."""
from __future__ import annotations

import re

import pytest

from tests.ops.helpers import PASSWORDS

DESKTOP = {"width": 1280, "height": 800}
TABLET = {"width": 768, "height": 1024}
COOKIE = "mibridge_console"


def sign_in(page, console, name: str, password: str | None = None):
    page.goto(console.url + "/login")
    page.fill("#name", name)
    page.fill("#password", PASSWORDS[name] if password is None else password)
    with page.expect_navigation():
        page.click("#login-submit")
    page.wait_for_load_state("load")


def cookie(context) -> str | None:
    return next((c["value"] for c in context.cookies() if c["name"] == COOKIE), None)


def test_sign_in_find_by_business_key_requeue_with_a_note_and_see_the_audit_row(browser, console):
    ctx = browser.new_context(viewport=DESKTOP)
    page = ctx.new_page()
    sign_in(page, console, "olga")
    assert page.url.rstrip("/") == console.url
    assert page.locator("#counts").is_visible()
    # Find a request by its business key (the search box in the header).
    page.fill("#find-key", "INV-DONE-4")
    page.press("#find-key", "Enter")
    page.wait_for_url(f"**/rows/{console.ids['done']}")
    assert "INV-DONE-4" in page.inner_text("h1")
    # Open a held row from the held page and requeue it with a note.
    page.click("#nav-held")
    page.wait_for_url("**/held")
    page.click(f"a.row-link[href='/rows/{console.ids['held_doubt']}']")
    page.wait_for_url(f"**/rows/{console.ids['held_doubt']}")
    assert "CHARGE_IN_DOUBT" in page.inner_text("#facts")
    page.fill("#form-requeue textarea[name=note]", "checked the centre: no booking seen yet; query it")
    with page.expect_navigation():
        page.click("#do-requeue")
    # The row was stopped inside a call that may have moved money: back to in_doubt
    # (query first), never to a resend.
    assert "in_doubt" in page.inner_text(".flash.ok")
    assert "in doubt" in page.inner_text("#row-state") or "存疑" in page.inner_text("#row-state")
    audit = page.inner_text("#audit")
    assert "requeue" in audit and "olga@console" in audit and "query it" in audit
    s = console.store()
    assert [tuple(r) for r in s.query("SELECT outbox_id, action, actor, note FROM mi_audit")] == \
        [(console.ids["held_doubt"], "requeue", "olga@console", "checked the centre: no booking seen yet; query it")]
    assert s.query("SELECT state FROM mi_outbox WHERE id = :i", {"i": console.ids["held_doubt"]})[0][0] == "in_doubt"
    s.close()
    # The journal is shown masked: the ID number in the request never reaches the page.
    page.goto(f"{console.url}/rows/{console.ids['held']}")
    assert "110101199003071234" not in page.content()
    assert "1101**********1234" in page.content()       # the payload's id_no, masked by field name
    ctx.close()


def test_a_viewer_sees_no_action_and_a_forged_post_is_refused(browser, console):
    ctx = browser.new_context(viewport=DESKTOP)
    page = ctx.new_page()
    sign_in(page, console, "victor")
    page.goto(f"{console.url}/rows/{console.ids['held']}")
    assert page.locator("#do-requeue").count() == 0 and page.locator("#do-resolve").count() == 0
    assert page.locator("#do-cancel").count() == 0
    # A forged POST with a valid CSRF token of the viewer's own session.
    token = page.get_attribute("input[name=csrf_token]", "value")
    for action in ("requeue", "resolve", "cancel"):
        r = page.request.post(f"{console.url}/rows/{console.ids['held']}/{action}",
                              form={"note": "forged", "csrf_token": token}, max_redirects=0)
        assert r.status == 403, (action, r.status)
        assert "Traceback" not in r.text()
    s = console.store()
    assert s.query("SELECT state FROM mi_outbox WHERE id = :i", {"i": console.ids["held"]})[0][0] == "held"
    assert s.query("SELECT COUNT(*) FROM mi_audit")[0][0] == 0
    s.close()
    ctx.close()


def test_a_wrong_password_is_refused_and_the_session_id_changes_at_sign_in(browser, console):
    ctx = browser.new_context(viewport=DESKTOP)
    page = ctx.new_page()
    page.goto(console.url + "/login")
    before = cookie(ctx)
    assert before, "the login page sets a session cookie (it holds the CSRF token)"
    sign_in(page, console, "olga", "not-the-password")
    assert "/login" in page.url and page.locator("#login-error").is_visible()
    page.goto(console.url + "/")
    assert "/login" in page.url                      # still not signed in
    sign_in(page, console, "olga")
    after = cookie(ctx)
    assert after and after != before
    flags = next(c for c in ctx.cookies() if c["name"] == COOKIE)
    assert flags["httpOnly"] and flags["sameSite"] == "Strict"
    # Fixation: the cookie from before the sign-in is worth nothing afterwards.
    other = browser.new_context(viewport=DESKTOP)
    other.add_cookies([{"name": COOKIE, "value": before, "url": console.url}])
    p2 = other.new_page()
    p2.goto(console.url + "/held")
    assert "/login" in p2.url
    # Sign-out ends the session on the server: the signed-in cookie is worth nothing either.
    page.click("#logout")
    page.wait_for_url("**/login**")
    other.clear_cookies()
    other.add_cookies([{"name": COOKIE, "value": after, "url": console.url}])
    p2.goto(console.url + "/held")
    assert "/login" in p2.url
    other.close()
    ctx.close()


def test_every_action_needs_its_csrf_token(browser, console):
    ctx = browser.new_context(viewport=DESKTOP)
    page = ctx.new_page()
    # Without a token even the sign-in is refused (login CSRF).
    r = page.request.post(console.url + "/login", form={"name": "olga", "password": PASSWORDS["olga"]},
                          max_redirects=0)
    assert r.status == 400 and "Traceback" not in r.text()
    sign_in(page, console, "olga")
    # Every form the pages show that posts carries a token.
    for path in ("/", "/held", f"/rows/{console.ids['held']}", f"/rows/{console.ids['pending']}", "/orders",
                 "/reconciliation", "/reconciliation/2024-03-01"):
        page.goto(console.url + path)
        forms = page.locator("form[method=post]")
        assert forms.count() >= 1
        for i in range(forms.count()):
            assert forms.nth(i).locator("input[name=csrf_token]").count() == 1, (path, i)
    for path in (f"/rows/{console.ids['held']}/requeue", f"/rows/{console.ids['held']}/resolve",
                 f"/rows/{console.ids['pending']}/cancel", "/logout"):
        for token in (None, "forged-token"):
            form = {"note": "no token"} if token is None else {"note": "bad token", "csrf_token": token}
            r = page.request.post(console.url + path, form=form, max_redirects=0)
            assert r.status == 400, (path, token, r.status)
    s = console.store()
    assert dict(s.query("SELECT id, state FROM mi_outbox WHERE id IN (:a, :b)",
                        {"a": console.ids["held"], "b": console.ids["pending"]})) == \
        {console.ids["held"]: "held", console.ids["pending"]: "pending"}
    assert s.query("SELECT COUNT(*) FROM mi_audit")[0][0] == 0
    s.close()
    # Still signed in: the refused posts did not sign anyone out.
    page.goto(console.url + "/held")
    assert "/login" not in page.url
    ctx.close()


@pytest.mark.parametrize("viewport", [DESKTOP, TABLET], ids=["1280x800", "tablet-768"])
def test_every_page_fits_and_is_screenshotted(browser, console, tmp_path, viewport):
    ctx = browser.new_context(viewport=viewport)
    page = ctx.new_page()
    page.goto(console.url + "/login")
    shots = tmp_path / f"screens-{viewport['width']}"
    shots.mkdir()
    page.screenshot(path=str(shots / "login.png"), full_page=True)
    sign_in(page, console, "olga")
    pages = {"overview": "/", "held": "/held", "row-held": f"/rows/{console.ids['held']}",
             "row-pending": f"/rows/{console.ids['pending']}", "find": "/find?key=nothing-here",
             "orders": "/orders", "orders-one": "/orders?key=INV-MP-1",
             "orders-refused": "/orders?day_from=2024-03-02&day_to=2024-03-01&status=lost",
             "reconciliation": "/reconciliation?day_from=2024-02-27&day_to=2024-03-02",
             "reconciliation-day": "/reconciliation/2024-03-01", "not-found": "/rows/999999"}
    for name, path in pages.items():
        page.goto(console.url + path)
        # Nothing wider than the window: tables scroll inside their card.
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, (name, viewport, overflow)
        assert "Traceback" not in page.content()
        page.screenshot(path=str(shots / f"{name}.png"), full_page=True)
    files = sorted(p.name for p in shots.iterdir())
    assert len(files) == len(pages) + 1 and all((shots / f).stat().st_size > 5000 for f in files)
    # Orders and Reconciliation are in the navigation.
    page.goto(console.url + "/")
    assert page.locator("#nav-orders").is_visible() and page.locator("#nav-reconciliation").is_visible()
    page.click("#nav-orders")
    page.wait_for_url("**/orders")
    assert page.locator("#orders tbody.order").count() == 33
    page.click("#nav-reconciliation")
    page.wait_for_url("**/reconciliation")
    assert page.locator("#recon-search").is_visible()
    ctx.close()


def test_a_note_is_required_and_the_database_rules_reach_the_page(browser, console):
    ctx = browser.new_context(viewport=DESKTOP)
    page = ctx.new_page()
    sign_in(page, console, "olga")
    page.goto(f"{console.url}/rows/{console.ids['held']}")
    token = page.get_attribute("#form-requeue input[name=csrf_token]", "value")
    r = page.request.post(f"{console.url}/rows/{console.ids['held']}/requeue", form={"note": "  ", "csrf_token": token})
    assert r.status == 200 and re.search(r"note is required|请填写备注", r.text())
    # Cancel of a row that made a call that may have moved money: refused in words.
    r = page.request.post(f"{console.url}/rows/{console.ids['held_doubt']}/cancel",
                          form={"note": "try", "csrf_token": token})
    assert "may have moved money" in r.text() and "Traceback" not in r.text()
    s = console.store()
    assert s.query("SELECT state FROM mi_outbox WHERE id = :i", {"i": console.ids["held_doubt"]})[0][0] == "held"
    s.close()
    ctx.close()
