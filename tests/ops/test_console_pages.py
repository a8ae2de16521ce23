"""The console's pages and rules without a browser (Flask's test client): every
page on every database, sign-in throttling, the language setting, and error
pages that never show a traceback."""
from __future__ import annotations

import re

import pytest

from bridge.db.store import Store
from daemon.console import create_app
from daemon.console.auth import Throttle, load_secret_key, load_users
from daemon.config import ConfigError, ConsoleConfig, ConsoleUser
from tests.ops.helpers import PASSWORDS, console_env, fill


def _app(cfg, db_url, new_store=None):
    return create_app(cfg, load_users(cfg), load_secret_key(cfg), new_store or (lambda: Store(db_url)))


def _token(resp) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', resp.get_data(as_text=True)).group(1)


def _sign_in(client, name="olga", password=None):
    tok = _token(client.get("/login"))
    return client.post("/login", data={"name": name, "password": PASSWORDS[name] if password is None else password,
                                       "csrf_token": tok})


def test_every_page_on_every_database(db_url, monkeypatch):
    s = Store(db_url)
    ids = fill(s)
    s.execute("""INSERT INTO mi_notice (interface, notice_key, business_key, outbox_id, notice_json)
                 VALUES ('6302', 'PO-1', 'INV-DONE-4', :o, '{}')""", {"o": ids["done"]})
    app = _app(console_env(monkeypatch), db_url)
    c = app.test_client()
    assert _sign_in(c).status_code == 302
    for path in ("/", "/held", f"/rows/{ids['held']}", f"/rows/{ids['held_doubt']}", f"/rows/{ids['pending']}",
                 "/find?key=INV-HELD-1", "/find?key=nothing", "/orders", "/reconciliation"):
        r = c.get(path, follow_redirects=True)
        assert r.status_code == 200, (path, r.status_code)
        assert "Traceback" not in r.get_data(as_text=True)
    body = c.get("/").get_data(as_text=True)
    assert "NOTIFY_FAILED" in body and "CHARGE_IN_DOUBT" in body and "INV-HELD-1" in body
    held = c.get("/held").get_data(as_text=True)
    assert "read timeout" in held                    # what the last call saw
    # An operator's cancel of the waiting row, through the database's own function.
    tok = _token(c.get(f"/rows/{ids['pending']}"))
    r = c.post(f"/rows/{ids['pending']}/cancel", data={"note": "patient left", "csrf_token": tok},
               follow_redirects=True)
    assert r.status_code == 200 and s.query("SELECT state FROM mi_outbox WHERE id = :i",
                                            {"i": ids["pending"]})[0][0] == "failed"
    assert [tuple(a) for a in s.query("SELECT action, actor, note FROM mi_audit")] == \
        [("cancel", "olga@console", "patient left")]
    s.close()


def test_sign_in_is_throttled_even_with_the_right_password(sqlite_url, monkeypatch):
    cfg = console_env(monkeypatch)
    cfg = cfg.model_copy(update={"login_attempts": 3})
    c = _app(cfg, sqlite_url).test_client()
    for _ in range(3):
        r = _sign_in(c, "olga", "wrong")
        assert r.status_code == 401
    r = _sign_in(c, "olga")
    assert r.status_code == 401 and ("too many" in r.get_data(as_text=True).lower()
                                     or "失败次数过多" in r.get_data(as_text=True))
    # Another name from the same address still signs in (the address's limit is 4x).
    assert _sign_in(c, "victor").status_code == 302


def test_throttle_forgets_after_the_window():
    now = [0.0]
    t = Throttle(2, 60, clock=lambda: now[0])
    t.failed("a", "1.2.3.4")
    t.failed("a", "1.2.3.4")
    assert t.blocked("a", "1.2.3.4") and not t.blocked("b", "5.6.7.8")
    now[0] = 61
    assert not t.blocked("a", "1.2.3.4")


@pytest.mark.parametrize("language, shown, hidden", [("zh", "概览", "Overview"), ("en", "Overview", "概览"),
                                                       ("zh+en", "概览", None)])
def test_the_language_setting(sqlite_url, monkeypatch, language, shown, hidden):
    cfg = console_env(monkeypatch).model_copy(update={"language": language})
    c = _app(cfg, sqlite_url).test_client()
    _sign_in(c)
    body = c.get("/").get_data(as_text=True)
    assert shown in body and (hidden is None or hidden not in body)
    if hidden is None:
        assert "Overview" in body


def test_an_error_is_a_page_in_words_and_the_details_go_to_the_log(sqlite_url, monkeypatch, capsys):
    from loguru import logger

    from daemon import logs

    logs.setup("INFO")
    calls = []

    cert = "1101011990" + "03071234"      # built at run time: a traceback shows code lines, not data

    def broken_store():
        calls.append(1)
        raise RuntimeError(f"secret detail {cert}")
    c = _app(console_env(monkeypatch), sqlite_url, broken_store).test_client()
    _sign_in(c)
    r = c.get("/held")
    body = r.get_data(as_text=True)
    assert r.status_code == 500 and calls
    assert "Traceback" not in body and "secret detail" not in body and "RuntimeError" not in body
    assert "详情已写入日志" in body or "details are in the log" in body
    err = capsys.readouterr().err
    assert "Traceback" in err and "RuntimeError" in err and "110101199003071234" not in err
    logger.remove()


def test_a_plain_password_or_a_short_secret_is_refused_at_start(monkeypatch):
    monkeypatch.setenv("MI_SECRET", "short")
    monkeypatch.setenv("MI_PLAIN", "hunter2")
    cfg = ConsoleConfig(enabled=True, secret_key_env="MI_SECRET",
                        users=[ConsoleUser(name="a", role="operator", password_hash_env="MI_PLAIN")])
    with pytest.raises(ConfigError, match="must be given as a hash"):
        load_users(cfg)
    with pytest.raises(ConfigError, match="at least 32 characters"):
        load_secret_key(cfg)
    with pytest.raises(ConfigError, match="MI_NOPE is not set"):
        load_users(ConsoleConfig(enabled=True, users=[ConsoleUser(name="b", role="viewer",
                                                                  password_hash_env="MI_NOPE")]))
    with pytest.raises(ConfigError, match="no users"):
        load_users(ConsoleConfig(enabled=True))
