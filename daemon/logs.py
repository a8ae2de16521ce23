"""Logging through loguru, with personal data masked on the way out.

Every record passes through bridge.masking.mask_text, so an ID-card or mobile
number that slips into a message is masked even if the code that logged it
forgot.  Names cannot be recognised in free text: code logs them only through
mask_value() of a structured object, or not at all.
"""
from __future__ import annotations

import sys
import threading
import time
from typing import Optional

from loguru import logger

from bridge.masking import mask_text


def _mask(record) -> None:
    record["message"] = mask_text(record["message"])
    exc = record["exception"]
    if exc is not None and exc.value is not None:
        # Exception texts (database errors quoting a row, client errors quoting a
        # request) are printed with tracebacks: mask them too, keeping the type name.
        text = str(exc.value)
        masked = mask_text(text)
        if masked != text:
            shown = type(exc.type.__name__, (Exception,), {"__module__": exc.type.__module__})
            record["exception"] = exc._replace(type=shown, value=shown(masked))


def setup(level: str = "INFO", file: str = "", rotation: str = "50 MB", retention: str = "90 days",
          format: str = "text") -> None:
    """One sink: the file when one is given, else stderr (journald, the Windows
    event log).  Never both, so that a line is not stored twice (docs/operations.md)."""
    logger.remove()
    logger.configure(patcher=_mask)
    fmt = "{time:YYYY-MM-DD HH:mm:ss.SSS} | {level:<7} | {thread.name} | {message}"
    # serialize: one JSON object per line ("text" is the formatted line), for log shippers.
    serialize = format == "json"
    if not file:
        logger.add(sys.stderr, level=level, format=fmt, backtrace=False, diagnose=False, serialize=serialize)
    else:
        # diagnose=False: loguru would otherwise print local variables (secrets) in tracebacks.
        # No enqueue: it pickles every record through a multiprocessing queue, which is for
        # several processes sharing one file (15% of the daemon's CPU per payment, issue 11).
        # The daemon is one process; loguru's handler lock serialises its threads' writes,
        # so a line is never torn or interleaved, and rotation happens under the same lock.
        logger.add(file, level=level, format=fmt, rotation=rotation, retention=retention,
                   backtrace=False, diagnose=False, enqueue=False, serialize=serialize)


def setup_from(cfg) -> None:
    """setup() from a Config's [logging] section."""
    lc = cfg.logging
    setup(lc.level, lc.file, lc.rotation, lc.retention, lc.format)


# What a client's message says when the platform could not be reached at all.
_OUTAGE_MARKERS = ("connection refused", "connecterror", "connect error", "timed out", "timeout",
                   "name or service not known", "no route to host", "network is unreachable",
                   "connection reset", "remoteprotocolerror", "server disconnected")


def is_outage(outcome: str, message: Optional[str]) -> bool:
    """A call that failed because the platform could not be reached (or did not
    answer in time), as opposed to a platform's own refusal."""
    if outcome not in ("not_sent", "unknown"):
        return False
    text = (message or "").lower()
    return any(m in text for m in _OUTAGE_MARKERS)


class OutageLog:
    """Platform outages at WARNING, rate-limited: the first failed call to an
    interface is logged at once, later ones are counted and logged as one line per
    interface per `window` seconds; the first success after failures says the
    platform answers again.  Fed by the engine's `call` events."""

    def __init__(self, window: float = 60.0, clock=time.monotonic):
        self.window = window
        self._clock = clock
        self._lock = threading.Lock()
        # interface -> [window start, failures since the last line, failures in total, last message]
        self._state: dict[str, list] = {}

    def on_call(self, interface: str, outcome: str, message: Optional[str] = None, **_) -> None:
        now = self._clock()
        with self._lock:
            st = self._state.get(interface)
            if not is_outage(outcome, message):
                if st is not None and outcome == "ok":
                    del self._state[interface]
                    logger.warning("platform {} answers again after {} failed call(s)", interface, st[2])
                return
            if st is None:
                self._state[interface] = [now, 0, 1, message]
                logger.warning("platform {} cannot be reached: {} (further failures: one line per {:.0f} s)",
                               interface, message, self.window)
                return
            st[1] += 1
            st[2] += 1
            st[3] = message
            if now - st[0] >= self.window:
                logger.warning("platform {} still cannot be reached: {} failed call(s) in the last {:.0f} s "
                               "(last: {})", interface, st[1], now - st[0], message)
                st[0], st[1] = now, 0
