"""Fixtures for the operations tests: headless Chromium driven by Playwright
(https://playwright.dev/python/) through Debian's own browser (/usr/bin/chromium,
installed by .ci/run: `playwright install` cannot download browsers here), and
the console served by the daemon's own HTTP listener on a free loopback port."""
from __future__ import annotations

import os
import shutil

import pytest

from bridge.db.store import Store
from daemon import dbadmin
from daemon.console import create_app
from daemon.console.auth import load_secret_key, load_users
from daemon.http_server import HttpLimits, HttpServer
from tests.ops.helpers import console_env, fill, fill_book

CHROMIUM = os.environ.get("MIBRIDGE_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="session")
def browser():
    if not shutil.which(CHROMIUM) and not os.path.exists(CHROMIUM):
        msg = f"no Chromium at {CHROMIUM} (apt-get install chromium; .ci/run does)"
        if os.environ.get("MIBRIDGE_REQUIRE_SERVERS") == "1":
            pytest.fail(msg)
        pytest.skip(msg)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


# [reconciliation] as the console reads it: which platforms the daily job should have run.
RECON = {"reconciliation": {"platforms": ["offline", "mobilepay"], "days_back": 1}}


class Console:
    def __init__(self, url: str, db_url: str, ids: dict, app, book: dict | None = None):
        self.url = url
        self.db_url = db_url
        self.ids = ids
        self.app = app
        self.book = book or {}

    def store(self) -> Store:
        return Store(self.db_url)


def serve(cfg, db_url: str, ids: dict, book: dict, new_store):
    """The console on the daemon's own HTTP listener, on a free loopback port."""
    app = create_app(cfg, load_users(cfg), load_secret_key(cfg), new_store, platforms=RECON)
    server = HttpServer("console", "127.0.0.1", 0, HttpLimits())
    server.mount("/", app)
    stop = server.start()
    return Console(f"http://127.0.0.1:{server.port}", db_url, ids, app, book), stop


@pytest.fixture
def console(tmp_path, monkeypatch):
    db_url = f"sqlite:///{tmp_path / 'console.db'}"
    dbadmin.run("install", db_url)
    s = Store(db_url)
    ids = fill(s)
    book = fill_book(s, bulk=30)
    s.close()
    c, stop = serve(console_env(monkeypatch), db_url, ids, book, lambda: Store(db_url))
    yield c
    stop()


@pytest.fixture
def sqlite_url(tmp_path):
    """A fresh SQLite database, for the tests whose subject is not the database."""
    from tests.conftest import make_database

    url, _ = make_database("sqlite", tmp_path)
    return url
