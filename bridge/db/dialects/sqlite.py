from __future__ import annotations

import sqlite3

from bridge.db.dialects.base import CLAIM_COLUMNS, Dialect, on_conflict_identity_upsert

SQLITE_NOW = "strftime('%Y-%m-%d %H:%M:%f','now')"


class SQLiteDialect(Dialect):
    name = "sqlite"
    paramstyle = "named"
    now = SQLITE_NOW
    autocommit = True
    # SQLite has no row locks: BEGIN IMMEDIATE takes the write lock for the
    # whole (short) claim transaction, which serialises claimers across processes.
    claim_sql = f"""
        SELECT o.id, o.state FROM mi_outbox o
         WHERE o.state IN ('pending', 'in_doubt') AND o.next_attempt_at <= {SQLITE_NOW}
           AND NOT EXISTS (SELECT 1 FROM mi_outbox p
                            WHERE p.serial_key = o.serial_key AND p.id < o.id
                              AND p.state NOT IN ('done', 'failed', 'resolved'))
         ORDER BY o.next_attempt_at, o.id
         LIMIT :limit"""
    # The claim reads the whole rows (with the state they are claimed from),
    # then leases them by id.  UPDATE ... RETURNING (SQLite 3.35+) would save
    # nothing: RETURNING sees only the new row, and the claim needs the old state.
    claim_rows_sql = claim_sql.replace(
        "SELECT o.id, o.state", "SELECT " + ", ".join("o.state" if c == "was_state" else f"o.{c}"
                                                     for c in CLAIM_COLUMNS))
    identity_upsert_sql = on_conflict_identity_upsert(SQLITE_NOW)

    def after(self, param: str) -> str:
        return f"strftime('%Y-%m-%d %H:%M:%f','now', printf('%+.3f seconds', :{param}))"

    def age_seconds(self, column: str) -> str:
        return f"((julianday('now') - julianday({column})) * 86400.0)"

    def connect(self, url):
        conn = sqlite3.connect(url.database, timeout=30, isolation_level=None,
                               check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA busy_timeout=30000")
        conn.execute("PRAGMA foreign_keys=ON")
        return _SQLiteConnection(conn)

    def begin_claim(self, conn) -> None:
        conn.begin_immediate()

    def begin(self, conn, cur, write: bool = True) -> None:
        # IMMEDIATE: take the write lock first, so a transaction that reads then
        # writes never fails to upgrade its lock (SQLITE_BUSY) half-way.
        conn.begin_immediate()

    def claim(self, conn, owner: str, lease, limit: int) -> list[tuple]:
        """One BEGIN IMMEDIATE (the write lock serialises claimers across
        processes), the rows, one UPDATE for all of them, COMMIT."""
        conn.begin_immediate()
        cur = self._run(conn.cursor(), self.claim_rows_sql, {"limit": limit})
        rows = cur.fetchall()
        leased: set = set()
        if rows:
            ids = {f"i{n}": r[0] for n, r in enumerate(rows)}
            # The state guard again, and only the rows this UPDATE leased: the write lock
            # makes it redundant, but a connection whose transaction was lost (SQLite rolls
            # back by itself on "disk full") must never lease a row another worker holds.
            self._run(cur, f"""
                UPDATE mi_outbox
                   SET state = 'running', lease_owner = :owner, lease_expires_at = {self.after('lease')},
                       attempts = attempts + 1, updated_at = {SQLITE_NOW}
                 WHERE id IN ({', '.join(':' + k for k in ids)}) AND state IN ('pending', 'in_doubt')
                RETURNING id""", dict(ids, owner=owner, lease=lease))
            leased = {r[0] for r in cur.fetchall()}
        conn.commit()
        return [tuple(r[:9]) + (int(r[9]) + 1, r[10]) for r in rows if r[0] in leased]

    def write_many(self, conn, writes: list) -> list[bool]:
        """All in one BEGIN IMMEDIATE ... COMMIT: one commit for the lot."""
        cur = conn.cursor()
        conn.begin_immediate()
        out = [self._write_in_tx(cur, w) for w in writes]
        conn.commit()
        return out

    def is_disconnect(self, exc: BaseException) -> bool:
        # "locked"/"busy": another process held the write lock past busy_timeout;
        # transient like a lost connection, so writes are retried the same way.
        return isinstance(exc, sqlite3.OperationalError) and any(
            t in str(exc) for t in ("unable to open", "database is locked", "database is busy"))


class _SQLiteConnection:
    """sqlite3 in autocommit mode: a statement alone runs in its own implicit
    transaction; begin_immediate() opens one for several, ended by commit or
    rollback.  Whether a transaction is open is SQLite's own word
    (`in_transaction`), never a flag of ours: SQLite rolls a transaction back by
    itself on some errors ("disk full", I/O errors), and a flag left set would turn
    every later "transaction" into statements that commit one by one."""

    def __init__(self, raw: sqlite3.Connection):
        self.raw = raw

    def begin_immediate(self):
        if not self.raw.in_transaction:
            self.raw.execute("BEGIN IMMEDIATE")

    def cursor(self):
        return self.raw.cursor()

    def commit(self):
        if self.raw.in_transaction:
            self.raw.execute("COMMIT")

    def rollback(self):
        if self.raw.in_transaction:
            self.raw.execute("ROLLBACK")

    def executescript(self, text):
        self.rollback()
        self.raw.executescript(text)

    def close(self):
        self.raw.close()
