"""Fault injection over HTTP: each kind, whether the effect commits, and the inspection counts."""
from __future__ import annotations

import time

import httpx
import pytest

from .conftest import control, state
from .offline_helpers import ZHANG, ok, outpatient, register, settle_input, upload_fees
from .test_mobilepay import paid_order, refund, upload


def arm(sim, interface, fault, **kw):
    control(sim, "POST", "/__sim__/faults", {"interface": interface, "fault": fault, **kw})


def settle_once(gw):
    mdtrt_id = register(gw, ZHANG)
    batch = upload_fees(gw, ZHANG, mdtrt_id, ["10.00"])
    inp = settle_input(ZHANG, mdtrt_id, batch, "10.00")
    return inp, gw.envelope("2207", inp)


def settlements(sim):
    return state(sim)["counts"]["offline.settlement"]


def test_unknown_fault_kind_rejected(sim):
    r = httpx.post(sim.url + "/__sim__/faults", json={"interface": "6202", "fault": "explode"})
    assert r.status_code == 400


def test_http500_has_no_effect(gw, sim):
    inp, env = settle_once(gw)
    arm(sim, "2207", "http500")
    assert gw.post("2207", env).status_code == 500
    assert settlements(sim) == 0
    assert gw.post("2207", env).json()["infcode"] == 0          # fault used up: same msgid now settles
    assert settlements(sim) == 1


def test_reset_has_no_effect(gw, sim):
    inp, env = settle_once(gw)
    arm(sim, "2207", "reset")
    with pytest.raises(httpx.TransportError):
        gw.post("2207", env)
    assert settlements(sim) == 0


def test_lost_after_commit_charges_without_answer(gw, sim):
    inp, env = settle_once(gw)
    arm(sim, "2207", "lost_after_commit")
    with pytest.raises(httpx.TransportError):
        gw.post("2207", env)
    assert settlements(sim) == 1
    assert state(sim)["persons"][ZHANG] == "997.00"
    # resending the same msgid answers the committed settlement instead of charging again
    again = gw.post("2207", env).json()
    assert again["infcode"] == 0 and settlements(sim) == 1


def test_timeout_commits_after_delay(gw, sim):
    inp, env = settle_once(gw)
    arm(sim, "2207", "timeout", delay=1.0)
    t0 = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        gw.post("2207", env, timeout=0.3)
    deadline = time.monotonic() + 3
    while settlements(sim) == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert settlements(sim) == 1 and time.monotonic() - t0 >= 0.9


def test_timeout_default_delay_still_answers(gw, sim):
    inp, env = settle_once(gw)
    arm(sim, "2207", "timeout")
    t0 = time.monotonic()
    assert gw.post("2207", env, timeout=5).json()["infcode"] == 0
    assert time.monotonic() - t0 >= sim.config.timeout_delay


def test_garbled_commits_and_is_not_json(gw, sim):
    inp, env = settle_once(gw)
    arm(sim, "2207", "garbled")
    r = gw.post("2207", env)
    assert r.status_code == 200
    with pytest.raises(ValueError):
        r.json()
    assert settlements(sim) == 1


def test_business_error_uses_platform_shapes(gw, mpc, sim):
    inp, env = settle_once(gw)
    arm(sim, "2207", "business_error", code="-3", message="中心系统繁忙")
    body = gw.post("2207", env).json()
    assert body["infcode"] == -3 and body["err_msg"] == "中心系统繁忙" and settlements(sim) == 0
    data, _, out = upload(mpc, sim)
    arm(sim, "6301", "business_error", message="系统繁忙")
    q = {"payOrdId": out["payOrdId"], "orgCodg": data["orgCodg"], "payToken": out["payToken"],
         "idNo": data["idNo"], "userName": data["userName"], "idType": "01"}
    env_, body_ = mpc.call("6301", q)
    assert env_["code"] != 0 and env_["message"] == "系统繁忙" and body_ is None


def test_bad_signature_mobilepay_commits_but_response_fails_verification(mpc, sim):
    data, out, split = paid_order(mpc, sim, total="50.00", psn_no="44010000000000000003")
    arm(sim, "6203", "bad_signature")
    r = mpc.post_raw("6203", mpc.envelope({
        "payOrdId": out["payOrdId"], "appRefdSn": "S1", "appRefdTime": "20260101120000", "totlRefdAmt": "1.00",
        "psnAcctRefdAmt": "0.00", "fundRefdAmt": "0.00", "cashRefdAmt": "1.00", "payAuthNo": "A",
        "refdType": "CASH"}))
    with pytest.raises(AssertionError, match="does not verify"):
        mpc.open(r.content)
    assert state(sim)["counts"]["mobilepay.refund"] == 1
    _, again = refund(mpc, data, out, "S1", "CASH", cash="1.00")       # same appRefdSn: no second refund
    assert again["refStatus"] == "SUCC" and state(sim)["counts"]["mobilepay.refund"] == 1


def test_bad_signature_offline_is_gateway_rejection(gw, sim):
    inp, env = settle_once(gw)
    arm(sim, "2207", "bad_signature")
    body = gw.post("2207", env).json()
    assert "infcode" not in body and body["code"] != "0" and settlements(sim) == 0


def test_refund_exp_commits(mpc, sim):
    data, out, split = paid_order(mpc, sim, total="50.00", psn_no="44010000000000000003")
    arm(sim, "6203", "refund_exp")
    _, r = refund(mpc, data, out, "X1", "CASH", cash="2.00")
    assert r["refStatus"] == "EXP"
    assert state(sim)["orders"][out["payOrdId"]]["refunded"]["cash"] == "2.00"


def test_mobilepay_lost_after_commit_on_refund(mpc, sim):
    data, out, split = paid_order(mpc, sim, total="50.00", psn_no="44010000000000000003")
    arm(sim, "6203", "lost_after_commit")
    with pytest.raises(httpx.TransportError):
        mpc.post_raw("6203", mpc.envelope({
            "payOrdId": out["payOrdId"], "appRefdSn": "L1", "appRefdTime": "20260101120000",
            "totlRefdAmt": "3.00", "cashRefdAmt": "3.00", "payAuthNo": "A", "refdType": "CASH"}))
    assert state(sim)["counts"]["mobilepay.refund"] == 1
    _, blind = refund(mpc, data, out, "L2", "CASH", cash="3.00")       # new serial: refunds again
    assert blind["refStatus"] == "SUCC" and state(sim)["counts"]["mobilepay.refund"] == 2


def test_times_and_clear(gw, sim):
    arm(sim, "1101", "http500", times=2)
    env = gw.envelope("1101", {"data": {"mdtrt_cert_type": "02", "mdtrt_cert_no": "x"}})
    assert gw.post("1101", env).status_code == 500
    assert control(sim, "GET", "/__sim__/faults")["armed"][0]["times"] == 1
    control(sim, "DELETE", "/__sim__/faults")
    assert gw.post("1101", env).status_code == 200


def test_callback_fault_skips_an_attempt(mpc, sim, hospital):
    arm(sim, "6302", "http500")
    data, out, _ = paid_order(mpc, sim)
    assert hospital.event.wait(5)
    # The simulator marks the delivery once the hospital's answer is back, a moment after the
    # hospital has it (read at once, a loaded machine saw delivered=False).
    deadline = time.monotonic() + 5
    while not (cb := state(sim)["callbacks"][0])["delivered"] and time.monotonic() < deadline:
        time.sleep(0.02)
    assert cb["delivered"] and cb["attempts"] == 2 and len(hospital.received) == 1


def test_inspection_counts_and_reset(gw, mpc, sim):
    paid_order(mpc, sim, total="10.00")
    ok(outpatient(gw, ZHANG, ["10.00"])[0])
    st = state(sim)
    assert st["counts"]["mobilepay.charge"] == 1 and st["counts"]["offline.settlement"] == 1
    assert st["persons"][ZHANG] == "994.00"
    assert len(st["orders"]) == 1 and len(st["settlements"]) == 1
    control(sim, "POST", "/__sim__/reset")
    st = state(sim)
    assert not any(st["counts"].values()) and st["persons"][ZHANG] == "1000.00" and not st["orders"]


def test_add_person(gw, sim):
    p = {"psn_no": "44010000000000000099", "certno": "440106199912120099", "psn_name": "新人",
         "insutype": "390", "insuplc_admdvs": "440100", "account": "none"}
    control(sim, "POST", "/__sim__/persons", p)
    out = ok(gw.call("1101", {"data": {"mdtrt_cert_type": "02", "mdtrt_cert_no": p["certno"]}}))
    assert out["baseinfo"]["psn_no"] == p["psn_no"]
    r = httpx.post(sim.url + "/__sim__/persons", json=p)
    assert r.status_code == 400
