"""A transition may add requests to the outbox (NewRequest): in the same transaction as
the transition, and only once per kind and business key, so a repeated event adds
nothing.  On every live database (the INSERT ... WHERE NOT EXISTS differs by dialect)."""
from __future__ import annotations

import pytest

from bridge.db.store import Store
from bridge.engine.backoff import Backoff
from bridge.engine.flow import Fail, Finish, Flow, Goto, InboxRow, NewRequest, Registry, Step
from bridge.engine.runner import Runner, RunnerSettings


class SpawningFlow(Flow):
    """start -> done, adding a follow-up request named by the payload ("event")."""

    kind = "test.spawn"
    initial = "start"
    steps = {"start": Step("start", next=("done",)), "done": Step("done")}

    def step_start(self, ctx):
        return Goto("done", enqueue=[NewRequest("test.followup", ctx.payload["event"],
                                                {"source": ctx.row.business_key})])

    def step_done(self, ctx):
        if ctx.payload.get("fail"):
            return Fail("NOPE", "failed on purpose",
                        enqueue=[NewRequest("test.followup", ctx.payload["event"] + ":failed", {})])
        return Finish([InboxRow(result_type="x", outcome="ok")],
                      enqueue=[NewRequest("test.followup", ctx.payload["event"] + ":done", {"n": 1},
                                          serial_key="S-1")])


@pytest.fixture
def run(db_url):
    store = Store(db_url)
    reg = Registry()
    reg.register(SpawningFlow())
    r = Runner(store, reg, RunnerSettings(backoff=Backoff(0.01, 0.02, 0.0)), {})
    yield store, r
    store.close()


def _drain(store: Store, r: Runner) -> None:
    while True:
        rows = store.claim("w", 30, limit=5)
        rows = [row for row in rows if row.kind == "test.spawn"]
        if not rows:
            return
        for row in rows:
            r.run(row, "w")


def _followups(store: Store) -> list[tuple]:
    return [tuple(x) for x in store.query(
        "SELECT business_key, serial_key, payload, state FROM mi_outbox WHERE kind = 'test.followup' ORDER BY id")]


def test_a_transition_adds_its_requests_once(run):
    store, r = run
    store.enqueue("test.spawn", "A", {"event": "E-1"})
    store.enqueue("test.spawn", "B", {"event": "E-1"})      # the same event again: nothing new
    _drain(store, r)
    got = _followups(store)
    # (the drain may have claimed them too: no flow runs test.followup here)
    assert [(k, s) for k, s, _, _ in got] == [("E-1", "E-1"), ("E-1:done", "S-1")]
    assert '"source": "A"' in got[0][2] and '"n": 1' in got[1][2]
    states = {k: st for k, st in store.query("SELECT business_key, state FROM mi_outbox WHERE kind = 'test.spawn'")}
    assert states == {"A": "done", "B": "done"}


def test_a_failed_request_adds_its_requests_too(run):
    store, r = run
    store.enqueue("test.spawn", "C", {"event": "E-2", "fail": True})
    _drain(store, r)
    assert [k for k, *_ in _followups(store)] == ["E-2", "E-2:failed"]
