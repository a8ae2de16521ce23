"""The example scripts on each real database.  his_charge_trigger.sql: a charge
row becomes exactly one outbox request, and a charge mibridge refuses is
refused to the HIS with it.  mobilepay_enqueue.sql: see below."""
from __future__ import annotations

import json
import re

import pytest

from bridge.db.dialects import get_dialect
from bridge.db.scripts import run_script, script_path, split_statements
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
        insert_charge(store, "CH-100 ", "V-2", "P-3", "1.00")    # a key with a trailing blank
    assert "business_key must not start or end with a blank" in str(ei.value)
    assert store.query("SELECT COUNT(*) FROM his_charge")[0][0] == 0
    assert store.query("SELECT COUNT(*) FROM mi_outbox")[0][0] == 0


def test_a_refund_or_reversal_row_is_the_cashiers_and_is_left_alone(store):
    """退费/冲红: the cashier records a negative row; the example used to refuse
    it (mibridge refuses a negative amount), which broke the cashier's refund."""
    insert_charge(store, "CH-200", "V-3", "P-4", "12.50")
    insert_charge(store, "CH-200-R", "V-3", "P-4", "-12.50")
    assert store.query("SELECT COUNT(*) FROM his_charge")[0][0] == 2
    assert [r[0] for r in store.query("SELECT business_key FROM mi_outbox")] == ["CH-200"]


# -- sql/<dialect>/examples/mobilepay_enqueue.sql -------------------------------------
# The DBA's mobile-pay walk-through.  On the databases run here it is run twice,
# with the daemon's order and settlement rows written in between (no daemon runs
# in this test): every request is enqueued once with the keys docs/mobilepay.md
# prescribes, every payload is one the flows accept, and the consume steps take
# exactly the rows meant.  Oracle and SQL Server are checked without a server.

MOBILEPAY_EXAMPLE = "examples/mobilepay_enqueue.sql"
PAYMENT, REFUND, REGISTRATION, REVOKE = ("MP-20240301-0001", "RF-20240301-0001",
                                         "MP-20240301-0002", "RV-20240301-0002")
EXPECTED_REQUESTS = [("mobilepay.outpatient", PAYMENT, PAYMENT),
                     ("mobilepay.refund", REFUND, PAYMENT),
                     ("mobilepay.registration", REGISTRATION, REGISTRATION),
                     ("mobilepay.revoke", REVOKE, REVOKE)]


def _run_example(db_url: str, name: str) -> None:
    u = parse_url(db_url)
    conn = get_dialect(u.dialect).connect(u)
    try:
        run_script(conn, u.dialect, script_path(u.dialect, name))
    finally:
        conn.close()


def _parse_mobilepay(kind: str, payload: dict):
    from bridge.mobilepay.flows import MobilePaySettings, flows

    by_kind = {f.kind: f for f in flows(MobilePaySettings())}
    return by_kind[kind].parse(payload)


def test_the_mobilepay_example_enqueues_valid_requests_and_consumes_its_rows(db_url):
    _run_example(db_url, MOBILEPAY_EXAMPLE)
    s = Store(db_url)
    try:
        rows = s.query("SELECT id, kind, business_key, serial_key, state, payload FROM mi_outbox ORDER BY id")
        assert [tuple(r[1:4]) for r in rows] == EXPECTED_REQUESTS
        assert all(r[4] == "pending" for r in rows)
        docs = {r[2]: json.loads(r[5]) for r in rows}
        for kind, key, _ in EXPECTED_REQUESTS:
            _parse_mobilepay(kind, docs[key])          # raises BadInput if the flow would refuse it
        assert docs[REFUND]["payment_key"] == PAYMENT and len(REFUND) <= 30
        assert docs[REVOKE]["payment_key"] == REGISTRATION
        pay_id = rows[0][0]

        # What the daemon writes while the patient pays: an order row, then a settlement row.
        for rtype in ("order", "settlement"):
            s.execute("""INSERT INTO mi_inbox (outbox_id, kind, business_key, result_type, outcome, order_id)
                         VALUES (:o, 'mobilepay.outpatient', :k, :t, 'ok', 'ORD-1')""",
                      {"o": pay_id, "k": PAYMENT, "t": rtype})
        # Someone else's unconsumed row must be left alone.
        s.execute("""INSERT INTO mi_inbox (outbox_id, kind, business_key, result_type, outcome)
                     VALUES (:o, 'mobilepay.registration', :k, 'order', 'ok')""",
                  {"o": rows[2][0], "k": REGISTRATION})

        _run_example(db_url, MOBILEPAY_EXAMPLE)          # again: a no-op for the requests
        again = s.query("SELECT kind, business_key, serial_key FROM mi_outbox ORDER BY id")
        assert [tuple(r) for r in again] == EXPECTED_REQUESTS
        inbox = s.query("""SELECT business_key, result_type, his_ack, consumed_at FROM mi_inbox ORDER BY id""")
        assert [(r[0], r[1], r[2], r[3] is not None) for r in inbox] == [
            (PAYMENT, "order", "accepted", True), (PAYMENT, "settlement", "accepted", True),
            (REGISTRATION, "order", None, False)]
    finally:
        s.close()


def _example_text(dialect: str) -> str:
    return script_path(dialect, MOBILEPAY_EXAMPLE).read_text(encoding="utf-8")


def _payload_literals(text: str) -> list[dict]:
    return [json.loads(m) for m in re.findall(r"N?'(\{.*?\})'", text, re.S)]


def test_the_mobilepay_examples_send_the_same_requests_in_every_dialect():
    dialects = ["postgresql", "mysql", "sqlite", "oracle", "sqlserver"]
    payloads = {d: _payload_literals(_example_text(d)) for d in dialects}
    assert len(payloads["sqlite"]) == 4
    for d in dialects:
        assert payloads[d] == payloads["sqlite"], d
    kinds = [k for k, _, _ in EXPECTED_REQUESTS]
    for kind, doc in zip(kinds, payloads["sqlite"]):
        _parse_mobilepay(kind, doc)
    call = re.compile(r"mi_enqueue\s*\(?\s*N?'(mobilepay\.\w+)',\s*N?'([^']+)',\s*(NULL|N?'[^']+')")
    for d in ("postgresql", "mysql", "oracle", "sqlserver"):
        found = [(k, b, b if s == "NULL" else s.lstrip("N").strip("'")) for k, b, s in call.findall(_example_text(d))]
        assert found == EXPECTED_REQUESTS, d


def test_the_oracle_and_sqlserver_mobilepay_examples_split_as_their_clients_do():
    plsql = re.compile(r"^(DECLARE|BEGIN)\b", re.I)
    ora_text = _example_text("oracle")
    assert "&" not in ora_text                       # SQL*Plus would prompt for a substitution
    stmts = split_statements("oracle", ora_text)
    assert len(stmts) == 11
    for st in stmts:
        if plsql.match(st):
            assert re.search(r"\bEND;\s*$", st), st[-80:]
        else:
            assert st.lstrip().upper().startswith("SELECT") and ";" not in st, st[:80]
            assert "\n\n" not in st, st[:80]          # a blank line ends a SQL*Plus statement
    batches = split_statements("sqlserver", _example_text("sqlserver"))
    assert len(batches) == 10
    for b in batches:
        assert not re.search(r"^\s*GO\s*$", b, re.M | re.I)
        assert not re.search(r"[^N]'\{", b), b[:80]   # payloads are N'...' (Unicode)


# -- sql/<dialect>/examples/facepay_enqueue.sql ---------------------------------------
# The DBA's face-pay walk-through: one visit (identify, pre-settle, settle, cancel,
# all under the visit number as serial key) and a second visit in the Guangdong
# one-shot mode.  Checked as the mobile-pay one above: run twice on each database
# with the daemon's rows written in between, every payload parsed by its flow, and
# the Oracle and SQL Server files split as their clients do.

FACEPAY_EXAMPLE = "examples/facepay_enqueue.sql"
VISIT_1, VISIT_2 = "VISIT-20240301-0001", "VISIT-20240301-0002"
FP_IDENTIFY, FP_PRESETTLE, FP_SETTLE, FP_CANCEL = ("FACE-20240301-0001", "PRE-20240301-0001",
                                                   "SET-20240301-0001", "CAN-20240301-0001")
FP_DOC_PRESETTLE, FP_DOC_SETTLE = "PRE-20240301-0002", "SET-20240301-0002"
FACEPAY_REQUESTS = [("facepay.identify", FP_IDENTIFY, VISIT_1),
                    ("facepay.outpatient.presettle", FP_PRESETTLE, VISIT_1),
                    ("facepay.outpatient.settle", FP_SETTLE, VISIT_1),
                    ("facepay.outpatient.cancel", FP_CANCEL, VISIT_1),
                    ("facepay.document.presettle", FP_DOC_PRESETTLE, VISIT_2),
                    ("facepay.document.settle", FP_DOC_SETTLE, VISIT_2)]
# (kind, business key, result_type) of the rows the script takes, in its order.
FACEPAY_CONSUMED = [("facepay.identify", FP_IDENTIFY, "identity"),
                    ("facepay.outpatient.presettle", FP_PRESETTLE, "presettlement"),
                    ("facepay.outpatient.settle", FP_SETTLE, "settlement"),
                    ("facepay.document.presettle", FP_DOC_PRESETTLE, "presettlement"),
                    ("facepay.document.settle", FP_DOC_SETTLE, "settlement")]
CASHIER = {"id": "op002", "name": "收费员乙", "type": "1"}
KIOSK = {"id": "ZZJ01", "name": "自助机01", "type": "2"}


def _parse_facepay(kind: str, payload: dict):
    from bridge.facepay.flows import FacePaySettings, all_flows

    by_kind = {f.kind: f for f in all_flows(FacePaySettings(merchant_no="1", terminal_no="1", isv_no="1"))}
    return by_kind[kind].parse(payload)


def _check_facepay_payloads(docs: dict) -> None:
    """docs: business key -> payload.  Every one accepted by its flow, and they chain."""
    for kind, key, _ in FACEPAY_REQUESTS:
        _parse_facepay(kind, docs[key])                 # raises BadInput if the flow would refuse it
    assert docs[FP_PRESETTLE]["identify_key"] == FP_IDENTIFY
    assert docs[FP_SETTLE]["presettle_key"] == FP_PRESETTLE
    assert docs[FP_CANCEL]["settle_key"] == FP_SETTLE and docs[FP_CANCEL]["with_extension"] is True
    assert docs[FP_DOC_SETTLE]["presettle_key"] == FP_DOC_PRESETTLE
    pre = docs[FP_PRESETTLE]
    assert pre["face_pay"] is True and pre["retry_without_face_pay"] is True and pre["terminal"]
    # The operator reaches the request as written (not silently dropped).
    for key, who in ((FP_PRESETTLE, CASHIER), (FP_SETTLE, CASHIER),
                     (FP_DOC_PRESETTLE, KIOSK), (FP_DOC_SETTLE, KIOSK)):
        kind = next(k for k, b, _ in FACEPAY_REQUESTS if b == key)
        assert _parse_facepay(kind, docs[key]).operator == who, key
    # 2260 registers the visit itself: neither field may be there.
    assert not {"mdtrt_id", "chrg_bchno"} & set(docs[FP_DOC_PRESETTLE])
    for key in (FP_PRESETTLE, FP_DOC_PRESETTLE):
        amounts = [docs[key]["total_amount"]] + [f["det_item_fee_sumamt"] for f in docs[key]["fees"]]
        assert all(isinstance(a, str) and re.fullmatch(r"\d+\.\d\d", a) for a in amounts), amounts


def test_the_facepay_example_enqueues_valid_requests_and_consumes_its_rows(db_url):
    _run_example(db_url, FACEPAY_EXAMPLE)
    s = Store(db_url)
    try:
        rows = s.query("SELECT id, kind, business_key, serial_key, state, payload FROM mi_outbox ORDER BY id")
        assert [tuple(r[1:4]) for r in rows] == FACEPAY_REQUESTS
        assert all(r[4] == "pending" for r in rows)
        _check_facepay_payloads({r[2]: json.loads(r[5]) for r in rows})
        ids = {r[2]: r[0] for r in rows}

        # What the daemon writes: the rows the script takes ...
        for kind, key, rtype in FACEPAY_CONSUMED:
            s.execute("""INSERT INTO mi_inbox (outbox_id, kind, business_key, result_type, outcome, total_amount)
                         VALUES (:o, :kind, :k, :t, 'ok', :amt)""",
                      {"o": ids[key], "kind": kind, "k": key, "t": rtype,
                       "amt": None if rtype == "identity" else "60.00"})
        # ... and rows it must leave alone: another result of the settle request itself,
        # and the cancel's result, which the script only shows.
        for kind, key, rtype in (("facepay.outpatient.settle", FP_SETTLE, "terminal_notice"),
                                 ("facepay.outpatient.cancel", FP_CANCEL, "cancellation")):
            s.execute("""INSERT INTO mi_inbox (outbox_id, kind, business_key, result_type, outcome)
                         VALUES (:o, :kind, :k, :t, 'ok')""",
                      {"o": ids[key], "kind": kind, "k": key, "t": rtype})

        _run_example(db_url, FACEPAY_EXAMPLE)            # again: a no-op for the requests
        again = s.query("SELECT id, kind, business_key, serial_key, state FROM mi_outbox ORDER BY id")
        assert [tuple(r) for r in again] == [(r[0],) + tuple(r[1:5]) for r in rows]
        inbox = s.query("""SELECT kind, business_key, result_type, his_ack, consumed_at FROM mi_inbox ORDER BY id""")
        assert [(tuple(r[:4]), r[4] is not None) for r in inbox] == (
            [((k, b, t, "accepted"), True) for k, b, t in FACEPAY_CONSUMED]
            + [(("facepay.outpatient.settle", FP_SETTLE, "terminal_notice", None), False),
               (("facepay.outpatient.cancel", FP_CANCEL, "cancellation", None), False)])
    finally:
        s.close()


def _facepay_text(dialect: str) -> str:
    return script_path(dialect, FACEPAY_EXAMPLE).read_text(encoding="utf-8")


FACEPAY_DIALECTS = ["postgresql", "mysql", "sqlite", "oracle", "sqlserver"]


def test_the_facepay_examples_send_the_same_requests_in_every_dialect():
    payloads = {d: _payload_literals(_facepay_text(d)) for d in FACEPAY_DIALECTS}
    assert len(payloads["sqlite"]) == len(FACEPAY_REQUESTS)
    for d in FACEPAY_DIALECTS:
        assert payloads[d] == payloads["sqlite"], d
    _check_facepay_payloads({key: doc for (_, key, _), doc in zip(FACEPAY_REQUESTS, payloads["sqlite"])})
    call = re.compile(r"mi_enqueue\s*\(?\s*N?'(facepay\.[\w.]+)',\s*N?'([^']+)',\s*(NULL|N?'[^']+')")
    for d in ("postgresql", "mysql", "oracle", "sqlserver"):
        found = [(k, b, b if s == "NULL" else s.lstrip("N").strip("'"))
                 for k, b, s in call.findall(_facepay_text(d))]
        assert found == FACEPAY_REQUESTS, d
    insert = re.compile(r"INSERT INTO mi_outbox \(kind, business_key, serial_key, payload\)\s*"
                        r"VALUES \('(facepay\.[\w.]+)', '([^']+)', '([^']+)'")
    assert insert.findall(_facepay_text("sqlite")) == FACEPAY_REQUESTS


def test_the_facepay_examples_consume_only_the_rows_meant_in_every_dialect():
    """Which (kind, key, result_type) each consume statement takes, by the text: this is
    the only check of it for Oracle and SQL Server, which are not run here."""
    where = re.compile(r"kind = N?'([\w.]+)' AND business_key = N?'([^']+)'\s+"
                       r"AND result_type = N?'(\w+)' AND consumed_at IS NULL")
    consumes = re.compile(r"mi_inbox_consume\s*\(?\s*(id|r\.id|@p_id = @row)|^INSERT INTO mi_inbox_consume \(id, his_ack\)")
    for d in FACEPAY_DIALECTS:
        stmts = split_statements(d, _facepay_text(d))
        taken = [where.findall(st) for st in stmts if consumes.search(st)]
        assert all(len(t) == 1 for t in taken), (d, taken)
        assert [t[0] for t in taken] == FACEPAY_CONSUMED, d


def test_the_oracle_and_sqlserver_facepay_examples_split_as_their_clients_do():
    plsql = re.compile(r"^(DECLARE|BEGIN)\b", re.I)
    ora_text = _facepay_text("oracle")
    assert "&" not in ora_text                       # SQL*Plus would prompt for a substitution
    stmts = split_statements("oracle", ora_text)
    assert len(stmts) == 21                          # 6 enqueue blocks, 5 consume blocks, 10 queries
    for st in stmts:
        assert "\n\n" not in st, st[:80]             # a blank line ends a SQL*Plus statement
        if plsql.match(st):
            assert re.search(r"\bEND;\s*$", st) and "COMMIT;" in st, st[-80:]
        else:
            assert st.lstrip().upper().startswith("SELECT") and ";" not in st, st[:80]
    batches = split_statements("sqlserver", _facepay_text("sqlserver"))
    assert len(batches) == 19                        # 6 enqueues, 5 consumes, 8 queries
    for b in batches:
        assert not re.search(r"^\s*GO\s*$", b, re.M | re.I)
        assert not re.search(r"[^N]'\{", b), b[:80]   # payloads are N'...' (Unicode)
        declared = re.findall(r"DECLARE\s+(@\w+)", b, re.I)
        assert len(declared) == len(set(declared)), b[:80]   # twice in one batch is an error
        if "result_type = N'settlement'" in b and "mi_inbox_consume" in b:
            assert "BEGIN TRANSACTION" in b and "COMMIT" in b, b[:80]


# -- sql/<dialect>/examples/identity_enqueue.sql --------------------------------------
# The DBA's identity walk-through (docs/identity.md): a lookup by payAuthNo and the
# patient's choice, a lookup by ID and region, and a kiosk visit (card lookup, register,
# fee pre-settlement and settlement, both cancels).  Checked as the face-pay one above:
# run twice on each database with the daemon's rows written in between, every payload
# parsed by its flow, the consume steps taking exactly the rows meant, and the Oracle and
# SQL Server files split as their clients do.

IDENTITY_EXAMPLE = "examples/identity_enqueue.sql"
PAT_1, PAT_2, KIOSK_VISIT = "PAT-20240301-0001", "PAT-20240301-0002", "KIOSK-20240301-0001"
ID_LK1, ID_LK2, ID_LK3, ID_CH1 = "LK-20240301-0001", "LK-20240301-0002", "LK-20240301-0003", "CH-20240301-0001"
ID_REG, ID_PRE, ID_SET, ID_CAN, ID_REGX = ("REG-20240301-0001", "PRE-20240301-0003", "SET-20240301-0003",
                                           "CAN-20240301-0003", "REGX-20240301-0001")
IDENTITY_REQUESTS = [("identity.lookup", ID_LK1, PAT_1), ("identity.choose", ID_CH1, PAT_1),
                     ("identity.lookup", ID_LK2, PAT_2), ("identity.lookup", ID_LK3, KIOSK_VISIT),
                     ("kiosk.register", ID_REG, KIOSK_VISIT), ("kiosk.presettle", ID_PRE, KIOSK_VISIT),
                     ("kiosk.settle", ID_SET, KIOSK_VISIT), ("kiosk.cancel", ID_CAN, KIOSK_VISIT),
                     ("kiosk.register_cancel", ID_REGX, KIOSK_VISIT)]
IDENTITY_CONSUMED = [("identity.lookup", ID_LK1, "identity"), ("identity.choose", ID_CH1, "identity_choice"),
                     ("identity.lookup", ID_LK2, "identity"), ("identity.lookup", ID_LK3, "identity"),
                     ("kiosk.register", ID_REG, "registration"), ("kiosk.presettle", ID_PRE, "presettlement"),
                     ("kiosk.settle", ID_SET, "settlement")]


def _parse_identity(kind: str, payload: dict):
    from bridge.facepay.settings import FacePaySettings
    from bridge.identity.flows import all_flows
    from bridge.identity.settings import IdentitySettings

    by_kind = {f.kind: f for f in all_flows(IdentitySettings(),
                                             FacePaySettings(merchant_no="1", terminal_no="1", isv_no="1"))}
    return by_kind[kind].parse(payload)


def _check_identity_payloads(docs: dict) -> None:
    """docs: business key -> payload.  Every one accepted by its flow, and they chain."""
    for kind, key, _ in IDENTITY_REQUESTS:
        _parse_identity(kind, docs[key])              # raises BadInput if the flow would refuse it
    assert docs[ID_CH1]["lookup_key"] == ID_LK1 and docs[ID_REG]["lookup_key"] == ID_LK3
    assert docs[ID_PRE]["register_key"] == ID_REG and docs[ID_SET]["presettle_key"] == ID_PRE
    assert docs[ID_CAN]["settle_key"] == ID_SET and docs[ID_REGX]["register_key"] == ID_REG
    assert _parse_identity("kiosk.register", docs[ID_REG]).operator == {"id": "ZZJ01", "name": "自助机01", "type": "2"}
    assert _parse_identity("identity.lookup", docs[ID_LK3]).route == "card"
    assert _parse_identity("identity.lookup", docs[ID_LK2]).route == "id_card"


def _identity_text(dialect: str) -> str:
    return script_path(dialect, IDENTITY_EXAMPLE).read_text(encoding="utf-8")


def test_the_identity_example_enqueues_valid_requests_and_consumes_its_rows(db_url):
    _run_example(db_url, IDENTITY_EXAMPLE)
    s = Store(db_url)
    try:
        rows = s.query("SELECT id, kind, business_key, serial_key, state, payload FROM mi_outbox ORDER BY id")
        assert [tuple(r[1:4]) for r in rows] == IDENTITY_REQUESTS
        assert all(r[4] == "pending" for r in rows)
        _check_identity_payloads({r[2]: json.loads(r[5]) for r in rows})
        ids = {r[2]: r[0] for r in rows}
        # What the daemon writes: the rows the script takes ...
        for kind, key, rtype in IDENTITY_CONSUMED:
            s.execute("""INSERT INTO mi_inbox (outbox_id, kind, business_key, result_type, outcome)
                         VALUES (:o, :kind, :k, :t, 'ok')""", {"o": ids[key], "kind": kind, "k": key, "t": rtype})
        # ... and rows it must leave alone: another request's row the script only shows, and a
        # second row of the settle request.
        for kind, key, rtype in (("kiosk.cancel", ID_CAN, "cancellation"),
                                 ("kiosk.settle", ID_SET, "settlement_reversed")):
            s.execute("""INSERT INTO mi_inbox (outbox_id, kind, business_key, result_type, outcome)
                         VALUES (:o, :kind, :k, :t, 'ok')""", {"o": ids[key], "kind": kind, "k": key, "t": rtype})

        _run_example(db_url, IDENTITY_EXAMPLE)           # again: a no-op for the requests
        again = s.query("SELECT id, kind, business_key, serial_key, state FROM mi_outbox ORDER BY id")
        assert [tuple(r) for r in again] == [(r[0],) + tuple(r[1:5]) for r in rows]
        inbox = s.query("SELECT kind, business_key, result_type, his_ack, consumed_at FROM mi_inbox ORDER BY id")
        assert [(tuple(r[:4]), r[4] is not None) for r in inbox] == (
            [((k, b, t, "accepted"), True) for k, b, t in IDENTITY_CONSUMED]
            + [(("kiosk.cancel", ID_CAN, "cancellation", None), False),
               (("kiosk.settle", ID_SET, "settlement_reversed", None), False)])
    finally:
        s.close()


def test_the_identity_examples_send_the_same_requests_in_every_dialect():
    payloads = {d: _payload_literals(_identity_text(d)) for d in FACEPAY_DIALECTS}
    assert len(payloads["sqlite"]) == len(IDENTITY_REQUESTS)
    for d in FACEPAY_DIALECTS:
        assert payloads[d] == payloads["sqlite"], d
    _check_identity_payloads({key: doc for (_, key, _), doc in zip(IDENTITY_REQUESTS, payloads["sqlite"])})
    call = re.compile(r"mi_enqueue\s*\(?\s*N?'((?:identity|kiosk)\.[\w.]+)',\s*N?'([^']+)',\s*N?'([^']+)'")
    for d in ("postgresql", "mysql", "oracle", "sqlserver"):
        assert call.findall(_identity_text(d)) == IDENTITY_REQUESTS, d
    insert = re.compile(r"INSERT INTO mi_outbox \(kind, business_key, serial_key, payload\)\s*"
                        r"VALUES \('((?:identity|kiosk)\.[\w.]+)', '([^']+)', '([^']+)'")
    assert insert.findall(_identity_text("sqlite")) == IDENTITY_REQUESTS


def test_the_identity_examples_consume_only_the_rows_meant_in_every_dialect():
    where = re.compile(r"kind = N?'([\w.]+)' AND business_key = N?'([^']+)'\s+"
                       r"AND result_type = N?'(\w+)' AND consumed_at IS NULL")
    consumes = re.compile(r"mi_inbox_consume\s*\(?\s*(id|r\.id|@p_id = @row)|^INSERT INTO mi_inbox_consume \(id, his_ack\)",
                          re.M)
    for d in FACEPAY_DIALECTS:
        stmts = split_statements(d, _identity_text(d))
        taken = [where.findall(st) for st in stmts if consumes.search(st)]
        assert all(len(t) == 1 for t in taken), (d, taken)
        assert [t[0] for t in taken] == IDENTITY_CONSUMED, d


def test_the_oracle_and_sqlserver_identity_examples_split_as_their_clients_do():
    plsql = re.compile(r"^(DECLARE|BEGIN)\b", re.I)
    ora_text = _identity_text("oracle")
    assert "&" not in ora_text                       # SQL*Plus would prompt for a substitution
    stmts = split_statements("oracle", ora_text)
    assert len(stmts) == 9 + 7 + 12                  # 9 enqueue blocks, 7 consume blocks, 12 queries
    for st in stmts:
        assert "\n\n" not in st, st[:80]             # a blank line ends a SQL*Plus statement
        if plsql.match(st):
            assert re.search(r"\bEND;\s*$", st) and "COMMIT;" in st, st[-80:]
        else:
            assert st.lstrip().upper().startswith("SELECT") and ";" not in st, st[:80]
    batches = split_statements("sqlserver", _identity_text("sqlserver"))
    assert len(batches) == 9 + 7 + 12
    for b in batches:
        assert not re.search(r"^\s*GO\s*$", b, re.M | re.I)
        assert not re.search(r"[^N]'\{", b), b[:80]   # payloads are N'...' (Unicode)
        declared = re.findall(r"DECLARE\s+(@\w+)", b, re.I)
        assert len(declared) == len(set(declared)), b[:80]
        if "result_type = N'settlement'" in b and "mi_inbox_consume" in b:
            assert "BEGIN TRANSACTION" in b and "COMMIT" in b, b[:80]
