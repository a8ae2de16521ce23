"""A transient refusal is not a verdict (issue 10 item 3b, issue 11 §3 NOT_SENT).

"系统繁忙", a rate limit or a signature error says nothing about the request: it is asked
again with backoff (bridge/refusals.py decides, in the clients).  A gateway that refuses
the x-tif signature never forwards the message (offline.md §1.4): not sent, so no
reversal and no person is needed.  Daemon rounds run in this process against the
simulator over HTTP (tests/dbclock.py); the database does not matter here: SQLite.
What each flow does with a transient refusal or a not-sent answer is a unit case
(tests/flows_unit/); here the wire: the gateway's refusal and the 9001 job.
"""
from __future__ import annotations

import pytest

from tests.dbclock import Rounds

from .conftest import ZHANG, His, Sim, daemon_toml, money_invariants, new_database, person_of, visit_payload

pytestmark = pytest.mark.slow
OUTP, DOC = "facepay.outpatient", "facepay.document"
BUSY = "系统繁忙，请稍后再试"


@pytest.fixture
def rounds(running, msgid_dir, tmp_path):
    url, drop = new_database("sqlite", tmp_path)
    sim = Sim(running)
    sim.reset()
    r = Rounds(tmp_path, url, daemon_toml(sim.creds, msgid_dir))
    try:
        yield r, sim, His(r.store)
    finally:
        r.close()
        drop()


def _id(his: His, kind: str, key: str) -> int:
    return int(his.store.query("SELECT id FROM mi_outbox WHERE kind = :k AND business_key = :b",
                               {"k": kind, "b": key})[0][0])


def _final(r: Rounds, his: His, kind: str, key: str, accept: bool = True) -> str:
    def final():
        if accept:
            his.accept_all()
        return his.state(kind, key) in ("done", "failed", "held")
    r.run_until(final)
    return his.state(kind, key)


@pytest.mark.parametrize("fault", [dict(fault="business_error", message=BUSY), dict(fault="bad_signature")],
                         ids=["busy", "gateway-signature"])
def test_a_counter_operator_refused_once_at_9001_is_signed_in_again_not_dropped(rounds, fault):
    r, sim, his = rounds
    sim.arm("9001", **fault)
    doc = visit_payload(person=person_of(sim, ZHANG), operator={"id": "op777", "name": "收费员乙"})
    his.enqueue(f"{OUTP}.presettle", "PO1", doc, serial="VO1")
    assert _final(r, his, f"{OUTP}.presettle", "PO1") == "done", his.row(f"{OUTP}.presettle", "PO1")
    offline = r.wiring.services["facepay"].offline
    assert "op777" in [o.opter for o in offline.operators()]        # still renewed by the 9001 job
    assert {"interface": "9001", "fault": fault["fault"]} in sim.state()["faults_fired"]


def test_a_settlement_the_gateway_refused_for_its_signature_is_not_in_doubt(rounds):
    # The gateway checks x-tif before forwarding (offline.md §1.4): the core never saw the
    # 2207, so it is sent again - no 2601, no person asked to check a message that never arrived.
    r, sim, his = rounds
    his.enqueue(f"{OUTP}.presettle", "PG1", visit_payload(person=person_of(sim, ZHANG)), serial="VG1")
    assert _final(r, his, f"{OUTP}.presettle", "PG1") == "done"
    sim.arm("2207", "bad_signature")
    his.enqueue(f"{OUTP}.settle", "SG1", {"presettle_key": "PG1"}, serial="VG1")
    assert _final(r, his, f"{OUTP}.settle", "SG1") == "done", his.row(f"{OUTP}.settle", "SG1")
    sid = _id(his, f"{OUTP}.settle", "SG1")
    assert [c[0] for c in r.calls(sid) if c[0] in ("2207", "2601")] == ["2207", "2207"]
    assert r.calls(sid, "2207")[0][2].startswith("not sent")
    st = money_invariants(sim, {ZHANG: "1000.00"})
    assert len([x for x in st["settlements"].values() if x["valid"]]) == 1


