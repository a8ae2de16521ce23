from __future__ import annotations

from bridge.db.dialects.base import (ON_CONFLICT_IDENTITY, Dialect, GuardedWrite, journal_end_params,
                                     journal_end_sql, on_conflict_identity_upsert, renamed)

_CANDIDATES = """
        SELECT o.id, o.state FROM mi_outbox o
         WHERE o.state IN ('pending', 'in_doubt') AND o.next_attempt_at <= now()
           AND NOT EXISTS (SELECT 1 FROM mi_outbox p
                            WHERE p.serial_key = o.serial_key AND p.id < o.id
                              AND p.state NOT IN ('done', 'failed', 'resolved'))
         ORDER BY o.next_attempt_at, o.id
         LIMIT :limit
           FOR UPDATE OF o SKIP LOCKED"""


class PostgreSQLDialect(Dialect):
    name = "postgresql"
    # $1, $2 ...: with psycopg's RawCursor the text goes to the server as it
    # is, with no parsing per call in Python (the statements of a group write
    # are long), and every statement can be prepared.
    paramstyle = "dollar"
    now = "now()"
    supports_notify = True
    autocommit = True
    claim_sql = _CANDIDATES
    # The whole claim is this one statement, in autocommit: the subquery locks
    # the due rows (skipping rows another worker holds), the UPDATE leases
    # them, RETURNING hands them back with the state they were claimed from.
    # t.state = c.state: a row whose state changed after the subquery's
    # snapshot (EvalPlanQual re-reads it) is left alone.
    claim_update_sql = f"""
        UPDATE mi_outbox t
           SET state = 'running', lease_owner = :owner,
               lease_expires_at = now() + make_interval(secs => :lease),
               attempts = t.attempts + 1, updated_at = now()
          FROM ({_CANDIDATES}) c
         WHERE t.id = c.id AND t.state = c.state
        RETURNING t.id, t.kind, t.business_key, t.serial_key, t.payload, c.state, t.step,
                  t.flow_data, t.current_call, t.attempts, t.max_attempts"""
    identity_upsert_sql = on_conflict_identity_upsert("now()")
    # The rescuer in one statement (docs/engine.md rule 5): the rows it moves
    # and the 'held' inbox rows for those out of attempts cannot drift apart.
    recover_sql = """
        WITH moved AS (
            UPDATE mi_outbox
               SET state = CASE WHEN attempts >= max_attempts THEN 'held'
                                WHEN current_call IS NOT NULL AND call_unsafe = 1 THEN 'in_doubt'
                                ELSE 'pending' END,
                   last_error_code = 'LEASE_EXPIRED',
                   last_error_message = CASE
                       WHEN attempts >= max_attempts
                           THEN 'worker lost repeatedly; attempts used up'
                       WHEN current_call IS NOT NULL AND call_unsafe = 1
                           THEN 'worker lost during a call that is not safe to repeat; will query the platform'
                       ELSE 'worker lost; will retry' END,
                   lease_owner = NULL, lease_expires_at = NULL,
                   next_attempt_at = now(), updated_at = now()
             WHERE state = 'running' AND lease_expires_at < now()
            RETURNING id, kind, business_key, state),
        held AS (
            INSERT INTO mi_inbox (outbox_id, kind, business_key, result_type, outcome, error_code, error_message)
            SELECT id, kind, business_key, 'held', 'held', 'LEASE_EXPIRED', 'worker lost repeatedly; attempts used up'
              FROM moved WHERE state = 'held')
        SELECT COUNT(*) FROM moved"""

    def after(self, param: str) -> str:
        return f"(now() + make_interval(secs => :{param}))"

    def age_seconds(self, column: str) -> str:
        return f"EXTRACT(EPOCH FROM now() - {column})"

    def connect(self, url, autocommit: bool = False):
        import psycopg

        kwargs = dict(host=url.host, port=url.port or 5432, user=url.user or None,
                      password=url.password or None, dbname=url.database,
                      connect_timeout=int(url.options.get("connect_timeout", 10)),
                      autocommit=autocommit, application_name="mibridge",
                      # A half-open connection (network cut) must fail in seconds, not
                      # hang the heartbeat while leases run out.
                      keepalives=1, keepalives_idle=10, keepalives_interval=5, keepalives_count=3)
        return psycopg.connect(**{k: v for k, v in kwargs.items() if v is not None})

    def prepare(self, conn) -> None:
        import psycopg

        conn.autocommit = True
        conn.cursor_factory = psycopg.RawCursor

    def begin(self, conn, cur, write: bool = True) -> None:
        cur.execute("BEGIN")

    def claim_statement(self, limit: int) -> str:
        # The limit is written into the text, not bound: psycopg prepares a
        # statement it runs often, and PostgreSQL's generic plan for a bound
        # LIMIT expects many rows and joins them by scanning all of mi_outbox
        # (a hash join over a sequential scan: the whole table per claim).
        return self.claim_update_sql.replace(":limit", str(int(limit)))

    def claim(self, conn, owner: str, lease, limit: int) -> list[tuple]:
        cur = self._run(conn.cursor(), self.claim_statement(limit), dict(owner=owner, lease=lease))
        # RETURNING has no order; two rows of one serial key are never claimed
        # together, so the order within a batch is free: insertion order.
        return sorted(cur.fetchall(), key=lambda r: r[0])

    def write(self, conn, w: GuardedWrite) -> bool:
        return self.write_many(conn, [w])[0]

    def write_many(self, conn, writes: list) -> list[bool]:
        """One statement: each write's journal outcomes, its guarded UPDATE and
        its rows to insert, as data-modifying CTEs.  A statement is atomic, so
        a final state and its inbox rows commit together; the inserts read
        their guarded UPDATE's RETURNING, so they happen only when it touched
        the row; the outcomes are written either way."""
        if any(w.after for w in writes):     # rare (secrets, the order book): the plain transaction
            return self.write_all_in_tx(conn, writes)
        text, params, _ = self.combined(writes, self._compose)
        return [n == 1 for n in self._run(conn.cursor(), text, params).fetchone()]

    def _compose(self, writes: list):
        ctes = []
        for j, w in enumerate(writes):
            ctes += [f"e{j}_{n} AS ({renamed(journal_end_sql(self.now), journal_end_params(e), f'e{j}_{n}')[0]})"
                     for n, e in enumerate(w.ends)]
            guard, params = self.guard_sql(w)
            ctes.append(f"u{j} AS ({renamed(guard, params, f'g{j}')[0]} RETURNING id)")
            ctes += [f"i{j}_{n} AS ({renamed(self._insert_from(ins, f'u{j}'), ins.values, f'i{j}_{n}')[0]})"
                     for n, ins in enumerate(w.inserts)]
        counts = ", ".join(f"(SELECT COUNT(*) FROM u{j})" for j in range(len(writes)))
        return f"WITH {', '.join(ctes)} SELECT {counts}", None

    def _insert_from(self, ins, source: str) -> str:
        cols = list(ins.values) + list(ins.now_cols)
        vals = [f":{c}" for c in ins.values] + [self.now] * len(ins.now_cols)
        sql = f"INSERT INTO {ins.table} ({', '.join(cols)}) SELECT {', '.join(vals)} FROM {source}"
        return sql + " " + ON_CONFLICT_IDENTITY if ins.upsert else sql

    def write_ends(self, conn, ends: list) -> None:
        for e in ends:
            self._run(conn.cursor(), journal_end_sql(self.now), journal_end_params(e))

    def is_disconnect(self, exc: BaseException) -> bool:
        import psycopg

        return isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError))
