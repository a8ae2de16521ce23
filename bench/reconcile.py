"""Reconciliation benchmark: a day of N settlements on PostgreSQL, time and peak memory.

    export MIBRIDGE_TEST_PG_URL=postgresql://postgres@127.0.0.1:5432/postgres   # an admin URL
    python3 bench/reconcile.py [--sizes 10000,50000,100000] [--scenarios offline-clean,offline-details,channel]

What is real and what is simulated (be clear about it):

* The HIS side is real: the order book rows (mi_order, mi_order_refund) are inserted directly
  into a fresh PostgreSQL database (N settlements of the day, 1 % of them cancelled the same
  day), as the Store would have booked them; the reconciliation reads them back through the
  same code the daemon runs (bridge/reconcile), writes every item to mi_recon_item and ends
  with the report transaction.
* offline-*: the platform side is the simulator's reconciliation (bridge/simulator/
  reconciliation.py), over HTTP, in a child process, its state filled directly with the same N
  settlements (not by N calls of 2207).  offline-clean: 3201 balances, one balanced item per
  settlement and leg.  offline-details: two mismatches injected, so 3201 does not balance and
  the whole 3202 path runs: the detail file of N rows written and zipped, uploaded by 9101,
  3202, the result zip of N rows downloaded by 9102 and read, N x 3 items written.
* channel: a WeChat trade bill of N payment rows (gzip CSV in the real layout, written by the
  simulator's bill code) read from a file through the real bill source and loaded into
  mi_channel_bill, against N mobile-pay orders of the book; the centre is not asked (6301 is
  one call per order: its rate is measured separately with --centre-sample orders).
* Time: wall seconds of Reconciliation.run, untraced.  Memory: the run's own peak RSS (Linux:
  /proc/self/status VmHWM, reset just before the run through /proc/self/clear_refs; our process
  only, the simulator child is apart).  --tracemalloc adds tracemalloc's peak of Python
  allocations during the run; tracing makes the run two to three times slower, so its seconds
  are not the ones to compare with the goal.  The 9101 body is the one part that grows with
  N: the file travels inside one JSON message (about 2 MB at 100,000 rows).
"""
from __future__ import annotations

import argparse
import gzip
import multiprocessing as mp
import os
import resource
import sys
import tempfile
import time
import tracemalloc
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from loguru import logger  # noqa: E402

from bench.outbox import make_database  # noqa: E402
from bridge.db.store import Store  # noqa: E402

DAY = "2024-03-01"
OPTINS = "440100"
D = Decimal


def amounts(i: int) -> tuple[Decimal, Decimal, Decimal]:
    total = D(50 + (i % 997)) + D(i % 100) / 100
    fund = (total * D("0.7")).quantize(D("0.01"))
    return total, fund, total - fund


def insutype(i: int) -> str:
    return "310" if i % 3 else "390"


def setl_id(i: int) -> str:
    return f"B{i:011d}"


# -- the simulator child ------------------------------------------------------------------------------
def _serve(n: int, pipe) -> None:
    from bridge.simulator import SimulatorConfig, start_simulator
    from bridge.simulator.offline import Settlement
    from bridge.simulator.split import Split

    logger.remove()
    running = start_simulator(SimulatorConfig.generate(require_sign_no=True))
    off = running.simulator.offline
    creds = running.client_credentials()
    code = next(iter(creds["offline"]["institutions"]))
    for i in range(n):
        total, fund, acct = amounts(i)
        st = Settlement(setl_id(i), f"M{i:020d}", "2207", code, f"MD{i:010d}", f"P{i:010d}", insutype(i), "11", "11",
                        Split(total, fund, acct, D("0.00"), D("0.7")), D("0.00"), f"{DAY} 10:00:00", f"BT{i}", True,
                        insuplc_admdvs=OPTINS)
        if i % 100 == 7:
            st.valid, st.cancel_time = False, f"{DAY} 15:00:00"
        off.settlements[st.setl_id] = st
    pipe.send((running.url, creds, code))
    pipe.recv()
    running.stop()


# -- the HIS side ---------------------------------------------------------------------------------------
def fill_book(url: str, n: int, platform: str) -> None:
    s = Store(url)
    cols = ("platform", "channel", "kind", "business_key", "outbox_id", "platform_order_id", "settlement_id",
            "out_trade_no", "psn_no", "mdtrt_id", "insutype", "clr_type", "setl_optins", "total_amount",
            "fund_amount", "account_amount", "cash_amount", "settle_day")
    # COPY: the Store's PostgreSQL connection sends statement text as it is ($1, $2 ...: a
    # RawCursor), so a %s INSERT no longer works there; COPY is also the fast way.
    sql = f"COPY mi_order ({', '.join(cols)}) FROM STDIN"
    conn = s.conn
    batch = []
    for i in range(n):
        total, fund, acct = amounts(i)
        if platform == "facepay":
            row = ("facepay", "none", "facepay.outpatient.settle", f"S{i}", i + 1, setl_id(i), setl_id(i), None,
                   f"P{i:010d}", f"MD{i:010d}", insutype(i), "11", OPTINS, total, fund, acct, D("0.00"), DAY)
        else:       # mobile pay: fund + cash, the cash through WeChat
            row = ("mobilepay", "wechat", "mobilepay.outpatient", f"K{i}", i + 1, f"ORD{i:012d}", f"ORD{i:012d}",
                   f"WX{i:012d}", None, None, None, None, None, total, fund, D("0.00"), acct, DAY)
        batch.append(row)
        if len(batch) == 5000 or i == n - 1:
            with conn.cursor() as cur, cur.copy(sql) as copy:
                for r in batch:
                    copy.write_row(r)
            conn.commit()
            batch = []
    if platform == "facepay":       # the same-day cancellations (1 %)
        with conn.cursor() as cur:
            cur.execute("""INSERT INTO mi_order_refund (order_ref, platform, platform_order_id, refund_type, kind,
                                                        business_key, outbox_id, total_amount, fund_amount,
                                                        account_amount, cash_amount, refund_day)
                           SELECT id, platform, platform_order_id, 'cancellation', 'facepay.outpatient.cancel',
                                  'C' || business_key, outbox_id + 1000000000, total_amount, fund_amount,
                                  account_amount, cash_amount, settle_day
                             FROM mi_order WHERE (CAST(substr(platform_order_id, 2) AS bigint) % 100) = 7""")
            cur.execute("""UPDATE mi_order SET status = 'cancelled', refunded_total = total_amount,
                                  refunded_fund = fund_amount, refunded_account = account_amount, refund_count = 1
                            WHERE (CAST(substr(platform_order_id, 2) AS bigint) % 100) = 7""")
            cur.execute("ANALYZE")
        conn.commit()
    else:
        with conn.cursor() as cur:
            cur.execute("ANALYZE")
        conn.commit()
    s.close()


def wechat_bill(path: str, n: int) -> None:
    """A trade bill of n payments in WeChat's layout (the simulator's own writer)."""
    from bridge.simulator.channel_bills import WECHAT_HEADER, WECHAT_SUMMARY
    with gzip.open(path, "wt", encoding="utf-8", newline="") as f:
        f.write(WECHAT_HEADER + "\n")
        total = D("0.00")
        for i in range(n):
            _, _, cash = amounts(i)
            total += cash
            fields = [f"{DAY} 10:00:00", "wx0000000000000000", "1900000000", "0", "", f"42{i:026d}", f"WX{i:012d}",
                      "oPatient", "JSAPI", "SUCCESS", "OTHERS", "CNY", str(cash), "0.00", "0", "0", "0.00", "0.00",
                      "", "", "门诊缴费", "", "0.00000", "0.60%", str(cash), "0.00", ""]
            f.write("`" + ",`".join(fields) + "\n")
        f.write(WECHAT_SUMMARY + "\n")
        f.write("`" + ",`".join([str(n), str(total), "0.00", "0.00", "0.00000", str(total), "0.00"]) + "\n")


class FileBills:
    """The real WeChat bill source, reading a file instead of downloading it."""
    channel = "wechat"

    def __init__(self, path: str):
        from bridge.reconcile.channels import WeChatBills
        self.path, self.source = path, WeChatBills(None)

    def download(self, day, dest):
        import shutil
        from bridge.calls import CallResult, Outcome
        shutil.copy(self.path, dest)
        return CallResult(Outcome.OK, "bill", "file")

    def rows(self, path):
        return self.source.rows(path)


# -- one measurement ----------------------------------------------------------------------------------
def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")        # resets VmHWM (Linux >= 4.0)
        return True
    except OSError:
        return False


def _peak_rss_mb() -> float:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def measure(scenario: str, n: int, tmp: Path, trace: bool = False) -> dict:
    from bridge.offline import messages as m
    from bridge.offline.client import OfflineClient
    from bridge.offline.config import OfflineConfig, Operator
    from bridge.reconcile.mobilepay import MobilePayReconciler
    from bridge.reconcile.offline import OfflineReconciler
    from bridge.reconcile.runner import Reconciliation
    from bridge.reconcile.settings import ReconcileSettings

    url, drop = make_database("postgresql", tmp)
    child = parent = proc = client = None
    try:
        fill_book(url, n, "facepay" if scenario.startswith("offline") else "mobilepay")
        settings = ReconcileSettings(call_retry_seconds=0.5, work_dir=str(tmp), centre_query="none")
        if scenario.startswith("offline"):
            parent, child = mp.Pipe()
            proc = mp.get_context("spawn").Process(target=_serve, args=(n, child), daemon=True)
            proc.start()
            sim_url, creds, code = parent.recv()
            o = creds["offline"]
            client = OfflineClient(OfflineConfig(
                base_url=o["base_url"], paas_id=o["paasid"], paas_secret=o["secret"], fixmedins_code=code,
                fixmedins_name=o["institutions"][code], mdtrtarea_admvs=o["mdtrtarea_admvs"],
                default_operator=Operator("op001", "bench"), msgid_lock_dir=str(tmp), read_timeout=300),
                sign_in_request=lambda op: m.SignInRequest(opter_no=op.opter, mac="00", ip="127.0.0.1"))
            if scenario == "offline-details":
                import httpx
                for body in ({"kind": "missing_at_centre", "setl_id": setl_id(11)},
                             {"kind": "amount_off", "setl_id": setl_id(12), "field": "fund_pay_sumamt",
                              "delta": "0.01"}):
                    httpx.post(sim_url + "/__sim__/reconciliation/mismatch", json=body).raise_for_status()
            reconcilers, platform = {"offline": OfflineReconciler(client)}, "offline"
        else:
            bill = str(tmp / "bill.csv.gz")
            wechat_bill(bill, n)
            reconcilers, platform = {"mobilepay": MobilePayReconciler(None, [FileBills(bill)])}, "mobilepay"
        rec = Reconciliation(lambda: Store(url), settings, reconcilers)
        reset = _reset_peak_rss()
        if trace:
            tracemalloc.start()
        t0 = time.perf_counter()
        result = rec.run(DAY, platform)
        seconds = time.perf_counter() - t0
        peak = None
        if trace:
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
        assert result.state == "done", result.error
        s = Store(url)
        items = int(s.query("SELECT COUNT(*) FROM mi_recon_item WHERE run_id = :r", {"r": result.run_id})[0][0])
        s.close()
        return {"scenario": scenario, "settlements": n, "seconds": round(seconds, 1), "items": items,
                "differences": sum(v for k, v in result.counts.items() if k != "balanced"),
                "balanced": result.balanced, "peak_python_mb": None if peak is None else round(peak / 2 ** 20, 1),
                "peak_rss_mb": _peak_rss_mb(), "rss_of": "the run" if reset else "the process"}
    finally:
        if client is not None:
            client.close()
        if parent is not None:
            parent.send("stop")
            proc.join(10)
        drop()


def centre_rate(sample: int) -> dict:
    """6301 against the simulator: how many orders a second one run asks (4 workers)."""
    from concurrent.futures import ThreadPoolExecutor

    from bridge.mobilepay.client import MobilePayClient
    from bridge.mobilepay.config import MobilePayConfig
    from bridge.mobilepay.messages import QueryOrderRequest
    from bridge.simulator import SimulatorConfig, start_simulator
    from tests.simulator.channel_helpers import ORG, CASH_PSN, CentreOrder
    from tests.simulator.spec_client import MobilePayClient as Spec

    running = start_simulator(SimulatorConfig.generate())
    try:
        creds = running.client_credentials()["mobilepay"]
        spec = Spec(running.url, creds)
        order = CentreOrder(running, spec, CASH_PSN, "10.00")
        client = MobilePayClient(MobilePayConfig(base_url=creds["base_url"], app_id=creds["app_id"],
                                                 app_secret=creds["app_secret"],
                                                 org_private_key=creds["institution_private_key"],
                                                 platform_public_key=creds["platform_public_key"], org_codg=ORG))
        req = QueryOrderRequest(payOrdId=order.pay_ord_id, payToken=order.pay_token, idNo=order.person["certno"],
                                userName=order.person["psn_name"], idType="01")
        t0 = time.perf_counter()
        with ThreadPoolExecutor(4) as pool:
            oks = sum(1 for r in pool.map(lambda _: client.send(client.prepare_query_order(req)), range(sample))
                      if r.ok)
        seconds = time.perf_counter() - t0
        client.close()
        return {"scenario": "6301", "orders": sample, "ok": oks, "per_second": round(sample / seconds, 1),
                "seconds_for_100000": round(100000 / (sample / seconds))}
    finally:
        running.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="10000,50000,100000")
    ap.add_argument("--scenarios", default="offline-clean,offline-details,channel")
    ap.add_argument("--centre-sample", type=int, default=500, help="6301 calls to time (0: skip)")
    ap.add_argument("--tracemalloc", action="store_true",
                    help="also trace Python allocations (peak python MB; slows the run two to three times)")
    args = ap.parse_args()
    if not os.environ.get("MIBRIDGE_TEST_PG_URL"):
        print("set MIBRIDGE_TEST_PG_URL (an admin URL, e.g. postgresql://postgres@127.0.0.1:5432/postgres)", file=sys.stderr)
        return 2
    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for scenario in args.scenarios.split(","):
            for n in (int(x) for x in args.sizes.split(",")):
                r = measure(scenario, n, Path(tmp), trace=args.tracemalloc)
                rows.append(r)
                print(r, flush=True)
    if args.centre_sample:
        print(centre_rate(args.centre_sample), flush=True)
    print()
    print(f"{'scenario':<16} {'settlements':>11} {'seconds':>8} {'items':>8} {'diffs':>6} "
          f"{'peak RSS MB':>12} {'peak python MB':>15}")
    for r in rows:
        print(f"{r['scenario']:<16} {r['settlements']:>11} {r['seconds']:>8} {r['items']:>8} {r['differences']:>6} "
              f"{r['peak_rss_mb']:>12} {'-' if r['peak_python_mb'] is None else r['peak_python_mb']:>15}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
