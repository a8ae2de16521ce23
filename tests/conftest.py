"""Real databases for the tests.

SQLite always runs.  PostgreSQL and MariaDB run when .ci/run (or you) started
them and exported MIBRIDGE_TEST_PG_URL / MIBRIDGE_TEST_MYSQL_URL: each test
gets a fresh database created on that server, with sql/<dialect>/install.sql
run into it, and dropped afterwards.  With MIBRIDGE_REQUIRE_SERVERS=1 (CI) a
missing server fails the test instead of skipping it.
"""
from __future__ import annotations

import os
import uuid

import pytest

from bridge.db.dialects import get_dialect
from bridge.db.scripts import run_script, script_path
from bridge.db.url import parse_url

DIALECTS = ["sqlite", "postgresql", "mysql"]
_ENV = {"postgresql": "MIBRIDGE_TEST_PG_URL", "mysql": "MIBRIDGE_TEST_MYSQL_URL"}


def server_url(dialect: str) -> str:
    env = _ENV[dialect]
    url = os.environ.get(env)
    if not url:
        msg = f"{dialect} server not available: set {env} (bash .ci/run starts one)"
        if os.environ.get("MIBRIDGE_REQUIRE_SERVERS") == "1":
            pytest.fail(msg)
        pytest.skip(msg)
    return url


def _with_db(url: str, name: str) -> str:
    u = parse_url(url)
    auth = u.user + (f":{u.password}" if u.password else "")
    return f"{url.split('://')[0]}://{auth}@{u.host}:{u.port}/{name}"


def make_database(dialect: str, tmp_path, install: bool = True) -> tuple[str, callable]:
    """Create an empty database, install the mi_ objects, return (url, drop)."""
    if dialect == "sqlite":
        url = f"sqlite:///{tmp_path / ('t_' + uuid.uuid4().hex[:8] + '.db')}"
        drop = lambda: None  # noqa: E731  (tmp_path goes away by itself)
    else:
        admin_url = server_url(dialect)
        name = "mi_t_" + uuid.uuid4().hex[:10]
        d = get_dialect(dialect)
        admin = parse_url(admin_url)
        if dialect == "postgresql":
            conn = d.connect(admin, autocommit=True)
            conn.execute(f'CREATE DATABASE "{name}"')
            conn.close()
        else:
            conn = d.connect(admin)
            with conn.cursor() as cur:
                cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
            conn.close()
        url = _with_db(admin_url, name)

        def drop():
            if dialect == "postgresql":
                c = d.connect(admin, autocommit=True)
                c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                c.close()
            else:
                c = d.connect(admin)
                with c.cursor() as cur:
                    cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
                c.close()
    if install:
        u = parse_url(url)
        conn = get_dialect(dialect).connect(u)
        run_script(conn, dialect, script_path(dialect, "install.sql"))
        conn.close()
    return url, drop


@pytest.fixture(params=DIALECTS)
def dialect(request):
    return request.param


@pytest.fixture
def db_url(dialect, tmp_path):
    url, drop = make_database(dialect, tmp_path)
    yield url
    drop()
