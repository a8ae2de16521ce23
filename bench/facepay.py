"""Face-pay benchmark: settlements/s, enqueue->result latency, bridge CPU per settlement.

    source /tmp/devenv.sh      # MIBRIDGE_TEST_PG_URL (an admin URL; a fresh database is made)
    python3 bench/facepay.py [--pg-url URL] [--visits 200] [--workers 4]

A fresh PostgreSQL database gets the mi_ schema; the simulator runs in this process; the
daemon is a real `python -m daemon.cli run` process with [offline] and [facepay].  All
visits are enqueued at once (pre-settlement + settlement, one serial key per visit), and
a background HIS accepts every settlement row as it appears.

* settlements/s  = visits / (first enqueue -> last settle row done)
* latency        = settlement inbox row created_at - settle outbox row created_at
                   (database clock; includes waiting behind its pre-settlement)
* CPU/settlement = the daemon process's user+system CPU (/proc) / visits; it also
                   covers the pre-settlement (2205/2204/2206) of each visit
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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from loguru import logger  # noqa: E402

from bridge.db.dialects import get_dialect  # noqa: E402
from bridge.db.scripts import run_script, script_path  # noqa: E402
from bridge.db.store import Store  # noqa: E402
from bridge.db.url import parse_url  # noqa: E402
from bridge.simulator import SimulatorConfig, start_simulator  # noqa: E402

NOW = "2024-03-01 09:30:00"
PERSON = {"psn_no": "44200000000000000006", "insutype": "310", "insuplc_admdvs": "442000",
          "mdtrt_cert_type": "02", "mdtrt_cert_no": "442000196506060061"}


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def payload(tag: str) -> dict:
    fees = [{"feedetl_sn": f"{tag}-1", "fee_ocur_time": NOW, "med_list_codg": "XJ01", "medins_list_codg": "H-XJ01",
             "det_item_fee_sumamt": "10.00", "cnt": "1", "pric": "10.00", "bilg_dept_codg": "NK01",
             "bilg_dept_name": "内科", "bilg_dr_codg": "D001", "bilg_dr_name": "李医生"}]
    return {"person": PERSON, "mdtrt_id": None, "chrg_bchno": f"B{tag}", "fees": fees, "total_amount": "10.00",
            "visit": {"ipt_otp_no": f"OP{tag}", "begntime": NOW, "atddr_no": "D001", "dr_name": "李医生",
                      "dept_code": "NK01", "dept_name": "内科", "caty": "A03",
                      "diagnoses": [{"diag_type": "1", "diag_srt_no": "1", "diag_code": "J06.900",
                                     "diag_name": "上呼吸道感染", "diag_dept": "内科", "dise_dor_no": "D001",
                                     "dise_dor_name": "李医生", "diag_time": NOW, "vali_flag": "1"}]}}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pg-url", default=os.environ.get("MIBRIDGE_TEST_PG_URL"))
    ap.add_argument("--visits", type=int, default=200)
    ap.add_argument("--workers", type=int, default=4)
    a = ap.parse_args()
    if not a.pg_url:
        print("set MIBRIDGE_TEST_PG_URL or pass --pg-url")
        return 2
    logger.remove()
    admin = parse_url(a.pg_url)
    d = get_dialect("postgresql")
    name = "mi_bench_fp_" + uuid.uuid4().hex[:8]
    c = d.connect(admin, autocommit=True)
    c.execute(f'CREATE DATABASE "{name}"')
    c.close()
    url = a.pg_url.rsplit("/", 1)[0] + "/" + name
    conn = d.connect(parse_url(url))
    run_script(conn, "postgresql", script_path("postgresql", "install.sql"))
    conn.close()
    # The simulator gives every visit a new registration; the person needs enough balance.
    sim = start_simulator(SimulatorConfig.generate())
    from tests.engine.daemonproc import DaemonProcess
    from tests.facepay_flows.conftest import SECRET_ENV, daemon_toml

    creds = sim.client_credentials()
    os.environ[SECRET_ENV] = creds["offline"]["secret"]
    tmp = Path(tempfile.mkdtemp(prefix="mibench-fp-"))
    toml = daemon_toml(creds, str(tmp), settle_window_seconds=10, his_ack_poll_seconds=0.05,
                       notify_terminal=False).replace("read_timeout = 0.8", "read_timeout = 5.0")
    store = Store(url)
    stop = threading.Event()

    def his_accepts():
        s = Store(url)
        while not stop.wait(0.05):
            s.execute("UPDATE mi_inbox SET consumed_at = now(), his_ack = 'accepted' "
                      "WHERE consumed_at IS NULL AND result_type = 'settlement'")
        s.close()
    proc = DaemonProcess(tmp, url, None, name="bench", workers=a.workers, lease=10.0, extra=toml)
    try:
        deadline = time.monotonic() + 30
        while "daemon starting" not in (proc.log.read_text() if proc.log.exists() else ""):
            if time.monotonic() > deadline:
                raise SystemExit("daemon did not start:\n" + proc.tail())
            time.sleep(0.1)
        time.sleep(0.5)   # 9001 sign-in done
        cpu0 = cpu_seconds(proc.proc.pid)
        acc = threading.Thread(target=his_accepts, daemon=True)
        acc.start()
        t0 = time.monotonic()
        for i in range(a.visits):
            tag = f"{i:06d}"
            store.enqueue("facepay.outpatient.presettle", f"P{tag}", {k: v for k, v in payload(tag).items()
                                                                     if v is not None}, serial_key=f"V{tag}")
            store.enqueue("facepay.outpatient.settle", f"S{tag}", {"presettle_key": f"P{tag}"}, serial_key=f"V{tag}")
        while True:
            left = store.query("SELECT COUNT(*) FROM mi_outbox WHERE state NOT IN ('done','failed','held')")[0][0]
            if not left:
                break
            if time.monotonic() - t0 > 600:
                raise SystemExit(f"{left} rows still open:\n{proc.tail()}")
            time.sleep(0.05)
        elapsed = time.monotonic() - t0
        cpu = cpu_seconds(proc.proc.pid) - cpu0
        states = dict(store.query("SELECT state, COUNT(*) FROM mi_outbox GROUP BY state"))
        lat = sorted(float(r[0]) for r in store.query(
            """SELECT EXTRACT(EPOCH FROM (i.created_at - o.created_at)) FROM mi_inbox i
                 JOIN mi_outbox o ON o.id = i.outbox_id
                WHERE i.result_type = 'settlement' AND o.kind = 'facepay.outpatient.settle'"""))
    finally:
        stop.set()
        proc.terminate()
        store.close()
        sim.stop()
        c = d.connect(admin, autocommit=True)
        c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        c.close()
    n = len(lat)
    p50 = lat[n // 2] * 1000 if n else float("nan")
    p99 = lat[min(n - 1, int(n * 0.99))] * 1000 if n else float("nan")
    print(f"states: {states}")
    print(f"settlements: {n} in {elapsed:.1f} s with {a.workers} workers")
    print(f"enqueue->settlement row: p50 {p50:.0f} ms, p99 {p99:.0f} ms (all enqueued at once)")
    print(f"daemon CPU: {cpu:.2f} s = {cpu / max(n, 1) * 1000:.1f} ms per settlement (incl. its pre-settlement)")
    print(f"SUMMARY facepay postgresql: {n / elapsed:.1f} settlements/s, p50 {p50:.0f} ms, p99 {p99:.0f} ms, "
          f"{cpu / max(n, 1) * 1000:.1f} ms CPU/settlement, {a.workers} workers")
    return 0 if states.get("done") == 2 * a.visits else 1


if __name__ == "__main__":
    sys.exit(main())
