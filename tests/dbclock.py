"""Daemon rounds run in the test's own process, with the database clock set by hand.

A test of the shipped timings (a 120 s settle window, say) must not sleep for two
minutes.  Every time mibridge compares is measured on the database clock from a
timestamp in the database (docs/engine.md "Time"), so moving those timestamps back is
the same, for the daemon, as that much time passing:

* `due(row)`             next_attempt_at = now: the row's wait is over;
* `age_call(row, s)`     the journal row of the row's call in doubt started `s` seconds
                         earlier than it did (ctx.doubt_age_seconds(), the settle window).

`round()` is one pass of a worker: claim what is due, run it (the real Runner, the real
flows and clients, the real database; the platforms are the simulator over HTTP).
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from bridge.db.store import Store
from bridge.engine.backoff import Backoff
from bridge.engine.flow import Registry
from bridge.engine.runner import Runner, RunnerSettings
from daemon import config as daemon_config
from daemon.app import build
from tests.engine.daemonproc import without_password


class Rounds:
    def __init__(self, tmp_path: Path, url: str, toml: str, owner: str = "rounds"):
        cfg_path = tmp_path / "rounds.toml"
        # The config refuses a password in the URL; the Store below is given it directly.
        cfg_path.write_text(f'[database]\nurl = "{without_password(url)[0]}"\n' + toml)
        self.wiring = build(daemon_config.load(cfg_path))
        reg = Registry()
        for f in self.wiring.flows:
            reg.register(f)
        self.store = Store(url)
        self.runner = Runner(self.store, reg, RunnerSettings(lease_seconds=60, backoff=Backoff(0.01, 0.05, 0.0),
                                                             persist_timeout=5.0), self.wiring.services)
        self.owner = owner

    def close(self) -> None:
        for svc in self.wiring.services.values():
            for obj in (getattr(svc, "offline", None), svc):
                close = getattr(obj, "close", None)
                if callable(close):
                    try:
                        close()
                    except Exception:
                        pass
        self.store.close()

    # -- running --------------------------------------------------------------------
    def round(self) -> int:
        """Claim every due row once and run it; the number of rows run."""
        rows = self.store.claim(self.owner, 60, limit=20)
        for row in rows:
            self.runner.run(row, self.owner)
        return len(rows)

    def run_until(self, pred, rounds: int = 200, make_due: bool = True) -> None:
        """Rounds until pred() holds; each round first makes every open row due (the
        waits are the daemon's business, not what these tests are about)."""
        for _ in range(rounds):
            if pred():
                return
            if make_due:
                self.store.execute(f"UPDATE mi_outbox SET next_attempt_at = {self.store.dialect.now} "
                                   "WHERE state IN ('pending', 'in_doubt')")
            self.round()
        if not pred():
            raise AssertionError(f"condition not reached after {rounds} rounds: {self.open_rows()}")

    # -- the database clock -----------------------------------------------------------
    def due(self, row_id: int) -> None:
        self.store.execute(f"UPDATE mi_outbox SET next_attempt_at = {self.store.dialect.now} WHERE id = :i",
                           {"i": row_id})

    def age_call(self, row_id: int, seconds: float) -> Optional[float]:
        """Move the start of the row's call in doubt `seconds` into the past; its new age."""
        msg = self.row(row_id)["current_call"]
        if msg is None:
            return None
        d = self.store.dialect
        age = self.store.call_age_seconds(msg) or 0.0
        self.store.execute(f"UPDATE mi_journal SET started_at = {d.after('x')} WHERE msg_id = :m",
                           {"x": d.seconds(-(age + seconds)), "m": msg})
        return self.store.call_age_seconds(msg)

    # -- reading --------------------------------------------------------------------
    def row(self, row_id: int) -> dict:
        r = self.store.query("""SELECT state, step, attempts, max_attempts, current_call, last_error_code,
                                       last_error_message FROM mi_outbox WHERE id = :i""", {"i": row_id})[0]
        return dict(zip(("state", "step", "attempts", "max_attempts", "current_call", "code", "message"), r))

    def open_rows(self) -> list:
        return [tuple(r) for r in self.store.query(
            """SELECT id, kind, business_key, state, step, attempts, last_error_code, last_error_message
                 FROM mi_outbox WHERE state NOT IN ('done', 'failed', 'resolved') ORDER BY id""")]

    def calls(self, row_id: int, interface: Optional[str] = None) -> list[tuple]:
        sql = "SELECT interface, outcome, error_message FROM mi_journal WHERE outbox_id = :o"
        params: dict = {"o": row_id}
        if interface:
            sql += " AND interface = :i"
            params["i"] = interface
        return [tuple(r) for r in self.store.query(sql + " ORDER BY id", params)]
