"""Issue 14 end to end: fpy001's UnionPay references (refNo, termSeqNo, platformSeqId) reach the
settlement row and the order book (mi_v_orders, `mibridge orders --json`), through a real daemon,
the simulator over HTTP and SQLite / PostgreSQL / MariaDB.  A fault on fpy001, and a SIGKILL
between the settlement's answer and fpy001, never give a second settlement or settlement row.
The decisions (every fpy001 answer, the wait) are unit cases: tests/flows_unit/test_facepay_references.py."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bridge.db.store import Store
from tests.conftest import DIALECTS, SERVER_DIALECTS
from tests.engine.daemonproc import DaemonProcess, without_password

from .conftest import (LI, ZHANG, AutoAccept, His, Sim, daemon_toml, document_payload, money_invariants,
                       new_database, person_of, visit_payload)

ROOT = Path(__file__).resolve().parents[2]
OUTP, DOCP = "facepay.outpatient", "facepay.document"
# Short: the tests that give up on fpy001 wait this long (the default is 10 s).
REFERENCES_WAIT = 1.5


@pytest.fixture(scope="module", params=DIALECTS)
def env(request, running, msgid_dir, tmp_path_factory):
    """One daemon per database for this module (the conftest's `t` runs each test on it),
    with a short references_wait_seconds."""
    tmp = tmp_path_factory.mktemp(f"fpref-{request.param}")
    url, drop = new_database(request.param, tmp)
    sim = Sim(running)
    sim.reset()
    proc = DaemonProcess(tmp, url, None, name="fpref", workers=3, lease=3.0,
                         extra=daemon_toml(sim.creds, msgid_dir, references_wait_seconds=REFERENCES_WAIT))
    proc.db_url = url                 # for `mibridge orders` (its password goes to the environment)
    store = Store(url)
    try:
        yield request.param, sim, His(store), proc
    finally:
        rc = proc.terminate()
        store.close()
        drop()
        assert rc == 0, proc.tail()


def _settle(his: His, kind: str, key: str, presettle: dict, settle: dict | None = None) -> dict:
    his.enqueue(f"{kind}.presettle", f"P{key}", presettle, serial=f"V{key}")
    his.enqueue(f"{kind}.settle", f"S{key}", dict({"presettle_key": f"P{key}"}, **(settle or {})),
                serial=f"V{key}")
    assert his.wait(f"{kind}.presettle", f"P{key}") == "done", his.inbox(f"{kind}.presettle", f"P{key}")
    assert his.wait(f"{kind}.settle", f"S{key}") == "done", his.row(f"{kind}.settle", f"S{key}")
    return his.one(f"{kind}.settle", f"S{key}", "settlement")


def _calls(his: His, kind: str, key: str) -> list[str]:
    rows = his.store.query("""SELECT j.interface FROM mi_journal j JOIN mi_outbox o ON o.id = j.outbox_id
                               WHERE o.kind = :k AND o.business_key = :b ORDER BY j.id""",
                           {"k": kind, "b": key})
    return [r[0] for r in rows]


def _book(his: His, key: str) -> tuple:
    rows = his.store.query("SELECT platform_order_id, ref_no, term_seq_no, account_amount FROM mi_v_orders "
                           "WHERE business_key = :b", {"b": key})
    assert len(rows) == 1, rows
    return tuple(rows[0])


def _orders_json(proc: DaemonProcess, url: str, key: str) -> list[dict]:
    """`mibridge orders --key K --json`, as the administrator runs it."""
    env = {k: v for k, v in os.environ.items() if k != "MIBRIDGE_CRASH_AT"}
    env["PYTHONPATH"] = str(ROOT)
    _, password = without_password(url)
    if password:
        env["MIBRIDGE_DB_PASSWORD"] = password
    r = subprocess.run([sys.executable, "-m", "daemon.cli", "-c", str(proc.config_path), "orders", "--key", key,
                        "--json"], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


@pytest.mark.parametrize("kind", [OUTP, DOCP])
def test_the_settlement_row_and_the_order_book_carry_the_references(t, kind):
    dialect, sim, his, proc = t
    key = f"REF-{kind.split('.')[1][:3]}-{dialect}"
    payload = (visit_payload if kind == OUTP else document_payload)(person=person_of(sim, ZHANG))
    s = _settle(his, kind, key, payload)
    d = sim.state()["account_deductions"][s["setl_id"]]              # what UnionPay booked
    assert s["account"] > 0 and s["result"]["references"] == "ok"
    assert (s["result"]["refNo"], s["result"]["termSeqNo"], s["result"]["platformSeqId"]) == \
        (d["refNo"], d["termSeqNo"], d["platformSeqId"])
    calls = _calls(his, f"{kind}.settle", f"S{key}")
    assert calls.count("2207" if kind == OUTP else "2260") == 1 and calls.count("fpy001") == 1, calls
    assert _book(his, f"S{key}")[:3] == (s["setl_id"], d["refNo"], d["termSeqNo"])
    [o] = _orders_json(proc, proc.db_url, f"S{key}")
    assert (o["platform_order_id"], o["ref_no"], o["term_seq_no"]) == (s["setl_id"], d["refNo"], d["termSeqNo"])
    money_invariants(sim, {ZHANG: "1000.00"})


@pytest.mark.parametrize("how", ["plain", "account-0"])
def test_no_fpy001_without_a_real_account_deduction(t, how):
    dialect, sim, his, proc = t
    key = f"NOREF-{how}-{dialect}"
    if how == "plain":
        s = _settle(his, OUTP, key, visit_payload(person=person_of(sim, ZHANG)), settle={"face_pay": False})
    else:
        s = _settle(his, OUTP, key, visit_payload(person=person_of(sim, LI)))
    assert s["account"] == 0 and "references" not in s["result"] and "refNo" not in s["result"]
    assert "fpy001" not in _calls(his, f"{OUTP}.settle", f"S{key}")
    assert _book(his, f"S{key}")[1:3] == (None, None)


@pytest.mark.parametrize("fault", ["timeout", "http500"])   # answer lost after commit; nothing done
def test_a_fault_on_fpy001_after_the_settlement_gives_one_settlement_and_the_references(t, fault):
    dialect, sim, his, proc = t
    key = f"FPYF-{fault}-{dialect}"
    sim.arm("fpy001", fault)                     # the first fpy001 only: the retry answers
    s = _settle(his, OUTP, key, visit_payload(person=person_of(sim, ZHANG)))
    calls = _calls(his, f"{OUTP}.settle", f"S{key}")
    assert calls.count("2207") == 1 and calls.count("fpy001") == 2 and "2601" not in calls, calls
    assert s["result"]["references"] == "ok" and _book(his, f"S{key}")[1] == s["result"]["refNo"]
    assert len([r for r in his.inbox(f"{OUTP}.settle", f"S{key}") if r["type"] == "settlement"]) == 1
    st = money_invariants(sim, {ZHANG: "1000.00"})
    assert st["counts"]["account.deduction"] == 1 and st["persons"][ZHANG] == "970.00"


def test_fpy001_failing_past_the_wait_writes_the_row_without_references(t):
    dialect, sim, his, proc = t
    key = f"FPYX-{dialect}"
    sim.arm("fpy001", "http500", times=100)
    s = _settle(his, OUTP, key, visit_payload(person=person_of(sim, ZHANG)))
    sim.control("DELETE", "/__sim__/faults")
    assert s["result"]["references"] == "unavailable" and "refNo" not in s["result"], s["result"]
    assert s["account"] > 0 and s["setl_id"]
    calls = _calls(his, f"{OUTP}.settle", f"S{key}")
    assert calls.count("2207") == 1 and calls.count("fpy001") >= 2, calls
    assert his.row(f"{OUTP}.settle", f"S{key}")["state"] == "done"
    assert _book(his, f"S{key}")[:3] == (s["setl_id"], None, None)
    assert "written without its UnionPay references" in proc.log.read_text(errors="replace")
    st = money_invariants(sim, {ZHANG: "1000.00"})
    assert st["counts"]["account.deduction"] == 1


# ------------------------------------------------------------------ SIGKILL between 2207 and fpy001

def _crash_points():
    for point in ("after_journal:fpy001", "after_call:fpy001"):
        yield pytest.param("sqlite", point, id=f"sqlite-{point}")
    for dialect in SERVER_DIALECTS:
        yield pytest.param(dialect, "after_journal:fpy001", id=f"{dialect}-after_journal:fpy001")


@pytest.mark.slow
@pytest.mark.parametrize("dialect, point", list(_crash_points()))
def test_sigkill_between_the_settlement_and_fpy001_finishes_with_one_settlement(dialect, point, running,
                                                                               msgid_dir, tmp_path):
    from .test_faults_and_crash import _crash_then_finish, _presettle_in_process

    url, drop = new_database(dialect, tmp_path)
    sim = Sim(running)
    sim.reset()
    store = Store(url)
    his = His(store)
    toml = daemon_toml(sim.creds, msgid_dir, references_wait_seconds=REFERENCES_WAIT)
    cfg_path = tmp_path / "setup.toml"
    cfg_path.write_text(f'[database]\nurl = "{without_password(url)[0]}"\n' + toml)
    hisbg = AutoAccept(url)
    try:
        _presettle_in_process(cfg_path, url, his, "PK", visit_payload(person=person_of(sim, ZHANG)))
        his.enqueue(f"{OUTP}.settle", "SK", {"presettle_key": "PK"}, serial="VPK")
        # The 2207 answer is committed (step references), fpy001 journalled: killed there.
        _crash_then_finish(tmp_path, url, toml, "refs", point, store)
        s = his.one(f"{OUTP}.settle", "SK", "settlement")
        assert s["result"]["references"] == "ok", s["result"]
        calls = _calls(his, f"{OUTP}.settle", "SK")
        assert calls.count("2207") == 1 and "2601" not in calls, calls
        st = money_invariants(sim, {ZHANG: "1000.00"})
        assert st["counts"]["account.deduction"] == 1 and st["persons"][ZHANG] == "970.00"
        assert [x["valid"] for x in st["settlements"].values()] == [True]
        assert _book(his, "SK")[:3] == (s["setl_id"], st["account_deductions"][s["setl_id"]]["refNo"],
                                        st["account_deductions"][s["setl_id"]]["termSeqNo"])
    finally:
        hisbg.stop()
        store.close()
        drop()
