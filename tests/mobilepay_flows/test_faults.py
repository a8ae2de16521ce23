"""A lost revoke answer against a real daemon: the revoke kind's one end-to-end fault
case (the payment's and the refund's run on every database in test_payments.py).

Every answer of every mobile-pay call - ok, refused, not sent, a transient refusal,
unknown - and every resolver verdict inside and past the settle window is a unit case
(tests/flows_unit/test_mobilepay_*.py); how the client classifies each wire fault
(timeout, reset, HTTP 500, a bad signature, a garbled body) is tested over real HTTP in
tests/mobilepay/test_client.py.  The SIGKILL matrix is test_crash.py."""
from __future__ import annotations

import pytest

from bridge.mobilepay.kinds import KIND_OUTPATIENT, KIND_REVOKE

from .conftest import start_bridge
from .harness import DEADLINE, assert_paid_once, new_key, payment, wait_for


@pytest.fixture(scope="module")
def lone(mp_sim, tmp_path_factory):
    b, stop = start_bridge("sqlite", tmp_path_factory.mktemp("mp-faults"), mp_sim, name="faults")
    yield b
    mp_sim.clear_faults()
    stop()


def _fired(sim, interface):
    return [f for f in sim.state()["faults_fired"] if f["interface"] == interface]


def test_a_lost_revoke_answer_is_resolved_by_6301(lone, sim):
    key = new_key()
    lone.his.unpaid.add(key)
    lone.enqueue(KIND_OUTPATIENT, key, payment(sim, sim.person()))
    wait_for(lambda: [r for r in lone.inbox(key) if r["type"] == "order"], 15, "order row")
    before = len(_fired(sim, "6401"))
    sim.arm("6401", "lost_after_commit")          # revoked at the centre, answer lost
    rv = new_key("RV")
    lone.enqueue(KIND_REVOKE, rv, {"payment_key": key})
    rows = lone.wait_final(key, rv, timeout=DEADLINE + 30)
    assert len(_fired(sim, "6401")) == before + 1, "the fault never fired"
    (order,) = sim.orders_for(key)
    assert order["ordStas"] == "12" and assert_paid_once(sim, key) == {}
    assert rows[rv]["state"] == "done", rows[rv]
    assert rows[key]["code"] in ("REVOKED", "EXPIRED")
    # The lost 6401 is the revoke's, or - when the revoke ran after the payment's deadline on a
    # loaded machine - the payment's own deadline 6401: either way it is asked (6301) and that
    # request never sends 6401 again.
    lost = {k: lone.calls(k) for k in (rv, key) if ("6401", "unknown") in lone.calls(k)}
    assert len(lost) == 1, {k: lone.calls(k) for k in (rv, key)}
    (calls,) = lost.values()
    at = calls.index(("6401", "unknown"))
    assert calls[at + 1][0] == "6301" and [c for c in calls if c[0] == "6401"] == [("6401", "unknown")], calls
