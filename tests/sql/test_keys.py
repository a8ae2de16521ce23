"""Keys compare byte for byte on every database (issue 10, items 4 and 4b):
keys that differ only in case, in full/half width or in a trailing blank are
never the same request, the same serial, the same patient or the same notice.
(MariaDB's default collation merged them: a second refund was silently taken
for the first.)"""
from __future__ import annotations

import pytest

from bridge.db.store import IdentityRow, Store
from tests.his_sql import his_enqueue

PAYLOAD = '{"patient_id": "P1", "total_amount": "%s"}'


@pytest.fixture
def store(db_url):
    s = Store(db_url)
    yield s
    s.close()


@pytest.mark.parametrize("a, b", [("CASE-KEY-1", "case-key-1"), ("RF-1", "ＲＦ-1"), ("RF-1", "RF－1"),
                                  ("退费-A", "退费-a"), ("k", "K")])
def test_keys_that_differ_in_case_or_width_are_two_requests(store, a, b):
    first = his_enqueue(store, "mobilepay.refund", a, "PAY-1", PAYLOAD % "10.00")
    second = his_enqueue(store, "mobilepay.refund", b, "PAY-1", PAYLOAD % "20.00")
    assert first != second and second is not None
    rows = store.query("SELECT business_key, payload FROM mi_outbox ORDER BY id")
    assert [tuple(r) for r in rows] == [(a, PAYLOAD % "10.00"), (b, PAYLOAD % "20.00")]
    # Each is found by its own key, and only by it.
    assert store.find_request(["mobilepay.refund"], a)["id"] == first
    assert store.find_request(["mobilepay.refund"], b)["id"] == second


def test_a_key_with_a_trailing_blank_is_refused_not_merged(store):
    first = his_enqueue(store, "mobilepay.refund", "k", "PAY-1", PAYLOAD % "10.00")
    with pytest.raises(Exception) as ei:
        his_enqueue(store, "mobilepay.refund", "k ", "PAY-1", PAYLOAD % "10.00")
    assert "mibridge: business_key must not start or end with a blank" in str(ei.value)
    assert [tuple(r) for r in store.query("SELECT id, business_key FROM mi_outbox")] == [(first, "k")]


def test_kinds_compare_exactly(store):
    first = his_enqueue(store, "test.charge", "K-1", "V-1", PAYLOAD % "1.00")
    # Another kind (unknown to the daemon, which holds it): a request of its own,
    # not a repeat of the first with a different payload.
    second = his_enqueue(store, "TEST.CHARGE", "K-1", "V-1", PAYLOAD % "2.00")
    assert second not in (None, first)
    assert store.query("SELECT COUNT(*) FROM mi_outbox")[0][0] == 2


def test_serial_keys_that_differ_in_case_are_two_sequences(store):
    a = his_enqueue(store, "test.charge", "K-1", "VISIT-1", PAYLOAD % "1.00")
    b = his_enqueue(store, "test.charge", "K-2", "visit-1", PAYLOAD % "1.00")
    # Not one sequence: both are claimed at once (one would wait behind the other).
    assert sorted(r.id for r in store.claim("w", 30, limit=5)) == sorted([a, b])
    assert store.count_requests("test.charge", "VISIT-1", ["running"]) == 1


def test_identities_of_patients_whose_ids_differ_in_case_stay_apart(store):
    """An mi_identity key that matched another patient's overwrote their psn_no."""
    oid = store.enqueue("test.charge", "K-1", {"patient_id": "p001", "total_amount": "1.00"})
    [row] = store.claim("w", 30)
    store.finish(row, "w", "done", {}, [], identities=[IdentityRow("p001", "PSN-LOWER"),
                                                        IdentityRow("P001", "PSN-UPPER")])
    got = {r[0]: r[1] for r in store.query("SELECT his_patient_id, psn_no FROM mi_identity")}
    assert got == {"p001": "PSN-LOWER", "P001": "PSN-UPPER"} and oid == row.id


def test_notice_keys_compare_exactly(store):
    assert store.record_notice("6302", "PO-ab", "ORD-1", None, {"n": 1}) is True
    assert store.record_notice("6302", "PO-AB", "ORD-1", None, {"n": 2}) is True
    assert store.record_notice("6302", "PO-ab", "ORD-1", None, {"n": 1}) is False
    assert store.notice("6302", "PO-AB") == {"n": 2}
