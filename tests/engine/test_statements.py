"""What the engine sends per job, per database: a regression in the number of
round trips or statements fails here.  Counted on the Store's real
connection (tests/engine/stmtcount.py); on PostgreSQL the server's own
pg_stat_statements must agree."""
from __future__ import annotations

import pytest

from bridge.db.store import InboxRow, Store
from bridge.engine.flow import Finish, Flow, Step
from bridge.testflow.platform import RunningTestPlatform

from .helpers import runner, states
from .stmtcount import counting

# (round trips, statements) per database.
NOOP_JOB = {
    # claim: one UPDATE ... FROM (SELECT ... FOR UPDATE SKIP LOCKED) RETURNING;
    # finish: one statement (guarded UPDATE + inbox INSERT as CTEs).
    "postgresql": {"claim": (1, 1), "finish": (1, 1)},
    # claim: START TRANSACTION; SELECT ... FOR UPDATE SKIP LOCKED | UPDATE; COMMIT
    # finish: START TRANSACTION; UPDATE; SET @mi_ok; INSERT ... WHERE @mi_ok = 1; COMMIT
    "mysql": {"claim": (2, 4), "finish": (1, 5)},
    # in-process: BEGIN IMMEDIATE; SELECT; UPDATE; COMMIT | BEGIN IMMEDIATE; UPDATE; INSERT; COMMIT
    "sqlite": {"claim": (4, 4), "finish": (4, 4)},
}
# One step that makes two calls, then finishes: each call's journal row goes
# in before it is sent, the first call's answer rides with the second call's
# journal row, the second's with the finish.
TWO_CALL_STEP = {
    "postgresql": (3, 3),
    "mysql": (3, 17),    # 5 (START, UPDATE, SET, INSERT, COMMIT) + 6 (+ journal answer) + 6
    "sqlite": (14, 14),  # 4 (BEGIN, UPDATE, INSERT, COMMIT) + 5 (+ answer) + 5 (BEGIN, answer, UPDATE, INSERT, COMMIT)
}


class TwoCallFlow(Flow):
    """One safe step that queries the test platform, then notifies it."""

    kind = "test.twocall"
    initial = "both"
    steps = {"both": Step("both", calls=("charge.query", "notify"), safe_to_repeat=True)}

    def step_both(self, ctx):
        client = ctx.service("testplatform")
        ctx.call(client.send, client.prepare_query(ctx.row.business_key))
        ctx.call(client.send, client.prepare_notify(ctx.row.business_key))
        return Finish([InboxRow(result_type="twocall", outcome="ok")])


@pytest.fixture
def store(db_url):
    s = Store(db_url)
    yield s
    s.close()


def test_a_noop_job_costs_this_many_round_trips(store, dialect):
    oid = store.enqueue("test.noop", "N1", {"total_amount": "1.00"})
    run = runner(store, "http://127.0.0.1:9")
    counter = counting(store)
    [row] = store.claim("w", 30, limit=5)
    claim = counter.reset()
    run.run(row, "w")
    finish = counter.reset()
    assert {"claim": claim, "finish": finish} == NOOP_JOB[dialect]
    assert states(store) == {oid: "done"}
    assert [tuple(r) for r in store.query("SELECT result_type FROM mi_inbox WHERE outbox_id = :o",
                                          {"o": oid})] == [("noop",)]


def test_a_two_call_step_costs_this_many_round_trips(store, dialect):
    platform = RunningTestPlatform()
    try:
        oid = store.enqueue("test.twocall", "T1", {"total_amount": "1.00"})
        run = runner(store, platform.url)
        run.registry.register(TwoCallFlow())
        [row] = store.claim("w", 30)
        counter = counting(store)
        run.run(row, "w")
        assert counter.reset() == TWO_CALL_STEP[dialect], counter.log
        assert states(store) == {oid: "done"}
        # Both answers are in the journal, though neither had a write of its own.
        assert [tuple(r) for r in store.query(
            "SELECT interface, outcome, http_status FROM mi_journal ORDER BY id")] == \
            [("charge.query", "ok", 200), ("notify", "ok", 200)]
        assert store.query("SELECT COUNT(*) FROM mi_journal WHERE ended_at IS NULL")[0][0] == 0
    finally:
        platform.stop()


@pytest.mark.parametrize("dialect", ["postgresql"])
def test_pg_stat_statements_sees_what_the_counter_counts(db_url):
    """The server's count of a no-op job's statements, by pg_stat_statements
    (preloaded on the dev and CI servers), equals the counter's."""
    s = Store(db_url)
    try:
        try:
            s.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            s.query("SELECT COUNT(*) FROM pg_stat_statements")
        except Exception as exc:
            pytest.skip(f"pg_stat_statements is not loaded on this server: {exc}")
        s.enqueue("test.noop", "N1", {"total_amount": "1.00"})
        run = runner(s, "http://127.0.0.1:9")
        # toplevel: what the client sent, not the foreign-key checks run inside the
        # server, which a server with pg_stat_statements.track=all also counts.
        total = "SELECT COALESCE(SUM(calls), 0) FROM pg_stat_statements WHERE toplevel AND dbid = " \
                "(SELECT oid FROM pg_database WHERE datname = current_database())"
        before = int(s.query(total)[0][0])
        counter = counting(s)
        [row] = s.claim("w", 30)
        run.run(row, "w")
        sent = counter.reset()
        after = int(s.query(total)[0][0])
        # The query of `before` is counted by the server as it ends: one more.
        assert after - before - 1 == sent[1] == sum(NOOP_JOB["postgresql"]["claim"][1:] +
                                                   NOOP_JOB["postgresql"]["finish"][1:])
    finally:
        s.close()


@pytest.mark.parametrize("dialect", ["mysql"])
def test_mariadb_without_multi_statements_sends_one_statement_per_round_trip(store, monkeypatch):
    """A connection opened without CLIENT_MULTI_STATEMENTS (an older connect(),
    a proxy that strips it) still works, one statement per round trip."""
    from bridge.db.dialects.mysql import MySQLDialect

    monkeypatch.setattr(MySQLDialect, "multi_statements", staticmethod(lambda conn: False))
    oid = store.enqueue("test.noop", "N1", {"total_amount": "1.00"})
    run = runner(store, "http://127.0.0.1:9")
    counter = counting(store)
    [row] = store.claim("w", 30, limit=5)
    log = list(counter.log)
    assert counter.reset() == (4, 4), log     # BEGIN; SELECT ... FOR UPDATE SKIP LOCKED; UPDATE; COMMIT
    run.run(row, "w")
    log = list(counter.log)
    assert counter.reset() == (4, 4), log     # BEGIN; UPDATE; INSERT; COMMIT
    assert states(store) == {oid: "done"}
