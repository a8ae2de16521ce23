"""The example HIS triggers (sql/<dialect>/examples/his_charge_trigger.sql) on
each real database: a charge row becomes exactly one outbox request, and a
charge mibridge refuses is refused to the HIS with it."""
from __future__ import annotations

import json

import pytest

from bridge.db.dialects import get_dialect
from bridge.db.scripts import run_script, script_path
from bridge.db.store import Store
from bridge.db.url import parse_url


@pytest.fixture
def store(db_url):
    u = parse_url(db_url)
    conn = get_dialect(u.dialect).connect(u)
    run_script(conn, u.dialect, script_path(u.dialect, "examples/his_charge_trigger.sql"))
    conn.close()
    s = Store(db_url)
    yield s
    s.close()


def insert_charge(store: Store, charge_no, visit_no, patient_id, amount, pay_auth_no=None):
    store.execute("""INSERT INTO his_charge (charge_no, visit_no, patient_id, amount, pay_auth_no)
                     VALUES (:c, :v, :p, :a, :auth)""",
                  dict(c=charge_no, v=visit_no, p=patient_id, a=amount, auth=pay_auth_no))


def test_a_charge_row_becomes_one_outbox_request(store):
    insert_charge(store, "CH-001", "V-9", "P-1", "12.50", "AUTH-7")
    insert_charge(store, "CH-002", "V-9", "P-1", "3.05")
    rows = store.query("""SELECT kind, business_key, serial_key, state, payload
                            FROM mi_outbox ORDER BY id""")
    assert [tuple(r[:4]) for r in rows] == [("test.charge", "CH-001", "V-9", "pending"),
                                           ("test.charge", "CH-002", "V-9", "pending")]
    assert json.loads(rows[0][4]) == {"charge_no": "CH-001", "visit_no": "V-9", "patient_id": "P-1",
                                      "total_amount": "12.50", "pay_auth_no": "AUTH-7"}
    second = json.loads(rows[1][4])
    assert second["total_amount"] == "3.05" and second["pay_auth_no"] is None


def test_the_payload_is_one_the_test_flow_accepts(store):
    from decimal import Decimal
    from bridge.testflow.flows import TestChargeFlow

    insert_charge(store, "CH-010", "V-1", "P-2", "7.10")
    payload = store.query("SELECT payload FROM mi_outbox")[0][0]
    req = TestChargeFlow().parse(json.loads(payload))
    assert req.patient_id == "P-2" and req.total_amount == Decimal("7.10")


def test_a_refused_request_refuses_the_charge_row_too(store):
    with pytest.raises(Exception) as ei:
        insert_charge(store, "CH-100", "V-2", "P-3", "-1.00")
    assert "total_amount must be a non-negative amount" in str(ei.value)
    assert store.query("SELECT COUNT(*) FROM his_charge")[0][0] == 0
    assert store.query("SELECT COUNT(*) FROM mi_outbox")[0][0] == 0
