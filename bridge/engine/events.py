"""Observer hooks: what the engine tells whoever watches it (the daemon's metrics).

The engine calls `emit(name, **fields)` at the few places worth counting (a
platform call, a claim, a lease renewal, a rescue, a notice, a scheduled job);
the daemon registers callbacks with `subscribe`.  bridge/ stays free of any
metrics library, and with no subscriber an emit costs one dict lookup.

A callback must be quick and must not raise; if one does, the error is logged
once per event name and the engine carries on: watching never stops the work.

Events and their fields:
    call        interface, outcome (ok|rejected|unknown|not_sent), seconds, transient
    claim       rows (claimed), seconds (the claim transaction)
    heartbeat   renewed (bool)
    rescue      rows (returned to work by lease recovery)
    notice      interface, verdict (received|verified|refused), reason
    job         job (name), result (ok|failed), seconds
"""
from __future__ import annotations

import threading
from typing import Callable

from loguru import logger

_subscribers: dict[str, list[Callable[..., None]]] = {}
_lock = threading.Lock()
_failed: set[str] = set()


def subscribe(name: str, fn: Callable[..., None]) -> Callable[[], None]:
    """Call fn(**fields) on each `name` event; returns the unsubscribe function."""
    with _lock:
        _subscribers.setdefault(name, []).append(fn)

    def unsubscribe() -> None:
        with _lock:
            fns = _subscribers.get(name, [])
            if fn in fns:
                fns.remove(fn)
    return unsubscribe


def emit(name: str, **fields) -> None:
    fns = _subscribers.get(name)
    if not fns:
        return
    for fn in list(fns):
        try:
            fn(**fields)
        except Exception as exc:       # an observer's bug never stops the engine
            if name not in _failed:
                _failed.add(name)
                logger.warning("observer of {} events failed ({}: {}); further failures are not logged",
                               name, type(exc).__name__, exc)
