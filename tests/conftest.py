"""Real databases for the tests.

SQLite always runs.  PostgreSQL and MariaDB run when .ci/run (or you) started
them and exported MIBRIDGE_TEST_PG_URL / MIBRIDGE_TEST_MYSQL_URL: each test
gets a fresh database created on that server, with sql/<dialect>/install.sql
run into it, and dropped afterwards.  With MIBRIDGE_REQUIRE_SERVERS=1 (CI) a
missing server fails the test instead of skipping it.

Oracle and SQL Server join every database-backed test in the same way when
MIBRIDGE_TEST_ORACLE_URL / MIBRIDGE_TEST_MSSQL_URL name a server and an
account that may create users (Oracle) or databases (SQL Server), e.g. a
site's staging server:

    MIBRIDGE_TEST_ORACLE_URL=oracle://system:PW@staging:1521/HISPDB
    MIBRIDGE_TEST_MSSQL_URL='mssql://sa:PW@staging:1433/master?trust_server_certificate=yes'

Each test then gets its own Oracle user (schema) or SQL Server database (in
the hospital's usual collation, Chinese_PRC_CI_AS), dropped afterwards.
MIBRIDGE_TEST_CONTAINERS=oracle,sqlserver starts Oracle Free and SQL Server
in Docker for the run instead (pip install -e '.[containers]').
"""
from __future__ import annotations

import atexit
import hashlib
import os
import re
import secrets
import shutil
import tempfile
import uuid
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import pytest

from bridge.db.dialects import get_dialect
from bridge.db.scripts import run_script, script_path
from bridge.db.url import parse_url

_ENV = {"postgresql": "MIBRIDGE_TEST_PG_URL", "mysql": "MIBRIDGE_TEST_MYSQL_URL",
        "oracle": "MIBRIDGE_TEST_ORACLE_URL", "sqlserver": "MIBRIDGE_TEST_MSSQL_URL"}
# Oracle and SQL Server cannot run on every machine: they are tested wherever
# a server is named, and are not required by MIBRIDGE_REQUIRE_SERVERS.
OPTIONAL = ("oracle", "sqlserver")

if os.environ.get("MIBRIDGE_TEST_CONTAINERS"):
    from tests.containers import start_requested
    start_requested(os.environ["MIBRIDGE_TEST_CONTAINERS"])


def _share_httpx_default_ssl_context() -> None:
    """httpx builds a new SSL context for every Client, and so for every top-level
    httpx.get/post: ssl.create_default_context loads the whole CA bundle, about 30 ms
    of CPU each time.  The tests' robots, simulators and probes make tens of thousands
    of such calls (over plain http): measured, half of the test processes' CPU.  The
    default context (verify=True, no client certificate) is built the same way every
    time, so the test process builds it once per CA setting.  Other arguments are passed
    through; the daemons under test are other processes and keep their own."""
    try:
        from httpx._transports import default as transports
    except ImportError:         # another httpx layout: nothing to share, nothing breaks
        return
    build = getattr(transports, "create_ssl_context", None)
    if build is None or getattr(build, "_mibridge_shared", False):
        return
    built: dict = {}

    def create_ssl_context(verify=True, cert=None, trust_env=True):
        if verify is not True or cert is not None:
            return build(verify=verify, cert=cert, trust_env=trust_env)
        key = (trust_env, os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))
        ctx = built.get(key)
        if ctx is None:
            ctx = built[key] = build(verify=verify, cert=cert, trust_env=trust_env)
        return ctx
    create_ssl_context._mibridge_shared = True
    transports.create_ssl_context = create_ssl_context


_share_httpx_default_ssl_context()

# Every dialect the database-backed tests run on here.
DIALECTS = ["sqlite", "postgresql", "mysql"] + [d for d in OPTIONAL if os.environ.get(_ENV[d])]
# The same without SQLite: the tests that need a database server.
SERVER_DIALECTS = [d for d in DIALECTS if d != "sqlite"]


def server_url(dialect: str) -> str:
    env = _ENV[dialect]
    url = os.environ.get(env)
    if not url:
        msg = f"{dialect} server not available: set {env} (bash .ci/run starts one)"
        if os.environ.get("MIBRIDGE_REQUIRE_SERVERS") == "1" and dialect not in OPTIONAL:
            pytest.fail(msg)
        pytest.skip(msg)
    return url


def _with_db(url: str, name: str, user: str | None = None, password: str | None = None) -> str:
    """The admin URL pointing at another database (and, for Oracle, another user)."""
    parts = urlsplit(url)
    u = parse_url(url)
    user = u.user if user is None else user
    password = u.password if password is None else password
    auth = quote(user, safe="") + (f":{quote(password, safe='')}" if password else "")
    netloc = f"{auth}@{u.host}" + (f":{u.port}" if u.port else "")
    return urlunsplit((parts.scheme, netloc, "/" + name, parts.query, ""))


def create_database(dialect: str, admin_url: str, name: str, template: str | None = None) -> tuple[str, callable]:
    """A new empty database (Oracle: a user) on a server; returns (url, drop).
    PostgreSQL: `template` names a database to copy instead of an empty one."""
    d = get_dialect(dialect)
    admin = parse_url(admin_url)
    if dialect == "postgresql":
        conn = d.connect(admin, autocommit=True)
        conn.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
        conn.close()

        def drop():
            c = d.connect(admin, autocommit=True)
            c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            c.close()
        return _with_db(admin_url, name), drop
    if dialect == "mysql":
        conn = d.connect(admin)
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        conn.close()

        def drop():
            c = d.connect(admin)
            with c.cursor() as cur:
                cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
            c.close()
        return _with_db(admin_url, name), drop
    if dialect == "oracle":
        # A schema of its own, with exactly the rights docs/his-integration.md
        # lists for the account that installs mibridge (RESOURCE lacks CREATE VIEW).
        password = "Mi" + secrets.token_hex(12)
        conn = d.connect(admin)
        with conn.cursor() as cur:
            cur.execute(f'CREATE USER {name} IDENTIFIED BY "{password}" QUOTA UNLIMITED ON USERS')
            cur.execute(f"GRANT CREATE SESSION, CREATE TABLE, CREATE VIEW, CREATE PROCEDURE, "
                        f"CREATE TRIGGER, CREATE SEQUENCE, CREATE SYNONYM TO {name}")
        conn.close()

        def drop():
            c = d.connect(admin)
            with c.cursor() as cur:
                cur.execute(f"SELECT sid, serial# FROM v$session WHERE username = UPPER('{name}')")
                for sid, serial in cur.fetchall():
                    cur.execute(f"ALTER SYSTEM KILL SESSION '{sid},{serial}' IMMEDIATE")
                cur.execute(f"DROP USER {name} CASCADE")
            c.close()
        return _with_db(admin_url, admin.database, user=name, password=password), drop
    if dialect == "sqlserver":
        import pyodbc

        def admin_conn():
            return pyodbc.connect(d.connection_string(admin), autocommit=True,
                                  timeout=int(admin.options.get("connect_timeout", 10)))
        conn = admin_conn()
        # The collation most Chinese hospital servers use: case-, width- and
        # trailing-blank-insensitive. The mi_ key columns must not inherit it.
        conn.execute(f"CREATE DATABASE [{name}] COLLATE Chinese_PRC_CI_AS")
        conn.close()

        def drop():
            c = admin_conn()
            c.execute(f"ALTER DATABASE [{name}] SET SINGLE_USER WITH ROLLBACK IMMEDIATE")
            c.execute(f"DROP DATABASE [{name}]")
            c.close()
        return _with_db(admin_url, name), drop
    raise ValueError(dialect)


def _install(dialect: str, url: str) -> None:
    conn = get_dialect(dialect).connect(parse_url(url))
    run_script(conn, dialect, script_path(dialect, "install.sql"))
    conn.close()


def _install_digest(dialect: str) -> str:
    return hashlib.sha256(script_path(dialect, "install.sql").read_bytes()).hexdigest()[:16]


# Installed once, copied per test: every test still gets a database of its own,
# made by the very install.sql it would run (the copy is keyed by the file's
# digest, so an edited install.sql makes a new one).
_SQLITE_TEMPLATES: dict[str, Path] = {}


def _sqlite_template() -> Path:
    digest = _install_digest("sqlite")
    path = _SQLITE_TEMPLATES.get(digest)
    if path is None:
        folder = Path(tempfile.mkdtemp(prefix="mi-sqlite-template-"))
        atexit.register(shutil.rmtree, folder, True)
        path = folder / "installed.db"
        _install("sqlite", f"sqlite:///{path}")   # closed: its WAL is checkpointed into the file
        _SQLITE_TEMPLATES[digest] = path
    return path


def _pg_template(admin_url: str) -> str:
    """An installed database on the server that CREATE DATABASE ... TEMPLATE copies
    (a file copy, no DDL).  Shared by workers and runs with the same install.sql: it
    is built under a temporary name and renamed, so nobody copies a half-built one."""
    name = "mi_tpl_" + _install_digest("postgresql")
    d = get_dialect("postgresql")
    admin = parse_url(admin_url)
    conn = d.connect(admin, autocommit=True)
    try:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            return name
        building = f"{name}_b{uuid.uuid4().hex[:8]}"
        conn.execute(f'CREATE DATABASE "{building}"')
        try:
            _install("postgresql", _with_db(admin_url, building))
            conn.execute(f'ALTER DATABASE "{building}" RENAME TO "{name}"')
        except Exception:
            conn.execute(f'DROP DATABASE IF EXISTS "{building}" WITH (FORCE)')
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
                raise       # not a lost race with another worker: a real failure
        return name
    finally:
        conn.close()


def make_database(dialect: str, tmp_path, install: bool = True, admin_url: str | None = None) -> tuple[str, callable]:
    """Create a database of the test's own, install the mi_ objects, return (url, drop).
    `admin_url`: on that server instead of the dialect's usual one."""
    if dialect == "sqlite":
        path = tmp_path / ('t_' + uuid.uuid4().hex[:8] + '.db')
        url = f"sqlite:///{path}"
        if install:
            shutil.copyfile(_sqlite_template(), path)
        return url, lambda: None   # tmp_path goes away by itself
    admin_url = admin_url or server_url(dialect)
    if dialect == "postgresql" and install:
        return create_database(dialect, admin_url, "mi_t_" + uuid.uuid4().hex[:10],
                               template=_pg_template(admin_url))
    url, drop = create_database(dialect, admin_url, "mi_t_" + uuid.uuid4().hex[:10])
    if install:
        _install(dialect, url)
    return url, drop


# Session fixtures that are costly to start on each xdist worker (a browser).
_GROUP_SESSION_FIXTURES = {"browser": "browser"}


@pytest.hookimpl(tryfirst=True)      # before xdist's worker reads the groups into the node ids
def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist (--dist loadgroup), the tests that share a module-, class- or
    package-scoped fixture (a daemon on a database, a simulator, a day of traffic) run on
    one worker: spread over several, each worker would start its own copy, and those
    starts are most of the suite's CPU.  Tests of another parameter (another database)
    form another group, so the databases still run side by side.  A test's own
    xdist_group marker wins.  Without xdist the markers do nothing."""
    for item in items:
        if item.get_closest_marker("xdist_group"):
            continue
        info = getattr(item, "_fixtureinfo", None)
        if info is None:
            continue
        params = getattr(getattr(item, "callspec", None), "params", {})
        module = item.nodeid.split("::")[0]
        where, values = None, []
        for name in sorted(info.names_closure):
            defs = info.name2fixturedefs.get(name)
            if not defs:
                continue
            scope = defs[-1].scope
            if name in _GROUP_SESSION_FIXTURES:
                where, values = _GROUP_SESSION_FIXTURES[name], []
                break
            if scope == "package":        # the widest shared fixture decides where
                where = defs[-1].baseid or "tests"
            elif scope in ("module", "class") and (where is None or where == module):
                where = module
            else:
                continue
            if name in params:
                values.append(str(params[name]))
        if where is not None:
            # No "[", "]" or "@" in the name: xdist finds the group after the node id's last "@"
            # only when no "]" follows it.
            name = where + ("(" + "-".join(values) + ")" if values else "")
            item.add_marker(pytest.mark.xdist_group(re.sub(r"[\[\]@]", "_", name)))
    if os.environ.get("PYTEST_XDIST_WORKER"):
        # The long crash/race tests first (a stable sort: the order inside a module and a
        # group stays), so that none of them starts last and runs alone at the end.
        items.sort(key=lambda item: 0 if item.get_closest_marker("slow") else 1)


@pytest.fixture(params=DIALECTS)
def dialect(request):
    return request.param


@pytest.fixture
def db_url(dialect, tmp_path):
    url, drop = make_database(dialect, tmp_path)
    yield url
    drop()
