"""The Guangdong one-shot face-pay settlement (2260 / 2261, offline.md §5.11 and §11) and
the per-request operator (9001 once per operator and day, offline.md §4), through the
tables with a real daemon per database and the simulator over HTTP."""
from __future__ import annotations

import pytest

from bridge.db.store import Store
from bridge.engine.flow import BadInput
from bridge.facepay.flows import FacePaySettings, all_flows
from bridge.simulator import SimulatorConfig, start_simulator
from tests.engine.daemonproc import DaemonProcess

from .conftest import (FAULT_DELAY, SECRET_ENV, UNKNOWN_OPERATOR, ZHANG, ZHOU, His, Sim, daemon_toml,
                       document_payload, money_invariants, new_database, person_of)
from .test_scenarios import _k, identify

DOC = "facepay.document"
COUNTER = {"id": "op002", "name": "收费员乙"}
KIOSK = {"id": "kiosk07", "name": "自助机7号", "type": "2"}


def _one_shot(his: His, k: str, presettle: dict, settle: dict | None = None) -> tuple[str, str]:
    his.enqueue(f"{DOC}.presettle", f"P{k}", presettle, serial=f"V{k}")
    his.enqueue(f"{DOC}.settle", f"S{k}", dict({"presettle_key": f"P{k}"}, **(settle or {})), serial=f"V{k}")
    return his.wait(f"{DOC}.presettle", f"P{k}"), his.wait(f"{DOC}.settle", f"S{k}")


def test_one_shot_face_pay_settles_and_cancels_as_the_named_operators(t):
    dialect, sim, his, proc = t
    k = _k("DOC1", dialect)
    identify(sim, his, ZHANG, f"F{k}")
    pre, st = _one_shot(his, k, document_payload(identify_key=f"F{k}", operator=COUNTER),
                        settle={"operator": KIOSK})
    assert (pre, st) == ("done", "done"), (his.inbox(f"{DOC}.presettle", f"P{k}"), his.row(f"{DOC}.settle", f"S{k}"))
    p = his.one(f"{DOC}.presettle", f"P{k}", "presettlement")
    assert (p["total"], p["fund"], p["account"], p["cash"]) == (100, 70, 30, 0)
    assert p["result"]["infno"] == "2260" and p["result"]["face_pay"] is True
    s = his.one(f"{DOC}.settle", f"S{k}", "settlement")
    assert (s["total"], s["fund"], s["account"], s["cash"]) == (100, 70, 30, 0)
    state = money_invariants(sim, {ZHANG: "1000.00"})
    setl = state["settlements"][s["setl_id"]]
    # One 2260 settlement, with the real-account extension, sent as the kiosk that settled.
    assert (setl["infno"], setl["valid"], setl["facepay"], setl["opter"]) == ("2260", True, True, "kiosk07")
    assert state["persons"][ZHANG] == "970.00"
    assert {"op002", "kiosk07"} <= {x["opter_no"] for x in state["sign_ins"]}
    assert his.one(f"{DOC}.settle", f"S{k}", "terminal_notice")["outcome"] == "ok"

    his.enqueue(f"{DOC}.cancel", f"C{k}", {"settle_key": f"S{k}"}, serial=f"V{k}")
    assert his.wait(f"{DOC}.cancel", f"C{k}") == "done"
    c = his.one(f"{DOC}.cancel", f"C{k}", "cancellation")
    assert c["setl_id"] == s["setl_id"] and c["result"]["account_refund"] == "core"
    state = money_invariants(sim, {ZHANG: "1000.00"})
    assert state["persons"][ZHANG] == "1000.00" and not state["settlements"][s["setl_id"]]["valid"]


def test_one_shot_cancel_without_extension_refunds_through_mpc004(t):
    dialect, sim, his, proc = t
    k = _k("DOC2", dialect)
    _, st = _one_shot(his, k, document_payload(person=person_of(sim, ZHOU), amounts=("50.00",)))
    assert st == "done"
    s = his.one(f"{DOC}.settle", f"S{k}", "settlement")
    assert (s["account"], s["cash"]) == (10, 5)      # 10.00 on the real account, fund 35.00
    his.enqueue(f"{DOC}.cancel", f"C{k}", {"settle_key": f"S{k}", "with_extension": False}, serial=f"V{k}")
    assert his.wait(f"{DOC}.cancel", f"C{k}") == "done"
    assert his.one(f"{DOC}.cancel", f"C{k}", "cancellation")["result"]["account_refund"] == "mpc004"
    state = money_invariants(sim, {ZHOU: "10.00"})
    assert state["persons"][ZHOU] == "10.00" and state["counts"]["account.refund"] == 1


def test_lost_2260_answer_is_held_when_the_platform_will_not_reverse_it(t):
    # offline.md §9.2 does not list 2260 as reversible, and the simulator follows it:
    # nothing can tell whether the lost settlement was booked, so a person must look.
    dialect, sim, his, proc = t
    k = _k("DOC3", dialect)
    his.enqueue(f"{DOC}.presettle", f"P{k}", document_payload(person=person_of(sim, ZHANG)), serial=f"V{k}")
    assert his.wait(f"{DOC}.presettle", f"P{k}") == "done"
    sim.arm("2260", "lost_after_commit")
    his.enqueue(f"{DOC}.settle", f"S{k}", {"presettle_key": f"P{k}"}, serial=f"V{k}")
    assert his.wait(f"{DOC}.settle", f"S{k}") == "held"
    row = his.row(f"{DOC}.settle", f"S{k}")
    assert row["code"] == "SETTLE_UNRESOLVED" and "2260" in row["message"], row
    state = money_invariants(sim, {ZHANG: "1000.00"})
    # Booked once, never sent again.
    assert [x["infno"] for x in state["settlements"].values()] == ["2260"]
    assert not [r for r in his.inbox(f"{DOC}.settle", f"S{k}") if r["type"] == "settlement"]


def test_unknown_operator_fails_before_anything_is_sent_and_never_strands_a_cancel(t):
    dialect, sim, his, proc = t
    k = _k("OPX", dialect)
    his.enqueue(f"{DOC}.presettle", f"P{k}",
                document_payload(person=person_of(sim, ZHANG), operator={"id": UNKNOWN_OPERATOR}), serial=f"V{k}")
    assert his.wait(f"{DOC}.presettle", f"P{k}") == "failed"
    row = his.row(f"{DOC}.presettle", f"P{k}")
    assert row["code"] == "SIGN_IN_REFUSED" and UNKNOWN_OPERATOR in row["message"], row
    assert his.one(f"{DOC}.presettle", f"P{k}", "error")["code"] == "SIGN_IN_REFUSED"
    # A settlement stands: a cancel naming the refused operator is carried out by the
    # daemon's own operator rather than left half-way.
    k2 = _k("OPY", dialect)
    assert _one_shot(his, k2, document_payload(person=person_of(sim, ZHANG)))[1] == "done"
    s = his.one(f"{DOC}.settle", f"S{k2}", "settlement")
    his.enqueue(f"{DOC}.cancel", f"C{k2}", {"settle_key": f"S{k2}", "operator": {"id": UNKNOWN_OPERATOR}},
                serial=f"V{k2}")
    assert his.wait(f"{DOC}.cancel", f"C{k2}") == "done", his.row(f"{DOC}.cancel", f"C{k2}")
    state = money_invariants(sim, {ZHANG: "1000.00"})
    assert not state["settlements"][s["setl_id"]]["valid"] and state["persons"][ZHANG] == "1000.00"


@pytest.mark.parametrize("bad, words", [
    ({"mdtrt_id": "M1"}, "'mdtrt_id' is not used"),
    ({"chrg_bchno": "B1"}, "'chrg_bchno' is not used"),
    ({"operator": {"name": "nobody"}}, "'id' is required"),
    ({"operator": {"id": "op002", "type": "9"}}, "operator.type"),
    ({"operator": {"id": "op002", "role": "x"}}, "unknown field"),
    ({"facepay": False}, "unknown payload field(s) facepay"),      # a typo must not settle with face-pay
])
def test_one_shot_and_operator_input_is_checked(bad, words):
    flows = {f.kind: f for f in all_flows(FacePaySettings(merchant_no="1", terminal_no="1", isv_no="1"))}
    doc = dict(document_payload(person={"psn_no": "1", "insutype": "310", "insuplc_admdvs": "440100",
                                        "mdtrt_cert_type": "02", "mdtrt_cert_no": "1"}), **bad)
    with pytest.raises(BadInput) as ei:
        flows[f"{DOC}.presettle"].parse(doc)
    assert words in str(ei.value)


def test_lost_2260_answer_where_the_centre_reverses_2260(running, msgid_dir, tmp_path):
    # A centre that does reverse 2260 (offline.md §9.2: the list "may be longer").
    # Booked and lost: 2601 undoes it, it is sent again - one valid settlement.
    # Never booked (HTTP 500 before the core): 2601 says "not found", but 2260 is not in
    # the daemon's reversible list, so "not found" cannot mean "never booked": held.
    import os
    cfg = SimulatorConfig.generate(timeout_delay=FAULT_DELAY, require_sign_no=True,
                                   reversible_infnos=("2207", "2208", "2260", "2304", "2305", "2401"))
    other = start_simulator(cfg)
    old_secret = os.environ[SECRET_ENV]
    os.environ[SECRET_ENV] = other.client_credentials()["offline"]["secret"]
    url, drop = new_database("sqlite", tmp_path)
    sim = Sim(other)
    sim.reset()
    proc = DaemonProcess(tmp_path, url, None, name="fp-doc", workers=2, lease=3.0,
                         extra=daemon_toml(sim.creds, msgid_dir))
    store = Store(url)
    his = His(store)
    try:
        his.enqueue(f"{DOC}.presettle", "PREV", document_payload(person=person_of(sim, ZHANG)), serial="VREV")
        assert his.wait(f"{DOC}.presettle", "PREV") == "done"
        sim.arm("2260", "lost_after_commit")
        his.enqueue(f"{DOC}.settle", "SREV", {"presettle_key": "PREV"}, serial="VREV")
        assert his.wait(f"{DOC}.settle", "SREV") == "done", his.row(f"{DOC}.settle", "SREV")
        s = his.one(f"{DOC}.settle", "SREV", "settlement")
        assert his.one(f"{DOC}.settle", "SREV", "settlement_reversed")["result"]["oinfno"] == "2260"
        state = money_invariants(sim, {ZHANG: "1000.00"})
        assert [x["setl_id"] for x in state["settlements"].values() if x["valid"]] == [s["setl_id"]]
        assert len(state["settlements"]) == 2 and state["persons"][ZHANG] == "970.00"

        his.enqueue(f"{DOC}.presettle", "PNB", document_payload(person=person_of(sim, ZHANG)), serial="VNB")
        assert his.wait(f"{DOC}.presettle", "PNB") == "done"
        sim.arm("2260", "http500")
        his.enqueue(f"{DOC}.settle", "SNB", {"presettle_key": "PNB"}, serial="VNB")
        assert his.wait(f"{DOC}.settle", "SNB", timeout=40) == "held"
        assert his.row(f"{DOC}.settle", "SNB")["code"] == "SETTLE_UNRESOLVED"
        assert len(money_invariants(sim, {ZHANG: "1000.00"})["settlements"]) == 2     # nothing resent
    finally:
        rc = proc.terminate()
        store.close()
        drop()
        other.stop()
        os.environ[SECRET_ENV] = old_secret
    assert rc == 0, proc.tail()


@pytest.mark.parametrize("setting, bad, words", [
    ("inpatient", {"mdtrt_id": "M1", "admit_key": "A1"}, "exactly one of 'mdtrt_id'"),
    ("inpatient", {}, "exactly one of 'mdtrt_id'"),
    ("outpatient", {"admit_key": "A1"}, "only for an inpatient"),
])
def test_inpatient_stay_is_named_once(setting, bad, words):
    flows = {f.kind: f for f in all_flows(FacePaySettings(merchant_no="1", terminal_no="1", isv_no="1"))}
    doc = dict(document_payload(person={"psn_no": "1", "insutype": "310", "insuplc_admdvs": "440100",
                                        "mdtrt_cert_type": "02", "mdtrt_cert_no": "1"}), **bad)
    if setting == "outpatient":
        doc["chrg_bchno"] = "B1"
    else:
        doc.pop("visit")
    with pytest.raises(BadInput) as ei:
        flows[f"facepay.{setting}.presettle"].parse(doc)
    assert words in str(ei.value)


def test_mibridge_flows_lists_every_face_pay_kind_the_daemon_runs(running, msgid_dir, tmp_path, capsys):
    from daemon import cli
    from daemon import config as daemon_config
    from daemon.app import build

    cfg_path = tmp_path / "fp.toml"
    cfg_path.write_text(f'[database]\nurl = "sqlite:///{tmp_path}/x.db"\n' + daemon_toml(Sim(running).creds, msgid_dir))
    w = build(daemon_config.load(cfg_path))
    try:
        wired = {f.kind for f in w.flows if f.kind.startswith("facepay.")}
    finally:
        for svc in w.services.values():
            getattr(getattr(svc, "offline", svc), "close", lambda: None)()
    assert cli.cmd_flows(None) == 0
    listed = {line.split()[0] for line in capsys.readouterr().out.splitlines() if line.startswith("facepay.")}
    assert wired == listed and {f"{DOC}.settle", "facepay.inpatient.admit"} <= wired, (wired ^ listed)
