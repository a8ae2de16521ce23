"""mibridge's engine side by side with pgqueuer, on the same PostgreSQL, in interleaved rounds.

    export MIBRIDGE_TEST_PG_URL=postgresql://postgres@127.0.0.1:5432/postgres   # an admin URL
    pip install -e '.[bench]'                # pgqueuer + asyncpg: this script installs nothing
    python3 bench/peer.py [--jobs 5000] [--workers 1,4,16] [--rounds 3]
                          [--latency-jobs 300] [--latency-interval 0.02]
                          [--pgq-batches 10,1] [--claim-batch 10] [--tree PATH] [--stats]

One fresh database holds both schemas (mi_ from sql/postgresql/install.sql,
pgqueuer's from its Queries.install()) and is dropped at the end.  Each
measurement runs the consumer in a child process of its own:

* throughput: --jobs no-op jobs are inserted first, then the consumer starts
  with N workers.  jobs/s and worker CPU (the child's process_time) are taken
  from the first job's start to the moment the database shows every job
  finished (mibridge: row done with its inbox row; pgqueuer: job acknowledged,
  gone from its queue table), so process start-up counts for neither.
* latency: the consumer idles with N workers (LISTEN/NOTIFY on both sides),
  then --latency-jobs jobs are inserted one at a time, every --latency-interval
  seconds, each carrying its insert time; the job computes enqueue->start when
  it starts.

mibridge workers are the real Daemon's threads (claim_batch rows per claim,
shared by idle workers); pgqueuer workers are QueueManagers, one connection
each, in one asyncio loop, with batch sizes from --pgq-batches (its default is
10).  Rounds alternate which system runs first.  The table reports medians
over rounds and mibridge's ratios to pgqueuer at the first batch size:
throughput (higher is better for mibridge when > 1), CPU per 1,000 jobs and
latency (lower is better for mibridge when < 1).  --tree runs mibridge from
another checkout (e.g. an older commit) to compare the engine against itself.
"""
from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent


# -- the consumers (child processes) ------------------------------------------------------
def child_mibridge(args) -> dict:
    sys.path.insert(0, args.tree)
    from loguru import logger

    from bridge.db.store import InboxRow, Store
    from bridge.engine.flow import Finish, Flow, Registry, Step
    from daemon.config import Config
    from daemon.service import Daemon

    logger.remove()
    logger.add(sys.stderr, level="ERROR")
    probe = _Probe(args.jobs, latency=args.mode == "latency")

    class PeerNoop(Flow):
        kind = "bench.noop"
        initial = "run"
        steps = {"run": Step("run")}

        def step_run(self, ctx):
            probe.started(ctx.row.payload)
            return Finish([InboxRow(result_type="noop", outcome="ok")])

    cfg = Config()
    cfg.database.url = args.url
    cfg.daemon.workers = args.workers
    cfg.daemon.name = "peer"
    cfg.daemon.poll_interval = 1.0
    if hasattr(cfg.daemon, "claim_batch"):
        cfg.daemon.claim_batch = args.claim_batch
    reg = Registry()
    reg.register(PeerNoop())
    daemon = Daemon(cfg, reg)
    daemon.group_writes = args.group_writes
    check = Store(args.url)
    daemon.start()
    try:
        if args.mode == "latency":
            time.sleep(1.5)                       # LISTEN connected, workers idle
            _ready()
        probe.all_started.wait(args.timeout)
        while int(check.query("SELECT COUNT(*) FROM mi_outbox WHERE state = 'done'")[0][0]) < args.jobs:
            if time.perf_counter() - probe.t_first > args.timeout:
                raise RuntimeError("mibridge did not finish in time")
            time.sleep(0.002)
        return probe.result()
    finally:
        daemon.stop()
        check.close()


def child_pgqueuer(args) -> dict:
    import logging
    from datetime import timedelta

    import asyncpg
    from pgqueuer import QueueManager
    from pgqueuer.db import AsyncpgDriver
    from pgqueuer.queries import Queries

    logging.getLogger("pgqueuer").setLevel(logging.ERROR)
    probe = _Probe(args.jobs, latency=args.mode == "latency")

    async def run():
        qms = []
        for _ in range(args.workers):
            qm = QueueManager(Queries(AsyncpgDriver(await asyncpg.connect(args.url))))

            @qm.entrypoint("noop")
            async def noop(job):
                probe.started(job.payload)
            qms.append(qm)
        tasks = [asyncio.create_task(qm.run(batch_size=args.batch, dequeue_timeout=timedelta(seconds=30)))
                 for qm in qms]
        check = await asyncpg.connect(args.url)
        try:
            if args.mode == "latency":
                await asyncio.sleep(1.5)
                _ready()
            while not probe.all_started.is_set():
                if any(t.done() for t in tasks):
                    [t.result() for t in tasks if t.done()]
                await asyncio.sleep(0.002)
            while await check.fetchval("SELECT COUNT(*) FROM pgqueuer") > 0:
                if time.perf_counter() - probe.t_first > args.timeout:
                    raise RuntimeError("pgqueuer did not finish in time")
                await asyncio.sleep(0.002)
            return probe.result()
        finally:
            for qm in qms:
                qm.shutdown.set()
            await asyncio.wait(tasks, timeout=10)
            await check.close()

    return asyncio.run(run())


class _Probe:
    """Counts job starts; times and CPU from the first start to the end."""

    def __init__(self, jobs: int, latency: bool):
        self.jobs = jobs
        self.latency = latency
        self.count = itertools.count(1)
        self.delays: list[float] = []
        self.t_first = float("inf")
        self.cpu_first = 0.0
        self.all_started = threading.Event()

    def started(self, payload) -> None:
        now = time.time()
        n = next(self.count)
        if n == 1:
            self.t_first, self.cpu_first = time.perf_counter(), time.process_time()
        if self.latency:
            self.delays.append(now - json.loads(payload)["t"])
        if n >= self.jobs:
            self.all_started.set()

    def result(self) -> dict:
        secs = time.perf_counter() - self.t_first
        cpu = time.process_time() - self.cpu_first
        out = {"seconds": secs, "cpu": cpu, "jobs": self.jobs}
        if self.latency:
            out["delays_ms"] = [d * 1000 for d in self.delays]
        return out


def _ready() -> None:
    print("READY", flush=True)


# -- the parent ---------------------------------------------------------------------------
def pct(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, max(0, int(round(p / 100 * len(v) + 0.5)) - 1))]


class Bench:
    def __init__(self, args):
        import psycopg

        self.args = args
        self.admin = args.url
        self.name = "mi_peer_" + uuid.uuid4().hex[:8]
        with psycopg.connect(self.admin, autocommit=True) as c:
            c.execute(f'CREATE DATABASE "{self.name}"')
        base, _, _ = self.admin.rpartition("/")
        self.url = f"{base}/{self.name}"
        self.conn = psycopg.connect(self.url, autocommit=True)
        self.stats = False
        if args.stats:
            try:
                self.conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
                self.conn.execute("SELECT 1 FROM pg_stat_statements LIMIT 1")
                self.stats = True
            except Exception as exc:
                print(f"--stats: pg_stat_statements is not available ({exc}); going on without it")
        sys.path.insert(0, args.tree)
        from bridge.db.dialects import get_dialect
        from bridge.db.scripts import run_script, script_path
        from bridge.db.url import parse_url

        c = get_dialect("postgresql").connect(parse_url(self.url))
        run_script(c, "postgresql", script_path("postgresql", "install.sql"))
        c.close()
        # pgqueuer's jobs go in through its own enqueue (it also writes its log row).
        self.loop = asyncio.new_event_loop()
        self.pgq = self.loop.run_until_complete(self._pgqueuer())

    async def _pgqueuer(self):
        import asyncpg
        from pgqueuer.db import AsyncpgDriver
        from pgqueuer.queries import Queries

        self.pgq_conn = await asyncpg.connect(self.url)
        q = Queries(AsyncpgDriver(self.pgq_conn))
        await q.install()
        return q

    def drop(self) -> None:
        import psycopg

        self.loop.run_until_complete(self.pgq_conn.close())
        self.loop.close()
        self.conn.close()
        with psycopg.connect(self.admin, autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')

    def reset(self) -> None:
        self.conn.execute("TRUNCATE mi_journal, mi_inbox, mi_audit, mi_outbox, pgqueuer, pgqueuer_log CASCADE")
        self.conn.execute("VACUUM ANALYZE mi_outbox")
        self.conn.execute("VACUUM ANALYZE pgqueuer")

    # The HIS's way for mibridge: a plain INSERT (the trigger sends the NOTIFY).
    MI_INSERT = ("INSERT INTO mi_outbox (kind, business_key, serial_key, payload) "
                 "VALUES ('bench.noop', %s, %s, %s)")

    def enqueue(self, system: str, i: int, payload: str) -> None:
        if system == "mibridge":
            self.conn.execute(self.MI_INSERT, (f"J{i:07d}", f"S{i}", payload))
        else:
            self.loop.run_until_complete(self.pgq.enqueue("noop", payload.encode()))

    def bulk(self, system: str, n: int) -> None:
        payload = json.dumps({"t": 0})
        if system == "mibridge":
            with self.conn.cursor() as cur, self.conn.transaction():
                cur.executemany(self.MI_INSERT, [(f"J{i:07d}", f"S{i}", payload) for i in range(n)])
        else:
            self.loop.run_until_complete(self.pgq.enqueue(["noop"] * n, [payload.encode()] * n, [0] * n))

    def spawn(self, system: str, mode: str, workers: int, jobs: int, batch: int, extra=()):
        a = self.args
        cmd = [sys.executable, __file__, "--child", system, "--mode", mode, "--url", self.url,
               "--workers", str(workers), "--child-jobs", str(jobs), "--batch", str(batch),
               "--claim-batch", str(a.claim_batch), "--tree", a.tree, "--timeout", str(a.timeout)] + list(extra)
        env = dict(os.environ, PYTHONPATH=a.tree)
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)

    @staticmethod
    def collect(proc) -> dict:
        out, err = proc.communicate(timeout=600)
        if proc.returncode != 0:
            raise RuntimeError(f"child failed ({proc.returncode}):\n{err[-3000:]}")
        return json.loads(out.strip().splitlines()[-1])

    def server_stats(self) -> dict:
        """Statements this database ran so far: queryid -> (calls, exec ms, text)."""
        rows = self.conn.execute(
            "SELECT queryid, calls, total_exec_time, query FROM pg_stat_statements WHERE dbid = "
            "(SELECT oid FROM pg_database WHERE datname = current_database())").fetchall()
        return {r[0]: (int(r[1]), float(r[2]), r[3]) for r in rows}

    def throughput(self, system: str, workers: int, batch: int, extra=()) -> dict:
        self.reset()
        self.bulk(system, self.args.jobs)
        before = self.server_stats() if self.stats else {}
        r = self.collect(self.spawn(system, "throughput", workers, self.args.jobs, batch, extra))
        out = {"jobs_s": (r["jobs"] - 1) / r["seconds"], "cpu_1k": r["cpu"] / r["jobs"] * 1000}
        if self.stats:
            after = self.server_stats()
            diff = sorted(((c - before.get(q, (0, 0.0))[0], t - before.get(q, (0, 0.0))[1], text)
                           for q, (c, t, text) in after.items()), key=lambda d: -d[1])
            diff = [d for d in diff if d[0] > 0 and "pg_stat_statements" not in d[2]]
            out["stmts_job"] = sum(d[0] for d in diff) / r["jobs"]
            out["server_ms_job"] = sum(d[1] for d in diff) / r["jobs"]
            out["top"] = [f"{d[0] / r['jobs']:.2f}/job {d[1] / d[0] * 1000:.0f}us {' '.join(d[2].split())[:70]}"
                          for d in diff[:4]]
        return out

    def latency(self, system: str, workers: int, batch: int, extra=()) -> dict:
        self.reset()
        n = self.args.latency_jobs
        proc = self.spawn(system, "latency", workers, n, batch, extra)
        line = proc.stdout.readline()
        if line.strip() != "READY":
            raise RuntimeError(f"child did not get ready: {line!r} {proc.stderr.read()[-2000:]}")
        t0 = time.monotonic()
        for i in range(n):
            pause = t0 + i * self.args.latency_interval - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            self.enqueue(system, i, json.dumps({"t": time.time()}))
        r = self.collect(proc)
        return {"p50": pct(r["delays_ms"], 50), "p99": pct(r["delays_ms"], 99)}


def parent(args) -> int:
    try:
        import asyncpg  # noqa: F401
        import pgqueuer  # noqa: F401
    except ImportError:
        print("bench/peer.py needs pgqueuer and asyncpg: pip install -e '.[bench]' (it installs nothing itself)",
              file=sys.stderr)
        return 2
    if not args.url:
        print("give --url or set MIBRIDGE_TEST_PG_URL (a PostgreSQL admin URL)", file=sys.stderr)
        return 2
    from importlib.metadata import version

    workers = [int(w) for w in args.workers.split(",")]
    batches = [int(b) for b in args.pgq_batches.split(",")]
    systems = [("mibridge", args.claim_batch)] + [(f"pgqueuer/b{b}", b) for b in batches]
    if args.compare_group_writes:
        systems.append(("mibridge/gw", args.claim_batch))
    print(f"peer bench: mibridge ({args.tree}, claim_batch {args.claim_batch}) vs pgqueuer "
          f"{version('pgqueuer')} (batches {args.pgq_batches}); jobs {args.jobs}, latency "
          f"{args.latency_jobs}@{args.latency_interval * 1000:.0f}ms, rounds {args.rounds}, cpus {os.cpu_count()}",
          flush=True)
    bench = Bench(args)
    res: dict = {}
    try:
        for rnd in range(args.rounds):
            for w in workers:
                order = systems if rnd % 2 == 0 else list(reversed(systems))
                for name, batch in order:
                    kind = "mibridge" if name.startswith("mibridge") else "pgqueuer"
                    extra = ["--group-writes"] if name == "mibridge/gw" else []
                    t = bench.throughput(kind, w, batch, extra)
                    lat = bench.latency(kind, w, batch, extra) if args.latency_jobs else {"p50": 0, "p99": 0}
                    res.setdefault((name, w), []).append(dict(t, **lat))
                    print(f"  round {rnd + 1} {name:<12} {w:>2}w  {t['jobs_s']:7.0f} jobs/s  "
                          f"cpu {t['cpu_1k']:6.3f} s/1000  enqueue->start p50 {lat['p50']:6.1f} ms  "
                          f"p99 {lat['p99']:6.1f} ms"
                          + (f"  server: {t['stmts_job']:.2f} stmts/job {t['server_ms_job']:.3f} ms/job"
                             if "stmts_job" in t else ""), flush=True)
                    for line in t.get("top", []):
                        print(f"      {line}")
    finally:
        bench.drop()

    def med(name, w, key):
        return statistics.median(r[key] for r in res[(name, w)])

    ref = systems[1][0]
    print(f"\nmedians over {args.rounds} round(s); ratio = mibridge / {ref}")
    print(f"{'workers':>7} {'system':<12} {'jobs/s':>8} {'cpu s/1000':>10} {'p50 ms':>7} {'p99 ms':>7}")
    summary = []
    for w in workers:
        for name, _ in systems:
            print(f"{w:>7} {name:<12} {med(name, w, 'jobs_s'):8.0f} {med(name, w, 'cpu_1k'):10.3f} "
                  f"{med(name, w, 'p50'):7.1f} {med(name, w, 'p99'):7.1f}")
        ratios = {k: med("mibridge", w, k) / med(ref, w, k) if med(ref, w, k) else float("nan")
                  for k in ("jobs_s", "cpu_1k", "p50", "p99")}
        print(f"{w:>7} {'ratio':<12} {ratios['jobs_s']:7.2f}x {ratios['cpu_1k']:9.2f}x "
              f"{ratios['p50']:6.2f}x {ratios['p99']:6.2f}x")
        summary.append(f"{w}w tput {ratios['jobs_s']:.2f}x cpu {ratios['cpu_1k']:.2f}x "
                       f"p50 {med('mibridge', w, 'p50'):.1f}/{med(ref, w, 'p50'):.1f}ms")
    print("SUMMARY " + " | ".join(summary))
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", default=os.environ.get("MIBRIDGE_TEST_PG_URL"))
    ap.add_argument("--jobs", type=int, default=5000)
    ap.add_argument("--workers", default="1,4,16")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--latency-jobs", type=int, default=300)
    ap.add_argument("--latency-interval", type=float, default=0.02)
    ap.add_argument("--pgq-batches", default="10,1", help="pgqueuer batch sizes; the first is the reference")
    ap.add_argument("--claim-batch", type=int, default=10, help="mibridge's [daemon] claim_batch")
    ap.add_argument("--tree", default=str(HERE), help="the mibridge checkout to run")
    ap.add_argument("--timeout", type=float, default=300.0)
    ap.add_argument("--compare-group-writes", action="store_true",
                    help="also run mibridge with [daemon] group_writes on (mibridge/gw)")
    ap.add_argument("--group-writes", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--stats", action="store_true",
                    help="also print statements and server time per job (pg_stat_statements)")
    # child-process arguments
    ap.add_argument("--child", choices=["mibridge", "pgqueuer"], help=argparse.SUPPRESS)
    ap.add_argument("--mode", choices=["throughput", "latency"], help=argparse.SUPPRESS)
    ap.add_argument("--child-jobs", dest="child_jobs", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--batch", type=int, default=10, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        args.jobs = args.child_jobs
        args.workers = int(args.workers)
        result = child_mibridge(args) if args.child == "mibridge" else child_pgqueuer(args)
        print(json.dumps(result), flush=True)
        return 0
    return parent(args)


if __name__ == "__main__":
    sys.exit(main())
