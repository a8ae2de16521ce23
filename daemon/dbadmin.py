"""`mibridge db install|upgrade|status|uninstall|grants`: runs the same
sql/<dialect>/*.sql files a DBA would run by hand, and says what it did."""
from __future__ import annotations

from bridge.db import schema
from bridge.db.dialects import get_dialect
from bridge.db.scripts import ScriptError, run_script, script_path
from bridge.db.url import parse_url

OPEN_STATES = ("pending", "running", "in_doubt", "held")


class DbAdminError(Exception):
    """Refused or failed; the message says why and what to do."""


def _connect(url: str, password_env: str):
    u = parse_url(url, password_env)
    return u, get_dialect(u.dialect).connect(u)


def run(action: str, url: str, password_env: str = "MIBRIDGE_DB_PASSWORD", *, force: bool = False,
        variables: dict | None = None) -> str:
    u, conn = _connect(url, password_env)
    try:
        return _ACTIONS[action](conn, u, force=force, variables=variables)
    except (schema.SchemaError, ScriptError) as exc:
        raise DbAdminError(str(exc)) from exc
    finally:
        try:
            conn.close()
        except Exception:
            pass


def _install(conn, u, **_) -> str:
    version = schema.install(conn, u.dialect)
    return f"install: mibridge schema version {version} installed on {u.redacted()}"


def _upgrade(conn, u, **_) -> str:
    before, done = schema.upgrade(conn, u.dialect)
    if not done:
        return f"upgrade: {u.redacted()} is at schema version {before}, the latest; nothing to do"
    return (f"upgrade: {u.redacted()} went from schema version {before} to "
            f"{schema.installed_version(conn, u.dialect)} ({', '.join(done)})")


def _status(conn, u, **_) -> str:
    have = schema.installed_version(conn, u.dialect)
    latest = schema.latest_version(u.dialect)
    if have is None:
        return f"status: mibridge is not installed on {u.redacted()} (latest schema version {latest})"
    todo = "" if have >= latest else f"; run 'mibridge db upgrade' for version {latest}"
    return f"status: {u.redacted()} has mibridge schema version {have}{todo}"


def _uninstall(conn, u, force: bool = False, **_) -> str:
    if schema.installed_version(conn, u.dialect) is None:
        return f"uninstall: mibridge is not installed on {u.redacted()}; nothing to do"
    cur = conn.cursor()
    cur.execute("SELECT state, COUNT(*) FROM mi_outbox WHERE state IN ('pending', 'running', 'in_doubt', 'held') "
                "GROUP BY state")
    open_rows = {state: int(n) for state, n in cur.fetchall()}
    cur.execute("SELECT COUNT(*) FROM mi_inbox WHERE consumed_at IS NULL")
    unread = int(cur.fetchone()[0])
    conn.commit()
    if (open_rows or unread) and not force:
        what = ", ".join(f"{n} {s}" for s, n in sorted(open_rows.items()))
        raise DbAdminError(
            "refusing to uninstall: " + "; ".join(filter(None, [
                f"requests are still open ({what}): a payment may be half done" if open_rows else "",
                f"{unread} inbox rows were not read by the HIS yet" if unread else ""]))
            + ". Let them finish (mibridge status), or run again with --force to delete them anyway.")
    n = run_script(conn, u.dialect, script_path(u.dialect, "uninstall.sql"))
    return f"uninstall: ran uninstall.sql ({n} statements) on {u.redacted()}"


def _grants(conn, u, variables: dict | None = None, **_) -> str:
    n = run_script(conn, u.dialect, script_path(u.dialect, "grants.sql"), variables=variables)
    return f"grants: ran grants.sql ({n} statements) on {u.redacted()}"


_ACTIONS = {"install": _install, "upgrade": _upgrade, "status": _status, "uninstall": _uninstall,
            "grants": _grants}
ACTIONS = tuple(_ACTIONS)
