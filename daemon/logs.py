"""Logging through loguru, with personal data masked on the way out.

Every record passes through bridge.masking.mask_text, so an ID-card or mobile
number that slips into a message is masked even if the code that logged it
forgot.  Names cannot be recognised in free text: code logs them only through
mask_value() of a structured object, or not at all.
"""
from __future__ import annotations

import sys

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


def setup(level: str = "INFO", file: str = "", rotation: str = "50 MB", retention: str = "90 days") -> None:
    logger.remove()
    logger.configure(patcher=_mask)
    fmt = "{time:YYYY-MM-DD HH:mm:ss.SSS} | {level:<7} | {thread.name} | {message}"
    logger.add(sys.stderr, level=level, format=fmt, backtrace=False, diagnose=False)
    if file:
        # diagnose=False: loguru would otherwise print local variables (secrets) in tracebacks.
        # No enqueue: it pickles every record through a multiprocessing queue, which is for
        # several processes sharing one file (15% of the daemon's CPU per payment, issue 11).
        # The daemon is one process; loguru's handler lock serialises its threads' writes,
        # so a line is never torn or interleaved, and rotation happens under the same lock.
        logger.add(file, level=level, format=fmt, rotation=rotation, retention=retention,
                   backtrace=False, diagnose=False, enqueue=False)
