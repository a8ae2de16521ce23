"""A database connection per HTTP worker thread, for the platforms' notice endpoints
(daemon/notice_endpoint.py, daemon/channel_callbacks.py): a connection is never shared
between threads, and one is not opened per request."""
from __future__ import annotations

import threading
from typing import Callable

from loguru import logger

from bridge.db.store import Store


class ThreadStores:
    """One Store per server worker thread, opened on first use and kept; dropped after a
    database error (the next request opens a fresh one); all closed at stop."""

    def __init__(self, new_store: Callable[[], Store]):
        self.new_store = new_store
        self._local = threading.local()
        self._stores: list[Store] = []
        self._lock = threading.Lock()

    def get(self) -> Store:
        s = getattr(self._local, "store", None)
        if s is None:
            s = self._local.store = self.new_store()
            with self._lock:
                self._stores.append(s)
        return s

    def drop(self) -> None:
        s = getattr(self._local, "store", None)
        self._local.store = None
        if s is None:
            return
        with self._lock:
            if s in self._stores:
                self._stores.remove(s)
        try:
            s.close()
        except Exception as exc:
            logger.debug("closing a broken database connection: {}", exc)

    def close(self) -> None:
        with self._lock:
            stores, self._stores = self._stores, []
        for s in stores:
            s.close()
