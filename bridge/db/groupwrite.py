"""Group commit for the writes of claimed rows.

A daemon's workers each write their own rows (a call's journal row, a
transition with its inbox rows), and each must know its write committed
before it goes on.  When several want to write at the same moment, one of
them (the leader) sends them all at once, on the GroupWriter's own
connection, as one statement (PostgreSQL), one round trip (MariaDB) or one
transaction (SQLite); the others wait for the result of their own write.  A
worker alone writes at once, so nothing waits when there is nothing to
share.  Every write keeps its own guard: one whose lease is lost gets False
and writes nothing but its journal outcomes, whatever the others do.
"""
from __future__ import annotations

import threading

from bridge.db.dialects.base import GuardedWrite
from bridge.db.store import Store


class _Slot:
    __slots__ = ("write", "result", "done")

    def __init__(self, write: GuardedWrite):
        self.write = write
        self.result = None
        self.done = False


class GroupWriter:
    def __init__(self, store: Store, max_batch: int = 32):
        self._store = store
        self.max_batch = max_batch
        self._cond = threading.Condition()
        self._queue: list[_Slot] = []
        self._busy = False

    def write(self, w: GuardedWrite) -> bool:
        """Same contract as Dialect.write: True when the guard held, False when
        it touched no row; an error of the database is raised."""
        slot = _Slot(w)
        cond = self._cond
        with cond:
            self._queue.append(slot)
            while not slot.done:
                if self._busy:
                    cond.wait()
                    continue
                self._busy = True
                batch = self._queue[:self.max_batch]
                del self._queue[:self.max_batch]
                cond.release()
                try:
                    try:
                        results = self._store.write_many([s.write for s in batch])
                    except BaseException as exc:      # write_many returns errors; this is a bug or an interrupt
                        results = [exc] * len(batch)
                finally:
                    cond.acquire()
                    for s, r in zip(batch, results):
                        s.result, s.done = r, True
                    self._busy = False
                    cond.notify_all()
        if isinstance(slot.result, BaseException):
            raise slot.result
        return slot.result

    def close(self) -> None:
        self._store.close()
