"""Counts what a Store sends to its database: round trips (one execute, one
BEGIN, one COMMIT ...) and statements (a MariaDB multi-statement round trip
holds several).  It wraps the Store's real connection; nothing is mocked."""
from __future__ import annotations

import re

from bridge.db.store import Store

# Statement separators in the engine's SQL: ';' outside quotes.
_STATEMENTS = re.compile(r"""(?:[^;'"]|'[^']*'|"[^"]*")+""")


def statements_in(sql: str) -> int:
    return sum(1 for part in _STATEMENTS.findall(sql) if part.strip())


class Counter:
    def __init__(self):
        self.round_trips = 0
        self.statements = 0
        self.log: list[str] = []

    def add(self, sql: str) -> None:
        self.round_trips += 1
        self.statements += statements_in(sql)
        self.log.append(" ".join(sql.split())[:100])

    def reset(self) -> tuple[int, int]:
        out = (self.round_trips, self.statements)
        self.round_trips = self.statements = 0
        self.log = []
        return out


class _Cursor:
    def __init__(self, real, counter: Counter):
        self._real, self._counter = real, counter

    def execute(self, sql, *args, **kwargs):
        self._counter.add(sql)
        return self._real.execute(sql, *args, **kwargs)

    def executemany(self, sql, *args, **kwargs):
        self._counter.add(sql)
        return self._real.executemany(sql, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._real, name)

    def __iter__(self):
        return iter(self._real)


class _Connection:
    """The Store's connection, counting.  commit/rollback/begin are round trips;
    psycopg's commit in autocommit with no transaction open sends nothing, and
    the Store never calls it then."""

    def __init__(self, real, counter: Counter):
        self._real, self._counter = real, counter

    def cursor(self, *args, **kwargs):
        return _Cursor(self._real.cursor(*args, **kwargs), self._counter)

    def _open(self) -> bool:
        raw = getattr(self._real, "raw", None)       # the SQLite wrapper: only when one is open
        return raw.in_transaction if raw is not None else True

    def commit(self):
        if self._open():
            self._counter.add("COMMIT")
        return self._real.commit()

    def rollback(self):
        if self._open():
            self._counter.add("ROLLBACK")
        return self._real.rollback()

    def begin(self):                                   # pymysql
        self._counter.add("BEGIN")
        return self._real.begin()

    def begin_immediate(self):                         # the SQLite wrapper
        if not self._real.raw.in_transaction:
            self._counter.add("BEGIN IMMEDIATE")
        return self._real.begin_immediate()

    def __getattr__(self, name):
        return getattr(self._real, name)


def counting(store: Store) -> Counter:
    """Wrap the store's connection (opened now) so that it counts."""
    counter = Counter()
    store._conn = _Connection(store.conn, counter)
    return counter
