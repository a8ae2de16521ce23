"""Checks of the SQL that need no server (issue 11, section 4), so that the
Oracle and SQL Server scripts, which cannot run here, are held to the same
rules as the others:

* every statement of every SQL file, and every query the Store sends on each
  dialect, parses (sqlglot; the SQL inside procedural code is taken out and
  parsed on its own, see tests/sql/ddl.py);
* lint rules on the parsed DDL for the traps the review found: SET options and
  XACT_ABORT in SQL Server modules, binary collations on key columns, Oracle
  identity ORDER, no static JSON in Oracle PL/SQL, a profile for the Oracle
  login, no password policy lockout for the SQL Server login, an uninstall
  that refuses while other objects use ours;
* every WHERE clause of the Store's queries can use an index, on every dialect;
* the five install.sql files define the same tables and columns (types,
  lengths, nullability, collations), and each equals 001 + every migration.
"""
from __future__ import annotations

import re

import pytest
from sqlglot import exp

from bridge.db.scripts import ScriptError, _raise_on_compile_warning, _raise_on_invalid_objects
from tests.engine.test_oracle_sqlserver import run_every_store_query
from tests.sql import ddl
from tests.sql.ddl import DIALECTS, installed, migrated, parse, pieces, sql_files, statements

URLS = {"postgresql": "postgresql://u@db/hisdb", "mysql": "mysql://u@db/hisdb", "sqlite": "sqlite:///x.db",
        "oracle": "oracle://u:p@db:1521/HISPDB", "sqlserver": "mssql://u:p@db:1433/hisdb"}
TABLES = {"mi_outbox", "mi_inbox", "mi_journal", "mi_identity", "mi_audit", "mi_notice", "mi_schema_version",
          "mi_secret", "mi_insured_region", "mi_order", "mi_order_refund", "mi_recon_run", "mi_recon_item",
          "mi_channel_bill"}
# Columns holding keys that must compare byte for byte.
KEY_COLUMNS = {"mi_outbox": {"kind", "business_key", "serial_key"}, "mi_inbox": {"kind", "business_key", "order_id"},
               "mi_journal": {"msg_id"}, "mi_identity": {"his_patient_id", "psn_no"},
               "mi_notice": {"interface", "notice_key", "business_key"},
               # The insured regions (migration 006): the division code.
               "mi_insured_region": {"admdvs"},
               "mi_order": {"kind", "business_key", "platform_order_id", "settlement_id", "mix_trade_no",
                            "out_trade_no", "trade_no", "psn_no"},
               "mi_order_refund": {"kind", "business_key", "platform_order_id", "refund_ref", "out_refund_no"},
               "mi_recon_run": {"active_key"},
               "mi_recon_item": {"order_key", "business_key", "channel_ref"},
               "mi_channel_bill": {"out_trade_no", "trade_no", "out_refund_no", "refund_id"}}


# -- every statement parses ---------------------------------------------------------------

def _cases():
    for d in DIALECTS:
        for name in sql_files(d):
            yield pytest.param(d, name, id=f"{d}:{name}")


@pytest.mark.parametrize("dialect, name", list(_cases()))
def test_every_statement_of_every_sql_file_parses(dialect, name):
    parsed = 0
    for st in statements(dialect, name):
        for kind, sql in pieces(st):
            tree = parse(dialect, sql)     # raises on a syntax error
            if isinstance(tree, exp.Command):
                head = sql.lstrip().upper()
                ok = (kind == "plain" and head.startswith(ddl.COMMAND_HEADS)) \
                    or head.startswith(("CREATE PROFILE", "CREATE USER", "ALTER USER", "GRANT ",
                                        "CREATE OR REPLACE SYNONYM", "CREATE ROLE"))
                assert ok, f"sqlglot could not read it: {' '.join(sql.split())[:120]}"
            parsed += 1
    # SQLite's grants.sql is a note; MariaDB's builds each GRANT as a string.
    assert parsed or (dialect, name) in {("sqlite", "grants.sql"), ("mysql", "grants.sql")}, f"{name}: nothing parsed"


# The Store runs requeue, resolve and cancel as the database's own procedures
# (migration 005): a call is a command to sqlglot; the procedures' bodies are
# checked with the SQL files they are in.
ADMIN_CALL = re.compile(r"^(BEGIN mi_(requeue|resolve|cancel)\(:id, :note, :actor\); END;"
                        r"|CALL mi_(requeue|resolve|cancel)\(%\(id\)s, %\(note\)s\)"
                        r"|SET @mibridge_actor = %\(actor\)s"
                        r"|EXEC mi_(requeue|resolve|cancel) \?, \?, \?)$")


def _store_sql(dialect: str) -> list[str]:
    from tests.engine.test_oracle_sqlserver import RecordingConnection

    RecordingConnection.begin_immediate = lambda self: None     # SQLite's claim transaction
    out = []
    for sql, _ in run_every_store_query(URLS[dialect]):
        if sql == "fetchmany" or ADMIN_CALL.match(" ".join(sql.split())):
            continue
        if re.match(r"\s*SAVE TRANSACTION \w+\s*$", sql):
            continue        # T-SQL's savepoint (the order book's booking), which sqlglot cannot read
        if dialect == "mysql":                      # pyformat back to :name
            sql = re.sub(r"%\((\w+)\)s", r":\1", sql).replace("%%", "%")
        if dialect == "postgresql":                 # $n (sent as it is) to :pn
            sql = re.sub(r"\$(\d+)", r":p\1", sql)
        out.append(sql)
    return out


@pytest.mark.parametrize("dialect", DIALECTS)
def test_every_store_query_parses_as_the_driver_sends_it(dialect):
    sqls = _store_sql(dialect)
    assert len(sqls) >= 25
    for sql in sqls:
        tree = parse(dialect, sql)
        assert not isinstance(tree, exp.Command), sql[:120]


# -- lint rules ------------------------------------------------------------------------------

def _latest(dialect: str) -> str:
    return ddl.script_text(dialect, "install.sql")


def _modules(dialect: str, name: str) -> list[str]:
    return [s for s in statements(dialect, name)
            if re.match(r"\s*(CREATE|ALTER)\s+(OR\s+REPLACE\s+)?(PROCEDURE|TRIGGER|FUNCTION)\b", s, re.I)]


@pytest.mark.parametrize("name", ["install.sql", "migrations/002_hardening.sql", "migrations/005_admin.sql",
                                  "examples/his_charge_trigger.sql"])
def test_sqlserver_modules_set_their_own_options(name):
    """An old HIS client (DB-Library, PowerBuilder, Delphi) runs with ANSI_WARNINGS,
    CONCAT_NULL_YIELDS_NULL ... off: each module sets what it relies on, and a
    procedure that opens a transaction aborts and rolls back on any error."""
    mods = _modules("sqlserver", name)
    assert mods
    for m in mods:
        head, body = re.split(r"\n\s*AS\s*\n", m, maxsplit=1)
        body = body.upper()
        for option in ("ANSI_WARNINGS ON", "ARITHABORT ON", "CONCAT_NULL_YIELDS_NULL ON", "ANSI_PADDING ON"):
            assert f"SET {option}" in body, (option, m[:80])
        if re.match(r"\s*(CREATE|ALTER)\s+PROCEDURE", m, re.I):
            assert "SET XACT_ABORT ON" in body, m[:80]
        if "BEGIN TRANSACTION" in body:
            assert "BEGIN TRY" in body and "BEGIN CATCH" in body and "ROLLBACK" in body, m[:80]
        # Parameters are wide enough that nothing is cut before it is checked.
        for size in re.findall(r"@p_\w+\s+NVARCHAR\((\d+)\)", head, re.I):
            assert int(size) >= 4000, (size, m[:80])


def test_sqlserver_has_no_filtered_index_and_no_computed_column():
    """A filtered index (or an indexed computed column) makes every write of the
    table fail with Msg 1934 in a session without the ANSI options."""
    for s in (installed("sqlserver"), migrated("sqlserver")):
        assert s.keys and all(not where for _, _, where in s.keys.values()), s.keys
        for t, cols in s.tables.items():
            assert all(c.type for c in cols.values()), (t, "a computed column")


@pytest.mark.parametrize("dialect, binary", [("sqlserver", "_BIN2"), ("mysql", "utf8mb4_nopad_bin")])
def test_key_columns_compare_byte_for_byte(dialect, binary):
    for s in (installed(dialect), migrated(dialect)):
        for table, cols in KEY_COLUMNS.items():
            for c in cols:
                assert s.tables[table][c].collation.endswith(binary), (table, c, s.tables[table][c])


def test_sqlserver_digit_patterns_are_binary():
    """[0-9] under Chinese_PRC_CI_AS also matches full-width digits: every LIKE
    with a character class compares a binary-collated value."""
    for name in ("install.sql", "migrations/002_hardening.sql"):
        for m in _modules("sqlserver", name):
            for like in re.finditer(r"LIKE\s+N'[^']*\[", m):
                before = m[max(0, like.start() - 400):like.start()]
                assert "_BIN2" in before, (name, m[like.start() - 120:like.end() + 20])


@pytest.mark.parametrize("dialect", ["postgresql", "sqlite", "oracle"])
def test_keys_keep_the_databases_binary_comparison(dialect):
    """PostgreSQL's and SQLite's '=' on text is byte-wise for every deterministic
    collation; Oracle's is BINARY in the daemon's session: no column may ask for
    another collation."""
    for cols in installed(dialect).tables.values():
        assert all(not c.collation for c in cols.values())


def test_oracle_identities_are_ordered():
    """On RAC, NOORDER (the default) hands out ids out of insert order, and serial order relies on id."""
    for s in (installed("oracle"), migrated("oracle")):
        ids = {t: cols["id"] for t, cols in s.tables.items() if "id" in cols}
        assert set(ids) == TABLES - {"mi_identity", "mi_schema_version", "mi_secret", "mi_insured_region"}
        assert all(c.identity_order for c in ids.values()), ids


def test_oracle_plsql_uses_json_only_in_dynamic_sql():
    """12.1 PL/SQL cannot compile IS JSON / JSON_VALUE / JSON_QUERY: used as
    static SQL they leave the object INVALID and every insert failing (ORA-04098)."""
    for name in ("install.sql", "migrations/002_hardening.sql", "examples/his_charge_trigger.sql"):
        for m in _modules("oracle", name):
            static = re.sub(r"'(?:[^']|'')*'", "''", m)
            assert not re.search(r"\b(IS\s+JSON|JSON_VALUE|JSON_QUERY|JSON_TABLE|JSON_EXISTS|JSON_EQUAL)\b",
                                 static, re.I), m[:80]


def test_oracle_regular_expressions_do_not_follow_the_sessions_sort():
    """Ranges and case in Oracle regular expressions follow NLS_SORT: every one
    says 'c' and lists its characters."""
    for name in ("install.sql", "migrations/002_hardening.sql"):
        for m in _modules("oracle", name):
            for call in re.finditer(r"REGEXP_(LIKE|REPLACE|SUBSTR)\s*\((.*?)\)\s*(?:THEN|;|<>|\))", m, re.S):
                args = call.group(2)
                assert re.search(r"'c'\s*$", args.strip()), call.group(0)[:100]
                assert "[0-9]" not in args and "a-f" not in args, call.group(0)[:100]


def test_oracle_install_stops_on_a_compile_error_or_an_invalid_object():
    class Cur:
        warning = "DPY-7000: creation succeeded with compilation errors"

        def execute(self, sql, params=None):
            self.sql = sql

        def fetchall(self):
            return [("TRIGGER", 12, 5, "PLS-00201: identifier 'JSON_VALUE' must be declared")]

    from pathlib import Path

    with pytest.raises(ScriptError) as ei:
        _raise_on_compile_warning(Cur(), Path("install.sql"), 7, "CREATE OR REPLACE TRIGGER mi_outbox_validate_tg ...")
    assert "compiled with errors" in str(ei.value) and "PLS-00201" in str(ei.value)

    class Invalid(Cur):
        def fetchall(self):
            return [("TRIGGER", "MI_OUTBOX_VALIDATE_TG")] if "status = 'INVALID'" in self.sql else []

    with pytest.raises(ScriptError) as ei:
        _raise_on_invalid_objects(Invalid(), Path("install.sql"))
    assert "INVALID after the script: TRIGGER MI_OUTBOX_VALIDATE_TG" in str(ei.value)
    Invalid.fetchall = lambda self: []
    _raise_on_invalid_objects(Invalid(), Path("install.sql"))      # nothing invalid: no error


def test_logins_cannot_expire_or_lock_the_service_out():
    ora = ddl.script_text("oracle", "grants.sql")
    assert re.search(r"CREATE USER \S+ IDENTIFIED BY \S+ PROFILE mibridge_service", ora)
    assert re.search(r"CREATE PROFILE mibridge_service LIMIT PASSWORD_LIFE_TIME UNLIMITED", ora)
    assert re.search(r"PASSWORD_LOCK_TIME 1/1440", ora)
    # The HIS's login reaches the objects by their plain names.
    assert re.search(r"CREATE OR REPLACE SYNONYM HIS_APP\.mi_enqueue FOR HIS\.mi_enqueue", ora)
    ms = "\n".join(l for l in ddl.script_text("sqlserver", "grants.sql").splitlines()
                   if not l.lstrip().startswith("--"))
    assert re.search(r"CREATE LOGIN", ms)
    for m in re.finditer(r"(CREATE|ALTER) LOGIN[^;]*;", ms):
        assert "CHECK_POLICY = OFF" in m.group(0) and "CHECK_EXPIRATION = OFF" in m.group(0), m.group(0)
    assert not re.search(r"CHECK_POLICY\s*=\s*ON", ms)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_uninstall_refuses_before_it_drops_anything(dialect):
    text = ddl.script_text(dialect, "uninstall.sql")
    guard = text.find("mibridge: not uninstalled")
    first_drop = min(i for i in (text.find("DROP VIEW"), text.find("drop_if_exists('DROP")) if i >= 0)
    assert 0 <= guard < first_drop


@pytest.mark.parametrize("dialect", DIALECTS)
def test_every_migration_records_itself(dialect):
    from bridge.db.schema import migrations

    for mig in migrations(dialect)[1:]:
        text = mig.path.read_text(encoding="utf-8")
        assert re.search(rf"\b{mig.version}\s*,\s*N?'{mig.name}'", text), mig.name
    install = _latest(dialect)
    for mig in migrations(dialect):
        assert re.search(rf"\b{mig.version}\s*,\s*N?'{mig.name}'", install), f"install.sql does not record {mig.name}"


# -- every WHERE clause can use an index -------------------------------------------------------

# Columns that pick out a request, a call, a patient or a notice: a query that
# names one must reach it through an index (other conditions may be filtered).
KEYS = {"id", "outbox_id", "kind", "business_key", "serial_key", "msg_id", "order_id", "interface",
        "notice_key", "his_patient_id", "open_serial_key", "ready_at", "state", "finished_at",
        "lease_expires_at", "next_attempt_at", "consumed_at"}
# Reads that scan on purpose: `mibridge status`, which counts the rows of every
# state anyway (its list of held rows rides on the same scan), and the ping.
SCANS_ALLOWED = [r"^SELECT state, COUNT\(\*\) FROM mi_outbox GROUP BY state$",
                 r"^SELECT id, kind, business_key, last_error_code, last_error_message FROM mi_outbox "
                 r"WHERE state = 'held' ORDER BY id$",
                 r"^SELECT 1 FROM mi_outbox WHERE 1 = 0$"]


def _strip(sql: str) -> str:
    return re.sub(r"\b[op]\.", "", " ".join(sql.split()))


def _conditions(where: exp.Expression) -> list[exp.Expression]:
    node = where.this if isinstance(where, exp.Where) else where
    out = []
    for part in node.flatten() if isinstance(node, exp.And) else [node]:
        out.append(part)
    return out


def _constrained(cond: exp.Expression, dialect: str) -> tuple[str, str] | None:
    """(left side, operator) of a condition an index could serve."""
    if isinstance(cond, (exp.EQ, exp.In, exp.LT, exp.LTE, exp.GT, exp.GTE, exp.Is)):
        left = cond.this
        return _strip(left.sql(dialect=ddl.SQLGLOT[dialect])), type(cond).__name__
    return None


def _scopes(tree: exp.Expression):
    for node in tree.walk():
        if isinstance(node, (exp.Select, exp.Update, exp.Delete)) and node.args.get("where") is not None:
            table = node.find(exp.Table)
            yield table.name.lower(), node.args["where"]


@pytest.mark.parametrize("dialect", DIALECTS)
def test_every_where_clause_of_the_store_can_use_an_index(dialect):
    schema = installed(dialect)
    missing = []
    for sql in _store_sql(dialect):
        flat = " ".join(sql.split())
        if any(re.match(p, flat) for p in SCANS_ALLOWED):
            continue
        tree = parse(dialect, sql)
        for table, where in _scopes(tree):
            if table not in schema.tables:       # a CTE of the statement (PostgreSQL's writes)
                continue
            conds = [_constrained(c, dialect) for c in _conditions(where)]
            cols = {c[0] for c in conds if c}
            texts = {_strip(c.sql(dialect=ddl.SQLGLOT[dialect])) for c in _conditions(where)}
            keyed = {c for c in cols if c in KEYS or c.upper().startswith("CASE")}
            if not keyed:
                continue
            usable = []
            for key, pred in schema.access_paths(table, dialect):
                implied = _strip(pred) in texts or (
                    # "x IS NOT NULL" follows from any comparison of x.
                    re.fullmatch(r"(NOT )?(\w+) IS (NOT )?NULL", _strip(pred)) is not None
                    and re.sub(r"(NOT )?(\w+) IS (NOT )?NULL", r"\2", _strip(pred)) in cols)
                if pred and not implied:
                    continue           # a partial index the query does not imply
                prefix = []
                for k in key:
                    if _strip(k) in cols:
                        prefix.append(_strip(k))
                    else:
                        break
                if prefix:
                    usable.append(set(prefix))
                elif pred:             # a partial index holds just the rows asked for
                    usable.append({"(partial)"})
            # The index must reach every identifying key the query names
            # (kind alone, for one, is thousands of rows).
            ident = {c for c in keyed if c in {"serial_key", "business_key", "msg_id", "order_id", "notice_key",
                                                 "his_patient_id", "outbox_id", "id"}}
            if not any(p for p in usable if not ident or ident & p):
                missing.append(f"{table}: {flat[:140]}")
    assert not missing, "\n".join(missing)


# -- the five install.sql files define the same tables and columns --------------------------

def _family(t: str) -> str:
    t = t.upper()
    if re.match(r"(N?VARCHAR2?|TEXT|LONGTEXT|CLOB|N?CHAR)", t):
        return "text"
    if re.match(r"(DECIMAL|NUMERIC)\(16, ?2\)|NUMBER\(16, ?2\)", t):
        return "money"
    if re.match(r"(BIGINT|INT|INTEGER|SMALLINT|NUMBER\(\d+\))", t):
        return "integer"
    if re.match(r"(TIMESTAMPTZ|DATETIME2?\(6\)|TIMESTAMP)", t):
        return "time"
    return t


def _length(t: str):
    m = re.search(r"\((\d+)(?: CHAR)?\)", t)
    return int(m.group(1)) if m else None


def test_the_five_install_scripts_define_the_same_tables_and_columns():
    ref = installed("postgresql")
    others = {d: installed(d) for d in DIALECTS}
    assert set(ref.tables) == TABLES
    for d, s in others.items():
        assert set(s.tables) == TABLES, d
        for table, cols in ref.tables.items():
            extra = {"ready_at", "open_serial_key"} if d == "mysql" and table == "mi_outbox" else set()
            assert set(s.tables[table]) == set(cols) | extra, (d, table, set(s.tables[table]) ^ set(cols))
            for name, col in cols.items():
                other = s.tables[table][name]
                assert other.nullable == col.nullable, (d, table, name, other, col)
                fam = _family(col.type)
                if d == "sqlite":          # SQLite: TEXT for text, money and times, INTEGER for numbers
                    assert _family(other.type) in ({"text"} if fam in ("text", "money", "time") else {"integer"}), \
                        (d, table, name, other.type)
                    continue
                assert _family(other.type) == fam, (d, table, name, other.type, col.type)
                n, m = _length(col.type), _length(other.type)
                if fam == "text" and n:
                    # Characters everywhere, but UTF-16 units on SQL Server (a character
                    # beyond U+FFFF takes two): the keys and texts the daemon cuts at n
                    # characters need 2n there.
                    need = 2 * n if d == "sqlserver" and (name in KEY_COLUMNS.get(table, ()) or "message" in name
                                                          or name == "note") else n
                    assert m is None or m >= need, (d, table, name, other.type, f"needs {need}")


@pytest.mark.parametrize("dialect", DIALECTS)
def test_install_sql_is_001_plus_every_migration_parsed(dialect):
    """The same check as tests/sql/test_migrations.py makes on the catalogs of
    live databases, here on the parsed scripts, so that it covers Oracle and
    SQL Server too."""
    a, b = installed(dialect), migrated(dialect)
    assert a.tables == b.tables
    assert a.indexes == b.indexes
    assert a.constraints == b.constraints
