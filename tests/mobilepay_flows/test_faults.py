"""Every injected fault on every mobile-pay call, one at a time, against a real
daemon: the outcome is right, and the centre's ledger shows no double charge and
no double refund.

The whole matrix runs on SQLite (the flows and the engine are the same on every
database; what differs per database is covered by test_payments.py, which also
runs the lost-answer cases on PostgreSQL and MariaDB)."""
from __future__ import annotations

import pytest

from bridge.mobilepay.flows import KIND_OUTPATIENT, KIND_REFUND, KIND_REVOKE

from .conftest import start_bridge
from .harness import DEADLINE, assert_paid_once, assert_refunds_within_paid, new_key, payment, wait_for

TRANSPORT = ("timeout", "reset", "http500", "lost_after_commit", "bad_signature", "garbled")


@pytest.fixture(scope="module")
def lone(mp_sim, tmp_path_factory):
    b, stop = start_bridge("sqlite", tmp_path_factory.mktemp("mp-faults"), mp_sim, name="faults")
    yield b
    mp_sim.clear_faults()
    stop()


def _fired(sim, interface):
    return [f for f in sim.state()["faults_fired"] if f["interface"] == interface]


# 6301 is a read: reset, timeout and a bad signature already cover a failed poll.
PAYMENT_CASES = [(i, f) for i in ("6201", "6202", "6301") for f in TRANSPORT + ("business_error",)
                 if not (i == "6301" and f in ("http500", "garbled"))]


@pytest.mark.parametrize("interface, fault", PAYMENT_CASES)
def test_payment_call_faults(lone, sim, interface, fault):
    key = new_key()
    before = len(_fired(sim, interface))
    sim.arm(interface, fault)
    lone.enqueue(KIND_OUTPATIENT, key, payment(sim, sim.person("390", "none")))
    row = lone.wait_final(key, timeout=30)[key]
    assert len(_fired(sim, interface)) == before + 1, "the fault never fired"
    if fault == "business_error" and interface in ("6201", "6202"):
        want = {"6201": "UPLOAD_REJECTED", "6202": "ORDER_REJECTED"}[interface]
        assert (row["state"], row["code"]) == ("failed", want), row
        assert assert_paid_once(sim, key) == {}
        assert lone.inbox(key)[-1]["outcome"] == "failed"
    else:
        assert row["state"] == "done", (row, lone.inbox(key))
        order = assert_paid_once(sim, key)
        assert order, "not charged"
        settlements = [r for r in lone.inbox(key) if r["type"] == "settlement"]
        assert len(settlements) == 1 and str(settlements[0]["total"]) == order["feeSumamt"]
    if interface == "6202" and fault != "business_error":
        # the lost 6202 was resolved by 6301 before anything was sent again
        calls = [c[0] for c in lone.calls(key)]
        first_6202 = calls.index("6202")
        assert "6301" in calls[first_6202 + 1:], calls


@pytest.mark.parametrize("fault", TRANSPORT + ("refund_exp", "business_error"))
def test_refund_faults(lone, sim, fault):
    key = new_key()
    lone.enqueue(KIND_OUTPATIENT, key, payment(sim, sim.person("390", "none")))
    assert lone.wait_final(key)[key]["state"] == "done"
    order = assert_paid_once(sim, key)
    sim.arm("6203", fault)
    rf = new_key("RF")
    lone.enqueue(KIND_REFUND, rf, {"payment_key": key}, serial_key=key)
    row = lone.wait_final(rf, timeout=30)[rf]
    st = sim.state()
    refunds = sim.events("mobilepay.refund", order["payOrdId"], st)
    if fault == "business_error":
        assert (row["state"], row["code"]) == ("failed", "REFUND_REJECTED"), row
        assert refunds == []
    else:
        assert row["state"] == "done", (row, lone.inbox(rf))
        assert len(refunds) == 1, refunds
        assert lone.inbox(rf)[-1]["type"] == "refund"
        assert sim.orders_for(key, st)[0]["ordStas"] == "7"
        # the unknown 6203 was followed by a 6301, never straight by another 6203
        calls = lone.calls(rf)
        assert calls[0] == ("6203", "unknown") and calls[1][0] == "6301", calls
    assert_refunds_within_paid(sim, st)


@pytest.mark.parametrize("fault", ("timeout", "reset", "lost_after_commit", "bad_signature", "business_error"))
def test_revoke_faults(lone, sim, fault):
    key = new_key()
    lone.his.unpaid.add(key)
    lone.enqueue(KIND_OUTPATIENT, key, payment(sim, sim.person()))
    wait_for(lambda: [r for r in lone.inbox(key) if r["type"] == "order"], 15, "order row")
    sim.arm("6401", fault)
    rv = new_key("RV")
    lone.enqueue(KIND_REVOKE, rv, {"payment_key": key})
    rows = lone.wait_final(key, rv, timeout=DEADLINE + 30)
    (order,) = sim.orders_for(key)
    assert order["ordStas"] == "12" and assert_paid_once(sim, key) == {}
    if fault == "business_error":
        assert rows[rv]["code"] == "REVOKE_REJECTED"
        assert rows[key]["code"] == "EXPIRED"        # the deadline revoked it after all
    else:
        assert rows[rv]["state"] == "done", rows[rv]
        assert rows[key]["code"] in ("REVOKED", "EXPIRED")


def test_lost_6302_notices_are_covered_by_polling(lone, sim):
    key = new_key()
    sim.arm("6302", "fail", times=3)              # every delivery attempt of the notice fails
    lone.enqueue(KIND_OUTPATIENT, key, payment(sim, sim.person()))
    assert lone.wait_final(key)[key]["state"] == "done"
    order = assert_paid_once(sim, key)
    assert lone.q("SELECT COUNT(*) FROM mi_notice WHERE notice_key = :k", {"k": order["payOrdId"]}) == [(0,)]
    s = [r for r in lone.inbox(key) if r["type"] == "settlement"][0]
    assert s["result"]["confirmed_by"] == "6301"
