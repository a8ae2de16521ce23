"""Metrics and health: /metrics (Prometheus text format, prometheus-client),
/healthz (the process answers) and /readyz (it can do its work).

Why prometheus-client (https://prometheus.github.io/client_python/): the
reference client; it writes the exposition format and keeps counters and
histograms thread-safe, so nothing here formats metrics by hand.

Two kinds of figures:
  * counted in the process, from the engine's events (bridge/engine/events.py):
    platform calls by interface and outcome with their latency, claims, lease
    renewals and rescues, notices, scheduled job runs;
  * read from the database on scrape (DbCollector): requests by kind and state,
    the oldest pending and in-doubt ages, held rows by reason.  One query set
    per `cache_seconds` at most, whatever the number of scrapers, on a
    connection of its own; a database that cannot be read gives
    mibridge_database_up 0 and none of these.

Every metric name starts with mibridge_; the registry is per daemon (not the
library's global one), so two daemons in one test process do not mix.
"""
from __future__ import annotations

import threading
import time
from typing import Callable, Optional

from loguru import logger
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from bridge.engine import events

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
CLAIM_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)


class DbCollector:
    """The database's figures, read when scraped and kept `cache_seconds`."""

    def __init__(self, new_store: Callable, cache_seconds: float = 5.0, clock=time.monotonic):
        self.new_store = new_store
        self.cache_seconds = cache_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._store = None
        self._at: Optional[float] = None
        self._figures: Optional[dict] = None

    def figures(self) -> Optional[dict]:
        with self._lock:
            now = self._clock()
            if self._at is not None and now - self._at < self.cache_seconds:
                return self._figures
            try:
                self._store = self._store or self.new_store()
                self._figures = read_figures(self._store)
            except Exception as exc:
                logger.warning("metrics: the database cannot be read ({}: {})", type(exc).__name__,
                               str(exc).splitlines()[0] if str(exc) else "")
                if self._store is not None:
                    self._store.close()
                self._store = None
                self._figures = None
            self._at = now
            return self._figures

    def collect(self):
        f = self.figures()
        up = GaugeMetricFamily("mibridge_database_up", "1 when the last read of the mi_ tables succeeded")
        up.add_metric([], 0 if f is None else 1)
        yield up
        if f is None:
            return
        req = GaugeMetricFamily("mibridge_requests", "Requests in mi_outbox by kind and state",
                                labels=["kind", "state"])
        for (kind, state), n in sorted(f["requests"].items()):
            req.add_metric([kind, state], n)
        yield req
        for state in ("pending", "in_doubt"):
            g = GaugeMetricFamily(f"mibridge_oldest_{state}_age_seconds",
                                  f"Age of the oldest {state} request (0 when there is none), database clock")
            g.add_metric([], f["oldest"].get(state) or 0.0)
            yield g
        held = GaugeMetricFamily("mibridge_held_requests", "Held requests by reason code", labels=["reason"])
        for reason, n in sorted(f["held"].items()):
            held.add_metric([reason], n)
        yield held

    def close(self) -> None:
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None


def read_figures(store) -> dict:
    age = store.dialect.age_seconds("created_at")
    requests = {(k, s): int(n) for k, s, n in
                store.query("SELECT kind, state, COUNT(*) FROM mi_outbox GROUP BY kind, state")}
    oldest = {s: float(a) for s, a in store.query(
        f"SELECT state, MAX({age}) FROM mi_outbox WHERE state IN ('pending', 'in_doubt') GROUP BY state")
        if a is not None}
    held = {(c or "NONE"): int(n) for c, n in store.query(
        "SELECT last_error_code, COUNT(*) FROM mi_outbox WHERE state = 'held' GROUP BY last_error_code")}
    return {"requests": requests, "oldest": oldest, "held": held}


class Metrics:
    """The daemon's registry and the engine-event subscribers that fill it."""

    def __init__(self, new_store: Callable, cache_seconds: float = 5.0):
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.calls = Counter("mibridge_platform_calls", "Platform calls by interface and outcome",
                             ["interface", "outcome"], registry=r)
        self.call_seconds = Histogram("mibridge_platform_call_duration_seconds",
                                      "Platform call latency by interface", ["interface"],
                                      buckets=LATENCY_BUCKETS, registry=r)
        self.notices = Counter("mibridge_notices", "Platform notices by verdict (received, verified, refused)",
                               ["interface", "verdict"], registry=r)
        self.renewals = Counter("mibridge_lease_renewals", "Lease renewals by the heartbeat (renewed or lost)",
                                ["result"], registry=r)
        self.rescues = Counter("mibridge_lease_rescues", "Rows returned to work after their worker's lease expired",
                               registry=r)
        self.claim_seconds = Histogram("mibridge_claim_duration_seconds", "Time of one claim transaction",
                                       buckets=CLAIM_BUCKETS, registry=r)
        self.claimed = Counter("mibridge_claimed_rows", "Rows claimed by the workers", registry=r)
        # "task", not "job": Prometheus gives every scraped series a job label of its own.
        self.jobs = Counter("mibridge_job_runs", "Scheduled job runs by task and result", ["task", "result"],
                            registry=r)
        self.job_last = Gauge("mibridge_job_last_run_timestamp_seconds", "When each scheduled task last ran "
                              "(Unix time)", ["task"], registry=r)
        self.ready = Gauge("mibridge_ready", "1 when /readyz would answer 200", registry=r)
        self.db = DbCollector(new_store, cache_seconds)
        r.register(self.db)
        self._unsubscribe: list[Callable[[], None]] = []

    def subscribe(self) -> None:
        for name, fn in (("call", self._on_call), ("notice", self._on_notice), ("heartbeat", self._on_heartbeat),
                         ("rescue", self._on_rescue), ("claim", self._on_claim), ("job", self._on_job)):
            self._unsubscribe.append(events.subscribe(name, fn))

    def close(self) -> None:
        for u in self._unsubscribe:
            u()
        self._unsubscribe = []
        self.db.close()

    # -- events -----------------------------------------------------------------------
    def _on_call(self, interface: str, outcome: str, seconds: float, **_):
        self.calls.labels(interface, outcome).inc()
        self.call_seconds.labels(interface).observe(max(0.0, seconds))

    def _on_notice(self, interface: str, verdict: str, **_):
        self.notices.labels(interface, verdict).inc()

    def _on_heartbeat(self, renewed: bool, **_):
        self.renewals.labels("renewed" if renewed else "lost").inc()

    def _on_rescue(self, rows: int, **_):
        self.rescues.inc(rows)

    def _on_claim(self, rows: int, seconds: float, **_):
        self.claim_seconds.observe(max(0.0, seconds))
        self.claimed.inc(rows)

    def _on_job(self, job: str, result: str, **_):
        self.jobs.labels(job, result).inc()
        self.job_last.labels(job).set(time.time())

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class HealthApp:
    """WSGI: /metrics, /healthz, /readyz.  `readiness()` -> (ready, {check: text})."""

    def __init__(self, metrics: Metrics, readiness: Callable[[], tuple[bool, dict]]):
        self.metrics = metrics
        self.readiness = readiness

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO") or "/"
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            return _answer(start_response, "405 Method Not Allowed", b"GET only\n", [("Allow", "GET")])
        if path == "/healthz":
            return _answer(start_response, "200 OK", b"ok\n")
        if path == "/readyz":
            ready, checks = self.readiness()
            self.metrics.ready.set(1 if ready else 0)
            body = "".join(f"{k}: {v}\n" for k, v in checks.items()).encode()
            return _answer(start_response, "200 OK" if ready else "503 Service Unavailable",
                           (b"ready\n" if ready else b"not ready\n") + body)
        if path == "/metrics":
            try:
                ready, _ = self.readiness()
                self.metrics.ready.set(1 if ready else 0)
            except Exception as exc:
                logger.warning("metrics: readiness check failed ({}: {})", type(exc).__name__, exc)
                self.metrics.ready.set(0)
            return _answer(start_response, "200 OK", self.metrics.exposition(),
                           [("Content-Type", CONTENT_TYPE_LATEST)])
        return _answer(start_response, "404 Not Found", b"not found\n")


def _answer(start_response, status: str, body: bytes, headers: Optional[list] = None):
    hdrs = dict([("Content-Type", "text/plain; charset=utf-8"), ("Cache-Control", "no-store")])
    hdrs.update(dict(headers or []))
    hdrs["Content-Length"] = str(len(body))
    start_response(status, list(hdrs.items()))
    return [body]
