"""Face-pay flows end to end: the REAL simulator over HTTP, a REAL daemon process
(python -m daemon.cli run) on SQLite / PostgreSQL / MariaDB, and the HIS side
played through the mi_ tables (enqueue, read the inbox, consume).

One simulator per session.  The scenario module shares one daemon per database
(module scope: starting a daemon costs ~1 s); the crash module starts its own.
"""
from __future__ import annotations

import json
import os
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any, Optional

import pytest

from bridge.db.store import Store
from bridge.simulator import SimulatorConfig, start_simulator
from tests.conftest import DIALECTS, make_database
from tests.engine.daemonproc import DaemonProcess
from tests.simcontrol import SimControl

# Timings: the simulator's "timeout" fault answers after FAULT_DELAY, the daemon's client
# gives up after READ_TIMEOUT, and "not found" is final after SETTLE_WINDOW.
FAULT_DELAY = 1.2
READ_TIMEOUT = 0.8
SETTLE_WINDOW = 1.5
SECRET_ENV = "MIBRIDGE_TEST_FP_SECRET"

ZHANG = "44010000000000000001"   # real account 1000.00, 440100
LI = "44030000000000000002"      # real account 0.00
WANG = "44010000000000000003"    # no personal account
ZHAO = "44060000000000000004"    # notional account 500.00 (not 实账)
QIAN = "44010000000000000005"    # insurance suspended
SUN = "44200000000000000006"     # real account 3000.00
ZHOU = "44010000000000000099"    # added per test: real account 10.00 (partly enough)

D = Decimal
NOW = "2024-03-01 09:30:00"
UNKNOWN_OPERATOR = "op404"       # the simulator refuses its 9001


@pytest.fixture(scope="session")
def running():
    cfg = SimulatorConfig.generate(timeout_delay=FAULT_DELAY, require_sign_no=True,
                                   unknown_operators=(UNKNOWN_OPERATOR,))
    sim = start_simulator(cfg)
    os.environ[SECRET_ENV] = sim.client_credentials()["offline"]["secret"]
    yield sim
    sim.stop()


@pytest.fixture(scope="session")
def msgid_dir(tmp_path_factory):
    # One msgid lock directory for every daemon of the session: a fresh daemon never
    # reuses a msgid of the one it replaces (the simulator answers a known msgid from
    # its store, as offline.md §12 suggests).
    return str(tmp_path_factory.mktemp("msgid"))


def daemon_toml(creds: dict, msgid_dir: str, secret_env: str = SECRET_ENV, **facepay: Any) -> str:
    """`secret_env`: the variable holding this simulator's gateway secret; a suite with a
    simulator of its own names its own (one test process may hold several simulators)."""
    o = creds["offline"]
    code = o["facepay_institutions"][0]
    fp = dict(merchant_no="102440100000004", terminal_no="00000143", isv_no="123456", acct_type="A02",
              terminal_url=creds["terminal"]["url"], office_id="MZ01", office_name="门诊收费处",
              settle_window_seconds=SETTLE_WINDOW, resolve_retry_seconds=0.3,
              refund_retry_delays=[0.3, 0.3], his_ack_timeout_seconds=20, his_ack_poll_seconds=0.2,
              notify_retry_seconds=0.2, sign_in_check_seconds=60)
    fp.update(facepay)

    def val(v):
        return json.dumps(v) if not isinstance(v, bool) else ("true" if v else "false")
    return f"""
[offline]
base_url = "{o['base_url']}"
paas_id = "{o['paasid']}"
paas_secret_env = "{secret_env}"
fixmedins_code = "{code}"
fixmedins_name = "{o['institutions'][code]}"
mdtrtarea_admvs = "{o['mdtrtarea_admvs']}"
union_refund_url = "{o['unionrefund_url']}"
operator = "op001"
operator_name = "收费员甲"
read_timeout = {READ_TIMEOUT}
connect_timeout = 1.0
msgid_lock_dir = "{msgid_dir}"

[facepay]
""" + "".join(f"{k} = {val(v)}\n" for k, v in fp.items())


class Sim(SimControl):
    """Control endpoints plus the face-pay persons and the face terminal."""

    def reset(self) -> None:
        self.control("POST", "/__sim__/reset")
        self.control("POST", "/__sim__/persons", {
            "psn_no": ZHOU, "certno": "440106199505050011", "psn_name": "周九", "gend": "1",
            "brdy": "1995-05-05", "insutype": "310", "psn_type": "11", "insuplc_admdvs": "440100",
            "account": "real", "balc": "10.00"})

    def present(self, psn_no: str) -> None:
        self.control("POST", "/__sim__/face/present", {"psn_no": psn_no})


class His:
    """The HIS side: enqueue, read the inbox, consume - plain SQL through Store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def enqueue(self, kind: str, key: str, payload: dict, serial: Optional[str] = None) -> int:
        return self.store.enqueue(kind, key, payload, serial_key=serial)

    def state(self, kind: str, key: str) -> str:
        return self.store.query("SELECT state FROM mi_outbox WHERE kind = :k AND business_key = :b",
                                {"k": kind, "b": key})[0][0]

    def wait(self, kind: str, key: str, states=("done", "failed", "held", "resolved"),
             timeout: float = 30.0, accept: bool = True) -> str:
        """Wait until the row is in one of `states`; meanwhile accept its settlement rows
        (the HIS takes what it is given) unless accept=False."""
        deadline = time.monotonic() + timeout
        st = None
        while time.monotonic() < deadline:
            st = self.state(kind, key)
            if st in states:
                return st
            if accept:
                self.accept_all(kind, key)
            time.sleep(0.1)
        raise AssertionError(f"{kind} {key} still {st} after {timeout}s; inbox: {self.inbox(kind, key)}; "
                             f"row: {self.row(kind, key)}")

    def row(self, kind: str, key: str) -> dict:
        r = self.store.query("""SELECT state, step, last_error_code, last_error_message, flow_data, current_call
                                  FROM mi_outbox WHERE kind = :k AND business_key = :b""", {"k": kind, "b": key})[0]
        return {"state": r[0], "step": r[1], "code": r[2], "message": r[3],
                "data": json.loads(r[4]) if r[4] else {}, "current_call": r[5]}

    def inbox(self, kind: str, key: str) -> list[dict]:
        rows = self.store.query("""SELECT id, result_type, outcome, error_code, error_message, settlement_id,
                                          total_amount, fund_amount, account_amount, cash_amount, result_json,
                                          consumed_at
                                     FROM mi_inbox WHERE kind = :k AND business_key = :b ORDER BY id""",
                                {"k": kind, "b": key})
        out = []
        for r in rows:
            out.append({"id": int(r[0]), "type": r[1], "outcome": r[2], "code": r[3], "message": r[4],
                        "setl_id": r[5], "total": _d(r[6]), "fund": _d(r[7]), "account": _d(r[8]),
                        "cash": _d(r[9]), "result": json.loads(r[10]) if r[10] else {},
                        "consumed": r[11] is not None})
        return out

    def one(self, kind: str, key: str, result_type: str) -> dict:
        rows = [r for r in self.inbox(kind, key) if r["type"] == result_type]
        assert len(rows) == 1, (result_type, self.inbox(kind, key))
        return rows[0]

    def consume(self, inbox_id: int, ack: str = "accepted") -> None:
        # What mi_inbox_consume(id, ack) does (SQLite has no procedures).
        n = self.store.execute(f"""UPDATE mi_inbox SET consumed_at = {self.store.dialect.now}, his_ack = :a
                                    WHERE id = :i AND consumed_at IS NULL""", {"a": ack, "i": inbox_id})
        assert n == 1

    def accept_all(self, kind: Optional[str] = None, key: Optional[str] = None) -> None:
        sql = "SELECT id FROM mi_inbox WHERE consumed_at IS NULL AND result_type = 'settlement'"
        params: dict = {}
        if kind:
            sql += " AND kind = :k AND business_key = :b"
            params = {"k": kind, "b": key}
        for (i,) in self.store.query(sql, params):
            self.store.execute(f"""UPDATE mi_inbox SET consumed_at = {self.store.dialect.now}, his_ack = 'accepted'
                                    WHERE id = :i AND consumed_at IS NULL""", {"i": int(i)})


def _d(v) -> Optional[Decimal]:
    return None if v is None else Decimal(str(v)).quantize(Decimal("0.01"))


class AutoAccept:
    """A background HIS that accepts every settlement row (for storms and crashes)."""

    def __init__(self, url: str) -> None:
        self.store = Store(url)
        self.his = His(self.store)
        self.stop_ev = threading.Event()
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self) -> None:
        while not self.stop_ev.wait(0.2):
            try:
                self.his.accept_all()
            except Exception:
                pass

    def stop(self) -> None:
        self.stop_ev.set()
        self.t.join(5)
        self.store.close()


# ------------------------------------------------------------------ one daemon per database

# Shared by the scenario modules: each module gets its own daemon per database (module
# scope), and every test leaves nothing half-way.
@pytest.fixture(scope="module", params=DIALECTS)
def env(request, running, msgid_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(f"fp-{request.param}")
    url, drop = new_database(request.param, tmp)
    sim = Sim(running)
    sim.reset()
    proc = DaemonProcess(tmp, url, None, name="fp", workers=3, lease=3.0,
                         extra=daemon_toml(sim.creds, msgid_dir))
    store = Store(url)
    try:
        yield request.param, sim, His(store), proc
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
    # Nothing left half-way: every row of this test is final or held.
    open_rows = his.store.query("SELECT kind, business_key, state FROM mi_outbox "
                                "WHERE state IN ('pending', 'running', 'in_doubt')")
    assert not open_rows, (open_rows, proc.tail())


# ------------------------------------------------------------------ payloads

_seq = iter(range(1, 10**9))


def visit_payload(identify_key: Optional[str] = None, person: Optional[dict] = None,
                  amounts=("60.00", "40.00"), **kw: Any) -> dict:
    n = next(_seq)
    batch = f"B{int(time.time()) % 100000}{n:04d}"
    fees = [{"feedetl_sn": f"{batch}-{i}", "fee_ocur_time": NOW, "med_list_codg": "XJ01",
             "medins_list_codg": "H-XJ01", "det_item_fee_sumamt": a, "cnt": "1", "pric": a,
             "bilg_dept_codg": "NK01", "bilg_dept_name": "内科", "bilg_dr_codg": "D001",
             "bilg_dr_name": "李医生", "rx_circ_flag": "0"} for i, a in enumerate(amounts, 1)]
    doc: dict = {"chrg_bchno": batch, "fees": fees,
                 "total_amount": str(sum((D(a) for a in amounts), D("0.00"))),
                 "visit": {"ipt_otp_no": f"OP{batch}", "begntime": NOW, "atddr_no": "D001", "dr_name": "李医生",
                           "dept_code": "NK01", "dept_name": "内科", "caty": "A03",
                           "diagnoses": [{"diag_type": "1", "diag_srt_no": "1", "diag_code": "J06.900",
                                          "diag_name": "上呼吸道感染", "diag_dept": "内科", "dise_dor_no": "D001",
                                          "dise_dor_name": "李医生", "diag_time": NOW, "vali_flag": "1"}]}}
    if identify_key:
        doc["identify_key"] = identify_key
    if person:
        doc["person"] = person
    doc.update(kw)
    return doc


def document_payload(**kw: Any) -> dict:
    """facepay.document.presettle: the outpatient visit without mdtrt_id / chrg_bchno
    (2260 registers the visit itself)."""
    doc = visit_payload(**kw)
    del doc["chrg_bchno"]
    return doc


def person_of(sim: Sim, psn_no: str) -> dict:
    p = sim.person(psn_no)
    return {"psn_no": p["psn_no"], "insutype": p["insutype"], "insuplc_admdvs": p["insuplc_admdvs"],
            "mdtrt_cert_type": "02", "mdtrt_cert_no": p["certno"]}


def inpatient_payload(mdtrt_id: str, person: dict, amounts=("300.00", "200.00"), **kw: Any) -> dict:
    n = next(_seq)
    fees = [{"feedetl_sn": f"ZY{n}-{i}", "fee_ocur_time": NOW, "med_list_codg": "XJ01",
             "medins_list_codg": "H-XJ01", "det_item_fee_sumamt": a, "cnt": "1", "pric": a,
             "bilg_dept_codg": "NK01", "bilg_dept_name": "内科", "bilg_dr_codg": "D001",
             "bilg_dr_name": "李医生", "med_type": "21"} for i, a in enumerate(amounts, 1)]
    doc = {"mdtrt_id": mdtrt_id, "person": person, "fees": fees,
           "total_amount": str(sum((D(a) for a in amounts), D("0.00")))}
    doc.update(kw)
    return doc


def admit(sim: Sim, psn_no: str, msgid_dir: str) -> str:
    """2401 admission (not part of issue 5): done by the test with the real client."""
    from bridge.offline import messages as m
    from bridge.offline.client import OfflineClient
    from bridge.offline.config import OfflineConfig, Operator

    o = sim.creds["offline"]
    code = o["facepay_institutions"][0]
    c = OfflineClient(OfflineConfig(base_url=o["base_url"], paas_id=o["paasid"], paas_secret=o["secret"],
                                    fixmedins_code=code, fixmedins_name=o["institutions"][code],
                                    mdtrtarea_admvs=o["mdtrtarea_admvs"],
                                    default_operator=Operator("op009", "住院处"), msgid_lock_dir=msgid_dir))
    try:
        assert c.sign_in(m.SignInRequest(opter_no="op009", mac="00", ip="127.0.0.1")).ok
        p = sim.person(psn_no)
        node = {"psn_no": psn_no, "insutype": p["insutype"], "begntime": NOW, "med_type": "21",
                "ipt_no": f"ZY{next(_seq)}", "atddr_no": "D001", "chfpdr_name": "李医生", "adm_diag_dscr": "肺炎",
                "adm_dept_codg": "NK01", "adm_dept_name": "内科", "adm_bed": "12",
                "dscg_maindiag_code": "J18.900", "dscg_maindiag_name": "肺炎"}
        r = c.send(c.prepare("2401", {"mdtrtinfo": node}, parse=lambda out: str(out["result"]["mdtrt_id"]),
                             insuplc_admdvs=p["insuplc_admdvs"], keys_from=node))
        assert r.ok, r
        return r.data
    finally:
        c.close()


def new_database(dialect: str, tmp_path: Path):
    return make_database(dialect, tmp_path)


def money_invariants(sim: Sim, initial: dict[str, str]) -> dict:
    """No double deduction, no double refund: every person's balance equals the initial
    balance minus the account part of their VALID settlements; at most one valid
    settlement per visit; a deduction is refunded at most once."""
    st = sim.state()
    valid = [s for s in st["settlements"].values() if s["valid"]]
    per_visit: dict[str, int] = {}
    for s in valid:
        per_visit[s["mdtrt_id"]] = per_visit.get(s["mdtrt_id"], 0) + 1
    assert all(n == 1 for n in per_visit.values()), ("double settlement", per_visit)
    for psn, bal in initial.items():
        spent = sum((D(s["acct_pay"]) for s in valid if s["psn_no"] == psn), D("0.00"))
        assert D(st["persons"][psn]) == D(bal) - spent, (psn, st["persons"][psn], bal, spent)
    refunds: dict[str, int] = {}
    for e in st["events"]:
        if e["kind"] == "account.refund":
            refunds[e["ref"]] = refunds.get(e["ref"], 0) + 1
    deductions: dict[str, int] = {}
    for e in st["events"]:
        if e["kind"] == "account.deduction":
            deductions[e["ref"]] = deductions.get(e["ref"], 0) + 1
    for ref, n in refunds.items():
        assert n <= deductions.get(ref, 0), ("refund without deduction or twice", ref, n)
    return st
