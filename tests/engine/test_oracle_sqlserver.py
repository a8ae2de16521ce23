"""Oracle and SQL Server without a server: the scripts split into well-formed
statements, uninstall drops what install creates, every Store query converts
to the driver's parameter style (and avoids what Oracle rejects), and the
dialects build their connection arguments.  Where a server is named
(MIBRIDGE_TEST_ORACLE_URL / MIBRIDGE_TEST_MSSQL_URL, or MIBRIDGE_TEST_CONTAINERS),
every database-backed test runs on it too (tests/conftest.py); tests/sql/
checks the scripts' DDL parsed."""
from __future__ import annotations

import re
from decimal import Decimal

import pytest

from bridge.db.dialects import get_dialect
from bridge.db.scripts import script_path, split_statements
from bridge.db.store import ClaimedRow, IdentityRow, InboxRow, Store
from bridge.db.url import parse_url

DIALECTS = ["oracle", "sqlserver"]
TABLES = ["mi_outbox", "mi_inbox", "mi_journal", "mi_identity", "mi_audit", "mi_notice", "mi_schema_version",
          "mi_secret", "mi_order", "mi_order_refund", "mi_recon_run", "mi_recon_item", "mi_channel_bill",
          "mi_insured_region"]
ADMIN_PROCEDURES = {"mi_requeue", "mi_resolve", "mi_cancel"}      # migration 005
PROCEDURES = {"oracle": {"mi_enqueue", "mi_inbox_consume"} | ADMIN_PROCEDURES,
              "sqlserver": {"mi_enqueue", "mi_inbox_consume", "mi_json_check", "mi_json_same"} | ADMIN_PROCEDURES}
VIEWS = ["mi_v_pending", "mi_v_in_flight", "mi_v_held", "mi_v_failed", "mi_v_today"]
# The views the HIS reads too: the order book and the reconciliation (migration 004),
# the insured regions (migration 006).
HIS_VIEWS = ["mi_v_orders", "mi_v_order_refunds", "mi_v_reconciliation", "mi_v_recon_review", "mi_v_recon_days",
             "mi_v_insured_regions"]
PLSQL_HEAD = re.compile(r"^(CREATE\s+OR\s+REPLACE\s+(TRIGGER|PROCEDURE|FUNCTION)|DECLARE|BEGIN)\b", re.I)
CREATED = re.compile(r"\bCREATE\s+(?:OR\s+REPLACE\s+)?(TABLE|VIEW|PROCEDURE|FUNCTION|TRIGGER|INDEX)\s+(\w+)", re.I)
# Oracle's reserved words (V$RESERVED_WORDS, RESERVED = 'Y'), as identifiers or bind names.
ORACLE_RESERVED = set("""ACCESS ADD ALL ALTER AND ANY AS ASC AUDIT BETWEEN BY CHAR CHECK CLUSTER COLUMN
COMMENT COMPRESS CONNECT CREATE CURRENT DATE DECIMAL DEFAULT DELETE DESC DISTINCT DROP ELSE EXCLUSIVE
EXISTS FILE FLOAT FOR FROM GRANT GROUP HAVING IDENTIFIED IMMEDIATE IN INCREMENT INDEX INITIAL INSERT
INTEGER INTERSECT INTO IS LEVEL LIKE LOCK LONG MAXEXTENTS MINUS MLSLABEL MODE MODIFY NOAUDIT NOCOMPRESS
NOT NOWAIT NULL NUMBER OF OFFLINE ON ONLINE OPTION OR ORDER PCTFREE PRIOR PRIVILEGES PUBLIC RAW RENAME
RESOURCE REVOKE ROW ROWID ROWNUM ROWS SELECT SESSION SET SHARE SIZE SMALLINT START SUCCESSFUL SYNONYM
SYSDATE TABLE THEN TO TRIGGER UID UNION UNIQUE UPDATE USER VALIDATE VALUES VARCHAR VARCHAR2 VIEW
WHENEVER WHERE WITH""".split())
SQLSERVER_RESERVED = {"KEY", "FILE", "PLAN", "PERCENT", "USER", "SESSION_USER", "IDENTITY", "RULE",
                      "STATISTICS", "TRAN", "TOP", "OPEN", "CLOSE", "FETCH", "READ", "LOAD", "DUMP"}


def statements(dialect: str, name: str) -> list[str]:
    return split_statements(dialect, script_path(dialect, name).read_text(encoding="utf-8"))


def created_objects(text: str) -> dict[str, str]:
    return {m.group(2).lower(): m.group(1).upper() for m in CREATED.finditer(text)}


# -- the scripts ------------------------------------------------------------------

def test_oracle_install_splits_into_its_statements():
    stmts = statements("oracle", "install.sql")
    kinds = [CREATED.match(s).group(1).upper() if CREATED.match(s) else s.split()[0] for s in stmts]
    # 004 adds 5 tables (the order book, reconciliation), 9 indexes and 5 views; 005 three
    # procedures and an index; 006 mi_insured_region and its view.
    assert kinds.count("TABLE") == 14 and kinds.count("VIEW") == 11
    assert kinds.count("PROCEDURE") == 5 and kinds.count("TRIGGER") == 1
    assert kinds.count("INDEX") == 22
    # + the rights check, the "already installed" check, 7 version rows (007 adds columns
    # to mi_identity, no statement of its own) and COMMIT
    assert len(stmts) == 63


def test_sqlserver_install_splits_into_its_batches():
    batches = statements("sqlserver", "install.sql")
    # SET options; "already installed"; all tables and indexes; 2 JSON procedures;
    # trigger; 2 procedures; 3 admin procedures (005); 5 views; mi_secret (003) and the tables
    # of 004; the 5 views of 004; mi_insured_region and its view (006); the version rows.
    assert len(batches) == 1 + 1 + 1 + 2 + 1 + 2 + 3 + 5 + 1 + 5 + 2 + 1
    for b in batches:
        head = CREATED.search(b)
        # CREATE TRIGGER/PROCEDURE/VIEW must be the only statement of its batch.
        if head and head.group(1).upper() in ("TRIGGER", "PROCEDURE", "VIEW"):
            assert b.lstrip().upper().startswith("CREATE " + head.group(1).upper()), b[:80]
            assert len(CREATED.findall(b)) == 1, b[:80]
        assert not re.search(r"^\s*GO\s*$", b, re.M | re.I)


@pytest.mark.parametrize("name", ["install.sql", "uninstall.sql", "examples/his_charge_trigger.sql"])
def test_oracle_statements_are_what_the_driver_accepts(name):
    stmts = statements("oracle", name)
    assert stmts
    for s in stmts:
        assert "\n/" not in s and not s.rstrip().endswith("/"), s[-80:]
        if PLSQL_HEAD.match(s):
            assert re.search(r"\bEND;\s*$", s), s[-80:]
            # The block holds exactly one CREATE (a second would be a missing '/').
            assert len(CREATED.findall(s)) <= 1, s[:120]
        else:
            assert not s.rstrip().endswith(";"), s[-80:]
            assert ";" not in s.replace("';'", ""), s[:120]


@pytest.mark.parametrize("dialect", DIALECTS)
def test_scripts_are_safe_to_run_by_hand(dialect):
    for name in ("install.sql", "uninstall.sql", "examples/his_charge_trigger.sql"):
        text = script_path(dialect, name).read_text(encoding="utf-8")
        if dialect == "oracle":
            # SQL*Plus: '&' prompts for a substitution variable, a blank line ends a statement.
            assert "&" not in text, name
            for s in re.split(r"^/\s*$", text, flags=re.M):
                body = s.strip("\n")
                lines = [l for l in body.splitlines() if not l.lstrip().startswith("--")]
                code = "\n".join(lines).strip()
                if code and not PLSQL_HEAD.match(code):
                    assert "\n\n" not in code, code[:120]
        # Oracle 12.1 names are at most 30 bytes.
        for obj in created_objects(text):
            assert len(obj) <= 30, obj
        code = "\n".join(l for l in text.splitlines() if not l.lstrip().startswith("--"))
        for c in re.findall(r"CONSTRAINT\s+(\w+)\s+(?:PRIMARY|UNIQUE|CHECK|FOREIGN)", code, re.I):
            assert len(c) <= 30 and c.lower().startswith(("mi_", "his_")), c


@pytest.mark.parametrize("dialect", DIALECTS)
def test_install_creates_every_object_and_only_mi_objects(dialect):
    objs = created_objects(script_path(dialect, "install.sql").read_text(encoding="utf-8"))
    assert all(o.startswith("mi_") for o in objs), objs
    assert {o for o, k in objs.items() if k == "TABLE"} == set(TABLES)
    assert {o for o, k in objs.items() if k == "VIEW"} == set(VIEWS + HIS_VIEWS)
    assert {o for o, k in objs.items() if k == "PROCEDURE"} == PROCEDURES[dialect]


@pytest.mark.parametrize("dialect", DIALECTS)
def test_uninstall_drops_every_object_install_creates(dialect):
    install = script_path(dialect, "install.sql").read_text(encoding="utf-8")
    uninstall = script_path(dialect, "uninstall.sql").read_text(encoding="utf-8")
    dropped = {m.group(2).lower(): m.group(1).upper()
               for m in re.finditer(r"DROP\s+(TABLE|VIEW|PROCEDURE|FUNCTION|TRIGGER)\s+(?:IF\s+EXISTS\s+)?(\w+)",
                                    uninstall, re.I)}
    for obj, kind in created_objects(install).items():
        if kind == "INDEX":
            continue  # dropped with its table
        assert dropped.get(obj) == kind, f"uninstall.sql does not drop {kind} {obj}"
    # Tables go child first: mi_outbox after every table that references it.
    tables = [o for o, k in dropped.items() if k == "TABLE"]
    assert set(tables) == set(TABLES)
    assert tables.index("mi_outbox") > max(tables.index(t) for t in TABLES if t not in ("mi_outbox", "mi_schema_version"))


GRANT_VARIABLES = {
    "oracle": {"his_schema": "HIS", "his_user": "HIS_APP", "daemon_user": "MIBRIDGE_DAEMON", "daemon_password": "pw"},
    "sqlserver": {"daemon_login": "MIBRIDGE_DAEMON", "daemon_password": "pw", "his_user": "HIS_APP"},
}


@pytest.mark.parametrize("dialect", DIALECTS)
def test_grants_cover_every_table_view_and_procedure(dialect):
    """As the dialect's client would run it (SQL*Plus / sqlcmd variables): the
    daemon gets DML on its tables and nothing more, the HIS its two calls and
    its two result tables and nothing more."""
    from bridge.db.scripts import substitute

    text = substitute(dialect, script_path(dialect, "grants.sql").read_text(encoding="utf-8"),
                      GRANT_VARIABLES[dialect])
    code = "\n".join(l for l in text.splitlines() if not l.lstrip().startswith("--"))
    to_daemon = r"\s+TO\s+\[?MIBRIDGE_DAEMON\]?"
    to_his = r"\s+TO\s+\[?HIS_APP\]?"
    for obj in TABLES + VIEWS + HIS_VIEWS:
        assert re.search(rf"\bON\s+(?:\S+\.)?{obj}{to_daemon}", code, re.I), obj
    # The insured regions are filled and refreshed by the daemon, never deleted; the order
    # book is never deleted by the daemon (purge keeps it).
    assert not re.search(r"DELETE[^\n]*\bmi_insured_region\b", code, re.I)
    assert not re.search(r"DELETE[^\n]*\bmi_order(_refund)?\b", code, re.I)
    # Least privilege: audit rows are never changed or removed by the daemon.
    assert re.search(r"GRANT\s+SELECT,\s*INSERT\s+ON\s+(?:\S+\.)?mi_audit\b", code, re.I)
    assert not re.search(r"(UPDATE|DELETE)[^\n]*mi_audit", code, re.I)
    # Notices are recorded and counted, never removed.
    assert re.search(r"GRANT\s+SELECT,\s*INSERT,\s*UPDATE\s+ON\s+(?:\S+\.)?mi_notice\b", code, re.I)
    assert not re.search(r"DELETE[^\n]*mi_notice", code, re.I)
    assert not re.search(r"\b(DBA|RESOURCE|db_owner|db_datawriter|ALTER ANY|CONTROL)\b", code)
    # The daemon calls the admin procedures (the CLI and the console), never the
    # HIS's; the HIS gets exactly these.
    daemon_exec = {m.split(".")[-1].lower() for m in re.findall(rf"EXECUTE\s+ON\s+(\S+){to_daemon}", code, re.I)}
    assert daemon_exec == ADMIN_PROCEDURES, daemon_exec
    his_grants = sorted(" ".join(m.split()).lower()
                        for m in re.findall(rf"GRANT\s+(\w+\s+ON\s+(?:\S+\.)?\w+){to_his}", code, re.I))
    prefix = "his." if dialect == "oracle" else ""
    assert his_grants == sorted([f"execute on {prefix}mi_enqueue", f"execute on {prefix}mi_inbox_consume",
                                 f"select on {prefix}mi_identity", f"select on {prefix}mi_inbox"]
                                + [f"select on {prefix}{v}" for v in HIS_VIEWS]), his_grants


def test_oracle_install_avoids_reserved_words_and_empty_strings():
    text = script_path("oracle", "install.sql").read_text(encoding="utf-8")
    for table_def in re.findall(r"CREATE TABLE \w+ \((.*?)\n\)", text, re.S):
        for line in filter(str.strip, table_def.splitlines()):
            col = line.split()[0]
            if col.upper() != "CONSTRAINT":
                assert col.upper() not in ORACLE_RESERVED, col
    code = "\n".join(l for l in text.splitlines() if not l.lstrip().startswith("--"))
    # '' is NULL in Oracle: no empty string literal ('it''s' is a quote, not one).
    literals = re.findall(r"'(?:[^']|'')*'", code)
    assert literals and "''" not in literals


def test_sqlserver_install_avoids_reserved_words():
    text = script_path("sqlserver", "install.sql").read_text(encoding="utf-8")
    for table_def in re.findall(r"CREATE TABLE \w+ \((.*?)\n\);", text, re.S):
        for line in filter(str.strip, table_def.splitlines()):
            assert line.split()[0].upper() not in SQLSERVER_RESERVED, line


# -- every Store query, through each driver's parameter style -------------------------

class RecordingCursor:
    def __init__(self, log):
        self.log = log
        self.rowcount = 1
        self.arraysize = 100
        self.prefetchrows = 2

    def execute(self, sql, params=None):
        self.log.append((sql, params))
        self.last = sql

    def fetchone(self):
        return (1, "test.charge", "K", "S", "{}", "charge", None, None, 1, 10)

    def fetchall(self):
        """Rows shaped like the real answer to the last query."""
        sql = " ".join(self.last.split())
        if sql.startswith("SELECT state, COUNT(*)"):
            return [("pending", 1)]
        if "COUNT(*)" in sql or "MAX(" in sql:
            return [(0,)]
        if "notice_json" in sql:
            return [('{"a": 1}',)]
        if "consumed_at, his_ack" in sql:
            return [(1, None, None, 0.5)]
        if "flow_data, payload" in sql:
            return [(1, "test.charge", "pending", None, None, "{}")]
        if "mi_journal WHERE msg_id" in sql:
            return [(0.5,)]
        if "RETURNING" in sql and "lease_owner" in sql:      # PostgreSQL's one-statement claim
            return [(1, "test.charge", "K", "S", "{}", "pending", None, None, None, 1, 10)]
        if "recover" in sql.lower() or ("RETURNING" in sql and "LEASE_EXPIRED" in sql):
            return [(0,)]
        if "SELECT id, platform FROM mi_order WHERE" in sql:     # the order book: the payment is booked
            return [(1, "mobilepay")]
        return [(1, 1)] if "o.id, o.state" in sql or "SELECT o.id FROM" in sql else []

    def fetchmany(self, n):
        self.log.append(("fetchmany", n))
        return [(1, 1)][:n]


class RecordingConnection:
    def __init__(self):
        self.log = []

    def cursor(self):
        return RecordingCursor(self.log)

    def commit(self):
        pass

    def rollback(self):
        pass

    def close(self):
        pass

    def begin(self):                  # MariaDB's explicit transactions (autocommit connection)
        pass

    def autocommit(self, on):
        pass


def run_every_store_query(url: str) -> list:
    s = Store(url)
    conn = RecordingConnection()
    s._conn = conn
    row = ClaimedRow(id=1, kind="test.charge", business_key="K", serial_key="S", payload="{}",
                     was_state="pending", step=None, flow_data={}, current_call=None,
                     attempts=1, max_attempts=10)
    s.ping()
    s.enqueue("test.charge", "K", {"total_amount": "1.00"})
    s.claim("w", 30, limit=3)
    s.heartbeat(1, "w", 30)
    s.begin_call(1, "w", "charge", "M1", "charge", "{}", unsafe=True)
    s.end_call("M1", "ok", 200, "{}", None)
    s.advance(row, "w", "charge", {}, inbox=[InboxRow("order", "ok", order_id="O1")],
              identities=[IdentityRow("P1", "PSN1")])
    s.advance(row, "w", "notify", {}, release_after=1.5)
    s.release(row, "w", "in_doubt", 5, {}, error_code="E", error_message="m", keep_call=True)
    s.finish(row, "w", "done", {}, [InboxRow("charge", "ok", total_amount=Decimal("12.50"))])
    # The order book's writes (bridge/db/orderbook.py): a payment, then its refund.
    pay = ClaimedRow(id=2, kind="mobilepay.outpatient", business_key="K2", serial_key="K2", payload="{}",
                     was_state="pending", step="x", flow_data={}, current_call=None, attempts=1, max_attempts=10)
    s.advance(pay, "w", "await_his", {}, inbox=[InboxRow(
        "settlement", "ok", order_id="PO1", settlement_id="S1", total_amount=Decimal("10.00"),
        fund_amount=Decimal("7.00"), account_amount=Decimal("3.00"), cash_amount=Decimal("0.00"),
        result={"channel": "wechat", "out_trade_no": "OTN1", "traceTime": "20240301093000"})])
    s.add_inbox_row(3, "mobilepay.refund", "R1", InboxRow(
        "refund", "ok", order_id="PO1", settlement_id="RF1", total_amount=Decimal("3.00"),
        fund_amount=Decimal("0.00"), account_amount=Decimal("3.00"), cash_amount=Decimal("0.00")))
    s.add_inbox_row(4, "facepay.outpatient.settle", "S4", InboxRow(
        "settlement", "ok", settlement_id="SETL4", total_amount=Decimal("1.00"), fund_amount=Decimal("1.00"),
        account_amount=Decimal("0.00"), cash_amount=Decimal("0.00"), result={"setl_id": "SETL4"}))
    s.order("PO1")
    s.orders_of("K2")
    s.recover_expired_leases()
    s.requeue(1, "dba", "checked")
    s.resolve(1, "dba", "checked by phone")
    s.purge(30)
    s.status()
    # What flows and the notice endpoint read and write besides their own row.
    s.call_age_seconds("M1")
    s.inbox_state(1, "settlement")
    s.withdraw_inbox_row(1)
    s.find_request(["mobilepay.outpatient", "mobilepay.registration"], "K")
    s.count_requests("mobilepay.refund", "K", ("resolved", "held"), exclude_id=1)
    s.add_inbox_row(1, "test.charge", "K", InboxRow("notice", "held", error_code="N"))
    s.inbox_sums("refund", "O1")
    s.poke(["mobilepay.outpatient"], "K")
    s.record_notice("6302", "N1", "K", 1, {"a": 1})
    s.notice("6302", "N1")
    return conn.log


def _sql_only(log):
    return [(sql, p) for sql, p in log if sql != "fetchmany"]


def test_every_store_query_binds_exactly_its_names_on_oracle():
    log = run_every_store_query("oracle://u:p@db:1521/HISPDB")
    assert len(_sql_only(log)) >= 25
    for sql, params in _sql_only(log):
        names = set(re.findall(r"(?<![:\w]):([A-Za-z_]\w*)", sql))
        # python-oracledb refuses a bind value without a placeholder (DPY-4008).
        assert names == set(params or {}), (sql, params)
        assert not names & {n.lower() for n in ORACLE_RESERVED}, names
        assert all(p not in ("", b"") for p in (params or {}).values()), (sql, params)
        assert "''" not in sql, sql
        assert not re.search(r"\bLIMIT\b|\bFETCH\s+FIRST\b|COALESCE\(step", sql, re.I), sql
        assert not re.search(r"\bFROM\s+\w+\s+AS\s+\w+", sql, re.I), sql  # no AS for table aliases
        # A plain statement has no ';' (the driver refuses it); a PL/SQL block ends with END;
        assert not sql.rstrip().endswith(";") or re.fullmatch(r"BEGIN \w+\([^;]*\); END;", sql), sql


def test_oracle_claim_fetches_only_limit_rows_of_the_locking_cursor():
    log = run_every_store_query("oracle://u:p@db:1521/HISPDB")
    i = next(n for n, (sql, _) in enumerate(log) if "SKIP LOCKED" in sql)
    assert log[i + 1] == ("fetchmany", 3)
    claim = log[i][0]
    # The claim repeats the function-based index expressions of install.sql.
    install = re.sub(r"\s+", " ", script_path("oracle", "install.sql").read_text(encoding="utf-8"))
    exprs = re.findall(r"CASE WHEN .*? END", re.sub(r"\s+", " ", claim))
    assert len(exprs) == 4  # ready time (WHERE and ORDER BY), ready id, open serial key
    for expr in exprs:
        assert expr.replace("o.", "").replace("p.", "") in install, expr


def test_every_store_query_binds_one_value_per_mark_on_sqlserver():
    log = run_every_store_query("mssql://u:p@db:1433/hisdb")
    assert len(log) >= 25
    for sql, params in log:
        assert isinstance(params, list), sql
        assert sql.count("?") == len(params), (sql, params)
        assert not re.search(r"(?<![:\w]):[A-Za-z_]", sql), sql
        assert not re.search(r"\bLIMIT\b|FOR\s+UPDATE|SKIP\s+LOCKED", sql, re.I), sql
    claim = next(sql for sql, _ in log if "READPAST" in sql)
    assert claim.lstrip().startswith("SELECT TOP (?)")
    # No UPDLOCK: it would keep, to the end of the claim, a lock on every row the
    # NOT EXISTS rejects (the guarded UPDATE decides which worker gets a row).
    assert "UPDLOCK" not in claim.upper()


def test_step_guard_works_where_empty_string_is_null():
    log = run_every_store_query("oracle://u:p@db:1521/HISPDB")
    guards = [sql for sql, _ in _sql_only(log) if "lease_owner = :owner AND state = 'running'" in sql
              and "updated_at" in sql and "step" in sql.split("WHERE", 1)[1]]
    assert any("step IS NULL" in g for g in guards)          # row.step None: first step
    assert any("step = :expected_step" in g for g in guards)


# -- the dialects' small pieces ------------------------------------------------------

def test_oracle_dialect_pieces():
    d = get_dialect("oracle")
    assert d.paramstyle == "named" and d.now == "SYSTIMESTAMP"
    assert d.after("lease") == "(SYSTIMESTAMP + NUMTODSINTERVAL(:lease, 'SECOND'))"
    assert d.seconds(1.5) == 1.5 and d.seconds(-30 * 86400) == -2592000.0
    assert "EXTRACT(SECOND FROM (SYSTIMESTAMP - created_at))" in d.age_seconds("created_at")
    assert "MERGE INTO mi_identity" in d.identity_upsert_sql
    p = d.connect_params(parse_url("oracle://daemon:s3cret@db.example:1522/HISPDB?connect_timeout=3"))
    assert p == dict(user="daemon", password="s3cret", host="db.example", port=1522, service_name="HISPDB",
                     tcp_connect_timeout=3.0, program="mibridge")
    assert d.connect_params(parse_url("oracle://daemon@db/HISPDB"))["port"] == 1521
    with pytest.raises(ValueError):
        d.connect_params(parse_url("oracle://daemon@db"))
    import oracledb
    oracledb.ConnectParams(**p)  # every key is one python-oracledb knows


def test_oracle_type_handlers():
    import oracledb
    from bridge.db.dialects.oracle import _input_type_handler, _output_type_handler

    class Cur:
        arraysize = 7

        def var(self, typ, arraysize):
            return (typ, arraysize)

    class Meta:
        def __init__(self, type_code, scale=0):
            self.type_code, self.scale = type_code, scale

    assert _output_type_handler(Cur(), Meta(oracledb.DB_TYPE_CLOB)) == (oracledb.DB_TYPE_LONG, 7)
    assert _output_type_handler(Cur(), Meta(oracledb.DB_TYPE_NUMBER, 2)) == (Decimal, 7)
    assert _output_type_handler(Cur(), Meta(oracledb.DB_TYPE_NUMBER, 0)) is None
    assert _input_type_handler(Cur(), "x" * 4000, 1) is None
    assert _input_type_handler(Cur(), "中" * 1500, 1) == (oracledb.DB_TYPE_CLOB, 1)  # 4500 bytes
    assert _input_type_handler(Cur(), "x" * 4001, 1) == (oracledb.DB_TYPE_CLOB, 1)
    assert _input_type_handler(Cur(), 5, 1) is None


def test_oracle_is_disconnect():
    import oracledb

    d = get_dialect("oracle")
    assert d.is_disconnect(oracledb.InterfaceError("DPY-1001: not connected to database"))
    err = type("E", (), {"full_code": "ORA-03113", "is_session_dead": False})()
    assert d.is_disconnect(oracledb.DatabaseError(err))
    err = type("E", (), {"full_code": "ORA-00001", "is_session_dead": False})()
    assert not d.is_disconnect(oracledb.IntegrityError(err))
    assert not d.is_disconnect(ValueError("x"))


def test_sqlserver_dialect_pieces():
    d = get_dialect("sqlserver")
    assert d.paramstyle == "qmark" and d.now == "SYSUTCDATETIME()"
    assert d.seconds(1.5) == 1500 and d.seconds(-90 * 86400) == -7776000000
    text, args = d.convert(f"SELECT {d.after('delay')}", {"delay": d.seconds(-90 * 86400)})
    assert text.count("?") == 2 and args == [-7776000000, -7776000000]
    assert "DATEDIFF_BIG(MICROSECOND, created_at, SYSUTCDATETIME())" in d.age_seconds("created_at")
    assert d.identity_upsert_sql.rstrip().endswith(";")  # MERGE must end with ';'
    assert "WITH (HOLDLOCK)" in d.identity_upsert_sql


def test_sqlserver_after_splits_days_like_tsql():
    """DATEADD takes an int: check the day/millisecond split with T-SQL's truncating / and %."""
    def tsql_div(a, b):
        q = abs(a) // abs(b)
        return q if (a >= 0) == (b > 0) else -q

    for ms in (0, 1500, 86_400_000 * 3 + 7, -1500, -(86_400_000 * 90) - 123, 2**31 * 10):
        days = tsql_div(ms, 86_400_000)
        rest = ms - days * 86_400_000  # T-SQL %: sign of the dividend
        assert abs(days) < 2**31 and abs(rest) < 86_400_000
        assert days * 86_400_000 + rest == ms


@pytest.mark.parametrize("url, expected", [
    ("mssql://daemon:pw@db.example:1444/hisdb",
     "DRIVER={ODBC Driver 18 for SQL Server};SERVER=tcp:db.example,1444;DATABASE=hisdb;UID=daemon;PWD=pw;"
     "Encrypt=yes;TrustServerCertificate=no;APP=mibridge"),
    ("sqlserver://daemon:p%3Bw%7D@db/hisdb?trust_server_certificate=yes&driver=ODBC+Driver+17+for+SQL+Server",
     "DRIVER={ODBC Driver 17 for SQL Server};SERVER=tcp:db,1433;DATABASE=hisdb;UID=daemon;PWD={p;w}}};"
     "Encrypt=yes;TrustServerCertificate=yes;APP=mibridge"),
    ("mssql://db/hisdb?instance=SQLEXPRESS&encrypt=no&TrustServerCertificate=true",
     "DRIVER={ODBC Driver 18 for SQL Server};SERVER=tcp:db\\SQLEXPRESS;DATABASE=hisdb;Trusted_Connection=yes;"
     "Encrypt=no;TrustServerCertificate=yes;APP=mibridge"),
])
def test_sqlserver_connection_string(url, expected, monkeypatch):
    monkeypatch.delenv("MIBRIDGE_DB_PASSWORD", raising=False)
    assert get_dialect("sqlserver").connection_string(parse_url(url)) == expected


def test_sqlserver_connection_string_refuses_unknown_values():
    d = get_dialect("sqlserver")
    for q in ("encrypt=maybe", "trust_server_certificate=perhaps"):
        with pytest.raises(ValueError):
            d.connection_string(parse_url(f"mssql://u:p@db/hisdb?{q}"))


def test_sqlserver_is_disconnect():
    import pyodbc

    d = get_dialect("sqlserver")
    assert d.is_disconnect(pyodbc.OperationalError("08S01", "[08S01] Communication link failure"))
    assert d.is_disconnect(pyodbc.ProgrammingError("Attempt to use a closed connection."))
    assert not d.is_disconnect(pyodbc.IntegrityError("23000", "[23000] Violation of UNIQUE KEY"))
    assert not d.is_disconnect(ValueError("x"))
