"""Mobile-pay benchmark: payments/s, enqueue->order and paid->settlement latency, bridge CPU per payment.

    source /tmp/devenv.sh      # MIBRIDGE_TEST_PG_URL (an admin URL; a fresh database is made)
    python3 bench/mobilepay.py [--url URL] [--n 200] [--workers 4] [--timeout 600]

A fresh PostgreSQL database gets the mi_ schema (sql/postgresql/install.sql) and is
dropped afterwards.  The simulator runs in this process (tests/mobilepay_flows/harness.py
MpSim: its 6302 notices go to the daemon's callback port); the daemon is a real
`python -m daemon.cli run` process with [mobilepay] at the production defaults of
MobilePaySettings / MobilePayConfig (6301 polls from 2 s, HIS poll 5 s, 30 s call
timeout, 30 min payment deadline), so a settlement is normally confirmed by the 6302
notice waking the row, not by a poll.  N outpatient payments (fund + cash, so the
patient must pay in the channel) are enqueued one after the other as fast as
possible; one "patient + HIS" thread polls the inbox every 10 ms, pays each order
(the simulator's cashier) as soon as its order row shows, and accepts each
settlement row.

* payments/s  = N / (first enqueue -> last settlement row), database clock
* enqueue->order      = order inbox row created_at - outbox row created_at (database
                        clock, both now() of the inserting transaction; the row is
                        visible at that transaction's commit, a few ms later at most)
* paid->settlement    = settlement inbox row created_at (database clock) - the moment
                        the patient's pay call returned (the charge is booked and the
                        6302 notice on its way), taken with time.time() and moved to
                        the database clock by an offset measured at the start
* CPU/payment = the daemon process's user+system CPU (psutil, else /proc/<pid>/stat)
                from just before the first enqueue until every row is done, / N.  The
                simulator and the patient run in this process: their CPU (SM2/SM4 on
                every response and notice) is NOT counted, but they share the cores.
Correctness is checked at the end (every row done, one order and one settlement row
each, accepted by the HIS, exactly one charge per business key at the simulator, the
amounts equal to what was charged); any failure makes the exit status 1.
The last line is a one-line summary.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import fields
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from loguru import logger  # noqa: E402

from bridge.db.dialects import get_dialect  # noqa: E402
from bridge.db.scripts import run_script, script_path  # noqa: E402
from bridge.db.store import Store  # noqa: E402
from bridge.db.url import parse_url  # noqa: E402
from bridge.mobilepay.config import MobilePayConfig  # noqa: E402
from bridge.mobilepay.flows import KIND_OUTPATIENT, MobilePaySettings  # noqa: E402

try:
    import psutil
except ImportError:             # not a dependency: /proc does as well on Linux
    psutil = None

POLL = 0.01                     # the patient/HIS thread's inbox poll


def cpu_seconds(pid: int) -> float:
    if psutil is not None:
        t = psutil.Process(pid).cpu_times()
        return t.user + t.system
    fields_ = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields_[11]) + int(fields_[12])) / os.sysconf("SC_CLK_TCK")


def pct(values, p):
    v = sorted(values)
    if not v:
        return float("nan")
    return v[min(len(v) - 1, max(0, int(round(p / 100 * len(v) + 0.5)) - 1))]


def db_clock_offset(store: Store) -> tuple[float, float]:
    """(database clock - time.time(), round trip) from the fastest of 20 probes."""
    best = None
    for _ in range(20):
        t0 = time.time()
        (db,), = store.query("SELECT EXTRACT(EPOCH FROM clock_timestamp())")
        t1 = time.time()
        if best is None or t1 - t0 < best[1]:
            best = (float(db) - (t0 + t1) / 2, t1 - t0)
    return best


def production_settings() -> dict:
    """[mobilepay] flow settings and call timeout at their defaults (harness.MpSim
    otherwise writes its fast test values)."""
    from tests.mobilepay_flows.harness import FAST
    s = MobilePaySettings()
    out = {k: getattr(s, k) for k in FAST}
    out["timeout_seconds"] = next(f.default for f in fields(MobilePayConfig) if f.name == "timeout_seconds")
    return out


class Patient(threading.Thread):
    """The patient and the HIS at once: pays each order as soon as its order row is
    in the inbox, accepts every settlement row."""

    def __init__(self, url: str, sim, offset: float):
        super().__init__(daemon=True, name="bench-patient")
        self.store = Store(url)
        self.sim = sim
        self.offset = offset
        self.paid: dict[str, float] = {}        # business key -> pay call returned (database clock)
        self.seen_lag: list[float] = []         # order row created_at -> seen by this thread (s)
        self.pay_call: list[float] = []         # duration of the pay call (s)
        self.unexpected: list[str] = []
        self.errors: list[str] = []
        self._halt = threading.Event()

    def stop(self) -> None:
        self._halt.set()
        self.join(10)
        self.store.close()

    def run(self) -> None:
        while not self._halt.is_set():
            try:
                self._round()
            except Exception as exc:
                self.errors.append(f"{type(exc).__name__}: {exc}")
            self._halt.wait(POLL)

    def _round(self) -> None:
        rows = self.store.query("""SELECT id, business_key, result_type, order_id, EXTRACT(EPOCH FROM created_at)
                                     FROM mi_inbox WHERE consumed_at IS NULL ORDER BY id""")
        taken = []
        for row_id, key, rtype, order_id, created in rows:
            if rtype == "order":
                if key not in self.paid:
                    t0 = time.time()
                    self.seen_lag.append(t0 + self.offset - float(created))
                    try:
                        self.sim.pay(order_id)
                    except Exception as exc:
                        self.errors.append(f"pay {key}: {exc}")
                    t1 = time.time()
                    self.pay_call.append(t1 - t0)
                    self.paid[key] = t1 + self.offset
            elif rtype != "settlement":
                self.unexpected.append(f"{key}: {rtype}")
            taken.append(int(row_id))
        if taken:
            self.store.execute(f"""UPDATE mi_inbox SET consumed_at = CURRENT_TIMESTAMP, his_ack = 'accepted'
                                    WHERE consumed_at IS NULL AND id IN ({",".join(map(str, taken))})""")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", default=os.environ.get("MIBRIDGE_TEST_PG_URL"),
                    help="PostgreSQL admin URL (default: $MIBRIDGE_TEST_PG_URL)")
    ap.add_argument("--n", type=int, default=200, help="payments")
    ap.add_argument("--workers", type=int, default=4, help="daemon worker threads")
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for every row to be done")
    a = ap.parse_args()
    if not a.url:
        print("set MIBRIDGE_TEST_PG_URL or pass --url")
        return 2
    logger.remove()
    logger.add(sys.stderr, level="ERROR")
    from tests.engine.daemonproc import DaemonProcess
    from tests.mobilepay_flows.harness import MpSim, payment

    admin = parse_url(a.url)
    d = get_dialect("postgresql")
    name = "mi_bench_mp_" + uuid.uuid4().hex[:8]
    c = d.connect(admin, autocommit=True)
    c.execute(f'CREATE DATABASE "{name}"')
    c.close()
    url = a.url.rsplit("/", 1)[0] + "/" + name
    sim = proc = store = patient = None
    problems: list[str] = []
    try:
        conn = d.connect(parse_url(url))
        run_script(conn, "postgresql", script_path("postgresql", "install.sql"))
        conn.close()
        sim = MpSim()
        settings = production_settings()
        toml, env = sim.daemon_toml(**settings)
        tmp = Path(tempfile.mkdtemp(prefix="mibench-mp-"))
        # Payloads first (a person each, with no personal account: fund + cash, the
        # patient pays the cash part; payAuthNo from the simulator), off the clock.
        keys = [f"MPB{i:06d}" for i in range(a.n)]
        payloads = {k: payment(sim, sim.person("390", "none")) for k in keys}
        proc = DaemonProcess(tmp, url, None, name="bench", workers=a.workers, lease=30.0, extra=toml, env=env)
        deadline = time.monotonic() + 30
        while "6302 notice endpoint listening" not in (proc.log.read_text() if proc.log.exists() else ""):
            if proc.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("daemon did not start:\n" + proc.tail())
            time.sleep(0.1)
        time.sleep(0.5)
        store = Store(url)
        offset, rtt = db_clock_offset(store)
        patient = Patient(url, sim, offset)
        patient.start()
        cpu0, own0 = cpu_seconds(proc.proc.pid), time.process_time()
        t0 = time.monotonic()
        for k in keys:
            store.enqueue(KIND_OUTPATIENT, k, payloads[k])
        t_enq = time.monotonic() - t0
        while True:
            open_, settled = store.query(
                """SELECT (SELECT COUNT(*) FROM mi_outbox WHERE state IN ('pending', 'running', 'in_doubt')),
                          (SELECT COUNT(*) FROM mi_inbox WHERE result_type = 'settlement')""")[0]
            if not open_:
                break
            if proc.proc.poll() is not None:
                raise SystemExit(f"daemon exited ({proc.proc.returncode}):\n{proc.tail()}")
            if time.monotonic() - t0 > a.timeout:
                problems.append(f"{open_} rows still open after {a.timeout:.0f}s ({settled} settled)")
                break
            time.sleep(0.05)
        cpu, own = cpu_seconds(proc.proc.pid) - cpu0, time.process_time() - own0
        t_all = time.monotonic() - t0
        patient.stop()
        st = sim.state()

        # -- collect -------------------------------------------------------------------
        out = {r[0]: dict(id=r[0], key=r[1], state=r[2], created=float(r[3]), code=r[4]) for r in store.query(
            "SELECT id, business_key, state, EXTRACT(EPOCH FROM created_at), last_error_code FROM mi_outbox")}
        inbox: dict[int, dict[str, list]] = {}
        for oid, rtype, outcome, created, ack, order_id, total, fund, acct, cash, rj in store.query(
                """SELECT outbox_id, result_type, outcome, EXTRACT(EPOCH FROM created_at), his_ack, order_id,
                          total_amount, fund_amount, account_amount, cash_amount, result_json FROM mi_inbox"""):
            inbox.setdefault(oid, {}).setdefault(rtype, []).append(dict(
                outcome=outcome, created=float(created), ack=ack, order_id=order_id, rj=rj or "",
                amounts=tuple(Decimal(str(x)).quantize(Decimal("0.01")) for x in (total, fund, acct, cash))))
        journal: dict[int, list] = {}
        for oid, iface, started, ended, outcome in store.query(
                """SELECT outbox_id, interface, EXTRACT(EPOCH FROM started_at), EXTRACT(EPOCH FROM ended_at),
                          outcome FROM mi_journal ORDER BY id"""):
            journal.setdefault(oid, []).append((iface, float(started), None if ended is None else float(ended),
                                                outcome))
        notices = {r[0]: (float(r[1]), int(r[2])) for r in store.query(
            "SELECT business_key, EXTRACT(EPOCH FROM first_received_at), received_count FROM mi_notice")}

        # -- check ---------------------------------------------------------------------
        states: dict[str, int] = {}
        for r in out.values():
            states[r["state"]] = states.get(r["state"], 0) + 1
        if states != {"done": a.n}:
            problems.append(f"outbox states {states}, expected done={a.n}")
        charges: dict[str, int] = {}
        for e in st["events"]:
            if e["kind"] == "mobilepay.charge":
                charges[e["ref"]] = charges.get(e["ref"], 0) + 1
        orders_by_key: dict[str, list] = {}
        for o in st["orders"].values():
            orders_by_key.setdefault(o["medOrgOrd"], []).append(o)
        lat_order, lat_settle, to_notice, notice_to_row, confirmed = [], [], [], [], {}
        for r in out.values():
            k, ib = r["key"], inbox.get(r["id"], {})
            if r["state"] != "done":
                problems.append(f"{k}: {r['state']} {r['code']}")
            charged = [o for o in orders_by_key.get(k, []) if charges.get(o["payOrdId"])]
            if len(charged) != 1 or charges[charged[0]["payOrdId"]] != 1:
                problems.append(f"{k}: {[(o['payOrdId'], charges.get(o['payOrdId'])) for o in charged]} "
                                f"charged at the simulator, expected one order charged once")
            if sorted(ib) != ["order", "settlement"] or len(ib["order"]) != 1 or len(ib["settlement"]) != 1:
                problems.append(f"{k}: inbox rows {({t: len(v) for t, v in ib.items()})}")
                continue
            o_row, s_row = ib["order"][0], ib["settlement"][0]
            if s_row["outcome"] != "ok" or s_row["ack"] != "accepted" or o_row["ack"] != "accepted":
                problems.append(f"{k}: settlement {s_row['outcome']}/{s_row['ack']}, order ack {o_row['ack']}")
            if len(charged) == 1:
                c_ = charged[0]
                want = tuple(Decimal(str(c_[f])).quantize(Decimal("0.01"))
                             for f in ("feeSumamt", "fundPay", "psnAcctPay", "ownPayAmt"))
                if s_row["amounts"] != want or s_row["order_id"] != c_["payOrdId"]:
                    problems.append(f"{k}: settlement {s_row['order_id']} {s_row['amounts']} != charged "
                                    f"{c_['payOrdId']} {want}")
            by = "6302" if '"confirmed_by": "6302"' in s_row["rj"] else (
                "6301" if '"confirmed_by": "6301"' in s_row["rj"] else "?")
            confirmed[by] = confirmed.get(by, 0) + 1
            lat_order.append(o_row["created"] - r["created"])
            if k in patient.paid:
                lat_settle.append(s_row["created"] - patient.paid[k])
                if k in notices:
                    to_notice.append(notices[k][0] - patient.paid[k])
                    notice_to_row.append(s_row["created"] - notices[k][0])
            else:
                problems.append(f"{k}: settled but the patient never paid it")
        problems += [f"patient: {e}" for e in patient.errors[:5]]
        problems += [f"unexpected inbox row {u}" for u in patient.unexpected[:5]]
        first = min((r["created"] for r in out.values()), default=0.0)
        last_settle = max((v["settlement"][0]["created"] for v in inbox.values() if "settlement" in v),
                          default=first)
        calls: dict[str, list] = {}
        queue_wait = []
        for oid, js in journal.items():
            for iface, s0, s1, oc in js:
                calls.setdefault(iface, []).append((s1 - s0) if s1 is not None else None)
            if oid in out and js:
                queue_wait.append(js[0][1] - out[oid]["created"])
    finally:
        if patient is not None and patient.is_alive():
            patient.stop()
        rc = None
        if proc is not None:
            if proc.proc.poll() is None:
                rc = proc.terminate()
            else:
                rc = proc.proc.returncode
        if store is not None:
            store.close()
        if sim is not None:
            sim.stop()
        c = d.connect(admin, autocommit=True)
        c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        c.close()
    if rc != 0:
        problems.append(f"daemon exit status {rc} after SIGTERM")

    n_ok = len(lat_order)
    wall = last_settle - first
    rate = a.n / wall if wall > 0 else float("nan")
    ms = 1000.0
    cpu_ms = cpu / max(a.n, 1) * ms
    print(f"mibridge mobile-pay bench: n={a.n} workers={a.workers} cpus={os.cpu_count()} postgresql, "
          f"daemon process, production [mobilepay] settings (6302 notices on)")
    print(f"database clock - local clock: {offset * ms:+.2f} ms (probe round trip {rtt * ms:.2f} ms)")
    print(f"states: {states}; settlements confirmed by " +
          ", ".join(f"{k} {v}" for k, v in sorted(confirmed.items())))
    print(f"enqueue of {a.n} rows took {t_enq:.2f} s; first enqueue -> last settlement {wall:.2f} s; "
          f"-> every row done {t_all:.1f} s (the HIS-take check runs every "
          f"{settings['his_poll_seconds']:.0f} s)")
    print(f"payments/s: {rate:.1f}")
    print(f"enqueue->order row    p50 {pct(lat_order, 50) * ms:7.0f} ms  p99 {pct(lat_order, 99) * ms:7.0f} ms  "
          f"(DB clock; all {a.n} enqueued at once, so this is mostly queueing)")
    print(f"  of which enqueue -> first call (6201) starts: p50 {pct(queue_wait, 50) * ms:.0f} ms, "
          f"p99 {pct(queue_wait, 99) * ms:.0f} ms")
    print(f"paid->settlement row  p50 {pct(lat_settle, 50) * ms:7.0f} ms  p99 {pct(lat_settle, 99) * ms:7.0f} ms  "
          f"(pay call returned -> row created_at, DB clock)")
    if to_notice:
        print(f"  of which paid -> 6302 notice recorded: p50 {pct(to_notice, 50) * ms:.0f} ms, "
              f"p99 {pct(to_notice, 99) * ms:.0f} ms; notice -> settlement row: "
              f"p50 {pct(notice_to_row, 50) * ms:.0f} ms, p99 {pct(notice_to_row, 99) * ms:.0f} ms")
    print(f"patient: saw order rows p50 {pct(patient.seen_lag, 50) * ms:.0f} ms after insert (polls every "
          f"{POLL * ms:.0f} ms), pay call p50 {pct(patient.pay_call, 50) * ms:.0f} ms")
    print("calls (count, p50/p99 ms): " + "  ".join(
        f"{i} {len(v)} {pct([x for x in v if x is not None], 50) * ms:.0f}/"
        f"{pct([x for x in v if x is not None], 99) * ms:.0f}" for i, v in sorted(calls.items())))
    print(f"daemon CPU: {cpu:.2f} s = {cpu_ms:.1f} ms per payment (daemon process only, "
          f"{'psutil' if psutil else '/proc/<pid>/stat utime+stime'}; the simulator and patient in this "
          f"process not counted)")
    print(f"this process (simulator, patient/HIS thread, bench polling) CPU over the same span: {own:.2f} s "
          f"= {own / max(a.n, 1) * ms:.1f} ms per payment")
    for p in problems[:20]:
        print(f"PROBLEM: {p}")
    if len(problems) > 20:
        print(f"PROBLEM: ... and {len(problems) - 20} more")
    verdict = "OK" if not problems and n_ok == a.n else f"FAILED ({len(problems)} problems)"
    print(f"SUMMARY mobilepay postgresql: {rate:.1f} payments/s, enqueue->order p50/p99 "
          f"{pct(lat_order, 50) * ms:.0f}/{pct(lat_order, 99) * ms:.0f} ms, paid->settlement p50/p99 "
          f"{pct(lat_settle, 50) * ms:.0f}/{pct(lat_settle, 99) * ms:.0f} ms, {cpu_ms:.1f} ms daemon CPU/payment, "
          f"{a.workers} workers, n={a.n}: {verdict}")
    return 0 if verdict == "OK" else 1


if __name__ == "__main__":
    sys.exit(main())
