"""A day of mixed traffic through a REAL daemon (python -m daemon.cli run) and the simulator over
HTTP, on one database: face-pay settlements and a cancel, mobile-pay payments, a partial refund
and a 单边账 repair.  Each database gets its own simulator: the centre's day-end statement covers
every settlement of the institution, so two databases must not share one."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Optional

import httpx

from bridge.db.store import Store
from bridge.simulator import SimulatorConfig, start_simulator
from tests.engine.daemonproc import DaemonProcess, without_password
from tests.facepay_flows.conftest import SECRET_ENV, SUN, WANG, ZHANG, His, Sim, daemon_toml, person_of, visit_payload
from tests.mobilepay_flows.harness import His as Robot

ROOT = Path(__file__).resolve().parents[2]
D = Decimal
OUTP = "facepay.outpatient"
MP_FAST = dict(poll_first_seconds=0.2, poll_cap_seconds=0.5, his_take_window_seconds=3.0, his_poll_seconds=0.2,
               settle_seconds=1.8, payment_deadline_seconds=60.0, revoke_wait_seconds=20)
# stale_seconds is the shipped default: the test of a killed run moves its heartbeat back on
# the database clock; with 3 s, a second run started on a loaded machine found the killed
# run's heartbeat already stale and took over instead of being refused (a flake).
RECON = """
[reconciliation]
at = "23:59"
call_retry_seconds = 0.2
stale_seconds = 600
page_size = 20
centre_workers = 2
report_max_rows = 50
"""


class Payer:
    """The patient paying in the simulated cashier (what harness.His needs of a simulator)."""

    def __init__(self, url: str):
        self.url = url

    def pay(self, pay_ord_id: str) -> dict:
        r = httpx.post(self.url + "/__sim__/mobilepay/pay", json={"payOrdId": pay_ord_id}, timeout=10)
        r.raise_for_status()
        return r.json()


@dataclass
class DayEnv:
    dialect: str
    url: str
    tmp: Path
    running: object
    sim: Sim
    proc: DaemonProcess
    robot: Robot
    his: His
    store: Store
    env: dict
    facepay: dict = field(default_factory=dict)      # key -> setl_id
    mobilepay: dict = field(default_factory=dict)    # key -> payOrdId
    day: str = ""

    # -- the CLI ----------------------------------------------------------------------------
    def config(self, extra: str = "") -> Path:
        path = self.tmp / f"recon-{uuid.uuid4().hex[:6]}.toml"
        path.write_text(self.proc.config_path.read_text() + RECON + extra)
        return path

    def cli(self, *args: str, extra: str = "", env: Optional[dict] = None) -> subprocess.CompletedProcess:
        """`mibridge -c <the daemon's config + [reconciliation]> ARGS`, as the administrator runs it."""
        e = {k: v for k, v in os.environ.items() if k != "MIBRIDGE_CRASH_AT"}
        e.update(PYTHONPATH=str(ROOT), **self.env, **(env or {}))
        _, password = without_password(self.url)
        if password:
            e["MIBRIDGE_DB_PASSWORD"] = password
        return subprocess.run([sys.executable, "-m", "daemon.cli", "-c", str(self.config(extra)), *args],
                              capture_output=True, text=True, env=e, cwd=ROOT, timeout=300)

    def reconcile(self, platform: str, *, extra: str = "", env: Optional[dict] = None,
                  day: Optional[str] = None) -> subprocess.CompletedProcess:
        return self.cli("reconcile", "--date", day or self.day, "--platform", platform, "--quiet",
                        extra=extra, env=env)

    # -- what the HIS and the DBA see -------------------------------------------------------------
    def view(self, platform: str, day: Optional[str] = None) -> dict[tuple[str, str], dict]:
        cols = ("run_id", "order_key", "leg", "diff_class", "hospital_amount", "platform_amount", "channel_amount",
                "business_key", "note")
        rows = self.store.query(f"""SELECT {', '.join(cols)} FROM mi_v_reconciliation
                                     WHERE recon_day = :d AND platform = :p""", {"d": day or self.day, "p": platform})
        out = {}
        for r in rows:
            d = dict(zip(cols, r))
            for m in ("hospital_amount", "platform_amount", "channel_amount"):
                d[m] = None if d[m] is None else D(str(d[m])).quantize(D("0.01"))
            key = (d["order_key"], d["leg"])
            assert key not in out, f"{key} twice in mi_v_reconciliation"
            out[key] = d
        return out

    def differences(self, platform: str) -> dict[tuple[str, str], str]:
        return {k: v["diff_class"] for k, v in self.view(platform).items() if v["diff_class"] != "balanced"}

    def runs(self, platform: str) -> list[tuple]:
        return [tuple(r) for r in self.store.query(
            "SELECT id, state, balanced FROM mi_recon_run WHERE recon_day = :d AND platform = :p ORDER BY id",
            {"d": self.day, "p": platform})]

    def reports(self, platform: str) -> list[dict]:
        rows = self.store.query("""SELECT i.error_code, i.order_id, i.result_json FROM mi_inbox i
                                    JOIN mi_outbox o ON o.id = i.outbox_id
                                   WHERE o.kind = 'reconciliation.report' AND o.business_key LIKE :k
                                   ORDER BY i.id""", {"k": f"RECON-{self.day}-{platform}-%"})
        return [{"code": r[0], "order_id": r[1], "result": json.loads(r[2])} for r in rows]

    def mismatch(self, **body) -> None:
        self.sim.control("POST", "/__sim__/reconciliation/mismatch", body)

    def stop(self) -> int:
        self.robot.stop()
        rc = self.proc.terminate()
        self.store.close()
        self.running.stop()
        return rc


def _mobilepay_toml(creds: dict) -> tuple[str, dict]:
    m = creds["mobilepay"]
    values = dict(base_url=m["base_url"], app_id=m["app_id"], app_secret_env="MIBRIDGE_TEST_RC_MP_SECRET",
                  org_private_key_env="MIBRIDGE_TEST_RC_MP_KEY", platform_public_key=m["platform_public_key"],
                  org_codg=m["org_codes"][0], timeout_seconds=1.0, **MP_FAST)
    env = {"MIBRIDGE_TEST_RC_MP_SECRET": m["app_secret"], "MIBRIDGE_TEST_RC_MP_KEY": m["institution_private_key"]}
    return "\n[mobilepay]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in values.items()), env


def start(dialect: str, url: str, tmp: Path) -> DayEnv:
    running = start_simulator(SimulatorConfig.generate(timeout_delay=1.2, require_sign_no=True))
    sim = Sim(running)
    sim.reset()
    creds = sim.creds
    msgid = tmp / "msgid"
    msgid.mkdir(exist_ok=True)
    mp, env = _mobilepay_toml(creds)
    env[SECRET_ENV] = creds["offline"]["secret"]
    proc = DaemonProcess(tmp, url, None, name="recon", workers=3, lease=3.0,
                         extra=daemon_toml(creds, str(msgid), his_ack_timeout_seconds=30) + mp, env=env)
    store = Store(url)
    robot = Robot(url, Payer(running.url))
    robot.start()
    return DayEnv(dialect, url, tmp, running, sim, proc, robot, His(Store(url)), store, env)


def mp_person(e: DayEnv) -> dict:
    n = uuid.uuid4().int % 10 ** 16
    p = {"psn_no": f"4401{n:016d}", "certno": f"44010619{n % 10 ** 10:010d}", "psn_name": f"测试{n % 10000}",
         "insutype": "390", "insuplc_admdvs": "440100", "account": "none", "balc": "0.00"}
    e.sim.control("POST", "/__sim__/persons", p)
    return p


def mp_payment(e: DayEnv, p: dict, amounts=("20.00", "100.00")) -> dict:
    auth = e.sim.control("POST", "/__sim__/mobilepay/authorize", {"psn_no": p["psn_no"]})["payAuthNo"]
    lines = [{"line_no": i + 1, "item_code": f"ITEM{i + 1}", "item_name": f"项目{i + 1}", "quantity": "1",
              "price": a, "amount": a} for i, a in enumerate(amounts)]
    return {"patient_id": f"P{p['psn_no'][-6:]}", "visit_id": f"V{uuid.uuid4().hex[:10]}", "pay_auth_no": auth,
            "id_no": p["certno"], "user_name": p["psn_name"], "dept_code": "A03", "dept_name": "内科", "caty": "A03",
            "total_amount": str(sum(D(a) for a in amounts)), "lines": lines, "psn_no": p["psn_no"],
            "insutype": p["insutype"], "insuplc_admdvs": p["insuplc_admdvs"]}


def traffic(e: DayEnv) -> None:
    """The day: 5 face-pay settlements (one cancelled), 3 mobile payments (one partly refunded,
    one rejected by the HIS and reversed)."""
    tag = e.dialect[:2].upper()
    for n, (psn, amounts) in enumerate(((ZHANG, ("60.00", "40.00")), (SUN, ("100.00", "50.00")),
                                        (ZHANG, ("30.00",)), (WANG, ("80.00", "20.00")), (WANG, ("12.30",))), 1):
        k = f"{tag}F{n}"
        # WANG has no real personal account: a plain (not face-pay) offline settlement.
        extra = {"face_pay": False} if psn == WANG else {}
        e.his.enqueue(f"{OUTP}.presettle", f"P{k}", visit_payload(person=person_of(e.sim, psn), amounts=amounts,
                                                                   **extra), serial=f"V{k}")
        e.his.enqueue(f"{OUTP}.settle", f"S{k}", {"presettle_key": f"P{k}"}, serial=f"V{k}")
    keys = {}
    for n in (1, 2, 3):
        key = f"{tag}M{n}-{uuid.uuid4().hex[:6]}"
        if n == 2:
            e.robot.rejects.add(key)
        e.store.enqueue("mobilepay.outpatient", key, mp_payment(e, mp_person(e)))
        keys[n] = key
    for n in range(1, 6):
        k = f"{tag}F{n}"
        assert e.his.wait(f"{OUTP}.settle", f"S{k}", accept=False, timeout=60) == "done", e.proc.tail()
        e.facepay[k] = e.his.one(f"{OUTP}.settle", f"S{k}", "settlement")["setl_id"]
    e.his.enqueue(f"{OUTP}.cancel", f"C{tag}F3", {"settle_key": f"S{tag}F3"}, serial=f"V{tag}F3")
    assert e.his.wait(f"{OUTP}.cancel", f"C{tag}F3", accept=False, timeout=60) == "done", e.proc.tail()
    _wait(e, keys.values())
    refund = f"RF-{keys[1]}"
    e.store.enqueue("mobilepay.refund", refund, {"payment_key": keys[1], "amount": "10.00"}, serial_key=keys[1])
    _wait(e, [refund])
    for n, key in keys.items():
        e.mobilepay[key] = e.store.query("SELECT order_id FROM mi_inbox WHERE business_key = :k AND "
                                         "result_type = 'order'", {"k": key})[0][0]
    states = {k: e.store.query("SELECT state, last_error_code FROM mi_outbox WHERE business_key = :k "
                               "AND kind = 'mobilepay.outpatient'", {"k": k})[0] for k in keys.values()}
    assert tuple(states[keys[2]]) == ("failed", "REVERSED"), states
    e.day = e.store.query("SELECT settle_day FROM mi_order WHERE platform_order_id = :k",
                          {"k": e.facepay[f"{tag}F1"]})[0][0]


def _wait(e: DayEnv, keys, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = e.store.query("SELECT business_key, state FROM mi_outbox WHERE kind LIKE 'mobilepay.%'")
        open_ = [r for r in rows if r[0] in keys and r[1] not in ("done", "failed", "resolved", "held")]
        if not open_:
            return
        time.sleep(0.2)
    raise AssertionError(f"mobile-pay rows still open: {open_}\n{e.proc.tail()}")
