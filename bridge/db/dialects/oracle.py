"""Oracle 12.1.0.2+ through python-oracledb in thin mode (no Instant Client).

URL: oracle://mibridge_daemon@dbhost:1521/HISPDB  (the path is the service name)
options: connect_timeout (seconds, default 10).
"""
from __future__ import annotations

import decimal

from bridge.db.dialects.base import IDENTITY_COLUMNS, Dialect

# Open rows, in exactly the expressions of the function-based indexes in
# sql/oracle/install.sql (a query uses such an index only if it repeats the
# expression).
_READY_AT = "CASE WHEN o.state IN ('pending', 'in_doubt') THEN SYS_EXTRACT_UTC(o.next_attempt_at) END"
_READY_ID = "CASE WHEN o.state IN ('pending', 'in_doubt') THEN o.id END"
_OPEN_SERIAL = "CASE WHEN p.state IN ('pending', 'running', 'in_doubt', 'held') THEN p.serial_key END"

# Errors after which the session is gone (python-oracledb maps the ORA- codes
# of a dropped connection to DPY-4011; the rest are listed for safety).
_DISCONNECT_CODES = {
    "DPY-1001", "DPY-4011", "DPY-6005",
    "ORA-00028", "ORA-01012", "ORA-01033", "ORA-01034", "ORA-01089", "ORA-01092",
    "ORA-02396", "ORA-03113", "ORA-03114", "ORA-03135", "ORA-12153", "ORA-12514",
    "ORA-12537", "ORA-12541", "ORA-12547", "ORA-12570", "ORA-12571",
}
# A bound str longer than this many UTF-8 bytes goes to the server as a CLOB:
# a VARCHAR2 bind is limited to 4000 bytes in SQL (MAX_STRING_SIZE=STANDARD).
_MAX_VARCHAR_BYTES = 4000


class OracleDialect(Dialect):
    name = "oracle"
    from_dual = " FROM dual"
    paramstyle = "named"
    now = "SYSTIMESTAMP"
    # Oracle forbids FETCH FIRST (and ROWNUM at the same level as ORDER BY)
    # together with FOR UPDATE.  So the claim query has no limit at all:
    # claim_candidates() opens it as a cursor and fetches only `limit` rows.
    # With SKIP LOCKED Oracle locks a row when it is fetched, not when the
    # cursor opens, so only the fetched rows are locked; rows locked by another
    # worker are skipped, and rows after the first `limit` are left alone.
    # (The alternative, "WHERE id IN (SELECT ... WHERE ROWNUM <= :limit)" in
    # an inner query without ORDER BY, locks at most `limit` rows too, but every
    # worker then picks the same first rows: the losers skip them all and come
    # back empty, and the order is no longer oldest-first.)
    claim_sql = f"""
        SELECT o.id, o.state FROM mi_outbox o
         WHERE {_READY_AT} <= SYS_EXTRACT_UTC(SYSTIMESTAMP)
           AND NOT EXISTS (SELECT 1 FROM mi_outbox p
                            WHERE {_OPEN_SERIAL} = o.serial_key AND p.id < o.id)
         ORDER BY {_READY_AT}, {_READY_ID}
           FOR UPDATE SKIP LOCKED"""
    # A concurrent first insert for the same patient can still raise ORA-00001;
    # the transaction rolls back and the step is retried like any other error.
    identity_upsert_sql = f"""
        MERGE INTO mi_identity t
        USING (SELECT {', '.join(f':{c} AS {c}' for c in IDENTITY_COLUMNS)} FROM dual) s
           ON (t.his_patient_id = s.his_patient_id)
         WHEN MATCHED THEN UPDATE SET
              {', '.join(f't.{c} = s.{c}' for c in IDENTITY_COLUMNS[1:])}, t.updated_at = SYSTIMESTAMP
         WHEN NOT MATCHED THEN INSERT ({', '.join(IDENTITY_COLUMNS)}, updated_at)
              VALUES ({', '.join('s.' + c for c in IDENTITY_COLUMNS)}, SYSTIMESTAMP)"""

    def after(self, param: str) -> str:
        return f"(SYSTIMESTAMP + NUMTODSINTERVAL(:{param}, 'SECOND'))"

    def seconds(self, value: float):
        return float(value)

    def age_seconds(self, column: str) -> str:
        iv = f"(SYSTIMESTAMP - {column})"
        return (f"(EXTRACT(DAY FROM {iv}) * 86400 + EXTRACT(HOUR FROM {iv}) * 3600"
                f" + EXTRACT(MINUTE FROM {iv}) * 60 + EXTRACT(SECOND FROM {iv}))")

    def claim_candidates(self, cur, limit: int) -> list:
        n = max(1, int(limit))
        # Fetch exactly n rows in the execute round trip, and no more.
        cur.arraysize = n
        cur.prefetchrows = n
        cur.execute(self.claim_sql)
        return cur.fetchmany(n)

    def connect_params(self, url) -> dict:
        if not url.database:
            raise ValueError("oracle URLs need the service name as the path: "
                             "oracle://user@host:1521/SERVICE")
        return dict(user=url.user, password=url.password, host=url.host, port=url.port or 1521,
                    service_name=url.database,
                    tcp_connect_timeout=float(url.options.get("connect_timeout", 10)),
                    program="mibridge")

    def connect(self, url):
        import oracledb

        conn = oracledb.connect(**self.connect_params(url))
        conn.autocommit = False
        conn.outputtypehandler = _output_type_handler
        conn.inputtypehandler = _input_type_handler
        with conn.cursor() as cur:
            # Money is bound as text ('12.50'); its decimal point must be '.'
            # whatever the server's NLS_TERRITORY says.  Keys compare byte for
            # byte: an HIS logon trigger may set NLS_COMP=LINGUISTIC with a
            # Chinese sort (SCHINESE_PINYIN_M), under which '=' on the keys
            # would follow that sort.
            cur.execute("ALTER SESSION SET NLS_NUMERIC_CHARACTERS = '.,' NLS_COMP = BINARY NLS_SORT = BINARY")
        return conn

    def is_disconnect(self, exc: BaseException) -> bool:
        import oracledb

        if isinstance(exc, oracledb.InterfaceError):
            return True
        if not isinstance(exc, oracledb.Error) or not exc.args:
            return False
        err = exc.args[0]
        if getattr(err, "is_session_dead", False):
            return True
        return getattr(err, "full_code", "") in _DISCONNECT_CODES


def _output_type_handler(cursor, metadata):
    """CLOB columns come back as str (not LOB objects), NUMBER(p,s>0) as Decimal."""
    import oracledb

    if metadata.type_code is oracledb.DB_TYPE_CLOB:
        return cursor.var(oracledb.DB_TYPE_LONG, arraysize=cursor.arraysize)
    if metadata.type_code is oracledb.DB_TYPE_NUMBER and (metadata.scale or 0) > 0:
        return cursor.var(decimal.Decimal, arraysize=cursor.arraysize)
    return None


def _input_type_handler(cursor, value, arraysize):
    """Long text (payloads, flow data, masked messages) is bound as a CLOB."""
    import oracledb

    if isinstance(value, str) and len(value) * 4 > _MAX_VARCHAR_BYTES \
            and len(value.encode("utf-8")) > _MAX_VARCHAR_BYTES:
        return cursor.var(oracledb.DB_TYPE_CLOB, arraysize=arraysize)
    return None
