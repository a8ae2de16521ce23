"""Every decision of the test flow (bridge/testflow/flows.py): the engine's own example of
an unsafe call resolved by query."""
from __future__ import annotations

import pytest

from bridge.engine.flow import Fail, Finish, Goto, InDoubt, Retry
from bridge.engine.testing import FlowScript, not_sent, ok, refused, transient, unknown
from bridge.testflow import flows as testflows

SETTLE = 5.0
DOC = {"patient_id": "P1", "total_amount": "12.50"}


@pytest.fixture
def s(testplatform):
    return FlowScript(testflows.TestChargeFlow(settle_seconds=SETTLE), services={"testplatform": testplatform})


@pytest.mark.parametrize("answer, want", [
    (ok("charge", {"charge_id": "C1"}), (Goto, None)),
    (refused("charge", "card declined", code="DECLINED"), (Fail, "DECLINED")),
    (transient("charge"), (Retry, "PLATFORM_BUSY")),
    (not_sent("charge"), (Retry, "NOT_SENT")),
    (unknown("charge"), (InDoubt, "CHARGE_UNKNOWN")),
], ids=["ok", "refused", "transient", "not-sent", "unknown"])
def test_charge(s, answer, want):
    s.answer("charge", answer)
    t = s.step("charge", DOC)
    assert isinstance(t, want[0]) and getattr(t, "code", None) == want[1], t
    assert s.sent == ["charge"]
    if isinstance(t, Goto):
        assert (t.step, t.data) == ("notify", {"charge_id": "C1"})


@pytest.mark.parametrize("age", [1.0, SETTLE + 1], ids=["inside", "past"])
@pytest.mark.parametrize("charges, want", [
    ([{"charge_id": "C1"}], (Goto, "notify")),
    ([{"charge_id": "C1"}, {"charge_id": "C2"}], (Fail, "DOUBLE_CHARGE")),
])
def test_resolve_charge_found(s, age, charges, want):
    s.answer("charge.query", ok("charge.query", {"charges": charges}))
    t = s.resolve("charge", DOC, doubt_age=age)
    assert isinstance(t, want[0]) and (t.step if isinstance(t, Goto) else t.code) == want[1], t
    assert s.sent == ["charge.query"]


@pytest.mark.parametrize("age, want", [(1.0, InDoubt), (SETTLE + 1, Goto)], ids=["inside", "past"])
def test_resolve_charge_not_found_waits_out_the_window_then_charges(s, age, want):
    s.answer("charge.query", ok("charge.query", {"charges": []}))
    t = s.resolve("charge", DOC, doubt_age=age)
    assert isinstance(t, want)
    assert (t.waiting and t.code == "NOT_SETTLED_YET") if want is InDoubt else t.step == "charge"


@pytest.mark.parametrize("answer", [unknown("charge.query"), refused("charge.query"), not_sent("charge.query")])
def test_resolve_charge_that_cannot_ask_stays_in_doubt(s, answer):
    s.answer("charge.query", answer)
    t = s.resolve("charge", DOC, doubt_age=SETTLE + 1)
    assert isinstance(t, InDoubt) and t.code == "QUERY_FAILED" and not t.waiting


@pytest.mark.parametrize("answer, want", [
    (ok("notify", {}), Finish), (refused("notify", code="BAD"), Fail), (unknown("notify"), Retry),
    (not_sent("notify"), Retry)])
def test_notify(s, answer, want):
    s.answer("notify", answer)
    t = s.step("notify", DOC, data={"charge_id": "C1"})
    assert isinstance(t, want), t
    if isinstance(t, Finish):
        [row] = t.inbox
        assert (row.result_type, row.order_id, str(row.total_amount)) == ("charge", "C1", "12.50")


def test_noop():
    s = FlowScript(testflows.TestNoopFlow())
    t = s.step("finish", {})
    assert isinstance(t, Finish) and t.inbox[0].result == {"by": "unit"} and s.sent == []
