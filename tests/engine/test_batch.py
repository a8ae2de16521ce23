"""Batch claims and the writes that carry a call's answer, on each real
database: a claim of n rows, serial order inside and across batches, the
heartbeat holding rows that wait for a worker, giving back rows not started,
and journal answers that are kept even when the lease is lost."""
from __future__ import annotations

import threading
import time

import pytest

from bridge.db.dialects.base import CallEnd
from bridge.db.store import InboxRow, LostLease, Store
from bridge.engine.flow import Finish, Flow, Registry, Step
from bridge.testflow.flows import TestNoopFlow
from daemon.config import Config
from daemon.service import Daemon

from .helpers import states

PAY = {"patient_id": "P", "total_amount": "1.00"}


@pytest.fixture
def store(db_url):
    s = Store(db_url)
    yield s
    s.close()


def test_one_claim_takes_n_rows_with_one_owner(store):
    ids = [store.enqueue("test.charge", f"K{i}", PAY) for i in range(5)]
    store.execute("UPDATE mi_outbox SET state = 'in_doubt', current_call = 'm0' WHERE id = :i", {"i": ids[2]})
    rows = store.claim("w-1", 30, limit=4)
    assert [r.id for r in rows] == ids[:4]
    assert [r.was_state for r in rows] == ["pending", "pending", "in_doubt", "pending"]
    assert rows[2].current_call == "m0" and all(r.attempts == 1 for r in rows)
    got = {int(r[0]): (r[1], r[2], int(r[3])) for r in
           store.query("SELECT id, state, lease_owner, attempts FROM mi_outbox")}
    assert all(got[i] == ("running", "w-1", 1) for i in ids[:4]) and got[ids[4]] == ("pending", None, 0)
    assert [r.id for r in store.claim("w-2", 30, limit=10)] == [ids[4]]
    assert store.claim("w-3", 30, limit=10) == []


def test_two_rows_of_one_serial_key_are_never_claimed_together(store):
    a = [store.enqueue("test.charge", f"A{i}", PAY, serial_key="VISIT-A") for i in range(3)]
    b = store.enqueue("test.charge", "B0", PAY, serial_key="VISIT-B")
    first = store.claim("w", 30, limit=10)
    assert sorted(r.id for r in first) == [a[0], b]
    assert store.claim("w2", 30, limit=10) == []               # A1 waits behind the running A0
    store.finish(next(r for r in first if r.id == a[0]), "w", "done", {}, [])
    assert [r.id for r in store.claim("w3", 30, limit=10)] == [a[1]]   # and A2 behind A1


def test_concurrent_batch_claims_never_share_a_row_or_run_a_key_out_of_order(db_url, dialect):
    """Four claimers with their own connections race over 120 rows in 12 serial
    keys.  Each row is claimed once, and when a claim returns, every older row
    of its serial key is already final (its finish committed first)."""
    seed = Store(db_url)
    ids = [seed.enqueue("test.noop", f"R{i:03d}", {"total_amount": "1.00"}, serial_key=f"S{i % 12}")
           for i in range(120)]
    seed.close()
    claimed: list[int] = []
    errors: list[str] = []
    lock = threading.Lock()
    older_open = """SELECT COUNT(*) FROM mi_outbox p, mi_outbox o
                     WHERE o.id = :i AND p.serial_key = o.serial_key AND p.id < o.id
                       AND p.state NOT IN ('done', 'failed', 'resolved')"""

    def claimer(n):
        s = Store(db_url)
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                rows = s.claim(f"c{n}:{time.monotonic_ns()}", 30, limit=7)
                if not rows:
                    with lock:
                        if len(claimed) >= len(ids):
                            return
                    time.sleep(0.01)
                    continue
                keys = [r.serial_key for r in rows]
                if len(set(keys)) != len(keys):
                    errors.append(f"one batch holds two rows of a key: {keys}")
                for r in rows:
                    if s.query(older_open, {"i": r.id})[0][0]:
                        errors.append(f"row {r.id} claimed while an older row of {r.serial_key} is open")
                with lock:
                    claimed.extend(r.id for r in rows)
                owner = s.query("SELECT lease_owner FROM mi_outbox WHERE id = :i", {"i": rows[0].id})[0][0]
                for r in rows:
                    s.finish(r, owner, "done", {}, [InboxRow("noop", "ok")])
        except Exception as exc:  # reported below, with the rest
            errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            s.close()

    threads = [threading.Thread(target=claimer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    assert not errors, errors[:5]
    assert sorted(claimed) == ids
    check = Store(db_url)
    try:
        assert set(states(check).values()) == {"done"}
    finally:
        check.close()


def test_a_calls_answer_is_journalled_even_when_the_lease_is_lost(store):
    oid = store.enqueue("test.charge", "A", PAY)
    [row] = store.claim("old", 30)
    store.begin_call(oid, "old", "charge", "m-1", "charge", "{}", unsafe=True)
    store.execute("UPDATE mi_outbox SET lease_expires_at = created_at")
    assert store.recover_expired_leases() == 1
    answer = CallEnd("m-1", "ok", 200, '{"charge_id": "CH1"}', None)
    with pytest.raises(LostLease):
        store.finish(row, "old", "done", {}, [InboxRow("charge", "ok")], ended=[answer])
    # The answer is a fact and is kept; the stale transition and its inbox row are not.
    assert tuple(store.query("SELECT outcome, http_status FROM mi_journal WHERE msg_id = 'm-1'")[0]) == ("ok", 200)
    assert states(store) == {oid: "in_doubt"}
    assert store.query("SELECT COUNT(*) FROM mi_inbox")[0][0] == 0
    # A second call's journal row carries the first call's answer; both in one write.
    [row] = store.claim("new", 30)
    store.begin_call(oid, "new", "charge", "m-2", "charge.query", "{}", unsafe=False, mark=False)
    store.begin_call(oid, "new", "charge", "m-3", "charge.query", "{}", unsafe=False, mark=False,
                     ended=[CallEnd("m-2", "unknown", None, None, "timeout, tel 13812345678")])
    assert [tuple(r) for r in store.query(
        "SELECT msg_id, outcome, error_message FROM mi_journal ORDER BY id")] == \
        [("m-1", "ok", None), ("m-2", "unknown", "timeout, tel 138****5678"), ("m-3", None, None)]
    # An answer is written once: a repeat (a retried write) changes nothing.
    store.end_calls([CallEnd("m-2", "ok", 200, None, None)])
    assert store.query("SELECT outcome FROM mi_journal WHERE msg_id = 'm-2'")[0][0] == "unknown"


def test_heartbeat_renews_every_held_row_in_one_go_and_names_the_lost_ones(store):
    ids = [store.enqueue("test.charge", f"K{i}", PAY) for i in range(3)]
    rows = store.claim("a", 30, limit=2)
    [other] = store.claim("b", 30, limit=1)
    store.execute("UPDATE mi_outbox SET lease_expires_at = created_at")
    held = {rows[0].id: "a", rows[1].id: "a", other.id: "b"}
    # rows[1] was rescued and claimed by someone else meanwhile.
    store.execute("UPDATE mi_outbox SET lease_owner = 'c' WHERE id = :i", {"i": rows[1].id})
    assert store.heartbeat_many(held, 30) == [rows[1].id]
    assert store.recover_expired_leases() == 1                  # only rows[1]: the others were renewed
    assert states(store)[rows[1].id] == "pending" and states(store)[ids[0]] == "running"


def test_unclaim_gives_a_row_back_as_it_was(store):
    a = store.enqueue("test.charge", "A", PAY)
    b = store.enqueue("test.charge", "B", PAY)
    store.execute("UPDATE mi_outbox SET state = 'in_doubt', current_call = 'm0', call_unsafe = 1, attempts = 2 "
                  "WHERE id = :i", {"i": b})
    ra, rb = store.claim("w", 30, limit=2)
    assert store.unclaim(ra, "w") and store.unclaim(rb, "w")
    got = {int(r[0]): (r[1], r[2], int(r[3]), r[4]) for r in
           store.query("SELECT id, state, lease_owner, attempts, current_call FROM mi_outbox")}
    assert got == {a: ("pending", None, 0, None), b: ("in_doubt", None, 2, "m0")}
    assert not store.unclaim(ra, "w")                            # not ours any more: nothing changes


class BlockFlow(Flow):
    """Holds its worker until the test lets it go."""

    kind = "test.block"
    initial = "wait"
    steps = {"wait": Step("wait")}
    gate = threading.Event()
    started = threading.Event()

    def step_wait(self, ctx):
        self.started.set()
        self.gate.wait(30)
        return Finish([InboxRow("block", "ok")])


def test_rows_waiting_for_a_worker_keep_their_lease_and_go_back_at_stop(store, db_url):
    ids = [store.enqueue("test.block", f"B{i}", {}) for i in range(3)]
    cfg = Config()
    cfg.database.url = db_url
    cfg.daemon.workers = 1
    cfg.daemon.claim_batch = 3
    cfg.daemon.lease_seconds = 1.0
    cfg.daemon.poll_interval = 0.05
    cfg.daemon.recovery_interval = 3600
    cfg.daemon.stop_timeout = 10
    reg = Registry()
    flow = BlockFlow()
    flow.gate, flow.started = threading.Event(), threading.Event()
    reg.register(flow)
    reg.register(TestNoopFlow())
    d = Daemon(cfg, reg)
    d.start()
    stopper = None
    try:
        assert flow.started.wait(20)
        # One claim took all three; the one worker runs the first, two wait.
        owners = {r[0] for r in store.query("SELECT lease_owner FROM mi_outbox WHERE state = 'running'")}
        assert len(owners) == 1 and states(store) == {i: "running" for i in ids}
        # Past the first lease (database clock), the waiting rows are still leased:
        # the heartbeat renews them, so the rescuer finds nothing to take.
        first_expiry = store.query("SELECT MAX(lease_expires_at) FROM mi_outbox")[0][0]
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and store.query(
                "SELECT COUNT(*) FROM mi_outbox WHERE lease_expires_at <= :t", {"t": first_expiry})[0][0]:
            time.sleep(0.1)
        expired_now = f"lease_expires_at < {store.dialect.now}"
        assert store.query(f"SELECT COUNT(*) FROM mi_outbox WHERE {expired_now}")[0][0] == 0
        assert store.recover_expired_leases() == 0
        stopper = threading.Thread(target=d.stop)
        stopper.start()
        while not d.stopping.is_set():
            time.sleep(0.01)
        flow.gate.set()
        stopper.join(30)
    finally:
        flow.gate.set()
        if stopper is None:
            d.stop()
    assert states(store) == {ids[0]: "done", ids[1]: "pending", ids[2]: "pending"}
    assert [tuple(r) for r in store.query(
        "SELECT attempts, lease_owner FROM mi_outbox WHERE state = 'pending' ORDER BY id")] == [(0, None), (0, None)]


@pytest.mark.parametrize("dialect", ["postgresql"])
def test_the_claims_generic_plan_reads_only_the_rows_it_claims(store):
    """psycopg prepares a statement it runs often, and PostgreSQL then may use a
    generic plan.  With a bound LIMIT that plan joined the claimed rows by
    scanning all of mi_outbox: a claim that slows down as history grows."""
    with store.conn.cursor() as cur:
        cur.execute("INSERT INTO mi_outbox (kind, business_key, serial_key, payload) "
                    "SELECT 'test.noop', 'K' || g, 'S' || g, '{}' FROM generate_series(1, 3000) g")
        cur.execute("ANALYZE mi_outbox")
        text, _ = store.dialect.convert(store.dialect.claim_statement(10), {"owner": "w", "lease": 30.0})
        cur.execute("SET plan_cache_mode = force_generic_plan")
        cur.execute(f"PREPARE claim_probe(text, float8) AS {text}")
        cur.execute("BEGIN")
        plan = "\n".join(r[0] for r in cur.execute("EXPLAIN EXECUTE claim_probe('w', 30)").fetchall())
        cur.execute("ROLLBACK")
    assert "Seq Scan" not in plan, plan


def test_a_daemon_with_group_writes_runs_calls_and_finishes_exactly_once(store, db_url):
    """[daemon] group_writes on: four workers' journal rows and transitions go
    through the GroupWriter; every row ends done, each charge booked once."""
    from bridge.testflow.client import TestPlatformClient
    from bridge.testflow.flows import TestChargeFlow
    from bridge.testflow.platform import RunningTestPlatform

    platform = RunningTestPlatform()
    charged = [f"C{i}" for i in range(8)]
    ids = [store.enqueue("test.charge", k, PAY) for k in charged]
    ids += [store.enqueue("test.noop", f"N{i}", {}) for i in range(40)]
    cfg = Config()
    cfg.database.url = db_url
    cfg.daemon.workers = 4
    cfg.daemon.claim_batch = 5
    cfg.daemon.group_writes = True
    cfg.daemon.poll_interval = 0.05
    reg = Registry()
    reg.register(TestChargeFlow(settle_seconds=2.0))
    reg.register(TestNoopFlow())
    d = Daemon(cfg, reg, services={"testplatform": TestPlatformClient(platform.url, 2.0)})
    d.start()
    try:
        deadline = time.monotonic() + 60
        while set(states(store).values()) != {"done"} and time.monotonic() < deadline:
            time.sleep(0.05)
        assert d.writer is not None
    finally:
        d.stop()
        platform.stop()
    assert states(store) == {i: "done" for i in ids}
    assert platform.platform.state()["charges"] == {k: 1 for k in charged}
    assert store.query("SELECT COUNT(*) FROM mi_inbox")[0][0] == len(ids)
    assert store.query("SELECT COUNT(*) FROM mi_journal WHERE outcome IS NULL")[0][0] == 0


def test_sqlite_after_a_transaction_sqlite_rolled_back_by_itself_writes_stay_atomic(tmp_path):
    """Review finding: after SQLite rolled a transaction back by itself ("disk full"),
    the connection wrapper believed one was still open and every later 'transaction'
    committed statement by statement (a transition without its inbox rows, a claim
    without its write lock).  SQLite's own in_transaction decides now."""
    import sqlite3

    from bridge.db.rows import ClaimedRow, InboxRow
    from bridge.db.store import LostLease, Store
    from tests.conftest import make_database

    url, _ = make_database("sqlite", tmp_path)
    s = Store(url)
    a = s.enqueue("test.charge", "A", {"patient_id": "P", "total_amount": "1.00"})
    s.enqueue("test.charge", "B", {"patient_id": "P", "total_amount": "1.00"})
    [row_a] = [r for r in s.claim("w", 30, limit=1)]
    # Fill the database so that the next write fails with "database or disk is full",
    # which SQLite answers by rolling the whole transaction back itself.
    pages = s.conn.raw.execute("PRAGMA page_count").fetchone()[0]
    s.conn.raw.execute(f"PRAGMA max_page_count = {pages}")
    try:
        s.finish(row_a, "w", "done", {"x": "y" * 200_000}, [InboxRow(result_type="charge", outcome="ok")])
    except (sqlite3.OperationalError, LostLease):
        pass
    s.conn.raw.execute("PRAGMA max_page_count = 1073741823")
    assert not s.conn.raw.in_transaction
    # A finish whose inbox row the database refuses (outcome CHECK) commits nothing.
    try:
        s.finish(row_a, "w", "done", {}, [InboxRow(result_type="charge", outcome="no-such-outcome")])
    except Exception:
        pass
    state = s.query("SELECT state FROM mi_outbox WHERE id = :i", {"i": a})[0][0]
    assert state == "running", "the transition committed without its inbox row"
    assert s.query("SELECT COUNT(*) FROM mi_inbox WHERE outbox_id = :i", {"i": a})[0][0] == 0
    # And the claim still takes only what it leases.
    assert [r.business_key for r in s.claim("w2", 30, limit=5)] == ["B"]
    s.close()
