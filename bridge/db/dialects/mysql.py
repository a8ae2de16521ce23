from __future__ import annotations

from bridge.db.dialects.base import (CLAIM_COLUMNS, IDENTITY_COLUMNS, Dialect, GuardedWrite, journal_end_params,
                                     journal_end_sql, renamed)

_READY = """
      FROM mi_outbox o FORCE INDEX (mi_outbox_ready_ix)
     WHERE o.ready_at <= UTC_TIMESTAMP(6)
       AND NOT EXISTS (SELECT 1 FROM mi_outbox p
                        WHERE p.open_serial_key = o.serial_key AND p.id < o.id)
     ORDER BY o.ready_at, o.id
     LIMIT :limit
       FOR UPDATE SKIP LOCKED"""


# Server errors after which the session is gone or the statement may simply be
# sent again: too many connections, shutdown in progress, server gone/killed,
# network errors, lock wait timeout, deadlock, idle disconnect.  (Client-side
# errors, 2000-2999, always count: lost connection, commands out of sync.)
_RETRY_CODES = {1040, 1053, 1077, 1078, 1079, 1080, 1152, 1153, 1154, 1155, 1156, 1157, 1158, 1159,
                1160, 1161, 1184, 1205, 1213, 1927, 4031}


_CONNECTION_CLASS = None


def _connection_class():
    """PyMySQL's Connection, building its TLS context once per process.

    With no TLS options PyMySQL uses "preferred" mode (TLS if the server offers it,
    unverified) and builds a new ssl.create_default_context for every connection: about
    30 ms of CPU loading the CA bundle, each time a job, a notice or a worker connects.
    The context it builds for that mode is always the same, so it is built once; every
    other case is PyMySQL's own.  (If a later PyMySQL renames the method, this override
    is never called and each connection builds its own again: nothing else changes.)"""
    global _CONNECTION_CLASS
    if _CONNECTION_CLASS is None:
        import threading

        from pymysql.connections import Connection

        lock, shared = threading.Lock(), []

        class _Connection(Connection):
            def _create_ssl_ctx(self, sslp):
                if sslp != {}:
                    return super()._create_ssl_ctx(sslp)
                with lock:
                    if not shared:
                        shared.append(super()._create_ssl_ctx(sslp))
                    return shared[0]

        _CONNECTION_CLASS = _Connection
    return _CONNECTION_CLASS


class MySQLDialect(Dialect):
    """MariaDB 10.7+ (SKIP LOCKED needs 10.6, JSON_EQUALS in the SQL needs 10.7)."""

    name = "mysql"
    from_dual = " FROM DUAL"
    paramstyle = "pyformat"
    # The claim reads the virtual columns ready_at / open_serial_key (see
    # sql/mysql/install.sql): they are NULL exactly for rows it must skip, so
    # their indexes hold only open rows, like PostgreSQL's partial indexes.
    # UTC, like the column defaults: independent of any session's time_zone.
    now = "UTC_TIMESTAMP(6)"
    autocommit = True
    claim_sql = "SELECT o.id, o.state" + _READY
    # MariaDB cannot lock with SKIP LOCKED inside an UPDATE (a derived table
    # in UPDATE ... JOIN waits for locked rows instead of skipping them), and
    # has no UPDATE ... RETURNING.  So the claim reads the whole rows while
    # locking them, then leases them by id: two statements in one transaction,
    # sent in two round trips when the connection allows several statements
    # per round trip (CLIENT_MULTI_STATEMENTS), four otherwise.
    claim_rows_sql = "SELECT " + ", ".join("o.state" if c == "was_state" else f"o.{c}"
                                           for c in CLAIM_COLUMNS) + _READY
    identity_upsert_sql = (
        f"INSERT INTO mi_identity ({', '.join(IDENTITY_COLUMNS)}, updated_at) "
        f"VALUES ({', '.join(':' + c for c in IDENTITY_COLUMNS)}, UTC_TIMESTAMP(6)) ON DUPLICATE KEY UPDATE "
        + ", ".join(f"{c} = VALUES({c})" for c in IDENTITY_COLUMNS[1:] + ("updated_at",)))

    def prepare(self, conn) -> None:
        conn.autocommit(True)

    def begin(self, conn, cur, write: bool = True) -> None:
        conn.begin()

    @staticmethod
    def multi_statements(conn) -> bool:
        from pymysql.constants import CLIENT

        return bool(getattr(conn, "client_flag", 0) & CLIENT.MULTI_STATEMENTS)

    def claim(self, conn, owner: str, lease, limit: int) -> list[tuple]:
        multi = self.multi_statements(conn)
        cur = conn.cursor()
        if multi:
            self._run(cur, "START TRANSACTION; " + self.claim_rows_sql, {"limit": limit})
            cur.nextset()
        else:
            conn.begin()
            self._run(cur, self.claim_rows_sql, {"limit": limit})
        rows = cur.fetchall()
        if not rows:
            conn.commit()
            return []
        ids = {f"i{n}": r[0] for n, r in enumerate(rows)}
        lease_them = f"""
            UPDATE mi_outbox
               SET state = 'running', lease_owner = :owner, lease_expires_at = {self.after('lease')},
                   attempts = attempts + 1, updated_at = UTC_TIMESTAMP(6)
             WHERE id IN ({', '.join(':' + k for k in ids)}) AND state IN ('pending', 'in_doubt')"""
        if multi:
            self._run(cur, lease_them + "; COMMIT", dict(ids, owner=owner, lease=lease))
            leased = cur.rowcount
            while cur.nextset():
                pass
        else:
            self._run(cur, lease_them, dict(ids, owner=owner, lease=lease))
            leased = cur.rowcount
            conn.commit()
        if leased != len(rows):  # cannot happen (the rows were locked): keep only what we hold
            self._run(cur, f"SELECT id FROM mi_outbox WHERE id IN ({', '.join(':' + k for k in ids)}) "
                           f"AND state = 'running' AND lease_owner = :owner", dict(ids, owner=owner))
            held = {r[0] for r in cur.fetchall()}
            rows = [r for r in rows if r[0] in held]
        # attempts as the UPDATE left it
        return [tuple(r[:9]) + (int(r[9]) + 1, r[10]) for r in rows]

    def write(self, conn, w: GuardedWrite) -> bool:
        if not self.multi_statements(conn):
            return Dialect.write(self, conn, w)
        return self.write_many(conn, [w])[0]

    def write_many(self, conn, writes: list) -> list[bool]:
        """With CLIENT_MULTI_STATEMENTS: one transaction in one round trip.  Each
        write's inserts are conditional on its guarded UPDATE's ROW_COUNT(), so
        they happen only when it touched the row; the journal outcomes are
        written either way."""
        if not self.multi_statements(conn) or any(w.after for w in writes):
            # (writes with `after` steps - secrets, the order book - are rare): one plain transaction
            return self.write_all_in_tx(conn, writes)
        text, params, guards_at = self.combined(writes, self._compose)
        cur = self._run(conn.cursor(), text, params)
        counts = [cur.rowcount]
        while cur.nextset():   # reads every result: an error in any statement raises here
            counts.append(cur.rowcount)
        return [counts[i] == 1 for i in guards_at]

    def _compose(self, writes: list):
        parts, guards_at = ["START TRANSACTION"], []
        for j, w in enumerate(writes):
            parts += [renamed(journal_end_sql(self.now), journal_end_params(e), f"e{j}_{n}")[0]
                      for n, e in enumerate(w.ends)]
            guard, params = self.guard_sql(w)
            guards_at.append(len(parts))
            parts.append(renamed(guard, params, f"g{j}")[0])
            if w.inserts:
                parts.append("SET @mi_ok = ROW_COUNT()")
                parts += [renamed(self._insert_if_ok(ins), ins.values, f"i{j}_{n}")[0]
                          for n, ins in enumerate(w.inserts)]
        parts.append("COMMIT")
        return "; ".join(parts), guards_at

    def _insert_if_ok(self, ins) -> str:
        cols = list(ins.values) + list(ins.now_cols)
        vals = [f":{c}" for c in ins.values] + [self.now] * len(ins.now_cols)
        sql = f"INSERT INTO {ins.table} ({', '.join(cols)}) SELECT {', '.join(vals)} FROM DUAL WHERE @mi_ok = 1"
        if ins.upsert:
            sql += " ON DUPLICATE KEY UPDATE " + ", ".join(
                f"{c} = VALUES({c})" for c in cols if c != "his_patient_id")
        return sql

    def after(self, param: str) -> str:
        return f"TIMESTAMPADD(MICROSECOND, :{param}, UTC_TIMESTAMP(6))"

    def seconds(self, value: float):
        return int(value * 1_000_000)

    def age_seconds(self, column: str) -> str:
        return f"(TIMESTAMPDIFF(MICROSECOND, {column}, UTC_TIMESTAMP(6)) / 1000000)"

    def connect(self, url):
        from pymysql.constants import CLIENT

        conn = _connection_class()(host=url.host, port=url.port or 3306, user=url.user,
                               password=url.password, database=url.database,
                               charset="utf8mb4", autocommit=False,
                               connect_timeout=int(url.options.get("connect_timeout", 10)),
                               # A half-open connection must fail, not hang a heartbeat.
                               read_timeout=int(url.options.get("read_timeout", 120)),
                               write_timeout=int(url.options.get("write_timeout", 120)),
                               unix_socket=url.options.get("unix_socket"),
                               # The engine sends a transaction's statements in one round
                               # trip (claim, write); every value is still a bound parameter.
                               client_flag=CLIENT.MULTI_STATEMENTS)
        with conn.cursor() as cur:
            # READ COMMITTED: the claim's "no older open row with my serial key"
            # check must see other workers' latest commits, not a snapshot.
            cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
            # Whatever the server's default: a value too long for its column is an
            # error, never cut short (a cut key could become another request's key),
            # and backslashes in strings are escapes, as the driver assumes.
            cur.execute("SET SESSION sql_mode = 'STRICT_ALL_TABLES,ERROR_FOR_DIVISION_BY_ZERO,"
                        "NO_ZERO_DATE,NO_ENGINE_SUBSTITUTION'")
        conn.commit()
        return conn

    def is_disconnect(self, exc: BaseException) -> bool:
        """The connection is gone, or the write is worth sending again as it is.
        pymysql raises OperationalError for those and also for refusals (a CHECK
        that fails, a value out of range), which sending again cannot fix: a
        refused write is the runner's to hold, not to retry for a lease."""
        import pymysql

        if isinstance(exc, pymysql.err.InterfaceError):
            return True
        if not isinstance(exc, pymysql.err.OperationalError):
            return False
        code = exc.args[0] if exc.args else 0
        return not isinstance(code, int) or code == 0 or 2000 <= code < 3000 or code in _RETRY_CODES
