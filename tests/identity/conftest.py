"""Identity and kiosk end to end: the REAL simulator over HTTP, a REAL daemon process
(python -m daemon.cli run) on SQLite / PostgreSQL / MariaDB with [offline], [facepay],
[identity], [regions] and [mobilepay], and the HIS played through the mi_ tables.

One simulator per session; the scenario module shares one daemon per database (module
scope); the crash module starts its own.  The HIS helpers are face-pay's
(tests/facepay_flows/conftest.py): the same tables, the same way of reading them."""
from __future__ import annotations

import json
import os
import time
import uuid
from decimal import Decimal
from typing import Any, Optional

import pytest

from bridge.db.store import Store
from bridge.simulator import SimulatorConfig, start_simulator
from tests.conftest import DIALECTS, make_database
from tests.engine.daemonproc import DaemonProcess
from tests.facepay_flows.conftest import FAULT_DELAY, His, daemon_toml
from tests.simcontrol import SimControl

D = Decimal
NOW = "2024-03-01 09:30:00"
ZHANG = "44010000000000000001"   # 310 in 440100, real account 1000.00
QIAN = "44010000000000000005"    # 310 in 440100, suspended
SUN = "44200000000000000006"     # 310 in 442000 (a region this hospital does not list), real account 3000.00
WU = "44010000000000000007"      # 310 in 440100 (real account 800.00) + 390 in 440300
ZHENG = "44010000000000000008"   # 390 in 440100; 2001: outpatient pooled fund not enjoyed
FENG = "44010000000000000009"    # known, no insurance at all
KIOSK = {"id": "KIOSK01", "name": "自助机1号"}
REGIONS = (("440100", "广州市"), ("440300", "深圳市"))
REGISTRATION_WINDOW = 2.0
MP_ENV = {"MIBRIDGE_TEST_ID_MP_SECRET": "", "MIBRIDGE_TEST_ID_MP_KEY": ""}
# This simulator's gateway secret, under a name of its own: face pay's session simulator
# keeps its secret in MIBRIDGE_TEST_FP_SECRET, and when both ran in one test process (an
# xdist worker) the later one overwrote it and face pay's daemons failed every 9001
# (x-tif-signature签名校验失败).
SECRET_ENV = "MIBRIDGE_TEST_ID_FP_SECRET"


@pytest.fixture(scope="session")
def id_running():
    # No 6302 listener: mobile pay confirms with 6301 (the notice only wakes it up).
    cfg = SimulatorConfig.generate(timeout_delay=FAULT_DELAY, require_sign_no=True,
                                   callback_url="http://127.0.0.1:9/none", callback_attempts=1,
                                   callback_retry_delay=0.05)
    sim = start_simulator(cfg)
    creds = sim.client_credentials()
    os.environ[SECRET_ENV] = creds["offline"]["secret"]
    MP_ENV.update({"MIBRIDGE_TEST_ID_MP_SECRET": creds["mobilepay"]["app_secret"],
                   "MIBRIDGE_TEST_ID_MP_KEY": creds["mobilepay"]["institution_private_key"]})
    yield sim
    sim.stop()


@pytest.fixture(scope="session")
def id_msgid_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("id-msgid"))


def identity_toml(creds: dict, msgid_dir: str, **identity: Any) -> str:
    """[offline] + [facepay] (face-pay's test values) + [identity] + [regions] + [mobilepay]."""
    term = creds["terminal"]
    ident = dict(terminal_url=term["url"], card_reader_url=term["card_reader_url"],
                 kiosk_operator_id=KIOSK["id"], kiosk_operator_name=KIOSK["name"], office_id="MZ01",
                 office_name="门诊大厅", terminal_read_timeout=5.0, resolve_retry_seconds=0.3,
                 # A lost 2201 that 5201 does not list is taken as never registered after this
                 # (longer than [offline] read_timeout, as the daemon requires).
                 registration_window_seconds=REGISTRATION_WINDOW)
    ident.update(identity)
    mp = creds["mobilepay"]
    mobile = dict(base_url=mp["base_url"], app_id=mp["app_id"], app_secret_env="MIBRIDGE_TEST_ID_MP_SECRET",
                  org_private_key_env="MIBRIDGE_TEST_ID_MP_KEY", platform_public_key=mp["platform_public_key"],
                  org_codg=mp["org_codes"][0], timeout_seconds=1.0, poll_first_seconds=0.2, poll_cap_seconds=0.5,
                  his_take_window_seconds=20.0, his_poll_seconds=0.2, settle_seconds=1.8,
                  payment_deadline_seconds=30.0)
    text = daemon_toml(creds, msgid_dir, secret_env=SECRET_ENV)
    text += "\n[identity]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in ident.items())
    text += "\n[regions]\n" + "".join(f'\n[[regions.region]]\nadmdvs = "{c}"\nname = "{n}"\n' for c, n in REGIONS)
    text += "\n[mobilepay]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in mobile.items())
    return text


class IdSim(SimControl):
    def reset(self) -> None:
        self.control("POST", "/__sim__/reset")

    def qr(self, psn_no: str) -> None:
        self.control("POST", "/__sim__/qrcode/present", {"psn_no": psn_no})

    def card(self, psn_no: str) -> None:
        self.control("POST", "/__sim__/card/present", {"psn_no": psn_no})

    def authorize(self, psn_no: str) -> str:
        return self.control("POST", "/__sim__/mobilepay/authorize", {"psn_no": psn_no})["payAuthNo"]

    def pay(self, pay_ord_id: str) -> dict:
        return self.control("POST", "/__sim__/mobilepay/pay", {"payOrdId": pay_ord_id})


class IdHis(His):
    """face-pay's HIS plus the identity tables."""

    def identity(self, his_patient_id: str) -> Optional[dict]:
        rows = self.store.query("""SELECT psn_no, insuplc_admdvs, insutype, benefit, psn_cert_type, psn_type, med_type,
                                          benefit_status, certno_masked, psn_name_masked, gend, chosen, source_kind
                                     FROM mi_identity WHERE his_patient_id = :p""", {"p": his_patient_id})
        if not rows:
            return None
        names = ("psn_no", "insuplc_admdvs", "insutype", "benefit", "psn_cert_type", "psn_type", "med_type",
                 "benefit_status", "certno_masked", "psn_name_masked", "gend", "chosen", "source_kind")
        d = dict(zip(names, rows[0]))
        d["chosen"] = None if d["chosen"] is None else int(d["chosen"])
        return d

    def regions_ready(self, timeout: float = 20.0) -> list[str]:
        """The daemon fills mi_insured_region from [regions] when it starts."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rows = [r[0] for r in self.store.query("SELECT admdvs FROM mi_v_insured_regions ORDER BY admdvs")]
            if len(rows) >= len(REGIONS):
                return rows
            time.sleep(0.1)
        raise AssertionError("the region list was not applied")

    def seed_regions(self) -> None:
        """The region list as the config gives it, written before any daemon runs (a daemon
        applies [regions] when it starts, maybe after its first claim)."""
        for code, name in REGIONS:
            self.store.execute("INSERT INTO mi_insured_region (admdvs, name, source) VALUES (:a, :n, 'config')",
                               {"a": code, "n": name})

    def run(self, kind: str, key: str, payload: dict, serial: Optional[str] = None, timeout: float = 30.0) -> str:
        self.enqueue(kind, key, payload, serial)
        return self.wait(kind, key, timeout=timeout)


def key(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def visit(n: str) -> dict:
    return {"ipt_otp_no": f"OP{n}", "begntime": NOW, "atddr_no": "D001", "dr_name": "李医生", "dept_code": "NK01",
            "dept_name": "内科", "caty": "A03"}


def reg_fee(batch: str, amount: str = "10.00") -> dict:
    """The registration fee as one fee line (kiosk.presettle)."""
    return {"chrg_bchno": batch, "total_amount": amount,
            "fees": [{"feedetl_sn": f"{batch}-1", "fee_ocur_time": NOW, "med_list_codg": "110200001",
                      "medins_list_codg": "GH-001", "det_item_fee_sumamt": amount, "cnt": "1", "pric": amount,
                      "bilg_dept_codg": "NK01", "bilg_dept_name": "内科", "bilg_dr_codg": "D001",
                      "bilg_dr_name": "李医生", "rx_circ_flag": "0"}]}


def mobile_payment(sim: IdSim, psn_no: str, **extra) -> dict:
    p = sim.person(psn_no)
    doc = {"patient_id": f"P{psn_no[-4:]}", "visit_id": key("V"), "pay_auth_no": sim.authorize(psn_no),
           "id_no": p["certno"], "user_name": p["psn_name"], "dept_code": "A03", "dept_name": "内科", "caty": "A03",
           "total_amount": "30.00",
           "lines": [{"line_no": 1, "item_code": "I1", "item_name": "挂号", "quantity": "1", "price": "30.00",
                      "amount": "30.00"}]}
    doc.update(extra)
    return doc


def start_daemon(dialect: str, tmp, sim: IdSim, msgid_dir: str, *, name: str = "id", crash_at: Optional[str] = None,
                 url: Optional[str] = None, workers: int = 3, lease: float = 3.0, **identity: Any):
    if url is None:
        url, drop = make_database(dialect, tmp)
    else:
        drop = None
    proc = DaemonProcess(tmp, url, None, name=name, workers=workers, lease=lease, crash_at=crash_at,
                         extra=identity_toml(sim.creds, msgid_dir, **identity), env=dict(MP_ENV))
    return url, drop, proc


@pytest.fixture(scope="module", params=DIALECTS)
def env(request, id_running, id_msgid_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(f"id-{request.param}")
    sim = IdSim(id_running)
    sim.reset()
    url, drop, proc = start_daemon(request.param, tmp, sim, id_msgid_dir)
    store = Store(url)
    his = IdHis(store)
    try:
        his.regions_ready()
        yield request.param, sim, his, proc
    finally:
        rc = proc.terminate()
        store.close()
        drop()
        assert rc == 0, proc.tail()


@pytest.fixture
def t(env):
    dialect, sim, his, proc = env
    sim.reset()
    yield env
    open_rows = his.store.query("SELECT kind, business_key, state FROM mi_outbox "
                                "WHERE state IN ('pending', 'running', 'in_doubt')")
    assert not open_rows, (open_rows, proc.tail())


def enqueue_visit(his: IdHis, serial: str, *, cancel: bool = True, register_cancel: bool = True) -> dict:
    """Card lookup -> register -> presettle -> settle [-> cancel -> register_cancel], all at once
    under one serial key (each waits for the one before: docs/engine.md rule 10)."""
    ks = {n: key(n.upper()) for n in ("lookup", "register", "pre", "settle", "cancel", "unreg")}
    his.enqueue("identity.lookup", ks["lookup"], {"terminal": "card"}, serial)
    his.enqueue("kiosk.register", ks["register"], {"lookup_key": ks["lookup"], "insutype": "310",
                                                   "visit": visit(serial[-6:])}, serial)
    his.enqueue("kiosk.presettle", ks["pre"], dict(reg_fee("B" + serial[-8:]), register_key=ks["register"]), serial)
    his.enqueue("kiosk.settle", ks["settle"], {"presettle_key": ks["pre"]}, serial)
    if cancel:
        his.enqueue("kiosk.cancel", ks["cancel"], {"settle_key": ks["settle"]}, serial)
    if register_cancel:
        his.enqueue("kiosk.register_cancel", ks["unreg"], {"register_key": ks["register"]}, serial)
    return ks



def finish_in_process(config_path, url: str, store: Store, timeout: float = 40.0) -> dict:
    """What a fresh daemon does after a crash, by the daemon's own wiring and runner in this
    process (no process start): expired leases back to work, then every row to its end.
    Returns {state: count}."""
    from bridge.engine.backoff import Backoff
    from bridge.engine.flow import Registry
    from bridge.engine.runner import Runner, RunnerSettings
    from daemon import config as daemon_config
    from daemon.app import build

    for k, v in MP_ENV.items():       # the [mobilepay] secrets, as the daemon's environment had them
        os.environ.setdefault(k, v)
    cfg = daemon_config.load(config_path)     # the database is `store`'s: the runner writes there
    w = build(cfg)
    reg = Registry()
    for f in w.flows:
        reg.register(f)
    run = Runner(store, reg, RunnerSettings(lease_seconds=10, backoff=Backoff(0.05, 0.2)), w.services)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            store.recover_expired_leases()
            for row in store.claim("in-process", 10, limit=1):
                run.run(row, "in-process")
            counts = {r[0]: int(r[1]) for r in store.query("SELECT state, COUNT(*) FROM mi_outbox GROUP BY state")}
            if not any(counts.get(s) for s in ("pending", "running", "in_doubt")):
                return counts
            time.sleep(0.05)
        raise AssertionError(f"rows still open: {counts}")
    finally:
        for svc in w.services.values():
            getattr(getattr(svc, "offline", svc), "close", lambda: None)()
