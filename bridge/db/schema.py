"""Which version of the mi_ schema a database has, and bringing it up to date.

sql/<dialect>/migrations/NNN_name.sql are the schema's history: 001_baseline
is the first release, each later file changes a database from version NNN-1 to
NNN and records itself in mi_schema_version.  sql/<dialect>/install.sql is
the same schema as 001 followed by every migration, in one file for a new
database.  A live HIS database is never reinstalled: `mibridge db upgrade`
runs the migrations it is missing, each in its own transaction where the
database can roll DDL back (PostgreSQL, SQLite, SQL Server; MariaDB and Oracle
commit each DDL statement, see docs/migrations.md).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from bridge.db.scripts import ScriptError, run_script, sql_dir

_NAME = re.compile(r"^(\d{3})_([a-z0-9_]+)\.sql$")
# Databases whose DDL can be rolled back with the rest of a transaction.
TRANSACTIONAL_DDL = {"postgresql", "sqlite", "sqlserver"}


class SchemaError(Exception):
    """The schema is not as expected (not installed, already installed, a
    migration failed ...); the message says what to do."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str          # e.g. "002_hardening"
    path: Path


def migrations(dialect: str) -> list[Migration]:
    """The dialect's migrations in order.  Numbers start at 1 and have no gaps."""
    folder = sql_dir() / dialect / "migrations"
    found = []
    for p in sorted(folder.glob("*.sql")):
        m = _NAME.match(p.name)
        if not m:
            raise SchemaError(f"{p}: migration files are named NNN_name.sql (lower case)")
        found.append(Migration(int(m.group(1)), p.stem, p))
    for expected, mig in enumerate(found, 1):
        if mig.version != expected:
            raise SchemaError(f"sql/{dialect}/migrations: expected migration {expected:03d}, found {mig.name}")
    if not found:
        raise SchemaError(f"sql/{dialect}/migrations has no migrations")
    return found


def latest_version(dialect: str) -> int:
    return migrations(dialect)[-1].version


_TABLE_EXISTS = {
    "postgresql": "SELECT 1 WHERE to_regclass(%(t)s) IS NOT NULL",
    "mysql": ("SELECT 1 FROM information_schema.tables "
              "WHERE table_schema = DATABASE() AND table_name = %(t)s"),
    "sqlite": "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = :t",
    "oracle": "SELECT 1 FROM user_tables WHERE table_name = UPPER(:t)",
    "sqlserver": "SELECT 1 WHERE OBJECT_ID(?, N'U') IS NOT NULL",
}


def _cursor(conn, dialect: str):
    """A cursor that binds %(name)s / :name parameters, also on a Store's PostgreSQL
    connection (whose default cursors send the text as it is, with $n parameters)."""
    if dialect == "postgresql":
        import psycopg

        return psycopg.Cursor(conn)
    return conn.cursor()


def _table_exists(conn, dialect: str, table: str) -> bool:
    cur = _cursor(conn, dialect)
    sql = _TABLE_EXISTS[dialect]
    cur.execute(sql, (table,) if dialect == "sqlserver" else {"t": table})
    found = cur.fetchone() is not None
    _end_read(conn)
    return found


def _end_read(conn) -> None:
    try:
        conn.commit()
    except Exception:
        pass


def installed_version(conn, dialect: str) -> Optional[int]:
    """None when mibridge is not installed; 1 for the first release, which had
    no mi_schema_version table; else the highest version recorded."""
    if not _table_exists(conn, dialect, "mi_outbox"):
        return None
    if not _table_exists(conn, dialect, "mi_schema_version"):
        return 1
    cur = _cursor(conn, dialect)
    cur.execute("SELECT MAX(version) FROM mi_schema_version")
    row = cur.fetchone()
    _end_read(conn)
    return int(row[0]) if row and row[0] is not None else 1


def install(conn, dialect: str) -> int:
    """Run install.sql on a database without mibridge; returns the version installed."""
    have = installed_version(conn, dialect)
    if have is not None:
        raise SchemaError(f"mibridge is already installed here (schema version {have}); "
                          f"run 'mibridge db upgrade' to bring it to version {latest_version(dialect)}")
    path = sql_dir() / dialect / "install.sql"
    try:
        run_script(conn, dialect, path)
    except ScriptError as exc:
        raise SchemaError(f"install failed: {exc}") from exc
    got = installed_version(conn, dialect)
    if got != latest_version(dialect):
        raise SchemaError(f"{path} left schema version {got}, expected {latest_version(dialect)}: "
                          f"install.sql must record every migration")
    return got


def upgrade(conn, dialect: str) -> tuple[int, list[str]]:
    """Run every migration the database is missing, in order, each in its own
    transaction where the dialect allows.  Returns (version before, names run).
    Stops at the first failure with a SchemaError that says where it stopped."""
    have = installed_version(conn, dialect)
    if have is None:
        raise SchemaError("mibridge is not installed here; run 'mibridge db install'")
    pending = [m for m in migrations(dialect) if m.version > have]
    done: list[str] = []
    for mig in pending:
        try:
            run_script(conn, dialect, mig.path)
        except ScriptError as exc:
            now = installed_version(conn, dialect)
            partly = ("" if dialect in TRANSACTIONAL_DDL else
                      f" {dialect} commits each DDL statement, so {mig.name} may be partly applied:"
                      f" fix the cause and run 'mibridge db upgrade' again (each migration can be"
                      f" run again), see docs/migrations.md.")
            raise SchemaError(f"migration {mig.name} failed; the database is at schema version {now}"
                              f"{' (nothing of it was kept)' if dialect in TRANSACTIONAL_DDL else ''}: "
                              f"{exc}.{partly}") from exc
        now = installed_version(conn, dialect)
        if now != mig.version:
            raise SchemaError(f"migration {mig.name} ran but the database reports schema version {now}: "
                              f"every migration must record itself in mi_schema_version")
        done.append(mig.name)
    return have, done
