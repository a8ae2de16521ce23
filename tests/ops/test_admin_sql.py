"""The admin functions in SQL (migration 005) as a DBA calls them, on every
database, and the DBA views: mi_requeue / mi_resolve / mi_cancel keep every
money rule (a held row with a call in doubt requeues to in_doubt, never to a
resend; resolve and cancel need a note; cancel refuses a row that journalled an
unsafe call, or whose calls predate the flag, or that is running) and are
audited with the database login; the views have the same columns everywhere
and say why a pending row waits."""
from __future__ import annotations

import json

import pytest

from bridge.db.store import AdminRefused, InboxRow, Store

VIEW_COLUMNS = {
    "mi_v_pending": ["id", "kind", "business_key", "serial_key", "state", "step", "attempts", "next_attempt_at",
                     "created_at", "age_seconds", "last_error_code", "last_error_message", "waits_for",
                     "waits_behind_id"],
    "mi_v_in_flight": ["id", "kind", "business_key", "step", "lease_owner", "lease_expires_at", "current_call",
                       "attempts", "updated_at", "age_seconds"],
    "mi_v_held": ["id", "kind", "business_key", "serial_key", "step", "attempts", "reason_code", "reason",
                  "updated_at", "age_seconds", "current_call"],
    "mi_v_failed": ["id", "kind", "business_key", "step", "finished_at", "last_error_code", "last_error_message",
                    "age_seconds"],
    "mi_v_today": ["kind", "state", "requests", "total_amount"],
}


@pytest.fixture
def store(db_url):
    s = Store(db_url)
    yield s
    s.close()


def dba_call(store: Store, action: str, row_id, note, actor=None) -> None:
    """As a DBA types it in the dialect's own client."""
    name = store.dialect.name

    def go(cur):
        if name == "postgresql":
            if actor is None:
                # The Store's PostgreSQL cursors send the text as it is: $n parameters.
                cur.execute(f"SELECT mi_{action}($1, $2)", (row_id, note))
            else:
                cur.execute(f"SELECT mi_{action}($1, $2, $3)", (row_id, note, actor))
        elif name == "mysql":
            if actor is not None:
                cur.execute("SET @mibridge_actor = %s", (actor,))
            cur.execute(f"CALL mi_{action}(%s, %s)", (row_id, note))
        elif name == "oracle":
            cur.callproc(f"mi_{action}", [row_id, note] + ([] if actor is None else [actor]))
        elif name == "sqlserver":
            cur.execute(f"EXEC mi_{action} @p_id = ?, @p_note = ?" + ("" if actor is None else ", @p_actor = ?"),
                        (row_id, note) if actor is None else (row_id, note, actor))
        else:
            cur.execute(f"INSERT INTO mi_{action} (id, note, actor) VALUES (?, ?, ?)", (row_id, note, actor))
    store._tx(go)


def login_of(store: Store) -> str:
    return {"postgresql": lambda: store.query("SELECT session_user")[0][0],
            "mysql": lambda: store.query("SELECT SESSION_USER()")[0][0],
            "sqlite": lambda: "sqlite"}[store.dialect.name]()


def held_row(store: Store, key: str, *, unsafe_call: bool, flag=True) -> int:
    oid = store.enqueue("test.charge", key, {"patient_id": "P", "total_amount": "1.00"})
    [row] = [r for r in store.claim("w", 30, limit=10) if r.id == oid]
    if unsafe_call:
        store.begin_call(oid, "w", "charge", f"M-{key}", "charge", "{}", unsafe=True)
        if not flag:        # journalled before migration 005: safety unknown
            store.execute("UPDATE mi_journal SET unsafe = NULL WHERE msg_id = :m", {"m": f"M-{key}"})
    store.release(row, "w", "held", 0, {}, error_code="X", error_message="stuck", keep_call=unsafe_call)
    return oid


def state(store: Store, oid: int) -> str:
    return store.query("SELECT state FROM mi_outbox WHERE id = :i", {"i": oid})[0][0]


def test_requeue_keeps_the_money_rule_and_audits_the_login(store):
    doubt = held_row(store, "A", unsafe_call=True)
    plain = held_row(store, "B", unsafe_call=False)
    dba_call(store, "requeue", doubt, "checked the platform")
    dba_call(store, "requeue", plain, "gateway fixed", actor="alice")
    assert state(store, doubt) == "in_doubt"            # query first, never a resend
    assert state(store, plain) == "pending"
    audit = [tuple(r) for r in store.query("SELECT outbox_id, action, actor, note, db_login FROM mi_audit ORDER BY id")]
    login = login_of(store)
    db_login = None if store.dialect.name == "sqlite" else login
    assert audit == [(doubt, "requeue", login, "checked the platform", db_login),
                     (plain, "requeue", "alice", "gateway fixed", db_login)]
    with pytest.raises(Exception) as ei:
        dba_call(store, "requeue", plain, "again")
    assert "only a held row can be requeued" in str(ei.value)


def test_every_action_needs_a_note_and_a_row_that_exists(store):
    oid = held_row(store, "A", unsafe_call=False)
    for action in ("requeue", "resolve", "cancel"):
        for note in (None, "", "   "):
            with pytest.raises(Exception) as ei:
                dba_call(store, action, oid, note)
            assert "mibridge: a note is required" in str(ei.value), (action, note)
        with pytest.raises(Exception) as ei:
            dba_call(store, action, 999999, "a note")
        assert "does not exist" in str(ei.value)
    assert state(store, oid) == "held" and store.query("SELECT COUNT(*) FROM mi_audit")[0][0] == 0


def test_resolve_closes_a_held_row_tells_the_his_and_drops_its_secrets(store):
    oid = held_row(store, "A", unsafe_call=True)
    store.execute("INSERT INTO mi_secret (outbox_id, name, value) VALUES (:o, 'payToken', 'T')", {"o": oid})
    dba_call(store, "resolve", oid, "checked: never charged; told the cashier", actor="bob")
    assert state(store, oid) == "resolved"
    row = store.query("SELECT result_type, outcome, error_code, error_message, result_json FROM mi_inbox "
                      "WHERE outbox_id = :o", {"o": oid})[0]
    assert tuple(row[:4]) == ("manual", "resolved", "RESOLVED_BY_HAND", "checked: never charged; told the cashier")
    assert json.loads(row[4]) == {"note": "checked: never charged; told the cashier", "resolved_by": "bob"}
    assert store.query("SELECT COUNT(*) FROM mi_secret WHERE outbox_id = :o", {"o": oid})[0][0] == 0
    assert store.query("SELECT current_call FROM mi_outbox WHERE id = :o", {"o": oid})[0][0] is None
    with pytest.raises(Exception) as ei:
        dba_call(store, "resolve", oid, "twice")
    assert "only a held row can be resolved" in str(ei.value)


def test_cancel_ends_a_row_that_made_no_unsafe_call(store):
    held_safe = store.enqueue("test.charge", "H1", {"patient_id": "P", "total_amount": "1.00"})
    [row] = store.claim("w", 30, limit=10)
    store.begin_call(held_safe, "w", "charge", "M-SAFE", "query", "{}", unsafe=False)   # a safe call only
    store.release(row, "w", "held", 0, {}, error_code="X", error_message="stuck", keep_call=False)
    pending = store.enqueue("test.charge", "P1", {"patient_id": "P", "total_amount": "1.00"})
    dba_call(store, "cancel", pending, "the patient left", actor="carol")
    dba_call(store, "cancel", held_safe, "duplicate of H2")
    for oid, note in ((pending, "the patient left"), (held_safe, "duplicate of H2")):
        assert state(store, oid) == "failed"
        r = store.query("SELECT result_type, outcome, error_code, error_message FROM mi_inbox "
                        "WHERE outbox_id = :o AND result_type = 'cancelled'", {"o": oid})
        assert [tuple(x) for x in r] == [("cancelled", "failed", "CANCELLED_BY_HAND", note)]
        assert store.query("SELECT last_error_code FROM mi_outbox WHERE id = :o", {"o": oid})[0][0] == \
            "CANCELLED_BY_HAND"
    assert [tuple(r) for r in store.query("SELECT action, actor FROM mi_audit ORDER BY id")][0] == ("cancel", "carol")


def test_cancel_refuses_a_row_that_may_have_moved_money_or_is_running(store):
    unsafe = held_row(store, "U", unsafe_call=True)
    unknown = held_row(store, "K", unsafe_call=True, flag=False)       # journalled before the flag
    for oid in (unsafe, unknown):
        with pytest.raises(Exception) as ei:
            dba_call(store, "cancel", oid, "try")
        assert "may have moved money" in str(ei.value)
        if store.dialect.name != "sqlite":
            assert "(charge)" in str(ei.value)                  # the interface is named
        assert state(store, oid) == "held"
    running = store.enqueue("test.charge", "R", {"patient_id": "P", "total_amount": "1.00"})
    store.claim("w", 30, limit=10)
    with pytest.raises(Exception) as ei:
        dba_call(store, "cancel", running, "try")
    assert "is running" in str(ei.value) and state(store, running) == "running"
    done = store.enqueue("test.charge", "D", {"patient_id": "P", "total_amount": "1.00"})
    [row] = [r for r in store.claim("w2", 30, limit=10) if r.id == done]
    store.finish(row, "w2", "done", {}, [InboxRow("charge", "ok")])
    with pytest.raises(Exception) as ei:
        dba_call(store, "cancel", done, "try")
    assert "only a pending or held row can be cancelled" in str(ei.value)
    assert store.query("SELECT COUNT(*) FROM mi_audit")[0][0] == 0


def test_the_store_runs_the_same_functions_and_says_why_in_words(store):
    oid = held_row(store, "A", unsafe_call=True)
    assert store.requeue(oid, "dba@cli", "checked") == "in_doubt"
    with pytest.raises(AdminRefused) as ei:
        store.resolve(oid, "dba@cli", "checked")
    assert "only a held row can be resolved" in str(ei.value) and "mibridge:" not in str(ei.value)
    assert "\n" not in str(ei.value) and not str(ei.value).endswith(("')", '")'))
    with pytest.raises(AdminRefused) as ei:
        store.cancel(123456, "dba@cli", "x")
    assert "does not exist" in str(ei.value)


def test_mariadb_clears_the_actor_after_each_call(store):
    if store.dialect.name != "mysql":
        pytest.skip("@mibridge_actor is MariaDB's way to pass who asked")
    a, b = held_row(store, "A", unsafe_call=False), held_row(store, "B", unsafe_call=False)

    def go(cur):
        cur.execute("SET @mibridge_actor = 'alice'")
        cur.execute("CALL mi_requeue(%s, 'one')", (a,))
        cur.execute("CALL mi_requeue(%s, 'two')", (b,))     # same session, no actor given
    store._tx(go)
    actors = [r[0] for r in store.query("SELECT actor FROM mi_audit ORDER BY id")]
    assert actors == ["alice", login_of(store)]


def test_the_views_have_the_same_columns_on_every_database(store):
    for view, cols in VIEW_COLUMNS.items():
        def go(cur, view=view):
            cur.execute(f"SELECT * FROM {view} WHERE 1 = 0")
            return [d[0].lower() for d in cur.description]
        assert store._tx(go) == cols, view


def test_mi_v_pending_says_why_a_row_waits_and_shows_no_stale_error(store):
    d = store.dialect
    first = store.enqueue("test.charge", "F1", {"patient_id": "P", "total_amount": "1.00"}, serial_key="VISIT-1")
    behind = store.enqueue("test.charge", "F2", {"patient_id": "P", "total_amount": "1.00"}, serial_key="VISIT-1")
    his = store.enqueue("test.charge", "W-HIS", {"patient_id": "P", "total_amount": "1.00"})
    patient = store.enqueue("test.charge", "W-PAT", {"patient_id": "P", "total_amount": "1.00"})
    backoff = store.enqueue("test.charge", "W-BACK", {"patient_id": "P", "total_amount": "1.00"})
    due = store.enqueue("test.charge", "W-DUE", {"patient_id": "P", "total_amount": "1.00"})
    rows = {r.id: r for r in store.claim("w", 30, limit=20)}
    assert behind not in rows                           # it waits behind F1
    # F1 is held: F2 waits behind it.
    store.release(rows[first], "w", "held", 0, {}, error_code="X", error_message="stuck", keep_call=False)
    # An earlier step retried with an error, then the flow moved on to wait for the HIS:
    # that error is stale and must not show.
    store.release(rows[his], "w", "pending", 0, {}, error_code="OLD", error_message="an earlier step's error",
                  keep_call=False)
    [row] = [r for r in store.claim("w", 30, limit=20) if r.id == his]
    store.advance(row, "w", "await_his_take", {}, release_after=60)
    [r] = [x for x in rows.values() if x.id == patient]
    store.advance(r, "w", "await_payment", {}, release_after=60)
    store.release(rows[backoff], "w", "pending", 60, {}, error_code="BUSY", error_message="platform busy",
                  keep_call=False)
    store.release(rows[due], "w", "pending", 0, {}, error_code=None, error_message=None, keep_call=False)
    store.execute(f"UPDATE mi_outbox SET attempts = 0, next_attempt_at = {d.after('back')} WHERE id = :i",
                  {"i": due, "back": d.seconds(-5)})
    got = {int(r[0]): (r[1], None if r[2] is None else int(r[2]), r[3]) for r in store.query(
        "SELECT id, waits_for, waits_behind_id, last_error_code FROM mi_v_pending")}
    assert got[behind] == ("serial_key", first, None)
    assert got[his] == ("his", None, None)             # the stale OLD is not shown
    assert got[patient] == ("patient", None, None)
    assert got[backoff] == ("backoff", None, "BUSY")
    assert got[due] == ("worker", None, None)
    assert first not in got                            # held: mi_v_held
    held = store.query("SELECT id, reason_code, age_seconds FROM mi_v_held")
    assert [(int(h[0]), h[1]) for h in held] == [(first, "X")] and int(held[0][2]) >= 0


def test_mi_v_today_is_ordered(store):
    for kind, key in (("test.noop", "Z"), ("test.charge", "B"), ("test.charge", "A"), ("mobilepay.refund", "C")):
        store.enqueue(kind, key, {"total_amount": "1.00"})
    [row] = [r for r in store.claim("w", 30, limit=10) if r.business_key == "A"]
    store.finish(row, "w", "done", {}, [InboxRow("charge", "ok")])
    got = [(r[0], r[1]) for r in store.query("SELECT kind, state FROM mi_v_today")]
    assert got == sorted(got) and len(got) >= 3
