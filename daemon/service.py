"""The long-running service: worker threads, lease heartbeat, scheduled jobs,
and (on PostgreSQL) a LISTEN connection that wakes idle workers at once.

Claims are shared: a worker that needs a row takes one another worker's claim
left for it; when there is none, one idle worker claims up to claim_batch rows
in one statement, keeps the first and hands the rest out as workers free up.
Every claimed row's lease is held by the heartbeat from the claim on, so a row
waiting for a worker never runs out of lease.  One claim's rows share its
owner (unique per claim); two rows of one serial key are never in one claim.
With [daemon] group_writes, writes are shared too: when workers write their
rows at the same moment, one of them sends them all in one round trip
(bridge/db/groupwrite.py).  That halves the database's time per request with
many workers, but serialises the writes: on two cores it cost about 30% of
the no-op throughput (bench/peer.py --compare-group-writes), so it is off by
default.

Stopping (SIGTERM, Ctrl-C, the Windows service's stop): no new rows are
claimed; rows already in progress finish their current step, up to
stop_timeout; rows claimed but not started are given back as they were.  A
row still running after that keeps its lease until it expires and the
rescuer takes it; nothing is lost either way.
"""
from __future__ import annotations

import itertools
import os
import signal
import threading
import time
from collections import deque
from typing import Callable, Optional

from loguru import logger

from bridge.db.groupwrite import GroupWriter
from bridge.db.store import Store
from bridge.engine import events
from bridge.engine.backoff import Backoff
from bridge.engine.flow import Registry
from bridge.engine.heartbeat import Heartbeat
from bridge.engine.runner import Runner, RunnerSettings
from daemon import jobs, sdnotify
from daemon.config import Config
from daemon.logs import OutageLog


class Daemon:
    def __init__(self, config: Config, registry: Registry, services: Optional[dict] = None,
                 extra_jobs: Optional[list[Callable]] = None,
                 servers: Optional[list[Callable]] = None):
        self.config = config
        self.registry = registry
        self.services = services or {}
        self.extra_jobs = extra_jobs or []
        self.servers = servers or []
        self._server_stops: list[Callable] = []
        self.stopping = threading.Event()
        self._stopped = False
        self.wake = threading.Event()
        self._threads: list[threading.Thread] = []
        self._seq = itertools.count(1)
        self._seq_lock = threading.Lock()
        dc = config.daemon
        self.settings = RunnerSettings(
            lease_seconds=dc.lease_seconds,
            backoff=Backoff(base=dc.retry_base_seconds, cap=dc.retry_cap_seconds),
            persist_timeout=max(dc.lease_seconds, 5.0))
        self.heartbeat = Heartbeat(self.new_store, dc.lease_seconds)
        # [daemon] group_writes: the workers' writes of their rows sent together
        # when they coincide; otherwise each worker writes on its own connection.
        self.group_writes = dc.group_writes
        self.writer: Optional[GroupWriter] = None
        self.scheduler = None
        # Rows handled by this process: a progress hint for benches and logs (the
        # unlocked += may miss a count; the database has the real numbers).
        self.processed = 0
        # Rows claimed for this daemon's workers and not taken yet: (row, owner).
        self._handout: deque = deque()
        self._handout_cond = threading.Condition()
        self._claiming = False          # one worker claims at a time
        self._claim_pause = 0.5         # backoff while the database is away
        # Each worker's last pass through its loop (monotonic), for /readyz.
        self.worker_beats: dict[int, float] = {}
        # The scheduled jobs' last runs: job id -> {name, at, result, seconds} (jobs.py).
        self.job_runs: dict[str, dict] = {}
        self.started_at: Optional[float] = None
        self.outage_log = OutageLog(config.logging.outage_log_seconds)
        self._unsubscribe: list[Callable] = []
        self.metrics = None
        if config.metrics.enabled:
            from daemon.metrics import Metrics
            self.metrics = Metrics(self.new_store, config.metrics.cache_seconds)

    def new_store(self) -> Store:
        return Store(self.config.database.url, self.config.database.password_env)

    def _owner(self, worker: int) -> str:
        # Unique per claim, not per worker: a worker that lost a row and then
        # claimed it again must not be able to write with its old lease.
        with self._seq_lock:
            n = next(self._seq)
        return f"{self.config.daemon.name[:24]}:{os.getpid()}:w{worker}:{n}"

    # -- lifecycle ------------------------------------------------------------
    def start(self) -> None:
        dc = self.config.daemon
        logger.info("mibridge daemon starting: {} worker(s), database {}, kinds: {}",
                    dc.workers, self.new_store().url.redacted(), ", ".join(self.registry.kinds()))
        self._unsubscribe.append(events.subscribe("call", self.outage_log.on_call))
        if self.metrics is not None:
            self.metrics.subscribe()
        self.started_at = time.monotonic()
        # The listeners first: a port that is taken (a second daemon) stops the start
        # before any row is claimed.
        try:
            for start in self.servers:
                self._server_stops.append(start(self))
        except Exception:
            for stop in self._server_stops:
                try:
                    stop()
                except Exception as exc:
                    logger.warning("server stop failed: {}", exc)
            self._server_stops = []
            raise
        self.heartbeat.start()
        if self.group_writes:
            self.writer = GroupWriter()
        self.scheduler = jobs.start_scheduler(self, self.extra_jobs)
        if self.new_store().dialect.supports_notify:
            self._spawn("mibridge-listen", self._listen_loop)
        for n in range(dc.workers):
            self._spawn(f"mibridge-worker-{n}", self._worker_loop, n)
        sdnotify.notify("READY=1", f"STATUS=running {dc.workers} worker(s)")

    def _spawn(self, name: str, target, *args) -> None:
        t = threading.Thread(target=target, args=args, name=name, daemon=True)
        t.start()
        self._threads.append(t)

    def stop(self) -> None:
        # Idempotent through its own flag: `stopping` is already set by the
        # signal handler when we get here, and must not skip the joins.
        if self._stopped:
            return
        self._stopped = True
        sdnotify.notify("STOPPING=1", "STATUS=stopping: finishing rows in progress")
        logger.info("mibridge daemon stopping: finishing rows in progress (up to {:.0f}s)",
                    self.config.daemon.stop_timeout)
        self.stopping.set()
        self.wake.set()
        with self._handout_cond:
            self._handout_cond.notify_all()
        for stop in self._server_stops:
            try:
                stop()
            except Exception as exc:
                logger.warning("server stop failed: {}", exc)
        deadline = time.monotonic() + self.config.daemon.stop_timeout
        for t in self._threads:
            t.join(timeout=max(0.1, deadline - time.monotonic()))
        alive = [t.name for t in self._threads if t.is_alive()]
        if alive:
            logger.warning("still busy at stop: {}; their rows return through lease recovery", ", ".join(alive))
        self._give_back()
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=False)
        self.heartbeat.stop()
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        if self.metrics is not None:
            self.metrics.close()
        logger.info("mibridge daemon stopped")

    def run_forever(self) -> None:
        """Foreground run for systemd / the Windows service / a terminal."""
        def on_signal(signum, _frame):
            logger.info("signal {} received", signum)
            self.stopping.set()
            self.wake.set()
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        self.start()
        # systemd's watchdog (WatchdogSec=): pinged while the workers are alive, so a
        # process whose workers all died or hang is restarted (docs/operations.md).
        every = sdnotify.watchdog_interval()
        last = 0.0
        while not self.stopping.wait(min(1.0, every or 1.0)):
            if every is not None and time.monotonic() - last >= every and self.workers_alive():
                sdnotify.notify("WATCHDOG=1")
                last = time.monotonic()
        self.stop()

    # -- health ---------------------------------------------------------------------
    def workers_alive(self) -> bool:
        workers = [t for t in self._threads if t.name.startswith("mibridge-worker-")]
        if not workers or not all(t.is_alive() for t in workers):
            return False
        stall = self.config.metrics.worker_stall_seconds
        now = time.monotonic()
        return all(now - self.worker_beats.get(n, self.started_at or now) < stall for n in range(len(workers)))

    def readiness(self) -> tuple[bool, dict]:
        """/readyz: the database answers, every worker comes back to its loop, and
        every platform that needs a sign-in (offline 9001) holds a valid one."""
        checks: dict[str, str] = {}
        ok = True
        store = self.new_store()
        try:
            store.ping()
            checks["database"] = "ok"
        except Exception as exc:
            ok = False
            checks["database"] = f"unreachable ({type(exc).__name__})"
        finally:
            store.close()
        if self.stopping.is_set():
            ok = False
            checks["workers"] = "stopping"
        elif self.workers_alive():
            checks["workers"] = f"ok ({self.config.daemon.workers})"
        else:
            ok = False
            checks["workers"] = "a worker died or has not come back to its loop"
        offline = self.services.get("offline")
        if offline is not None and getattr(offline.config, "require_sign_no", False):
            op = offline.config.default_operator
            if op is not None and offline.signin.current(op.opter) is None:
                ok = False
                checks["sign_in_9001"] = f"operator {op.opter} is not signed in"
            else:
                checks["sign_in_9001"] = "ok"
        return ok, checks

    # -- workers ------------------------------------------------------------------
    def _worker_loop(self, n: int) -> None:
        store = self.new_store()
        store.writer = self.writer
        runner = Runner(store, self.registry, self.settings, self.services)
        while not self.stopping.is_set():
            self.worker_beats[n] = time.monotonic()
            got = self._next_row(n, store)
            if got is None:
                continue
            row, owner = got
            try:
                runner.run(row, owner)
            except Exception:
                # run() handles flow errors itself; this is the last line of defence.
                logger.exception("worker {}: unexpected error on row {}; its lease will expire "
                                 "and the rescuer will take it", n, row.id)
                store.close()
            finally:
                self.heartbeat.release(row.id, owner)
                self.processed += 1
        store.close()

    def _next_row(self, n: int, store: Store):
        """A claimed row for worker n, as (row, owner), or None (look again)."""
        cond = self._handout_cond
        with cond:
            while True:
                if self.stopping.is_set():
                    return None
                if self._handout:
                    return self._handout.popleft()
                if not self._claiming:
                    self._claiming = True
                    break
                cond.wait(0.5)
        try:
            return self._claim(n, store)
        finally:
            with cond:
                self._claiming = False
                cond.notify()                   # the next idle worker claims next

    def _claim(self, n: int, store: Store):
        dc = self.config.daemon
        owner = self._owner(n)
        # Cleared before the claim: a NOTIFY that arrives during it wakes the next one.
        self.wake.clear()
        try:
            started = time.monotonic()
            rows = store.claim(owner, dc.lease_seconds, limit=dc.claim_batch)
            events.emit("claim", rows=len(rows), seconds=time.monotonic() - started)
            self._claim_pause = 0.5
        except Exception as exc:
            # Database down or restarting: keep trying, with backoff, forever.
            logger.warning("worker {}: claim failed ({}: {}); retrying in {:.1f}s", n, type(exc).__name__,
                           str(exc).splitlines()[0] if str(exc) else "", self._claim_pause)
            store.close()
            self.stopping.wait(self._claim_pause)
            self._claim_pause = min(self._claim_pause * 2, 10.0)
            return None
        if not rows:
            self.wake.wait(dc.poll_interval)
            return None
        for row in rows:
            self.heartbeat.hold(row.id, owner)
        with self._handout_cond:
            if self.stopping.is_set():          # claimed as the stop began: all go back
                self._handout.extend((row, owner) for row in rows)
                return None
            self._handout.extend((row, owner) for row in rows[1:])
            self._handout_cond.notify(len(rows) - 1)
        return rows[0], owner

    def _give_back(self) -> None:
        """Rows claimed but never started go back as they were (state, attempts),
        instead of waiting for their lease to run out."""
        with self._handout_cond:
            left = list(self._handout)
            self._handout.clear()
        if not left:
            return
        store = self.new_store()
        try:
            for row, owner in left:
                try:
                    store.unclaim(row, owner)
                except Exception as exc:
                    logger.warning("row {}: could not give it back ({}); its lease will expire", row.id, exc)
                    store.close()
                finally:
                    self.heartbeat.release(row.id, owner)
        finally:
            store.close()
        logger.info("gave back {} claimed row(s) not started", len(left))

    def _listen_loop(self) -> None:
        """PostgreSQL: wake the workers when the HIS inserts a row (NOTIFY in
        the mi_outbox trigger).  Polling still runs underneath, so a lost
        notification or a dropped LISTEN connection only costs latency."""
        store = self.new_store()
        while not self.stopping.is_set():
            conn = None
            try:
                conn = store.dialect.connect(store.url, autocommit=True)
                conn.execute("LISTEN mi_outbox")
                while not self.stopping.is_set():
                    for _ in conn.notifies(timeout=1.0, stop_after=64):
                        self.wake.set()
            except Exception as exc:
                logger.warning("LISTEN connection lost ({}); polling until it is back", type(exc).__name__)
                self.stopping.wait(2.0)
            finally:
                if conn is not None:
                    try:
                        conn.close()
                    except Exception:
                        pass
