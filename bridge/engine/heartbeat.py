"""Lease renewal while rows are being worked on.

One thread per daemon, on its own database connection, renews the lease of
every row the daemon holds (being worked on, or claimed and waiting for a
free worker), every lease/3 seconds, with the database's clock: one
statement for all of them.
A row whose renewal touches nothing has been rescued by another daemon (our
lease expired): that is logged, and the worker's next guarded write fails
harmlessly (LostLease), so no other bookkeeping is needed.
"""
from __future__ import annotations

import threading

from loguru import logger

from bridge.db.store import Store
from bridge.engine import events


class Heartbeat:
    def __init__(self, store_factory, lease_seconds: float):
        self._store_factory = store_factory
        self.lease_seconds = lease_seconds
        self.interval = max(0.2, lease_seconds / 3.0)
        self._held: dict[int, str] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="mibridge-heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def hold(self, row_id: int, owner: str) -> None:
        with self._lock:
            self._held[row_id] = owner

    def release(self, row_id: int, owner: str) -> None:
        """Stop renewing a row's lease, if `owner` still holds it here: a worker that lost
        the row, and finishes after this daemon claimed it again under a new owner, must
        not stop the renewal of the new claim (its lease would run out mid-call)."""
        with self._lock:
            if self._held.get(row_id) == owner:
                del self._held[row_id]

    def _loop(self) -> None:
        store: Store | None = None
        while not self._stop.wait(self.interval):
            with self._lock:
                held = list(self._held.items())
            if not held:
                continue
            try:
                store = store or self._store_factory()
                lost = set(store.heartbeat_many(dict(held), self.lease_seconds))
                for row_id, _owner in held:
                    events.emit("heartbeat", renewed=row_id not in lost)
                for row_id in lost:
                    logger.warning("row {}: lease could not be renewed (rescued elsewhere?)", row_id)
            except Exception as exc:
                logger.warning("heartbeat failed ({}); will retry", exc)
                if store is not None:
                    store.close()
                store = None
        if store is not None:
            store.close()
