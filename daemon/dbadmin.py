"""`mibridge db install|uninstall|grants`: runs the same sql/<dialect>/*.sql
files a DBA would run by hand."""
from __future__ import annotations

from bridge.db.dialects import get_dialect
from bridge.db.scripts import run_script, script_path
from bridge.db.url import parse_url

SCRIPTS = {"install": "install.sql", "uninstall": "uninstall.sql"}


def run(action: str, url: str, password_env: str = "MIBRIDGE_DB_PASSWORD") -> str:
    u = parse_url(url, password_env)
    dialect = get_dialect(u.dialect)
    path = script_path(u.dialect, SCRIPTS[action])
    conn = dialect.connect(u)
    try:
        n = run_script(conn, u.dialect, path)
    finally:
        conn.close()
    return f"{action}: ran {path} ({n} statements) on {u.redacted()}"
