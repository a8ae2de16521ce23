"""Writes of several claimed rows sent together (group commit), on each real
database: each write keeps its own guard, one bad write fails only itself,
and writes that wait while another is on the wire go out together."""
from __future__ import annotations

import threading
import time

import pytest

from bridge.db.dialects import get_dialect
from bridge.db.dialects.base import CallEnd
from bridge.db.groupwrite import GroupWriter
from bridge.db.store import InboxRow, LostLease, Store
from bridge.db.url import parse_url

from .helpers import states
from .stmtcount import counting

PAY = {"patient_id": "P", "total_amount": "1.00"}


@pytest.fixture
def store(db_url):
    s = Store(db_url)
    yield s
    s.close()


class _Capture:
    """Stands in for a GroupWriter to take the GuardedWrite a Store method builds."""

    def __init__(self):
        self.writes = []

    def write(self, w, store):
        self.writes.append(w)
        return True


def captured(store: Store, fn) -> object:
    cap = _Capture()
    store.writer = cap
    try:
        fn()
    finally:
        store.writer = None
    [w] = cap.writes
    return w


def three_claimed(store):
    ids = [store.enqueue("test.charge", k, PAY) for k in ("A", "B", "C")]
    rows = store.claim("w", 30, limit=3)
    assert [r.id for r in rows] == ids
    return ids, rows


# Round trips for one group of three finishes (SQLite: BEGIN IMMEDIATE, 3 x (UPDATE +
# INSERT), COMMIT, less the INSERT of a write whose guard fails).
ONE_GROUP = {"postgresql": 1, "mysql": 1, "sqlite": 8}


def test_each_write_in_a_group_keeps_its_own_guard(store, dialect):
    ids, rows = three_claimed(store)
    store.begin_call(ids[1], "w", "charge", "m-b", "charge", "{}", unsafe=True)
    store.execute("UPDATE mi_outbox SET lease_owner = 'rescued' WHERE id = :i", {"i": ids[1]})
    answer = CallEnd("m-b", "ok", 200, None, None)
    writes = [captured(store, lambda r=r: store.finish(r, "w", "done", {}, [InboxRow("charge", "ok", order_id=r.business_key)],
                                                       ended=[answer] if r.id == ids[1] else []))
              for r in rows]
    counter = counting(store)
    assert store.write_many(writes) == [True, False, True]
    assert counter.round_trips == ONE_GROUP[dialect], counter.log
    assert states(store) == {ids[0]: "done", ids[1]: "running", ids[2]: "done"}
    assert sorted(r[0] for r in store.query("SELECT order_id FROM mi_inbox")) == ["A", "C"]
    # The lost row's call answer is kept all the same.
    assert store.query("SELECT outcome FROM mi_journal WHERE msg_id = 'm-b'")[0][0] == "ok"


def test_one_bad_write_fails_only_itself(store):
    ids, rows = three_claimed(store)
    writes = [captured(store, lambda r=r: store.finish(r, "w", "done", {}, [
        InboxRow("charge", "bogus" if r.id == ids[1] else "ok")])) for r in rows]
    out = store.write_many(writes)
    assert out[0] is True and out[2] is True and isinstance(out[1], Exception)
    assert states(store) == {ids[0]: "done", ids[1]: "running", ids[2]: "done"}
    assert store.query("SELECT COUNT(*) FROM mi_inbox")[0][0] == 2


def test_a_group_with_a_failing_after_step_commits_none_of_it_before_each_is_written_alone(store):
    """Review finding: writes carrying `after` steps (secrets, the order book) went out
    one transaction each; when a later one failed, the Store wrote the whole group again
    alone, and the first, already committed, came back as a lost lease."""
    ids, rows = three_claimed(store)
    writes = [captured(store, lambda r=r: store.finish(r, "w", "done", {}, [InboxRow("charge", "ok")],
                                                       secrets={"t": "v"})) for r in rows[:2]]
    writes[1].after.append(("INSERT INTO mi_no_such_table (x) VALUES (:x)", {"x": 1}))
    out = store.write_many(writes)
    assert out[0] is True and isinstance(out[1], Exception), out
    assert states(store)[ids[0]] == "done" and states(store)[ids[1]] == "running"


def _blocker(dialect: str, db_url: str, row_id: int):
    """Another session that holds what the first write needs (a row lock;
    SQLite: the write lock) until release() is called."""
    u = parse_url(db_url)
    if dialect == "sqlite":
        import sqlite3
        c = sqlite3.connect(u.database, isolation_level=None)
        c.execute("BEGIN IMMEDIATE")
        return c.commit, c.close
    c = get_dialect(dialect).connect(u)
    cur = c.cursor()
    cur.execute("SELECT id FROM mi_outbox WHERE id = %s FOR UPDATE", (row_id,))
    return c.commit, c.close


def test_writes_waiting_behind_one_on_the_wire_go_out_together(store, db_url, dialect):
    ids = [store.enqueue("test.charge", f"K{i}", PAY) for i in range(5)]
    rows = store.claim("w", 30, limit=5)
    writes = [captured(store, lambda r=r: store.finish(r, "w", "done", {}, [InboxRow("charge", "ok")])) for r in rows]
    stores = [Store(db_url) for _ in range(5)]
    counters = [counting(s) for s in stores]
    writer = GroupWriter()
    release, close = _blocker(dialect, db_url, ids[0])
    results: dict = {}

    def submit(j):
        results[j] = writer.write(writes[j], stores[j])

    try:
        first = threading.Thread(target=submit, args=(0,))
        first.start()
        deadline = time.monotonic() + 20
        while not writer.busy and time.monotonic() < deadline:      # the first is on the wire, blocked
            time.sleep(0.01)
        rest = [threading.Thread(target=submit, args=(j,)) for j in range(1, 5)]
        for t in rest:
            t.start()
        while writer.waiting < 4 and time.monotonic() < deadline:  # the other four wait for it
            time.sleep(0.01)
        assert writer.waiting == 4
        release()
        for t in [first] + rest:
            t.join(30)
    finally:
        close()
        for s in stores:
            s.close()
    assert results == {j: True for j in range(5)}
    assert states(store) == {i: "done" for i in ids}
    # Two groups: the first write alone, then the four that waited, together,
    # sent by one of them (the one made leader) on its own connection.
    groups = [[line for line in c.log if line.startswith(("WITH", "START", "BEGIN"))] for c in counters]
    assert len(groups[0]) == 1 and sorted(len(g) for g in groups[1:]) == [0, 0, 0, 1], [c.log for c in counters]


def test_a_lost_lease_in_a_group_raises_for_its_writer_only(store, db_url):
    ids, rows = three_claimed(store)
    store.execute("UPDATE mi_outbox SET lease_owner = 'rescued' WHERE id = :i", {"i": ids[2]})
    store.writer = GroupWriter()
    try:
        store.finish(rows[0], "w", "done", {}, [InboxRow("charge", "ok")])
        with pytest.raises(LostLease):
            store.finish(rows[2], "w", "done", {}, [InboxRow("charge", "ok")])
    finally:
        store.writer = None
    assert states(store) == {ids[0]: "done", ids[1]: "running", ids[2]: "running"}
