"""Running the per-dialect SQL files (sql/<dialect>/*.sql) exactly as a DBA would.

The files are written for each dialect's own command-line client, so this
splits them the same way those clients do: PostgreSQL dollar-quoted bodies,
MySQL `DELIMITER` lines, Oracle `/` lines after PL/SQL blocks, SQL Server `GO`
lines, SQLite's whole-script executor (its `.bail on` dot-command is the
client's, not SQL, and is skipped).  Python never builds DDL itself.

Script variables (grants.sql: role names, hosts) are passed the way each
client passes them, so the file runs unedited either way: psql `-v name=value`
(:'name' a literal, :"name" an identifier), MariaDB session variables
(SET @name = value before the file), sqlcmd `-v name=value` ($(name)),
SQL*Plus substitution variables (&&name).
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


class ScriptError(Exception):
    """A SQL file failed; the message names the file and the statement."""


def substitute(dialect: str, text: str, variables: dict | None) -> str:
    """Put script variables in as the dialect's own client would (see the module
    docstring).  MariaDB's are session variables, set by run_script instead."""
    if not variables or dialect in ("mysql", "sqlite"):
        return text
    if dialect == "postgresql":
        return _psql_variables(text, variables)
    if dialect == "sqlserver":
        return re.sub(r"\$\((\w+)\)", lambda m: _need(variables, m.group(1)), text)
    if dialect == "oracle":
        return re.sub(r"&&?(\w+)\.?", lambda m: _need(variables, m.group(1)), text)
    return text


def _need(variables: dict, name: str) -> str:
    if name not in variables:
        raise ScriptError(f"the script needs the variable {name!r}")
    return str(variables[name])


def _psql_variables(text: str, variables: dict) -> str:
    """psql's interpolation: :'x' (literal), :"x" (identifier), :x (as is), never
    inside quotes, dollar quotes or comments; '::' is a cast."""
    out, i, n = [], 0, len(text)
    quote = None
    while i < n:
        c = text[i]
        if quote is None:
            if text.startswith("--", i):
                j = text.find("\n", i)
                j = n if j < 0 else j
                out.append(text[i:j])
                i = j
                continue
            if c in ("'", '"'):
                quote = c
            elif c == "$":
                m = re.match(r"\$[A-Za-z_0-9]*\$", text[i:])
                if m:
                    quote = m.group(0)
                    out.append(quote)
                    i += len(quote)
                    continue
            elif c == ":" and text.startswith("::", i):
                out.append("::")
                i += 2
                continue
            elif c == ":":
                m = re.match(r":(?:'(\w+)'|\"(\w+)\"|([A-Za-z_]\w*))", text[i:])
                if m:
                    lit, ident, raw = m.groups()
                    if lit:
                        out.append("'" + _need(variables, lit).replace("'", "''") + "'")
                    elif ident:
                        out.append('"' + _need(variables, ident).replace('"', '""') + '"')
                    else:
                        out.append(_need(variables, raw))
                    i += len(m.group(0))
                    continue
        else:
            if len(quote) == 1 and c == quote:
                quote = None
            elif len(quote) > 1 and text.startswith(quote, i):
                out.append(quote)
                i += len(quote)
                quote = None
                continue
        out.append(c)
        i += 1
    return "".join(out)


def _sqlite_text(text: str) -> str:
    """The script without the sqlite3 shell's dot-commands (.bail on)."""
    return "\n".join(l for l in text.splitlines() if not l.startswith("."))


def run_script(conn, dialect: str, path: Path, variables: dict | None = None) -> int:
    """Run one SQL file on an open DB-API connection; returns the statement count.
    The file's own statements decide its transactions where the dialect has
    transactional DDL (PostgreSQL, SQL Server: one, committed at the end;
    SQLite: the BEGIN/COMMIT in the file); on an error everything not yet
    committed is rolled back and ScriptError names the file and statement."""
    text = substitute(dialect, path.read_text(encoding="utf-8"), variables)
    if dialect == "sqlite":
        raw = getattr(conn, "raw", conn)
        try:
            conn.executescript(_sqlite_text(text))
        except Exception as exc:
            if raw.in_transaction:
                raw.execute("ROLLBACK")
            raise ScriptError(f"{path.name}: {exc}") from exc
        return text.count(";")
    statements = split_statements(dialect, text)
    cur = conn.cursor()
    try:
        if dialect == "mysql":
            for name, value in (variables or {}).items():
                if not re.fullmatch(r"[A-Za-z_]\w*", name):
                    raise ScriptError(f"bad variable name {name!r}")
                cur.execute(f"SET @{name} = %s", (value,))
        for n, stmt in enumerate(statements, 1):
            try:
                cur.execute(stmt)
            except Exception as exc:
                raise ScriptError(f"{path.name}, statement {n} ({_head(stmt)}): "
                                  f"{_first_line(exc)}") from exc
            if dialect == "oracle":
                _raise_on_compile_warning(cur, path, n, stmt)
        if dialect == "oracle":
            _raise_on_invalid_objects(cur, path)
        conn.commit()
    except BaseException:
        try:
            conn.rollback()
        except Exception:
            pass
        raise
    return len(statements)


def _head(stmt: str) -> str:
    return " ".join(stmt.split())[:70]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _raise_on_compile_warning(cur, path: Path, n: int, stmt: str) -> None:
    """python-oracledb does not raise when a trigger or procedure compiles with
    errors (ORA-24344 is only a warning on the cursor); every later insert
    would then fail with ORA-04098.  Refuse it here, with the compiler's errors."""
    warning = getattr(cur, "warning", None)
    if warning is None:
        return
    m = re.match(r"\s*CREATE\s+(?:OR\s+REPLACE\s+)?(TRIGGER|PROCEDURE|FUNCTION|PACKAGE\s+BODY|PACKAGE|VIEW)\s+"
                 r"(?:\w+\.)?(\w+)", stmt, re.I)
    detail = _oracle_errors(cur, m.group(2)) if m else ""
    raise ScriptError(f"{path.name}, statement {n} ({_head(stmt)}) compiled with errors: {warning}{detail}")


def _oracle_errors(cur, name: str) -> str:
    cur.execute("SELECT type, line, position, text FROM user_errors WHERE name = :n ORDER BY sequence",
                {"n": name.upper()})
    rows = cur.fetchall()
    return "".join(f"\n  {t} {name.upper()} line {l}, column {p}: {x.strip()}" for t, l, p, x in rows)


def _raise_on_invalid_objects(cur, path: Path) -> None:
    cur.execute("""SELECT object_type, object_name FROM user_objects
                    WHERE status = 'INVALID' AND object_name LIKE 'MI\\_%' ESCAPE '\\'
                    ORDER BY object_name""")
    bad = cur.fetchall()
    if bad:
        detail = "".join(_oracle_errors(cur, name) for _, name in bad)
        raise ScriptError(f"{path.name}: these objects are INVALID after the script: "
                          f"{', '.join(f'{t} {n}' for t, n in bad)}{detail}")
