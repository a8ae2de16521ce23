"""systemd's notify protocol (sd_notify(3)): one datagram of "KEY=value" lines to
the AF_UNIX socket named by $NOTIFY_SOCKET ("@name" is in the abstract namespace).
A few lines, so no library: without the variable (not under systemd, Windows)
every call does nothing.

    READY=1       start-up finished (Type=notify: systemctl start returns now)
    WATCHDOG=1    alive; with WatchdogSec= systemd restarts the service when these stop
    STOPPING=1    stopping
    STATUS=...    one line shown by systemctl status
"""
from __future__ import annotations

import os
import socket
from typing import Optional


def notify(*lines: str) -> bool:
    """Send the lines; False when there is no socket to send to (or it failed)."""
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr or not hasattr(socket, "AF_UNIX"):
        return False
    if addr.startswith("@"):
        addr = "\0" + addr[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.connect(addr)
            s.sendall("\n".join(lines).encode("utf-8"))
        return True
    except OSError:
        return False


def watchdog_interval() -> Optional[float]:
    """Seconds between WATCHDOG=1 pings (half of WatchdogSec=), or None without a watchdog."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return max(0.5, int(usec) / 1e6 / 2)
    except ValueError:
        return None
