"""Outbox engine benchmark: throughput, insert->claim latency, claim cost vs history.

    source /tmp/devenv.sh   # MIBRIDGE_TEST_PG_URL / MIBRIDGE_TEST_MYSQL_URL (admin URLs)
    python3 bench/outbox.py [--rows 20000] [--dialects sqlite,postgresql,mysql]
                            [--history 10000,1000000] [--workers 1,4,16]
                            [--latency-rows 300] [--latency-interval 0.03]
                            [--claims 200] [--serial-keys 1000]

Every measurement gets a fresh database (created on the live server, mi_ schema
installed from sql/<dialect>/install.sql, dropped afterwards; SQLite in a temp dir).

1. throughput: --rows test.noop rows bulk-inserted, then the real Daemon (in-process,
   N worker threads) claims and finishes them; rows/s = rows / (daemon start -> all done).
2. insert->claim latency: the Daemon idles (4 workers); --latency-rows rows are enqueued
   one at a time at a steady rate.  A bench-only flow (bench.stamp) reads, inside its
   step, updated_at - created_at of its row: updated_at was set by the claim UPDATE, so
   this is the database clock's insert->claim time.  PostgreSQL runs it three ways: LISTEN/
   NOTIFY wake, and polling only (poll_interval 0.05 and 1.0); the others poll.
3. claim cost vs history: done rows are generated server-side (generate_series / seq_1_to_N /
   recursive CTE), then --claims single claims of one freshly enqueued due row are timed
   (Store.claim, one row, then finished, untimed).  History serial keys come from a fixed
   pool of --serial-keys keys and the probe rows use the same pool: long-lived keys, the
   worst case for the "no older unfinished row with my serial key" check.  ANALYZE runs
   after the history insert on PostgreSQL/MariaDB (what autovacuum / InnoDB auto stats do).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from loguru import logger  # noqa: E402

from bridge.db.dialects import get_dialect  # noqa: E402
from bridge.db.scripts import run_script, script_path  # noqa: E402
from bridge.db.store import InboxRow, Store  # noqa: E402
from bridge.db.url import parse_url  # noqa: E402
from bridge.engine.flow import Finish, Flow, Registry, Step  # noqa: E402
from bridge.testflow.flows import TestNoopFlow  # noqa: E402
from daemon.config import Config  # noqa: E402
from daemon.service import Daemon  # noqa: E402

ENV = {"postgresql": "MIBRIDGE_TEST_PG_URL", "mysql": "MIBRIDGE_TEST_MYSQL_URL"}
PAYLOAD = json.dumps({"total_amount": "1.00"})
# Seconds between the row's insert and its claim, on the database clock.
CLAIM_DELAY = {
    "postgresql": "EXTRACT(EPOCH FROM (updated_at - created_at))",
    "mysql": "TIMESTAMPDIFF(MICROSECOND, created_at, updated_at) / 1000000",
    "sqlite": "(julianday(updated_at) - julianday(created_at)) * 86400.0",
}
# Server-side generation of n finished rows numbered from :lo (bound params: lo, hi, keys).
HISTORY_SQL = {
    "postgresql": """
        INSERT INTO mi_outbox (kind, business_key, serial_key, payload, state, step, attempts,
                               next_attempt_at, created_at, updated_at, finished_at)
        SELECT 'test.noop', 'H' || g, 'P' || (g % CAST(:keys AS bigint)), :payload, 'done', 'finish', 1,
               now() - interval '2 days', now() - interval '2 days', now() - interval '1 day',
               now() - interval '1 day'
          FROM generate_series(CAST(:lo AS bigint), CAST(:hi AS bigint)) AS g""",
    "mysql": """
        INSERT INTO mi_outbox (kind, business_key, serial_key, payload, state, step, attempts,
                               next_attempt_at, created_at, updated_at, finished_at)
        SELECT 'test.noop', CONCAT('H', seq), CONCAT('P', seq MOD :keys), :payload, 'done', 'finish', 1,
               NOW(6) - INTERVAL 2 DAY, NOW(6) - INTERVAL 2 DAY, NOW(6) - INTERVAL 1 DAY,
               NOW(6) - INTERVAL 1 DAY
          FROM seq_{lo}_to_{hi}""",
    "sqlite": """
        INSERT INTO mi_outbox (kind, business_key, serial_key, payload, state, step, attempts,
                               next_attempt_at, created_at, updated_at, finished_at)
        WITH RECURSIVE g(n) AS (SELECT :lo UNION ALL SELECT n + 1 FROM g WHERE n < :hi)
        SELECT 'test.noop', 'H' || n, 'P' || (n % :keys), :payload, 'done', 'finish', 1,
               strftime('%Y-%m-%d %H:%M:%f', 'now', '-2 days'), strftime('%Y-%m-%d %H:%M:%f', 'now', '-2 days'),
               strftime('%Y-%m-%d %H:%M:%f', 'now', '-1 days'), strftime('%Y-%m-%d %H:%M:%f', 'now', '-1 days')
          FROM g""",
}


class StampFlow(Flow):
    """Bench-only: one step, no remote call; records the DB-clock insert->claim delay."""

    kind = "bench.stamp"
    initial = "stamp"
    steps = {"stamp": Step("stamp")}

    def step_stamp(self, ctx):
        store = ctx.port._store     # bench only: the runner's Store, for the database clock
        (delay,), = store.query(f"SELECT {CLAIM_DELAY[store.dialect.name]} FROM mi_outbox WHERE id = :id",
                                {"id": ctx.row.id})
        return Finish([InboxRow(result_type="noop", outcome="ok", result={"delay": float(delay)})])


class PollingDaemon(Daemon):
    """The real daemon without its LISTEN thread: PostgreSQL falls back to polling."""

    def _listen_loop(self) -> None:
        return


# -- databases --------------------------------------------------------------------
def make_database(dialect: str, tmpdir: Path):
    """Fresh database with the mi_ schema; returns (url, drop)."""
    if dialect == "sqlite":
        path = tmpdir / f"b_{uuid.uuid4().hex[:8]}.db"
        url = f"sqlite:///{path}"

        def drop():
            for suffix in ("", "-wal", "-shm"):
                Path(str(path) + suffix).unlink(missing_ok=True)
    else:
        admin_url = os.environ[ENV[dialect]]
        admin = parse_url(admin_url)
        d = get_dialect(dialect)
        name = "mi_bench_" + uuid.uuid4().hex[:10]

        def admin_exec(sql):
            if dialect == "postgresql":
                c = d.connect(admin, autocommit=True)
                c.execute(sql)
            else:
                c = d.connect(admin)
                with c.cursor() as cur:
                    cur.execute(sql)
            c.close()
        admin_exec(f'CREATE DATABASE "{name}"' if dialect == "postgresql"
                   else f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        auth = admin.user + (f":{admin.password}" if admin.password else "")
        url = f"{admin_url.split('://')[0]}://{auth}@{admin.host}:{admin.port}/{name}"

        def drop():
            admin_exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)' if dialect == "postgresql"
                       else f"DROP DATABASE IF EXISTS `{name}`")
    conn = get_dialect(dialect).connect(parse_url(url))
    run_script(conn, dialect, script_path(dialect, "install.sql"))
    conn.close()
    return url, drop


class fresh_db:
    def __init__(self, dialect, tmpdir):
        self.dialect, self.tmpdir = dialect, tmpdir

    def __enter__(self):
        self.url, self._drop = make_database(self.dialect, self.tmpdir)
        return self.url

    def __exit__(self, *exc):
        self._drop()


def bulk_enqueue(store: Store, n: int, keys: int) -> None:
    def go(cur):
        rows = [dict(k="test.noop", b=f"R{i:07d}", s=f"P{i % keys}", p=PAYLOAD) for i in range(n)]
        sql = "INSERT INTO mi_outbox (kind, business_key, serial_key, payload) VALUES (:k, :b, :s, :p)"
        text, _ = store.dialect.convert(sql, rows[0])
        cur.executemany(text, [store.dialect.convert(sql, r)[1] for r in rows])
    store._tx(go)


def make_daemon(url: str, workers: int, poll: float, cls=Daemon) -> Daemon:
    cfg = Config()
    cfg.database.url = url
    cfg.daemon.workers = workers
    cfg.daemon.poll_interval = poll
    cfg.daemon.name = "bench"
    reg = Registry()
    reg.register(TestNoopFlow())
    reg.register(StampFlow())
    return cls(cfg, reg)


def wait_done(daemon: Daemon, store: Store, n: int, timeout: float, cap: bool = False):
    """Wait until n rows are final; returns (time.monotonic() when seen, rows final).
    With cap=True, reaching timeout returns the partial count instead of raising."""
    deadline = time.monotonic() + timeout
    next_db_check = time.monotonic() + 1.0
    while True:
        now = time.monotonic()
        # processed is a hint (unlocked +=); the database has the last word.
        if daemon.processed >= n or now >= next_db_check:
            done = store.query("SELECT COUNT(*) FROM mi_outbox WHERE state IN ('done', 'failed')")[0][0]
            if int(done) >= n or (cap and now > deadline):
                return now, int(done)
            next_db_check = now + 1.0
        if now > deadline and not cap:
            raise RuntimeError(f"only {daemon.processed}/{n} rows processed after {timeout:.0f}s")
        time.sleep(0.005)


def pct(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, max(0, int(round(p / 100 * len(v) + 0.5)) - 1))]


# -- 1. throughput ------------------------------------------------------------------
def throughput(dialect, tmpdir, rows, workers, keys, cap):
    """rows/s, and whether the run hit the time cap (then: rows done / cap)."""
    with fresh_db(dialect, tmpdir) as url:
        store = Store(url)
        try:
            bulk_enqueue(store, rows, keys)
            daemon = make_daemon(url, workers, poll=0.05)
            t0 = time.monotonic()
            daemon.start()
            try:
                t1, done = wait_done(daemon, store, rows, timeout=cap, cap=True)
            finally:
                daemon.stop()
            states = {k: int(v) for k, v in store.query("SELECT state, COUNT(*) FROM mi_outbox GROUP BY state")}
            if done >= rows and states != {"done": rows}:
                raise RuntimeError(f"unexpected final states {states}")
            return done / (t1 - t0), done < rows
        finally:
            store.close()


# -- 2. insert -> claim latency --------------------------------------------------------
def latency(dialect, tmpdir, n, interval, poll, notify: bool):
    with fresh_db(dialect, tmpdir) as url:
        store = Store(url)
        try:
            daemon = make_daemon(url, 4, poll=poll, cls=Daemon if notify else PollingDaemon)
            daemon.start()
            try:
                time.sleep(max(1.5, poll * 1.5))          # idle: LISTEN connected, workers asleep
                t0 = time.monotonic()
                for i in range(n):
                    pause = t0 + i * interval - time.monotonic()
                    if pause > 0:
                        time.sleep(pause)
                    store.enqueue("bench.stamp", f"L{i:05d}", PAYLOAD)
                wait_done(daemon, store, n, timeout=120)
            finally:
                daemon.stop()
            delays = [json.loads(r[0])["delay"] * 1000 for r in
                      store.query("SELECT result_json FROM mi_inbox WHERE result_type = 'noop'")]
            if len(delays) != n:
                raise RuntimeError(f"{len(delays)} stamped rows, expected {n}")
            return pct(delays, 50), pct(delays, 99)
        finally:
            store.close()


# -- 3. claim cost vs history -------------------------------------------------------------
def add_history(store: Store, lo: int, hi: int, keys: int) -> float:
    d = store.dialect.name
    t = time.monotonic()
    chunk = 200_000
    for a in range(lo, hi + 1, chunk):
        b = min(hi, a + chunk - 1)

        def go(cur):
            if d == "postgresql":
                # Bulk import: skip the per-row validate/NOTIFY triggers (the rows are valid
                # and nobody listens).  Needs superuser; otherwise the triggers simply run.
                cur.execute("SELECT current_setting('is_superuser')")
                if cur.fetchone()[0] == "on":
                    cur.execute("SET LOCAL session_replication_role = replica")
            store._exec(cur, HISTORY_SQL[d].format(lo=a, hi=b), dict(lo=a, hi=b, keys=keys, payload=PAYLOAD))
        store._tx(go)
    if d == "postgresql":
        store.execute("ANALYZE mi_outbox")
    elif d == "mysql":
        store.query("ANALYZE TABLE mi_outbox")
    return time.monotonic() - t


def time_claims(store: Store, n: int, keys: int, tag: str):
    out = []
    for i in range(n + 10):                          # 10 warm-up claims
        store.enqueue("test.noop", f"Q{tag}{i:05d}", PAYLOAD, serial_key=f"P{(i * 7919) % keys}")
        owner = f"bench:{tag}:{i}"
        t = time.perf_counter()
        rows = store.claim(owner, 30, 1)
        dt = time.perf_counter() - t
        if len(rows) != 1:
            raise RuntimeError(f"claim returned {len(rows)} rows")
        store.finish(rows[0], owner, "done", {}, [])
        if i >= 10:
            out.append(dt * 1000)
    return pct(out, 50), pct(out, 99)


def explain_claim(store: Store) -> list[str]:
    """The claim query's plan with one due row present (rolled back)."""
    d = store.dialect
    store.enqueue("test.noop", "EXPLAIN-PROBE", PAYLOAD, serial_key="P1")
    lines = []

    def go(cur):
        if d.name == "sqlite":
            store._exec(cur, "EXPLAIN QUERY PLAN " + d.claim_sql, {"limit": 1})
            lines.extend(r[3] for r in cur.fetchall())
        elif d.name == "postgresql":
            store._exec(cur, "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) " + d.claim_sql, {"limit": 1})
            lines.extend(r[0].strip() for r in cur.fetchall()
                         if "Scan" in r[0] or "Execution" in r[0] or "Join" in r[0])
        else:
            store._exec(cur, "ANALYZE " + d.claim_sql, {"limit": 1})
            cols = [c[0] for c in cur.description]
            for r in cur.fetchall():
                r = dict(zip(cols, r))
                lines.append(f"{r['table']}: {r['type']} key={r['key']} r_rows={r['r_rows']} {r['Extra'] or ''}")
        raise _Rollback
    try:
        store._tx(go)
    except _Rollback:
        pass
    store.execute("DELETE FROM mi_outbox WHERE business_key = 'EXPLAIN-PROBE'")
    return lines


class _Rollback(Exception):
    pass


def history_bench(dialect, tmpdir, sizes, claims, keys, say):
    res = {}
    with fresh_db(dialect, tmpdir) as url:
        store = Store(url)
        try:
            have = 0
            for size in sizes:
                secs = add_history(store, have + 1, size, keys)
                have = size
                p50, p99 = time_claims(store, claims, keys, tag=str(size))
                res[size] = (p50, p99)
                say(f"  claim latency, {size:>9,} done rows: p50 {p50:6.2f} ms  p99 {p99:6.2f} ms"
                    f"  (history insert {secs:.1f}s)")
            plan = explain_claim(store)
            say("  claim plan at %s: %s" % (f"{sizes[-1]:,}", " | ".join(plan)))
        finally:
            store.close()
    return res


# -- main -----------------------------------------------------------------------------------
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=20000, help="rows for the throughput runs")
    ap.add_argument("--dialects", default="sqlite,postgresql,mysql")
    ap.add_argument("--history", default="10000,1000000", help="history sizes (done rows), ascending")
    ap.add_argument("--workers", default="1,4,16")
    ap.add_argument("--latency-rows", type=int, default=300)
    ap.add_argument("--latency-interval", type=float, default=0.03, help="seconds between inserts")
    ap.add_argument("--claims", type=int, default=200)
    ap.add_argument("--cap", type=float, default=60.0,
                    help="seconds per throughput run; a capped run reports rows done / cap, marked *")
    ap.add_argument("--serial-keys", type=int, default=1000, help="serial-key pool size")
    args = ap.parse_args()
    logger.remove()
    logger.add(sys.stderr, level="ERROR")
    workers = [int(w) for w in args.workers.split(",")]
    sizes = sorted(int(h) for h in args.history.split(","))
    started = time.monotonic()

    def say(msg):
        print(msg, flush=True)

    say(f"mibridge outbox bench: rows={args.rows} workers={args.workers} latency={args.latency_rows}"
        f"@{args.latency_interval * 1000:.0f}ms claims={args.claims} history={args.history} "
        f"serial-keys={args.serial_keys} cpus={os.cpu_count()}")
    summary = []
    with tempfile.TemporaryDirectory(prefix="mibench_") as tmp:
        tmpdir = Path(tmp)
        for dialect in [d.strip() for d in args.dialects.split(",") if d.strip()]:
            if dialect in ENV and not os.environ.get(ENV[dialect]):
                say(f"[{dialect}] skipped: {ENV[dialect]} is not set")
                summary.append(f"{dialect}=skipped")
                continue
            say(f"[{dialect}]")
            rates = {}
            for w in workers:
                rates[w] = throughput(dialect, tmpdir, args.rows, w, args.serial_keys, args.cap)
            say("  claim+finish throughput: " + "  ".join(f"{w}w {r:,.0f}{'*' if c else ''} rows/s"
                                                          for w, (r, c) in rates.items())
                + (f"  (* capped at {args.cap:.0f}s, backlog not drained)" if any(c for _, c in rates.values()) else ""))
            modes = ([("notify", 1.0, True)] if dialect == "postgresql" else []) + \
                    [("poll0.05", 0.05, False), ("poll1.0", 1.0, False)]
            lats = {}
            for name, poll, notify in modes:
                lats[name] = latency(dialect, tmpdir, args.latency_rows, args.latency_interval, poll, notify)
            say("  insert->claim (DB clock) p50/p99 ms: " +
                "  ".join(f"{k} {a:.1f}/{b:.1f}" for k, (a, b) in lats.items()))
            hist = history_bench(dialect, tmpdir, sizes, args.claims, args.serial_keys, say)
            ratio = hist[sizes[-1]][0] / hist[sizes[0]][0]
            say(f"  claim p50 ratio {sizes[-1]:,}/{sizes[0]:,}: {ratio:.2f}")
            summary.append(
                f"{dialect}: tput " + "/".join(f"{rates[w][0]:.0f}{'*' if rates[w][1] else ''}" for w in workers) + " rows/s; "
                + " ".join(f"{k} {a:.1f}/{b:.1f}ms" for k, (a, b) in lats.items())
                + f"; claim {hist[sizes[0]][0]:.2f}->{hist[sizes[-1]][0]:.2f}ms x{ratio:.2f}")
    say(f"total {time.monotonic() - started:.0f}s")
    say("SUMMARY " + " | ".join(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
