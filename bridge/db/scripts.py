"""Running the per-dialect SQL files (sql/<dialect>/*.sql) exactly as a DBA would.

The files are written for each dialect's own command-line client, so this
splits them the same way those clients do: PostgreSQL dollar-quoted bodies,
MySQL `DELIMITER` lines, Oracle `/` lines after PL/SQL blocks, SQL Server `GO`
lines, SQLite's whole-script executor.  Python never builds DDL itself.
"""
from __future__ import annotations

import re
from pathlib import Path

SQL_DIR_ENV = "MIBRIDGE_SQL_DIR"


def sql_dir() -> Path:
    import os

    env = os.environ.get(SQL_DIR_ENV)
    if env:
        return Path(env)
    # Installed from a checkout (pip install -e .): sql/ sits beside bridge/.
    here = Path(__file__).resolve().parents[2] / "sql"
    if here.is_dir():
        return here
    raise FileNotFoundError(f"cannot find the sql/ directory; set {SQL_DIR_ENV}")


def script_path(dialect: str, name: str) -> Path:
    return sql_dir() / dialect / name


def split_statements(dialect: str, text: str) -> list[str]:
    if dialect == "mysql":
        return _split_mysql(text)
    if dialect == "oracle":
        return _split_on_line(text, "/", plsql_aware=True)
    if dialect == "sqlserver":
        return _split_on_line(text, "GO", plsql_aware=False)
    if dialect == "postgresql":
        return _split_semicolons(text, dollar_quotes=True)
    return _split_semicolons(text, dollar_quotes=False)


def _strip_comment_lines(text: str) -> str:
    return "\n".join(l for l in text.splitlines() if not l.lstrip().startswith("--"))


def _split_semicolons(text: str, dollar_quotes: bool) -> list[str]:
    out, buf, i, n = [], [], 0, len(text)
    quote = None  # "'", '"' or a $tag$
    while i < n:
        c = text[i]
        if quote is None:
            if c == "-" and text.startswith("--", i):
                j = text.find("\n", i)
                i = n if j < 0 else j
                continue
            if c in ("'", '"'):
                quote = c
            elif c == "$" and dollar_quotes:
                m = re.match(r"\$[A-Za-z_0-9]*\$", text[i:])
                if m:
                    quote = m.group(0)
                    buf.append(quote)
                    i += len(quote)
                    continue
            elif c == ";":
                stmt = "".join(buf).strip()
                if stmt:
                    out.append(stmt)
                buf = []
                i += 1
                continue
        else:
            if len(quote) == 1 and c == quote:
                quote = None
            elif len(quote) > 1 and text.startswith(quote, i):
                buf.append(quote)
                i += len(quote)
                quote = None
                continue
        buf.append(c)
        i += 1
    stmt = "".join(buf).strip()
    if stmt:
        out.append(stmt)
    return out


def _split_mysql(text: str) -> list[str]:
    out: list[str] = []
    delimiter = ";"
    buf: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.upper().startswith("DELIMITER "):
            delimiter = stripped.split(None, 1)[1]
            continue
        if stripped.startswith("--") and not buf:
            continue
        buf.append(line)
        if stripped.endswith(delimiter):
            stmt = "\n".join(buf).strip()
            stmt = stmt[: -len(delimiter)].strip()
            stmt = _strip_comment_lines(stmt).strip()
            if stmt:
                out.append(stmt)
            buf = []
    rest = _strip_comment_lines("\n".join(buf)).strip()
    if rest:
        out.append(rest.rstrip(";"))
    return out


def _split_on_line(text: str, marker: str, plsql_aware: bool) -> list[str]:
    """Oracle (SQL*Plus) and SQL Server (sqlcmd) scripts: a line holding only the
    marker ends a batch.  Oracle plain statements end with ';' (dropped, as the
    driver rejects it); PL/SQL blocks keep their final 'END;'."""
    out: list[str] = []
    buf: list[str] = []

    def flush():
        stmt = _strip_comment_lines("\n".join(buf)).strip()
        buf.clear()
        if not stmt:
            return
        if plsql_aware:
            for part in _oracle_plain_statements(stmt):
                out.append(part)
        else:
            out.append(stmt)

    for line in text.splitlines():
        if line.strip().upper() == marker.upper():
            flush()
        else:
            buf.append(line)
    flush()
    return out


def _oracle_plain_statements(batch: str) -> list[str]:
    head = batch.lstrip().upper()
    if head.startswith(("BEGIN", "DECLARE", "CREATE OR REPLACE TRIGGER", "CREATE TRIGGER",
                        "CREATE OR REPLACE PROCEDURE", "CREATE PROCEDURE",
                        "CREATE OR REPLACE FUNCTION", "CREATE FUNCTION",
                        "CREATE OR REPLACE PACKAGE", "CREATE PACKAGE")):
        return [batch]
    return [s for s in _split_semicolons(batch, dollar_quotes=False) if s]


def run_script(conn, dialect: str, path: Path) -> int:
    """Run one SQL file on an open DB-API connection; returns the statement count."""
    text = path.read_text(encoding="utf-8")
    if dialect == "sqlite":
        conn.executescript(text)
        return text.count(";")
    statements = split_statements(dialect, text)
    cur = conn.cursor()
    for stmt in statements:
        cur.execute(stmt)
    conn.commit()
    return len(statements)
