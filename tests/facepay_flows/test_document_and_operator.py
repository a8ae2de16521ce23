"""The Guangdong one-shot face-pay settlement (2260 / 2261, offline.md §5.11 and §11) and
the per-request operator (9001 once per operator and day, offline.md §4), through the
tables with a real daemon per database and the simulator over HTTP."""
from __future__ import annotations

import pytest

from bridge.engine.flow import BadInput
from bridge.facepay.flows import FacePaySettings, all_flows

from .conftest import ZHANG, His, Sim, daemon_toml, document_payload, money_invariants, person_of
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
