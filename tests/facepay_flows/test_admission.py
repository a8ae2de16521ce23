"""Inpatient admission as request kinds (bridge/facepay/admission.py), end to end: the real
simulator over HTTP and one real daemon process per database, the HIS played through the
mi_ tables.  Checks are on the simulator's stays (visits) and money, not on our own rows."""
from __future__ import annotations

import json
from decimal import Decimal

from .conftest import NOW, SUN, ZHANG, His, Sim, inpatient_payload, money_invariants, person_of

D = Decimal
INPT = "facepay.inpatient"
ADMIT, ADMIT_CANCEL = f"{INPT}.admit", f"{INPT}.admit_cancel"


def stay(**kw) -> dict:
    doc = {"ipt_no": "ZY0001", "begntime": NOW, "atddr_no": "D001", "chfpdr_name": "李医生",
           "adm_diag_dscr": "肺炎", "adm_dept_codg": "NK01", "adm_dept_name": "内科", "adm_bed": "12",
           "dscg_maindiag_code": "J18.900", "dscg_maindiag_name": "肺炎",
           "diagnoses": [{"diag_type": "1", "maindiag_flag": "1", "diag_srt_no": "1", "diag_code": "J18.900",
                          "diag_name": "肺炎", "diag_dept": "内科", "dise_dor_no": "D001",
                          "dise_dor_name": "李医生", "diag_time": NOW, "adm_cond": "一般"}]}
    doc.update(kw)
    return doc


def stays_of(sim: Sim, psn_no: str) -> dict:
    return {k: v for k, v in sim.state()["visits"].items() if v["psn_no"] == psn_no and v["kind"] == "inpatient"}


def admitted(his: His, key: str) -> str:
    rows = his.inbox(ADMIT, key)
    assert [r["type"] for r in rows] == ["admission"], rows       # and nothing else
    assert rows[0]["outcome"] == "ok" and list(rows[0]["result"]) == ["mdtrt_id"], rows
    return rows[0]["result"]["mdtrt_id"]


def test_admit_then_presettle_settle_and_cancel_the_admission(t):
    dialect, sim, his, proc = t
    k, v = f"A1-{dialect}", f"V1-{dialect}"
    # Who: a face identification (the same lookup the pre-settlements use).
    sim.present(SUN)
    his.enqueue("facepay.identify", f"F{k}", {"his_patient_id": f"HIS-{k}"}, serial=v)
    his.enqueue(ADMIT, k, {"identify_key": f"F{k}", "stay": stay(ipt_no=f"ZY{k}"),
                           "operator": {"id": "op009", "name": "住院处"}}, serial=v)
    assert his.wait(ADMIT, k) == "done", his.row(ADMIT, k)
    mdtrt_id = admitted(his, k)
    sent = his.store.query("""SELECT j.request_masked FROM mi_journal j JOIN mi_outbox o ON o.id = j.outbox_id
                               WHERE o.business_key = :b AND j.interface = '2401'""", {"b": k})
    assert len(sent) == 1 and json.loads(sent[0][0])["opter"] == "op009"      # the request's operator
    assert stays_of(sim, SUN) == {mdtrt_id: {"psn_no": SUN, "kind": "inpatient", "active": True,
                                            "med_type": "21", "details": []}}

    # The inpatient pre-settlement and settlement on that stay.
    # By admit_key alone: the stay and its (face-identified) person come from the admission.
    pre = inpatient_payload(mdtrt_id, person_of(sim, SUN))
    del pre["mdtrt_id"], pre["person"]
    pre["admit_key"] = k
    his.enqueue(f"{INPT}.presettle", f"P{k}", pre, serial=v)
    his.enqueue(f"{INPT}.settle", f"S{k}", {"presettle_key": f"P{k}"}, serial=v)
    assert his.wait(f"{INPT}.presettle", f"P{k}") == "done"
    assert his.wait(f"{INPT}.settle", f"S{k}") == "done", his.inbox(f"{INPT}.settle", f"S{k}")
    p = his.one(f"{INPT}.presettle", f"P{k}", "presettlement")
    s = his.one(f"{INPT}.settle", f"S{k}", "settlement")
    for r in (p, s):
        assert (r["total"], r["fund"], r["account"], r["cash"]) == (D("500.00"), D("350.00"), D("150.00"),
                                                                    D("0.00")), r
    assert s["result"]["mdtrt_id"] == mdtrt_id
    assert his.one(f"{INPT}.settle", f"S{k}", "terminal_notice")["outcome"] == "ok"   # face-identified
    assert money_invariants(sim, {SUN: "3000.00"})["persons"][SUN] == "2850.00"

    # The core refuses to cancel an admission with a valid settlement: a clear failure.
    his.enqueue(ADMIT_CANCEL, f"X{k}", {"admit_key": k}, serial=v)
    assert his.wait(ADMIT_CANCEL, f"X{k}") == "failed"
    assert his.one(ADMIT_CANCEL, f"X{k}", "error")["code"] == "STAY_SETTLED"
    assert stays_of(sim, SUN)[mdtrt_id]["active"]

    # Settlement cancelled, then the admission.
    his.enqueue(f"{INPT}.cancel", f"C{k}", {"settle_key": f"S{k}"}, serial=v)
    his.enqueue(ADMIT_CANCEL, f"Y{k}", {"admit_key": k}, serial=v)
    assert his.wait(f"{INPT}.cancel", f"C{k}") == "done"
    assert his.wait(ADMIT_CANCEL, f"Y{k}") == "done"
    c = his.one(ADMIT_CANCEL, f"Y{k}", "admission_cancellation")
    assert c["result"] == {"mdtrt_id": mdtrt_id, "admit_key": k}
    assert not stays_of(sim, SUN)[mdtrt_id]["active"]
    assert money_invariants(sim, {SUN: "3000.00"})["persons"][SUN] == "3000.00"


def test_lost_admission_answer_is_reversed_never_resent_blindly(t):
    dialect, sim, his, proc = t
    k = f"A3-{dialect}"
    # A plain admission first: after the simulator's reset the daemon signs in again (9001),
    # so that the fault below hits a 2401 the core books, not one refused as "not signed in".
    his.enqueue(ADMIT, f"O{k}", {"person": person_of(sim, SUN), "stay": stay(ipt_no=f"ZYO{k}")})
    assert his.wait(ADMIT, f"O{k}") == "done"
    other = admitted(his, f"O{k}")
    sim.arm("2401", "lost_after_commit")          # booked at the core, answer lost
    his.enqueue(ADMIT, k, {"person": person_of(sim, ZHANG), "stay": stay(ipt_no=f"ZY{k}")})
    assert his.wait(ADMIT, k) == "done", his.row(ADMIT, k)
    mdtrt_id = admitted(his, k)
    stays = stays_of(sim, ZHANG)
    # The lost stay was undone by 2601 before the new admission: exactly one valid stay.
    assert [s for s, x in stays.items() if x["active"]] == [mdtrt_id], stays
    assert len(stays) == 2 and sim.state()["counts"]["offline.reversal"] == 1

    # 2404 whose answer is lost: asked again, the core says "already cancelled" -> done.
    sim.arm("2404", "lost_after_commit")
    his.enqueue(ADMIT_CANCEL, f"X{k}", {"admit_key": k})
    assert his.wait(ADMIT_CANCEL, f"X{k}") == "done", his.inbox(ADMIT_CANCEL, f"X{k}")
    c = his.one(ADMIT_CANCEL, f"X{k}", "admission_cancellation")
    assert c["result"]["mdtrt_id"] == mdtrt_id and "repeat refused" in c["result"]["confirmed_by"]
    assert not [s for s, x in stays_of(sim, ZHANG).items() if x["active"]]
    assert list(stays_of(sim, SUN)) == [other] and stays_of(sim, SUN)[other]["active"]


