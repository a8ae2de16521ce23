"""Real daemon processes for the crash, race and restart tests."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

from bridge.db.store import Store

CONFIG = """
[database]
url = "{url}"

[daemon]
workers = {workers}
poll_interval = 0.1
lease_seconds = {lease}
recovery_interval = 0.5
retry_base_seconds = 0.1
retry_cap_seconds = 1.0
stop_timeout = 10

[logging]
level = "INFO"
file = "{log}"
"""

TESTPLATFORM = """
[testplatform]
url = "{platform}"
timeout = {timeout}
settle_seconds = 2.0
"""


def without_password(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    if not parts.password:
        return url, ""
    host = parts.hostname + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=f"{parts.username}@{host}")), unquote(parts.password)


class DaemonProcess:
    def __init__(self, tmp_path: Path, url: str, platform_url: str | None, name: str = "d",
                 workers: int = 2, lease: float = 2.0, timeout: float = 1.0, crash_at: str | None = None,
                 extra: str = "", env: dict | None = None):
        """`platform_url`: the test platform (None: no test flows); `extra`: more TOML
        sections ([mobilepay], [offline], ...); `env`: more environment (secrets)."""
        self.log = tmp_path / f"{name}.log"
        cfg = tmp_path / f"{name}.toml"
        # The config file refuses a password inside the URL: it goes to the environment.
        url, password = without_password(url)
        text = CONFIG.format(url=url, workers=workers, lease=lease, log=self.log)
        if platform_url:
            text += TESTPLATFORM.format(platform=platform_url, timeout=timeout)
        cfg.write_text(text + extra)
        self.config_path = cfg
        env = dict(os.environ, **(env or {}))
        if password:
            env["MIBRIDGE_DB_PASSWORD"] = password
        env.pop("MIBRIDGE_CRASH_AT", None)
        if crash_at:
            env["MIBRIDGE_CRASH_AT"] = crash_at
        self.stderr = open(tmp_path / f"{name}.stderr", "wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "daemon.cli", "-c", str(cfg), "run"],
                                     env=env, stdout=self.stderr, stderr=subprocess.STDOUT)

    def wait_exit(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"daemon did not exit within {timeout}s; log:\n{self.tail()}")

    def terminate(self, timeout: float = 20) -> int:
        # Not before it has installed its SIGTERM handler (it logs "starting" after): a
        # daemon stopped while still importing dies of the signal (-15) instead of
        # stopping cleanly, as a module fixture torn down right after its set-up saw.
        self.wait_started(timeout)
        self.proc.send_signal(signal.SIGTERM)
        return self.wait_exit(timeout)

    def wait_started(self, timeout: float = 30) -> bool:
        """Until the daemon logged its start (True) or exited (False)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                if "mibridge daemon starting" in self.log.read_text(errors="replace"):
                    return True
            except FileNotFoundError:
                pass
            time.sleep(0.05)
        return False

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except FileNotFoundError:
            return "(no log)"


# A pending row behind a held row of its serial key waits for a person (docs/engine.md):
# with blocked_ok it counts as settled for the wait, reported as state "blocked".
_BLOCKED = """SELECT COUNT(*) FROM mi_outbox o WHERE o.state = 'pending' AND EXISTS (
                SELECT 1 FROM mi_outbox h WHERE h.state = 'held' AND h.id < o.id
                   AND COALESCE(h.serial_key, h.business_key) = COALESCE(o.serial_key, o.business_key))"""


def wait_until_final(store: Store, timeout: float, proc: DaemonProcess | None = None,
                     blocked_ok: bool = False) -> dict:
    """Wait until no row is pending/running/in_doubt; returns {state: count}."""
    deadline = time.monotonic() + timeout
    last = {}
    while time.monotonic() < deadline:
        try:
            last = {r[0]: int(r[1]) for r in store.query("SELECT state, COUNT(*) FROM mi_outbox GROUP BY state")}
            if blocked_ok and last.get("pending"):
                blocked = int(store.query(_BLOCKED)[0][0])
                if blocked:
                    last["blocked"] = blocked
                    last["pending"] -= blocked
                    if not last["pending"]:
                        del last["pending"]
        except Exception:
            time.sleep(0.3)   # the database may be restarting
            continue
        if not any(last.get(s) for s in ("pending", "running", "in_doubt")):
            return last
        if proc is not None and proc.proc.poll() is not None:
            raise AssertionError(f"daemon exited early ({proc.proc.returncode}); log:\n{proc.tail()}")
        time.sleep(0.2)
    open_rows = store.query("""SELECT id, kind, business_key, state, step, attempts, last_error_code,
                                      last_error_message FROM mi_outbox
                                WHERE state IN ('pending', 'running', 'in_doubt', 'held') ORDER BY id""")
    raise AssertionError(f"rows not final after {timeout}s: {last}; open: {[tuple(r) for r in open_rows]}; "
                         f"log:\n{proc.tail() if proc else ''}")
