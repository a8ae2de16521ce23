"""What every command takes from its arguments: the configuration and the database
(-c / --url), and the two kinds of failure it reports in words.  Shared by daemon/cli.py
and the command modules it adds (regions_cmd, reconcile_cmd), which must not import the
CLI itself (no import cycles)."""
from __future__ import annotations

import os
from pathlib import Path


class CliError(Exception):
    """A failure explained in words; exit status 1."""


class Refused(Exception):
    """Refused as asked (not held, no note ...); exit status 2."""


def config_from(args):
    from daemon.config import load

    path = getattr(args, "config", None) or os.environ.get("MIBRIDGE_CONFIG")
    if not path and not getattr(args, "url", None) and not os.environ.get("MIBRIDGE_DB_URL") \
            and getattr(args, "needs_config", True):
        raise CliError("no configuration: give -c FILE (or set MIBRIDGE_CONFIG), or --url for the database")
    return load(path)


def store_from(args):
    """The database of the config (or --url).  A SQLite file that does not exist is
    an error, never created: a read command must not leave an empty database behind."""
    from bridge.db.store import Store
    from bridge.db.url import parse_url

    cfg = config_from(args)
    url = getattr(args, "url", None) or cfg.database.url
    u = parse_url(url, cfg.database.password_env)
    if u.dialect == "sqlite" and u.database not in ("", ":memory:") and not Path(u.database).exists():
        raise CliError(f"no database at {u.database} ({u.redacted()}); give -c FILE or --url for yours, or "
                       f"create it with 'mibridge db install --url {url}'")
    return Store(u)


DATABASE_DRIVERS = ("psycopg", "pymysql", "sqlite3", "oracledb", "pyodbc")


def database_words(exc: BaseException) -> str:
    text = str(exc).strip()
    low = text.lower()
    first = text.splitlines()[0] if text else type(exc).__name__
    if any(w in low for w in ("password authentication failed", "access denied", "login failed",
                              "ora-01017", "invalid username/password")):
        return f"the database refused the login: {first}"
    if any(w in low for w in ("connection refused", "could not connect", "can't connect", "timeout",
                              "timed out", "could not translate host", "name or service not known",
                              "unable to open database", "no route to host", "tns:")):
        return f"cannot reach the database: {first}"
    return first
