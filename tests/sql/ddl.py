"""The mi_ schema as the SQL files define it, read with sqlglot, for the checks
that need no server (tests/sql/test_static.py): every statement parsed, the
tables, columns and indexes of install.sql, and the same model built by
replaying 001_baseline.sql and every migration.

sqlglot parses the DDL and plain SQL of every dialect, but not procedural code
(PL/SQL, T-SQL, MariaDB and PL/pgSQL bodies): from those, the SQL statements
inside (static DML, and dynamic SQL in EXECUTE IMMEDIATE / sp_executesql
strings) are taken out and parsed on their own.  A few forms sqlglot does not
know are rewritten first (SQL_REWRITES); the lint rules check those forms as
written."""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field

import sqlglot
from sqlglot import exp

from bridge.db.scripts import script_path, split_statements, sql_dir, substitute

logging.getLogger("sqlglot").setLevel(logging.ERROR)

DIALECTS = ["postgresql", "mysql", "sqlite", "oracle", "sqlserver"]
SQLGLOT = {"postgresql": "postgres", "mysql": "mysql", "sqlite": "sqlite", "oracle": "oracle", "sqlserver": "tsql"}
# Sample values for grants.sql's variables, as each client would put them in.
VARIABLES = {
    "postgresql": {"daemon_role": "mibridge_daemon", "his_role": "his_app"},
    "oracle": {"his_schema": "HIS", "his_user": "HIS_APP", "daemon_user": "MIBRIDGE_DAEMON", "daemon_password": "pw"},
    "sqlserver": {"daemon_login": "MIBRIDGE_DAEMON", "daemon_password": "pw", "his_user": "HIS_APP"},
}
PROCEDURAL = re.compile(r"^\s*(CREATE\s+(OR\s+(REPLACE|ALTER)\s+)?(TRIGGER|PROCEDURE|FUNCTION)\b"
                        r"|ALTER\s+(TRIGGER|PROCEDURE)\b|DO\s|DECLARE\b|BEGIN\b|IF\b)", re.I)
_DML = re.compile(r"^[ \t]*(SELECT|INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM|WITH\s+\w+\s+AS|MERGE|GRANT)\b",
                  re.I | re.M)
_DYNAMIC = re.compile(r"(?:EXECUTE\s+IMMEDIATE|sp_executesql)\s+N?'((?:[^']|'')*)'", re.I)
# (pattern, replacement, why): forms sqlglot cannot read, written as it can.
SQL_REWRITES = [
    (r"GENERATED ALWAYS AS IDENTITY \(ORDER\)", "GENERATED ALWAYS AS IDENTITY",
     "Oracle identity options (ORDER is checked by its own rule)"),
    (r"\bIS JSON STRICT( WITH UNIQUE KEYS)?", "IS NOT NULL", "Oracle's IS JSON condition"),
    (r" WITH WRAPPER\)", ")", "Oracle's JSON_QUERY wrapper clause"),
    (r":?\bNEW\.", "new_row.", "a trigger's NEW row"),
    (r"\bIS (json\()", r"= \1", "SQLite's IS between two values (001_baseline)"),
    (r"\bINTO\s+[@\w]+(?:\s*,\s*[@\w]+)*\s+(?=FROM\b)", "", "SELECT ... INTO variables (procedural code)"),
]
# Plain statements sqlglot keeps as an unparsed Command: only these heads.
COMMAND_HEADS = ("ALTER TABLE", "ALTER FUNCTION", "EXEC ", "CALL ")


def script_text(dialect: str, name: str) -> str:
    text = script_path(dialect, name).read_text(encoding="utf-8")
    text = substitute(dialect, text, VARIABLES.get(dialect)) if name == "grants.sql" else text
    if dialect == "sqlite":    # the sqlite3 shell's own dot-commands
        text = "\n".join(l for l in text.splitlines() if not l.startswith("."))
    return text


def statements(dialect: str, name: str) -> list[str]:
    """The file's statements; a SQL Server batch of plain statements is split
    into them (a batch with procedural code stays whole)."""
    out = []
    for st in split_statements(dialect, script_text(dialect, name)):
        if dialect == "sqlserver" and not PROCEDURAL.match(st):
            out += [s.strip() for s in _split_top(st) if s.strip()]
        else:
            out.append(st)
    return out


def sql_files(dialect: str) -> list[str]:
    root = sql_dir() / dialect
    return sorted(str(p.relative_to(root)) for p in root.rglob("*.sql"))


def _split_top(text: str) -> list[str]:
    """Split procedural code at ';' outside string literals and comments."""
    out, buf, quote, i = [], [], False, 0
    while i < len(text):
        c = text[i]
        if quote:
            if c == "'":
                if text[i + 1:i + 2] == "'":
                    buf.append("''")
                    i += 2
                    continue
                quote = False
        elif c == "'":
            quote = True
        elif text.startswith("--", i):
            j = text.find("\n", i)
            i = len(text) if j < 0 else j
            continue
        elif c == ";":
            out.append("".join(buf))
            buf = []
            i += 1
            continue
        buf.append(c)
        i += 1
    out.append("".join(buf))
    return out


def pieces(statement: str) -> list[tuple[str, str]]:
    """(kind, sql) to parse: the statement itself, or the SQL inside procedural code."""
    if not PROCEDURAL.match(statement):
        return [("plain", statement)]
    found = [("dynamic", m.group(1).replace("''", "'")) for m in _DYNAMIC.finditer(statement)]
    body = _DYNAMIC.sub("NULL", statement)
    for part in _split_top(body):
        m = _DML.search(part)
        if m:
            found.append(("embedded", part[m.start():]))
    return found


def rewrite(sql: str) -> str:
    for pattern, replacement, _ in SQL_REWRITES:
        sql = re.sub(pattern, replacement, sql)
    return sql


def parse(dialect: str, sql: str):
    return sqlglot.parse_one(rewrite(sql), read=SQLGLOT[dialect], error_level=sqlglot.ErrorLevel.RAISE)


# -- the model: tables, columns, indexes ----------------------------------------------

@dataclass
class Column:
    type: str                 # e.g. VARCHAR(64), NVARCHAR(128), TEXT, BIGINT
    nullable: bool
    collation: str = ""
    identity_order: bool = False
    unique: bool = False      # a column-level PRIMARY KEY or UNIQUE


@dataclass
class Schema:
    tables: dict = field(default_factory=dict)        # table -> {column: Column}
    indexes: dict = field(default_factory=dict)       # index -> (table, key text)
    constraints: dict = field(default_factory=dict)   # (table, name) -> kind text
    keys: dict = field(default_factory=dict)          # index or constraint -> (table, [key sql], where sql)

    def access_paths(self, table: str, dialect: str) -> list[tuple[list, str]]:
        """Every index the database has on a table: declared indexes, primary
        and unique keys, and (MariaDB) the index InnoDB makes for a foreign key."""
        paths = [(cols, where) for t, cols, where in self.keys.values() if t == table]
        for (t, _), kind in self.constraints.items():
            m = re.match(r"(PRIMARY KEY|UNIQUE|FOREIGN KEY) \((.*?)\)", kind)
            if t == table and m and (m.group(1) != "FOREIGN KEY" or dialect == "mysql"):
                paths.append(([c.strip() for c in m.group(2).split(",")], ""))
        for name, col in self.tables.get(table, {}).items():
            if col.unique:
                paths.append(([name], ""))
        return paths


def _dtype(col: exp.ColumnDef, dialect: str) -> str:
    return col.args["kind"].sql(dialect=SQLGLOT[dialect]).upper() if col.args.get("kind") else ""


def _column(col: exp.ColumnDef, dialect: str, raw: str) -> Column:
    constraints = col.args.get("constraints") or []
    nullable = not any(isinstance(c.args.get("kind"), (exp.NotNullColumnConstraint, exp.PrimaryKeyColumnConstraint))
                       and not (c.args.get("kind").args.get("allow_null")) for c in constraints)
    collation = next((c.args["kind"].sql() for c in constraints
                      if isinstance(c.args.get("kind"), exp.CollateColumnConstraint)), "")
    name = col.name
    order = bool(re.search(rf"\b{name}\b[^,\n]*GENERATED ALWAYS AS IDENTITY \(ORDER\)", raw, re.I))
    unique = any(isinstance(c.args.get("kind"), (exp.PrimaryKeyColumnConstraint, exp.UniqueColumnConstraint))
                 for c in constraints)
    return Column(_dtype(col, dialect), nullable, collation.replace("COLLATE ", ""), order, unique)


def apply(schema: Schema, dialect: str, statement: str) -> None:
    """Replay one statement of a script on the model (tables, columns, indexes)."""
    if PROCEDURAL.match(statement):
        # Oracle migrations wrap DDL that may already exist in a block.
        for m in _DYNAMIC.finditer(statement):
            inner = m.group(1).replace("''", "'")
            if re.match(r"\s*(CREATE\s+(TABLE|INDEX)|ALTER\s+TABLE)", inner, re.I):
                apply(schema, dialect, inner)
        return
    m = re.match(r"\s*ALTER TABLE (\w+) MODIFY (\w+) GENERATED ALWAYS AS IDENTITY \(ORDER\)", statement, re.I)
    if m:
        schema.tables[m.group(1).lower()][m.group(2).lower()].identity_order = True
        return
    if re.match(r"\s*ALTER TABLE \w+ CONVERT TO CHARACTER SET", statement, re.I):
        table = statement.split()[2].lower()
        collation = re.search(r"COLLATE (\w+)", statement).group(1)
        for col in schema.tables[table].values():
            if re.match(r"(VARCHAR|TEXT|LONGTEXT|CHAR)", col.type):
                col.collation = collation
        for mm in re.finditer(r"MODIFY (\w+) (\w+\(\d+\))", statement):
            schema.tables[table][mm.group(1).lower()].type = mm.group(2).upper()
        return
    tree = parse(dialect, statement)
    if isinstance(tree, exp.Create) and tree.args.get("kind") == "TABLE":
        table = tree.this.this.name.lower()
        cols = {}
        for e in tree.this.expressions:
            if isinstance(e, exp.ColumnDef):
                cols[e.name.lower()] = _column(e, dialect, statement)
            elif isinstance(e, exp.Constraint):
                schema.constraints[(table, e.name.lower())] = _constraint_kind(e)
        if dialect == "mysql":
            collation = re.search(r"\bCOLLATE=(\w+)", statement)
            for col in cols.values():
                if collation and re.match(r"(VARCHAR|TEXT|LONGTEXT|CHAR)", col.type) and not col.collation:
                    col.collation = collation.group(1)
        for (t, _), kind in schema.constraints.items():
            m = re.match(r"PRIMARY KEY \((.*?)\)", kind)
            if t == table and m:
                for c in m.group(1).split(","):
                    cols[c.strip().lower()].nullable = False
        for name, col in cols.items():
            if "IDENTITY" in statement.upper().split(name.upper(), 1)[-1].split("\n")[0].upper() \
                    or (col.unique and not col.nullable) or "PRIMARY KEY" in col.type:
                col.nullable = False
        schema.tables[table] = cols
    elif isinstance(tree, exp.Create) and tree.args.get("kind") == "INDEX":
        index = tree.this
        params = index.args.get("params")
        cols = ", ".join(c.sql(dialect=SQLGLOT[dialect]) for c in (params.args.get("columns") or []))
        where = params.args.get("where")
        include = params.args.get("include") or []
        key = cols + (f" INCLUDE ({', '.join(i.sql() for i in include)})" if include else "") \
            + (f" {where.sql(dialect=SQLGLOT[dialect])}" if where else "")
        schema.indexes[index.name.lower()] = (index.args["table"].name.lower(), " ".join(key.split()))
        schema.keys[index.name.lower()] = (index.args["table"].name.lower(),
                                           [c.this.sql(dialect=SQLGLOT[dialect]) for c in params.args.get("columns") or []],
                                           where.this.sql(dialect=SQLGLOT[dialect]) if where else "")
    elif isinstance(tree, exp.Drop) and tree.args.get("kind") in ("INDEX", "TABLE"):
        store = schema.indexes if tree.args["kind"] == "INDEX" else schema.tables
        for t in tree.args.get("tables") or [tree.this]:
            store.pop(t.name.lower(), None)
            schema.keys.pop(t.name.lower(), None)
    elif isinstance(tree, exp.Alter) and tree.args.get("kind") == "TABLE":
        table = tree.this.name.lower()
        for action in tree.args.get("actions") or []:
            if isinstance(action, exp.AlterColumn):
                col = schema.tables[table][action.name.lower()]
                col.type = action.args["dtype"].sql(dialect=SQLGLOT[dialect]).upper()
                col.collation = action.args["collate"].sql() if action.args.get("collate") else ""
                col.nullable = "NOT NULL" not in statement.upper().split(action.name.upper(), 1)[1].split(";")[0]
            elif isinstance(action, (exp.ColumnDef, exp.Schema)):     # ADD COLUMN; Oracle: ADD (c type, ...)
                for cd in ([action] if isinstance(action, exp.ColumnDef) else action.expressions):
                    col = _column(cd, dialect, statement)
                    if dialect == "mysql" and not col.collation and re.match(r"(VARCHAR|TEXT|LONGTEXT|CHAR)", col.type):
                        # MariaDB gives an added text column the table's default collation.
                        col.collation = next((c.collation for c in schema.tables[table].values() if c.collation), "")
                    schema.tables[table][cd.name.lower()] = col
            elif isinstance(action, exp.AddConstraint):
                for c in action.expressions:
                    schema.constraints[(table, c.name.lower())] = _constraint_kind(c)
            elif isinstance(action, exp.Drop) and action.args.get("kind") == "CONSTRAINT":
                for t in action.args.get("tables") or [action.this]:
                    schema.constraints.pop((table, t.name.lower()), None)


def _constraint_kind(c: exp.Constraint) -> str:
    return " ".join(e.sql() for e in c.expressions)


def model(dialect: str, names: list[str]) -> Schema:
    schema = Schema()
    for name in names:
        for st in statements(dialect, name):
            apply(schema, dialect, st)
    return schema


def installed(dialect: str) -> Schema:
    return model(dialect, ["install.sql"])


def migrated(dialect: str) -> Schema:
    from bridge.db.schema import migrations
    return model(dialect, [f"migrations/{m.path.name}" for m in migrations(dialect)])
