"""The engine in one process, on each real database: claim, guarded
transitions, finalise-once, serial-key order, retries, in-doubt resolution,
bad input, and the rescuer."""
from __future__ import annotations

import json
import time

import httpx
import pytest

from bridge.db.store import LostLease, Store
from bridge.testflow.platform import RunningTestPlatform

from .helpers import drain, runner, states


@pytest.fixture
def platform():
    p = RunningTestPlatform(timeout_delay=1.5)
    yield p
    p.stop()


@pytest.fixture
def store(db_url):
    s = Store(db_url)
    yield s
    s.close()


def fault(platform, path, kind, times=1):
    httpx.post(platform.url + "/__faults__", json={"path": path, "fault": kind, "times": times})


def charges(platform) -> dict:
    return platform.platform.state()["charges"]


def test_happy_path_finishes_once_with_inbox_row_and_journal(store, platform):
    oid = store.enqueue("test.charge", "INV-1", {"patient_id": "P1", "total_amount": "12.50"})
    drain(store, runner(store, platform.url))
    assert states(store) == {oid: "done"}
    inbox = store.query("SELECT outcome, order_id, total_amount FROM mi_inbox WHERE outbox_id = :o", {"o": oid})
    assert len(inbox) == 1 and inbox[0][0] == "ok" and inbox[0][1].startswith("CH")
    journal = store.query("SELECT interface, outcome FROM mi_journal WHERE outbox_id = :o ORDER BY id", {"o": oid})
    assert [tuple(j) for j in journal] == [("charge", "ok"), ("notify", "ok")]
    assert charges(platform) == {"INV-1": 1}


def test_claimed_row_is_not_claimed_again_and_late_worker_cannot_overwrite(store, platform):
    store.enqueue("test.charge", "INV-1", {"patient_id": "P1", "total_amount": "1.00"})
    [row] = store.claim("old-worker", lease_seconds=30)
    assert store.claim("other", 30) == []
    # The lease runs out (simulated by moving it into the past with the DB's clock) ...
    store.execute("UPDATE mi_outbox SET lease_expires_at = created_at WHERE id = :i", {"i": row.id})
    assert store.recover_expired_leases() == 1
    [again] = store.claim("new-worker", 30)
    assert again.id == row.id
    # ... and the old worker's late writes touch nothing.
    with pytest.raises(LostLease):
        store.finish(row, "old-worker", "done", {}, [])
    with pytest.raises(LostLease):
        store.advance(row, "old-worker", "notify", {})
    assert not store.heartbeat(row.id, "old-worker", 30)
    assert store.heartbeat(row.id, "new-worker", 30)
    assert store.query("SELECT COUNT(*) FROM mi_inbox")[0][0] == 0


def test_rescuer_sends_unsafe_in_flight_calls_to_in_doubt_and_safe_ones_to_retry(store):
    a = store.enqueue("test.charge", "A", {"patient_id": "P", "total_amount": "1.00"})
    b = store.enqueue("test.charge", "B", {"patient_id": "P", "total_amount": "1.00"})
    c = store.enqueue("test.charge", "C", {"patient_id": "P", "total_amount": "1.00"})
    rows = {r.id: r for r in store.claim("w", 30, limit=3)}
    store.begin_call(a, "w", "charge", "msg-a", "charge", "{}", unsafe=True)
    store.begin_call(b, "w", "notify", "msg-b", "notify", "{}", unsafe=False)
    store.execute("UPDATE mi_outbox SET lease_expires_at = created_at")
    assert store.recover_expired_leases() == 3
    got = {int(r[0]): (r[1], r[2]) for r in store.query("SELECT id, state, current_call FROM mi_outbox")}
    assert got[a] == ("in_doubt", "msg-a")
    assert got[b][0] == "pending"
    assert got[c] == ("pending", None)
    # The journal row for the lost call stays open (outcome NULL): auditors see it.
    assert store.query("SELECT outcome FROM mi_journal WHERE msg_id = 'msg-a'")[0][0] is None


def test_lost_answer_on_unsafe_call_is_resolved_by_query_not_resent(store, platform):
    fault(platform, "/charge", "lost_after_commit")
    oid = store.enqueue("test.charge", "INV-7", {"patient_id": "P7", "total_amount": "88.00"})
    drain(store, runner(store, platform.url))
    assert states(store) == {oid: "done"}
    assert charges(platform) == {"INV-7": 1}
    j = [tuple(r) for r in store.query("SELECT interface, outcome FROM mi_journal ORDER BY id")]
    assert j[0] == ("charge", "unknown") and ("charge.query", "ok") in j


@pytest.mark.parametrize("kind", ["http500", "timeout"])
def test_unknown_outcome_before_commit_is_queried_then_sent_once(store, platform, kind):
    # 500 / timeout before the platform booked anything: the query finds nothing, so the
    # flow may send the charge (for the first time, as far as the platform is concerned).
    if kind == "timeout":
        platform.platform.timeout_delay = 1.5
    fault(platform, "/charge", kind)
    oid = store.enqueue("test.charge", "INV-8", {"patient_id": "P8", "total_amount": "8.00"})
    drain(store, runner(store, platform.url, timeout=0.5))
    assert states(store) == {oid: "done"}
    # A 500 books nothing; a timed-out request is still booked by the platform when it
    # wakes up (1.5 s), so the resolver must not take "not found yet" for "never booked".
    time.sleep(platform.platform.timeout_delay)
    assert charges(platform) == {"INV-8": 1}


def test_business_rejection_fails_with_the_platforms_code(store, platform):
    fault(platform, "/charge", "reject")
    oid = store.enqueue("test.charge", "INV-9", {"patient_id": "P9", "total_amount": "9.00"})
    drain(store, runner(store, platform.url))
    assert states(store) == {oid: "failed"}
    assert tuple(store.query("SELECT outcome, error_code FROM mi_inbox")[0]) == ("failed", "E100")


def test_safe_step_retries_then_holds_after_max_attempts(store, platform):
    fault(platform, "/notify", "http500", times=100)
    oid = store.enqueue("test.charge", "INV-10", {"patient_id": "P", "total_amount": "1.00"})
    store.execute("UPDATE mi_outbox SET max_attempts = 3 WHERE id = :i", {"i": oid})
    drain(store, runner(store, platform.url))
    assert states(store) == {oid: "held"}
    code, msg = store.query("SELECT last_error_code, last_error_message FROM mi_outbox")[0]
    assert code == "NOTIFY_FAILED" and "gave up after 3 attempts" in msg
    assert store.query("SELECT outcome FROM mi_inbox")[0][0] == "held"
    assert platform.platform.state()["notifies"].get("INV-10", 0) == 0
    assert charges(platform) == {"INV-10": 1}
    # A human requeues it (audited) once the platform is fine again.
    platform.platform.faults.clear()
    assert store.requeue(oid, "dba@test", "platform fixed") == "pending"
    drain(store, runner(store, platform.url))
    assert states(store) == {oid: "done"}
    assert charges(platform) == {"INV-10": 1}
    assert store.query("SELECT action, actor FROM mi_audit")[0] == ("requeue", "dba@test") or \
        tuple(store.query("SELECT action, actor FROM mi_audit")[0]) == ("requeue", "dba@test")


def test_requeue_of_row_held_inside_unsafe_call_goes_to_in_doubt(store):
    oid = store.enqueue("test.charge", "A", {"patient_id": "P", "total_amount": "1.00"})
    [row] = store.claim("w", 30)
    store.begin_call(oid, "w", "charge", "m1", "charge", "{}", unsafe=True)
    row.step = None
    store.release(row, "w", "held", 0, {}, error_code="X", error_message="stuck", keep_call=True)
    assert store.requeue(oid, "dba", "try again") == "in_doubt"


def test_resolve_by_hand_closes_row_tells_his_and_audits(store):
    oid = store.enqueue("test.charge", "A", {"patient_id": "P", "total_amount": "1.00"})
    [row] = store.claim("w", 30)
    store.release(row, "w", "held", 0, {}, error_code="X", error_message="stuck", keep_call=False)
    with pytest.raises(ValueError):
        store.resolve(oid, "dba", "  ")
    store.resolve(oid, "dba", "checked the platform: never charged")
    assert states(store) == {oid: "resolved"}
    assert tuple(store.query("SELECT outcome, error_message FROM mi_inbox")[0]) == \
        ("resolved", "checked the platform: never charged")
    with pytest.raises(ValueError):
        store.requeue(oid, "dba", "again")


def test_serial_key_runs_strictly_in_order_and_a_held_row_blocks_only_its_key(store, platform):
    a1 = store.enqueue("test.charge", "A1", {"patient_id": "P", "total_amount": "1.00"}, serial_key="VISIT-A")
    a2 = store.enqueue("test.charge", "A2", {"patient_id": "P", "total_amount": "2.00"}, serial_key="VISIT-A")
    b1 = store.enqueue("test.charge", "B1", {"patient_id": "P", "total_amount": "3.00"}, serial_key="VISIT-B")
    first = store.claim("w", 30, limit=10)
    assert sorted(r.id for r in first) == [a1, b1]      # A2 waits behind A1
    held = next(r for r in first if r.id == a1)
    store.release(held, "w", "held", 0, {}, error_code="X", error_message="poison", keep_call=False)
    other = next(r for r in first if r.id == b1)
    runner(store, platform.url).run(other, "w")
    assert store.claim("w", 30, limit=10) == []          # A2 still waits: its predecessor is held
    b2 = store.enqueue("test.charge", "B2", {"patient_id": "P", "total_amount": "4.00"}, serial_key="VISIT-B")
    drain(store, runner(store, platform.url), blocked_ok=True)
    assert states(store) == {a1: "held", a2: "pending", b1: "done", b2: "done"}


def test_bad_rows_get_a_clear_error_and_the_rest_keep_flowing(store, platform):
    good = store.enqueue("test.charge", "G1", {"patient_id": "P", "total_amount": "1.00"})
    missing = store.enqueue("test.charge", "M1", {"total_amount": "1.00"})
    unknown = store.enqueue("test.nosuch", "U1", {"x": 1})
    badamt = store.enqueue("test.charge", "X1", {"patient_id": "P", "total_amount": "1.00"})
    # Corrupt payloads that slipped past the database (edited by hand after insert).
    store.execute("UPDATE mi_outbox SET payload = '{broken' WHERE id = :i", {"i": badamt})
    drain(store, runner(store, platform.url))
    st = states(store)
    assert st[good] == "done" and st[missing] == "failed" and st[badamt] == "failed"
    errs = {int(r[0]): (r[1], r[2]) for r in store.query("SELECT outbox_id, error_code, error_message FROM mi_inbox WHERE outcome IN ('failed', 'held')")}
    assert errs[missing][0] == "BAD_INPUT" and "patient_id" in errs[missing][1]
    assert errs[badamt][0] == "BAD_INPUT" and "not valid JSON" in errs[badamt][1]
    # A kind this daemon does not run is held, not failed (issue 10 #10): it can be
    # requeued once the configuration is fixed.
    assert st[unknown] == "held"
    assert errs[unknown][0] == "UNKNOWN_KIND" and "test.nosuch" in errs[unknown][1]
    assert set(charges(platform)) == {"G1"}


def test_a_kind_unknown_to_this_daemon_is_held_and_runs_once_requeued(store, platform):
    """A daemon started without a platform section (a misspelt [mobilpay] used to do
    that) holds that platform's requests; with the flow back they run on requeue."""
    from bridge.engine.flow import Registry
    from bridge.engine.runner import Runner

    oid = store.enqueue("test.noop", "K1", {"x": 1})
    bare = runner(store, platform.url)
    bare.registry = Registry()                       # the daemon whose config lacks the section
    drain(store, bare)
    assert states(store)[oid] == "held"
    held = store.query("SELECT error_code, error_message FROM mi_inbox WHERE outbox_id = :o", {"o": oid})
    assert held[0][0] == "UNKNOWN_KIND" and "requeue" in held[0][1]
    assert store.requeue(oid, "dba", "config fixed") == "pending"
    full = runner(store, platform.url)
    assert isinstance(full, Runner) and full.registry.get("test.noop") is not None
    drain(store, full)
    assert states(store)[oid] == "done"


def test_platform_unreachable_is_not_sent_and_retried(store):
    # Nothing listens on this port: the client reports NOT_SENT; retrying is safe.
    oid = store.enqueue("test.charge", "N1", {"patient_id": "P", "total_amount": "1.00"})
    store.execute("UPDATE mi_outbox SET max_attempts = 2 WHERE id = :i", {"i": oid})
    drain(store, runner(store, "http://127.0.0.1:9"))
    assert states(store) == {oid: "held"}
    assert store.query("SELECT last_error_code FROM mi_outbox")[0][0] == "NOT_SENT"
    assert store.query("SELECT current_call FROM mi_outbox")[0][0] is None


def test_status_reports_counts_oldest_age_and_held(store):
    a = store.enqueue("test.charge", "A", {"patient_id": "P", "total_amount": "1.00"})
    store.enqueue("test.charge", "B", {"patient_id": "P", "total_amount": "1.00"})
    [row] = store.claim("w", 30)
    store.release(row, "w", "held", 0, {}, error_code="X", error_message="why", keep_call=False)
    st = store.status()
    assert st["counts"] == {"held": 1, "pending": 1}
    assert st["oldest_open_age_seconds"] is not None and st["oldest_open_age_seconds"] >= 0
    assert st["held"][0]["id"] == a and st["held"][0]["reason"] == "why"
    json.dumps(st, default=str)


# -- regressions from the engine review --------------------------------------------

def test_resolver_query_keeps_the_doubted_call_on_record(store, platform):
    fault(platform, "/charge", "lost_after_commit")
    oid = store.enqueue("test.charge", "INV-Q", {"patient_id": "P", "total_amount": "1.00"})
    run = runner(store, platform.url)
    [row] = store.claim("w", 30)
    run.run(row, "w")                                   # charge booked, answer lost -> in_doubt
    charge_msg = store.query("SELECT current_call FROM mi_outbox")[0][0]
    assert store.query("SELECT interface FROM mi_journal WHERE msg_id = :m", {"m": charge_msg})[0][0] == "charge"
    platform.platform.faults.append({"path": "/charge", "fault": "http500", "times": 0})
    # The query fails too (platform down): the row stays in doubt about the CHARGE.
    down = runner(store, "http://127.0.0.1:9")
    store.execute("UPDATE mi_outbox SET next_attempt_at = created_at")
    [row] = store.claim("w", 30)
    down.run(row, "w")
    assert tuple(store.query("SELECT state, current_call FROM mi_outbox")[0]) == ("in_doubt", charge_msg)
    drain(store, run)
    assert states(store) == {oid: "done"} and charges(platform) == {"INV-Q": 1}


def test_business_key_with_url_characters_is_queried_correctly(store, platform):
    fault(platform, "/charge", "lost_after_commit")
    oid = store.enqueue("test.charge", "INV+7&x=1", {"patient_id": "P", "total_amount": "1.00"})
    drain(store, runner(store, platform.url))
    assert states(store) == {oid: "done"} and charges(platform) == {"INV+7&x=1": 1}


def test_flow_bug_after_unknown_answer_cannot_resend(store, platform):
    from bridge.engine.flow import Goto as _Goto
    from bridge.testflow.flows import TestChargeFlow

    class BuggyFlow(TestChargeFlow):
        def step_charge(self, ctx):
            client = ctx.service("testplatform")
            ctx.call(client.send, client.prepare_charge(ctx.row.business_key, ctx.payload.total_amount))
            return _Goto("charge")                      # "just try again": a blind resend

    fault(platform, "/charge", "lost_after_commit")
    oid = store.enqueue("test.charge", "INV-B", {"patient_id": "P", "total_amount": "1.00"})
    run = runner(store, platform.url)
    run.registry._flows["test.charge"] = BuggyFlow(settle_seconds=2.0)
    [row] = store.claim("w", 30)
    run.run(row, "w")
    assert states(store) == {oid: "in_doubt"}
    assert charges(platform) == {"INV-B": 1}


def test_rescuer_holds_rows_that_used_up_their_attempts_and_tells_the_his(store):
    oid = store.enqueue("test.charge", "A", {"patient_id": "P", "total_amount": "1.00"})
    store.execute("UPDATE mi_outbox SET max_attempts = 1 WHERE id = :i", {"i": oid})
    [row] = store.claim("w", 30)
    store.begin_call(oid, "w", "charge", "m-a", "charge", "{}", unsafe=True)
    store.execute("UPDATE mi_outbox SET lease_expires_at = created_at")
    assert store.recover_expired_leases() == 1
    assert tuple(store.query("SELECT state, current_call FROM mi_outbox")[0]) == ("held", "m-a")
    assert tuple(store.query("SELECT outcome, error_code FROM mi_inbox")[0]) == ("held", "LEASE_EXPIRED")
    assert store.requeue(oid, "dba", "checked") == "in_doubt"


def test_no_call_starts_on_an_expired_lease(store):
    oid = store.enqueue("test.charge", "A", {"patient_id": "P", "total_amount": "1.00"})
    store.claim("w", 30)
    store.execute("UPDATE mi_outbox SET lease_expires_at = created_at")
    with pytest.raises(LostLease):
        store.begin_call(oid, "w", "charge", "m-x", "charge", "{}", unsafe=True)
    assert store.query("SELECT COUNT(*) FROM mi_journal")[0][0] == 0


def test_error_texts_stored_for_dbas_and_the_his_are_masked(store):
    from bridge.db.store import InboxRow

    store.enqueue("test.charge", "A", {"patient_id": "P", "total_amount": "1.00"})
    [row] = store.claim("w", 30)
    store.finish(row, "w", "failed", {}, [InboxRow("error", "failed", "E", "certno 110101199003071234 rejected")],
                 error_code="E", error_message="tel 13812345678")
    assert store.query("SELECT error_message FROM mi_inbox")[0][0] == "certno 110101********1234 rejected"
    assert store.query("SELECT last_error_message FROM mi_outbox")[0][0] == "tel 138****5678"
