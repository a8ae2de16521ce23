"""One table of inputs, the same answer on every database and in the daemon
(issue 10, item 11): what mi_enqueue (SQLite: the INSERT) and mi_inbox_consume
(SQLite: the INSERT into mi_inbox_consume) accept or refuse, and what the
daemon's own parse (bridge/engine/flow.py) makes of the same payload.

Refused means: a 'mibridge: ...' message, nothing inserted or consumed."""
from __future__ import annotations

import json

import pytest

from bridge.db.scripts import run_script, sql_dir
from bridge.db.store import Store
from bridge.engine.flow import BadInput, parse_json_object
from bridge.testflow.flows import TestChargeFlow as ChargeFlow
from tests.his_sql import his_consume, his_enqueue

OK = "ok"
P = '"patient_id": "P1"'
# (name, kind, business key, serial key, payload, answer): answer is OK or a
# part of the 'mibridge: ...' message every database gives.
ENQUEUE = [
    ("plain", "test.charge", "K-1", "V-1", '{%s, "total_amount": "12.50"}' % P, OK),
    ("amount as a number", "test.charge", "K-1", "V-1", '{%s, "total_amount": 12.50}' % P, OK),
    ("amount as a whole number", "test.charge", "K-1", "V-1", '{%s, "total_amount": 7}' % P, OK),
    ("duplicate key", "test.charge", "K-1", "V-1",
     '{%s, "total_amount": "1.00", "total_amount": "900.00"}' % P, "twice in one object"),
    ("duplicate key, nested", "test.charge", "K-1", "V-1",
     '{%s, "total_amount": "1.00", "x": [{"a": 1, "a": 2}]}' % P, "twice in one object"),
    ("duplicate key, escaped", "test.charge", "K-1", "V-1",
     '{%s, "total_amount": "1.00", "a": 1, "\\u0061": 2}' % P, "twice in one object"),
    ("1e3", "test.charge", "K-1", "V-1", '{%s, "total_amount": 1e3}' % P, "total_amount must be"),
    ("-0", "test.charge", "K-1", "V-1", '{%s, "total_amount": -0}' % P, "total_amount must be"),
    ("NaN", "test.charge", "K-1", "V-1", '{%s, "total_amount": NaN}' % P, "not valid JSON"),
    ("12.999999999999999", "test.charge", "K-1", "V-1", '{%s, "total_amount": 12.999999999999999}' % P,
     "total_amount must be"),
    ("'1e3' as text", "test.charge", "K-1", "V-1", '{%s, "total_amount": "1e3"}' % P, "total_amount must be"),
    ("amount with a newline", "test.charge", "K-1", "V-1", '{%s, "total_amount": "1.00\\n"}' % P,
     "total_amount must be"),
    ("lone surrogate", "test.charge", "K-1", "V-1", '{"patient_id": "P\\ud800", "total_amount": "1.00"}',
     "not valid JSON"),
    ("lone low surrogate", "test.charge", "K-1", "V-1", '{"patient_id": "P\\udc00", "total_amount": "1.00"}',
     "not valid JSON"),
    ("surrogate pair", "test.charge", "K-1", "V-1", '{"patient_id": "P\\ud83d\\ude00", "total_amount": "1.00"}', OK),
    ("escaped backslash, not a surrogate", "test.charge", "K-1", "V-1",
     '{"patient_id": "P\\\\ud800", "total_amount": "1.00"}', OK),
    ("key of 64 characters", "test.charge", "K" * 64, "V-1", '{%s, "total_amount": "1.00"}' % P, OK),
    ("key of 64 Chinese characters", "test.charge", "发" * 64, "V-1", '{%s, "total_amount": "1.00"}' % P, OK),
    ("key of 65 characters", "test.charge", "K" * 65, "V-1", '{%s, "total_amount": "1.00"}' % P,
     "business_key is longer than 64 characters"),
    ("key of 65 Chinese characters", "test.charge", "发" * 65, "V-1", '{%s, "total_amount": "1.00"}' % P,
     "business_key is longer than 64 characters"),
    ("serial key of 65 characters", "test.charge", "K-1", "V" * 65, '{%s, "total_amount": "1.00"}' % P,
     "serial_key is longer than 64 characters"),
    ("kind of 41 characters", "t" * 41, "K-1", "V-1", '{%s, "total_amount": "1.00"}' % P,
     "kind is longer than 40 characters"),
    ("key with a trailing blank", "test.charge", "K-1 ", "V-1", '{%s, "total_amount": "1.00"}' % P,
     "business_key must not start or end with a blank"),
    ("key with a leading tab", "test.charge", "\tK-1", "V-1", '{%s, "total_amount": "1.00"}' % P,
     "business_key must not start or end with a blank"),
    ("serial key with a trailing blank", "test.charge", "K-1", "V-1 ", '{%s, "total_amount": "1.00"}' % P,
     "serial_key must not start or end with a blank"),
    ("kind with a trailing blank", "test.charge ", "K-1", "V-1", '{%s, "total_amount": "1.00"}' % P,
     "kind must not start or end with a blank"),
]


@pytest.fixture
def store(db_url):
    s = Store(db_url)
    yield s
    s.close()


def _answer(fn) -> str:
    try:
        fn()
    except Exception as exc:
        text = str(exc)
        assert "mibridge: " in text, f"not a mibridge message: {text}"
        return text
    return OK


@pytest.mark.parametrize("name, kind, key, serial, payload, answer", ENQUEUE, ids=[r[0] for r in ENQUEUE])
def test_enqueue_gives_the_same_answer_on_every_database(store, name, kind, key, serial, payload, answer):
    got = _answer(lambda: his_enqueue(store, kind, key, serial, payload))
    rows = store.query("SELECT kind, business_key, serial_key, payload FROM mi_outbox")
    if answer == OK:
        assert got == OK
        assert [tuple(r) for r in rows] == [(kind, key, serial, payload)]
    else:
        assert answer in got, got
        assert list(rows) == []


@pytest.mark.parametrize("name, kind, key, serial, payload, answer",
                         [r for r in ENQUEUE if r[1:4] == ("test.charge", "K-1", "V-1")],
                         ids=[r[0] for r in ENQUEUE if r[1:4] == ("test.charge", "K-1", "V-1")])
def test_the_daemon_reads_each_payload_as_the_databases_do(name, kind, key, serial, payload, answer):
    """The daemon refuses (BAD_INPUT, nothing sent, never retried) exactly the
    payloads the databases refuse, and reads the others' amounts as written."""
    try:
        req = ChargeFlow().parse(parse_json_object(payload))
    except BadInput as exc:
        assert exc.code == "BAD_INPUT"
        assert answer != OK, f"the databases accept it, the daemon refuses it: {exc}"
        return
    assert answer == OK, "the databases refuse it, the daemon would run it"
    assert str(req.total_amount) == {"12.50": "12.50", "7": "7.00"}.get(
        str(json.loads(payload)["total_amount"]), str(req.total_amount))


def test_the_same_payload_with_its_fields_in_another_order_is_the_same_request(store):
    first = his_enqueue(store, "test.charge", "K-1", "V-1",
                        '{"patient_id": "P1", "total_amount": "12.50", "lines": [{"a": 1, "b": "x"}]}')
    again = _answer(lambda: his_enqueue(store, "test.charge", "K-1", "V-1",
                                        '{"lines": [{"b": "x", "a": 1}], "total_amount": "12.50", "patient_id": "P1"}'))
    assert again == OK
    assert store.query("SELECT COUNT(*) FROM mi_outbox")[0][0] == 1
    if store.dialect.name != "sqlite":    # SQLite ignores the repeat instead of returning the id
        assert his_enqueue(store, "test.charge", "K-1", "V-1",
                           '{"total_amount": "12.50", "patient_id": "P1", "lines": [{"b": "x", "a": 1}]}') == first
    # Elements of an array keep their order: that is another payload.
    other = _answer(lambda: his_enqueue(store, "test.charge", "K-1", "V-1",
                                        '{"patient_id": "P1", "total_amount": "12.50", "lines": [{"a": 2, "b": "x"}]}'))
    assert "already exists with a different payload" in other
    assert store.query("SELECT COUNT(*) FROM mi_outbox")[0][0] == 1


def _inbox_row(store: Store) -> int:
    oid = store.enqueue("test.charge", "K-9", {"patient_id": "P1", "total_amount": "1.00"})
    store.execute("""INSERT INTO mi_inbox (outbox_id, kind, business_key, result_type, outcome)
                     VALUES (:o, 'test.charge', 'K-9', 'settlement', 'ok')""", {"o": oid})
    return int(store.query("SELECT id FROM mi_inbox WHERE outbox_id = :o", {"o": oid})[0][0])


@pytest.mark.parametrize("verdict", [None, "acepted", "Accepted", "accepted ", "", "yes"])
def test_a_null_or_misspelt_verdict_is_refused_in_words_and_consumes_nothing(store, verdict):
    inbox_id = _inbox_row(store)
    got = _answer(lambda: his_consume(store, inbox_id, verdict))
    assert "the verdict must be 'accepted' or 'rejected'" in got, got
    row = store.query("SELECT consumed_at, his_ack FROM mi_inbox WHERE id = :i", {"i": inbox_id})[0]
    assert tuple(row) == (None, None)
    # And it is still there to be taken properly.
    his_consume(store, inbox_id, "rejected")
    assert store.query("SELECT his_ack FROM mi_inbox WHERE id = :i", {"i": inbox_id})[0][0] == "rejected"


def test_consuming_an_id_that_does_not_exist_or_twice_is_refused(store):
    inbox_id = _inbox_row(store)
    assert "inbox row" in (got := _answer(lambda: his_consume(store, inbox_id + 1000, "accepted"))) \
        and "does not exist" in got
    his_consume(store, inbox_id, "accepted")
    got = _answer(lambda: his_consume(store, inbox_id, "accepted"))
    assert "already consumed" in got
    assert store.query("SELECT his_ack FROM mi_inbox WHERE id = :i", {"i": inbox_id})[0][0] == "accepted"


def test_sqlite_a_plain_update_with_a_bad_verdict_is_refused_in_words(tmp_path):
    """An HIS wired before the consume view, still marking rows with UPDATE:
    the CHECK error becomes a mibridge message, and NULL is no longer taken."""
    from tests.conftest import make_database
    url, _ = make_database("sqlite", tmp_path)
    s = Store(url)
    inbox_id = _inbox_row(s)
    for verdict in ("acepted", None):
        got = _answer(lambda: s.execute(
            "UPDATE mi_inbox SET consumed_at = CURRENT_TIMESTAMP, his_ack = :a WHERE id = :i",
            {"a": verdict, "i": inbox_id}))
        assert "the verdict must be" in got
    assert s.query("SELECT consumed_at FROM mi_inbox WHERE id = :i", {"i": inbox_id})[0][0] is None
    s.close()


def test_a_row_with_a_lone_surrogate_from_before_the_upgrade_fails_bad_input_and_is_not_retried(tmp_path):
    """SQLite's old schema (001) took a lone surrogate; the daemon then retried
    such a row until it was held. Now it fails at once: BAD_INPUT, an inbox row
    for the HIS, no call made."""
    from bridge.db.dialects import get_dialect
    from bridge.db.url import parse_url
    from tests.engine.helpers import drain, runner

    url = f"sqlite:///{tmp_path / 'old.db'}"
    conn = get_dialect("sqlite").connect(parse_url(url))
    run_script(conn, "sqlite", sql_dir() / "sqlite" / "migrations" / "001_baseline.sql")
    conn.close()
    s = Store(url)
    oid = s.enqueue("test.charge", "K-1", '{"patient_id": "P\\ud800", "total_amount": "1.00"}')
    drain(s, runner(s, "http://127.0.0.1:9"))     # no platform: a call would fail and be retried
    state, attempts, code = s.query("SELECT state, attempts, last_error_code FROM mi_outbox WHERE id = :i",
                                    {"i": oid})[0]
    assert (state, attempts, code) == ("failed", 1, "BAD_INPUT")
    assert s.query("SELECT COUNT(*) FROM mi_journal")[0][0] == 0
    [(outcome, ecode, emsg)] = s.query("SELECT outcome, error_code, error_message FROM mi_inbox WHERE outbox_id = :o",
                                       {"o": oid})
    assert (outcome, ecode) == ("failed", "BAD_INPUT") and "surrogate" in emsg
    s.close()
