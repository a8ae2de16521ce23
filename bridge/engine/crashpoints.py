"""Crash injection for the crash-matrix tests.

When the environment variable MIBRIDGE_CRASH_AT names a point, the daemon
kills itself with SIGKILL the first time it reaches that point: no cleanup,
no finally blocks, exactly like a power cut or `kill -9`.  Unset (always, in
production) this is a no-op.  Points, in the order a request meets them:

    after_claim     the claim transaction committed
    after_journal   the journal row is written, the remote call not yet sent
    after_call      the remote call returned; its result is not written yet
    after_inbox     the final state and the inbox rows committed

A point may name an interface, "after_call:6202": then only that call counts
(the multi-call flows are killed at each of their calls in turn).
"""
from __future__ import annotations

import os
import signal

POINTS = ("after_claim", "after_journal", "after_call", "after_inbox")


def crashpoint(name: str, interface: str | None = None) -> None:
    want = os.environ.get("MIBRIDGE_CRASH_AT")
    if not want:
        return
    if want == name or (interface is not None and want == f"{name}:{interface}"):
        if hasattr(signal, "SIGKILL"):
            os.kill(os.getpid(), signal.SIGKILL)
        os._exit(137)
