"""A day of mixed traffic through a REAL daemon (python -m daemon.cli run) and the simulator over
HTTP, on one database: face-pay settlements and a cancel; mobile pay through the centre's own
cashier and through both channels (WeChat Pay 医保 and Alipay, cash + insurance), the patient
paying each order in its cashier with what the `order` row carries; partial and full refunds;
and a 单边账 repair per channel (a settlement the HIS rejects, refunded on both legs).

Each database gets its own simulator: the centre's day-end statement and the channels' bills
cover every settlement of the institution, so two databases must not share one.

The simulator stamps its times (setl_time, traceTime, the bills' days) in the process's local
time, and the platforms it plays are in China time; mibridge reads days as China days (the
platform's time as written, else the database clock in UTC+8).  So while a day runs, this
process is in China time (TZ=Asia/Shanghai): on a UTC machine after 16:00 the two would
otherwise name different days."""
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
from tests.channel_flows.harness import ChHis, ChSim, pay_doc
from tests.engine.daemonproc import DaemonProcess, without_password
from tests.facepay_flows.conftest import SECRET_ENV, SUN, WANG, ZHANG, ZHOU, His, daemon_toml, visit_payload
from tests.mobilepay_flows.harness import free_port

ROOT = Path(__file__).resolve().parents[2]
D = Decimal
OUTP = "facepay.outpatient"
# Short settings: the test is about the reconciliation, not the flows' defaults.  The payment
# deadline stays far past what a loaded machine needs for the robot to pay.
MP_FAST = dict(poll_first_seconds=0.2, poll_cap_seconds=0.5, his_take_window_seconds=3.0, his_poll_seconds=0.2,
               settle_seconds=1.8, payment_deadline_seconds=60.0, revoke_wait_seconds=20)
HTTP = "\n[http]\nchannel_timeout = 5\nthreads = 4\n"
RECON = """
[reconciliation]
at = "23:59"
call_retry_seconds = 0.2
stale_seconds = 3.0
page_size = 4
centre_workers = 2
report_max_rows = 50
"""
FINAL = ("done", "failed", "resolved", "held")


class DaySim(ChSim):
    """One simulator as the centre, the offline gateway, the face terminal and both channels."""

    def __init__(self) -> None:     # noqa: D401 - ChSim's, with the offline side's settings
        self.port = free_port()     # the daemon's callback listener (6302, WeChat, Alipay)
        self.cfg = SimulatorConfig.generate(
            callback_url=f"http://127.0.0.1:{self.port}/mibridge/mobilepay/notify", timeout_delay=1.2,
            require_sign_no=True, callback_retry_delay=0.1, callback_attempts=3,
            channel_callback_retry_delay=0.05, wechat_refund_settle_seconds=0.05)
        self.running = start_simulator(self.cfg)
        self.url = self.running.url
        self.all_creds = self.running.client_credentials()
        self.creds = self.all_creds["mobilepay"]
        self.http = httpx.Client(base_url=self.url, timeout=10.0)

    def reset(self) -> None:
        self.control("POST", "/__sim__/reset")
        self.control("POST", "/__sim__/persons", {
            "psn_no": ZHOU, "certno": "440106199505050011", "psn_name": "周九", "gend": "1",
            "brdy": "1995-05-05", "insutype": "310", "psn_type": "11", "insuplc_admdvs": "440100",
            "account": "real", "balc": "10.00"})

    def offline_person(self, psn_no: str) -> dict:
        """A face-pay visit's `person` (tests/facepay_flows/conftest.py person_of)."""
        p = next(p for p in self.control("GET", "/__sim__/persons")["persons"] if p["psn_no"] == psn_no)
        return {"psn_no": p["psn_no"], "insutype": p["insutype"], "insuplc_admdvs": p["insuplc_admdvs"],
                "mdtrt_cert_type": "02", "mdtrt_cert_no": p["certno"]}

    def mismatch(self, **body) -> None:
        self.control("POST", "/__sim__/reconciliation/mismatch", body)

    def bill_mismatch(self, **body) -> None:
        self.control("POST", "/__sim__/bills/mismatch", body)

    def close_bills(self, day: str) -> None:
        self.control("POST", "/__sim__/bills/close", {"channel": "all", "date": day})


@dataclass
class Payment:
    """One mobile payment of the day, and what became of it."""
    key: str
    channel: Optional[str]            # wechat | alipay | None (the centre's own cashier)
    fate: str                         # kept | partly | refunded | reversed
    refunds: list = field(default_factory=list)
    pay_ord_id: str = ""
    settlement: dict = field(default_factory=dict)     # the settlement row's result

    @property
    def out_trade_no(self) -> Optional[str]:
        return self.settlement.get("out_trade_no")


@dataclass
class DayEnv:
    dialect: str
    url: str
    tmp: Path
    sim: DaySim
    proc: DaemonProcess
    robot: ChHis
    his: His
    store: Store
    env: dict
    facepay: dict = field(default_factory=dict)      # key -> setl_id
    payments: dict = field(default_factory=dict)     # name (M0, WX1 ...) -> Payment
    day: str = ""

    @property
    def mobilepay(self) -> dict:
        """business key -> payOrdId, every mobile payment of the day."""
        return {p.key: p.pay_ord_id for p in self.payments.values()}

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
                "business_key", "channel", "channel_ref", "note")
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

    def stop(self) -> int:
        try:
            self.robot.stop()
            rc = self.proc.terminate()
            self.store.close()
            self.his.store.close()
            self.sim.stop()
        finally:
            china_time(False)
        return rc


_saved_tz: list = []


def china_time(on: bool) -> None:
    """This process (the simulator's threads) in China time, or back as it was."""
    if on:
        _saved_tz.append(os.environ.get("TZ"))
        os.environ["TZ"] = "Asia/Shanghai"
    elif _saved_tz:
        old = _saved_tz.pop()
        if old is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = old
    time.tzset()


def start(dialect: str, url: str, tmp: Path) -> DayEnv:
    china_time(True)
    try:
        return _start(dialect, url, tmp)
    except BaseException:
        china_time(False)
        raise


def _start(dialect: str, url: str, tmp: Path) -> DayEnv:
    sim = DaySim()
    sim.reset()
    msgid = tmp / "msgid"
    msgid.mkdir(exist_ok=True)
    mp, env = sim.daemon_toml(**MP_FAST)
    env[SECRET_ENV] = sim.all_creds["offline"]["secret"]
    keydir = tmp / "keys"
    keydir.mkdir(exist_ok=True)
    extra = daemon_toml(sim.all_creds, str(msgid), his_ack_timeout_seconds=30) + mp + sim.channel_toml(keydir) + HTTP
    proc = DaemonProcess(tmp, url, None, name="recon", workers=4, lease=3.0, extra=extra, env=env)
    robot = ChHis(url, sim)
    robot.start()
    return DayEnv(dialect, url, tmp, sim, proc, robot, His(Store(url)), Store(url), env)


# The mobile payments of the day: (name, channel, fate).  120.00 each; insutype 310 without a
# personal account: fund 84.00, cash 36.00 (M0, 390: fund 66.00, cash 54.00).
MOBILE = (("M0", None, "partly"),
          ("WX1", "wechat", "partly"), ("WX2", "wechat", "reversed"), ("WX3", "wechat", "refunded"),
          ("WX4", "wechat", "kept"), ("WX5", "wechat", "kept"),
          ("AL1", "alipay", "partly"), ("AL2", "alipay", "reversed"), ("AL3", "alipay", "refunded"),
          ("AL4", "alipay", "kept"))


def traffic(e: DayEnv) -> None:
    """The day: 5 face-pay settlements (one cancelled); 10 mobile payments (MOBILE): partial
    refunds of 10.00, full refunds (WX3: 10.00 then the rest; AL3: all at once), and a
    settlement per channel the HIS rejects (refunded on both legs: REVERSED)."""
    tag = e.dialect[:2].upper()
    for n, (psn, amounts) in enumerate(((ZHANG, ("60.00", "40.00")), (SUN, ("100.00", "50.00")),
                                        (ZHANG, ("30.00",)), (WANG, ("80.00", "20.00")), (WANG, ("12.30",))), 1):
        k = f"{tag}F{n}"
        # WANG has no real personal account: a plain (not face-pay) offline settlement.
        extra = {"face_pay": False} if psn == WANG else {}
        e.his.enqueue(f"{OUTP}.presettle", f"P{k}", visit_payload(person=e.sim.offline_person(psn), amounts=amounts,
                                                                   **extra), serial=f"V{k}")
        e.his.enqueue(f"{OUTP}.settle", f"S{k}", {"presettle_key": f"P{k}"}, serial=f"V{k}")
    for name, channel, fate in MOBILE:
        key = f"{tag}{name}-{uuid.uuid4().hex[:6]}"
        p = Payment(key, channel, fate)
        if fate == "reversed":
            e.robot.rejects.add(key)
        person = e.sim.person(insutype="390" if channel is None else "310", account="none")
        e.store.enqueue("mobilepay.outpatient", key, pay_doc(e.sim, person, channel=channel))
        e.payments[name] = p
    for n in range(1, 6):
        k = f"{tag}F{n}"
        assert e.his.wait(f"{OUTP}.settle", f"S{k}", accept=False, timeout=60) == "done", e.proc.tail()
        e.facepay[k] = e.his.one(f"{OUTP}.settle", f"S{k}", "settlement")["setl_id"]
    e.his.enqueue(f"{OUTP}.cancel", f"C{tag}F3", {"settle_key": f"S{tag}F3"}, serial=f"V{tag}F3")
    wait(e, [p.key for p in e.payments.values()])
    for p in e.payments.values():
        amounts = {"partly": ["10.00"], "refunded": ["10.00", None]}.get(p.fate, [])
        if p.fate == "refunded" and p.channel == "alipay":
            amounts = [None]            # the whole payment at once
        for n, amount in enumerate(amounts, 1):
            key = f"RF{n}-{p.key}"
            e.store.enqueue("mobilepay.refund", key, {"payment_key": p.key, **({"amount": amount} if amount else {})},
                            serial_key=p.key)
            p.refunds.append(key)
    assert e.his.wait(f"{OUTP}.cancel", f"C{tag}F3", accept=False, timeout=60) == "done", e.proc.tail()
    wait(e, [k for p in e.payments.values() for k in p.refunds])
    states = {}
    for name, p in e.payments.items():
        rows = e.store.query("""SELECT result_type, order_id, result_json FROM mi_inbox WHERE business_key = :k
                                 ORDER BY id""", {"k": p.key})
        p.pay_ord_id = next(r[1] for r in rows if r[0] == "order")
        p.settlement = next((json.loads(r[2]) for r in rows if r[0] == "settlement"), {})
        states[name] = tuple(e.store.query("SELECT state, last_error_code FROM mi_outbox WHERE business_key = :k "
                                           "AND kind = 'mobilepay.outpatient'", {"k": p.key})[0])
        for k in p.refunds:
            states[k] = tuple(e.store.query("SELECT state, last_error_code FROM mi_outbox WHERE business_key = :k",
                                            {"k": k})[0])
    want = {name: ("failed", "REVERSED") if p.fate == "reversed" else ("done", None)
            for name, p in e.payments.items()}
    want.update({k: ("done", None) for p in e.payments.values() for k in p.refunds})
    assert states == want, f"{states}\n{e.proc.tail()}"
    e.day = e.store.query("SELECT settle_day FROM mi_order WHERE platform_order_id = :k",
                          {"k": e.facepay[f"{tag}F1"]})[0][0]
    e.sim.close_bills(e.day)


def wait(e: DayEnv, keys, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    keys = set(keys)
    while time.monotonic() < deadline:
        rows = e.store.query("SELECT business_key, state FROM mi_outbox WHERE kind LIKE 'mobilepay.%'")
        open_ = [r for r in rows if r[0] in keys and r[1] not in FINAL]
        if not open_:
            return
        time.sleep(0.2)
    raise AssertionError(f"mobile-pay rows still open: {open_}\n{e.proc.tail()}\nrobot: {e.robot.errors}")
