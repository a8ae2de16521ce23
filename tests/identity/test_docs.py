"""The SQL docs/identity.md gives the HIS and the DBA for the identity kinds, run as written on
SQLite, PostgreSQL and MariaDB against an `identity` row shaped by the flow's own code; the
Oracle and SQL Server statements are parsed (sqlglot), and every dialect's enqueue sends the
same requests."""
from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path

import pytest

from bridge.db.dialects import get_dialect
from bridge.db.scripts import run_script
from bridge.db.store import Store
from bridge.db.url import parse_url
from bridge.identity import insurances as ins
from bridge.offline import messages as m
from tests.regions.test_docs import by_dialect
from tests.sql import ddl

DOC = Path(__file__).resolve().parents[2] / "docs" / "identity.md"
ALL = {"postgresql", "mysql", "sqlite", "oracle", "sqlserver"}
WU = "44010000000000000007"


def block(heading: str, n: int = 0) -> str:
    """The n-th ```sql block of the section that starts with `heading`."""
    text = DOC.read_text(encoding="utf-8")
    start = text.index(heading)
    end = text.find("\n## ", start + len(heading))
    return re.findall(r"```sql\n(.*?)```", text[start:end if end > 0 else None], re.S)[n]


ENQUEUE, HEADLINE, INSURANCES, CONSUME = (block("## Enqueue and consume, per database", i) for i in range(4))
IDENTITY_SELECT = block("## mi_identity: what the HIS reads")


def identity_result() -> dict:
    """The `identity` row of a payAuthNo lookup of 吴十, built by the flow's own functions:
    two usable insurances, the second restricted."""
    person = m.PersonInfo(psn_no=WU, psn_cert_type="01", certno="440106198502020071", psn_name="吴十", gend="1",
                          insuinfo=(m.Insurance(insutype="310", psn_type="11", balc=Decimal("800.00"),
                                                psn_insu_stas="1", insuplc_admdvs="440100"),
                                    m.Insurance(insutype="390", psn_type="14", balc=Decimal("0.00"),
                                                psn_insu_stas="1", insuplc_admdvs="440300")))
    regions = {"440100": "广州市", "440300": "深圳市"}
    rows = ins.insurance_rows(person, region_of=lambda a: {"admdvs": a, "name": regions[a], "enabled": True,
                                                           "channels": ["wechat"], "insutypes": None})
    check = m.BenefitCheck(trtinfo=(m.BenefitStatus(psn_no=WU, fund_pay_type="390100", trt_enjymnt_flag="0",
                                                    trt_chk_rslt="待遇未激活"),))
    rows = [ins.with_benefit(rows[0], "11", m.BenefitCheck()), ins.with_benefit(rows[1], "11", check)]
    return {"psn_no": WU, "psn_cert_type": "01", "gend": "1", "certno": "4401**********0071", "psn_name": "吴*",
            "route": "pay_auth_no", "insurances": ins.public(rows), "choices": 2, "choose": True,
            "his_patient_id": "P0007"}


@pytest.fixture
def store(db_url, tmp_path):
    """The doc's enqueue run as written, then the daemon's rows: the lookup's `identity` row
    and the patient's mi_identity."""
    u = parse_url(db_url)
    sql = by_dialect(ENQUEUE)[u.dialect]
    path = tmp_path / "enqueue.sql"
    path.write_text(sql + "\n", encoding="utf-8")
    conn = get_dialect(u.dialect).connect(u)
    try:
        run_script(conn, u.dialect, path)
        run_script(conn, u.dialect, path)          # again: a no-op
    finally:
        conn.close()
    s = Store(db_url)
    (oid,) = [r[0] for r in s.query("SELECT id FROM mi_outbox WHERE business_key = 'LK-0001'")]
    s.execute("""INSERT INTO mi_inbox (outbox_id, kind, business_key, result_type, outcome, result_json)
                 VALUES (:o, 'identity.lookup', 'LK-0001', 'identity', 'ok', :r)""",
              {"o": oid, "r": json.dumps(identity_result(), ensure_ascii=False)})
    s.execute("""INSERT INTO mi_identity (his_patient_id, psn_no, insuplc_admdvs, insutype, benefit, psn_cert_type,
                                          psn_type, med_type, benefit_status, certno_masked, psn_name_masked, gend,
                                          chosen, source_kind, updated_at)
                 VALUES ('P0007', :p, '440300', '390', '14', '01', '14', '11', 'restricted', '4401**********0071',
                         '吴*', '1', 1, 'identity.choose', CURRENT_TIMESTAMP)""", {"p": WU})
    yield s
    s.close()


def test_the_enqueue_as_written_adds_the_two_requests_once(store):
    rows = store.query("SELECT kind, business_key, serial_key, payload FROM mi_outbox ORDER BY id")
    assert [tuple(r[:3]) for r in rows] == [("identity.lookup", "LK-0001", "PAT-0001"),
                                           ("identity.choose", "CH-0001", "PAT-0001")]
    from bridge.identity.payloads import parse_choose, parse_lookup
    from bridge.identity.settings import IdentitySettings
    assert parse_lookup(json.loads(rows[0][3]), IdentitySettings()).route == "pay_auth_no"
    assert parse_choose(json.loads(rows[1][3])).insutype == "390"


def test_every_dialect_enqueues_the_same_requests():
    stmts = by_dialect(ENQUEUE)
    assert set(stmts) == ALL
    payloads = {d: re.findall(r"N?'(\{.*?\})'", text, re.S) for d, text in stmts.items()}
    assert all(payloads[d] == payloads["sqlite"] for d in ALL) and len(payloads["sqlite"]) == 2


def test_the_headline_fields_as_the_doc_reads_them(store, dialect):
    sql = by_dialect(HEADLINE)[dialect].rstrip().rstrip(";")
    (row,) = store.query(sql)
    assert tuple(row[1:5]) == ("ok", None, None, WU)
    assert str(row[5]) == "2" and str(row[6]).lower() in ("true", "1") and row[7] == "4401**********0071"


def test_the_insurances_one_row_each_as_the_doc_reads_them(store, dialect):
    sql = by_dialect(INSURANCES)[dialect].rstrip().rstrip(";")
    rows = [tuple(None if v is None else str(v) for v in r) for r in store.query(sql)]
    t = "1" if dialect == "sqlite" else "true"
    assert rows == [("310", "440100", "广州市", "11", "800.00", t, None, "enjoyed"),
                    ("390", "440300", "深圳市", "14", "0.00", t, None, "restricted")]


def test_the_consume_as_the_doc_writes_it(store, dialect):
    (iid,) = [r[0] for r in store.query("SELECT id FROM mi_inbox")]
    sql = by_dialect(CONSUME)[dialect].rstrip().rstrip(";").replace("42", str(iid))
    if dialect == "postgresql":
        store.query(sql)
    else:
        store.execute(sql)
    (ack,) = store.query("SELECT his_ack FROM mi_inbox")
    assert ack[0] == "accepted"


def test_mi_identity_as_the_doc_reads_it(store):
    sql = IDENTITY_SELECT.strip().rstrip(";")
    (row,) = store.query(sql)
    assert (row[0], row[1], row[2], row[3], row[6], row[9], row[10], int(row[12])) == \
        ("P0007", WU, "390", "440300", "restricted", "4401**********0071", "吴*", 1)


def test_the_oracle_and_sql_server_statements_parse():
    for d in ("oracle", "sqlserver"):
        for b in (HEADLINE, INSURANCES):
            ddl.parse(d, by_dialect(b)[d].rstrip().rstrip(";"))
        ddl.parse(d, IDENTITY_SELECT.strip().rstrip(";"))
    assert set(by_dialect(HEADLINE)) == set(by_dialect(INSURANCES)) == set(by_dialect(CONSUME)) == ALL
