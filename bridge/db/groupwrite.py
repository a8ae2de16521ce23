"""Group commit for the writes of claimed rows.

A daemon's workers each write their own rows (a call's journal row, a
transition with its inbox rows), and each must know its write committed
before it goes on.  When several want to write at the same moment, one of
them (the leader) sends them all at once, on its own connection, as one statement (PostgreSQL), one round trip (MariaDB) or one
transaction (SQLite); the others wait for the result of their own write.  A
worker alone writes at once, so nothing waits when there is nothing to
share.  Every write keeps its own guard: one whose lease is lost gets False
and writes nothing but its journal outcomes, whatever the others do.

Each waiting worker is woken once: when its write is done, or when it is
made the next leader (it then sends its own write and those queued behind it).
"""
from __future__ import annotations

import threading

from bridge.db.dialects.base import GuardedWrite
from bridge.db.store import Store


class _Slot:
    __slots__ = ("write", "store", "result", "done", "lead", "event")

    def __init__(self, write: GuardedWrite, store: Store):
        self.write = write
        self.store = store
        self.result = None
        self.done = False
        self.lead = False
        self.event = threading.Event()


class GroupWriter:
    def __init__(self, max_batch: int = 32):
        self.max_batch = max_batch
        self._lock = threading.Lock()
        self._queue: list[_Slot] = []
        self._busy = False

    def write(self, w: GuardedWrite, store: Store) -> bool:
        """Same contract as Dialect.write: True when the guard held, False when
        it touched no row; an error of the database is raised.  `store`: the
        writer's own, used if it leads."""
        slot = _Slot(w, store)
        with self._lock:
            if self._busy:
                self._queue.append(slot)
            else:
                self._busy = True
                slot.lead = True
        if not slot.lead:
            slot.event.wait()
        if not slot.done:
            self._lead(slot)
        if isinstance(slot.result, BaseException):
            raise slot.result
        return slot.result

    def _lead(self, slot: _Slot) -> None:
        with self._lock:
            batch = [slot] + self._queue[:self.max_batch - 1]
            del self._queue[:self.max_batch - 1]
        try:
            results = slot.store.write_many([s.write for s in batch])
        except BaseException as exc:      # write_many returns errors; this is a bug or an interrupt
            results = [exc] * len(batch)
        with self._lock:
            following = self._queue.pop(0) if self._queue else None
            if following is None:
                self._busy = False
            else:
                following.lead = True
        for s, r in zip(batch, results):
            s.result, s.done = r, True
            if s is not slot:
                s.event.set()
        if following is not None:
            following.event.set()

    @property
    def waiting(self) -> int:
        """Writes queued behind the one on the wire."""
        with self._lock:
            return len(self._queue)

    @property
    def busy(self) -> bool:
        return self._busy
