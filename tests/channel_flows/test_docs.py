"""The SQL docs/channels.md ("For the HIS") gives the HIS and the mini-program's back end, run as
written on SQLite, PostgreSQL and MariaDB (Oracle's and SQL Server's statements are parsed
only): the enqueue calls (their `...` filled with the rest of a valid payload), and the read
of the `order` row's cashier, against the row the payment flow itself writes."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from bridge.crypto import sm2
from bridge.db.store import Store
from bridge.mobilepay.client import MobilePayClient
from bridge.mobilepay.config import MobilePayConfig
from bridge.mobilepay.kinds import KIND_OUTPATIENT
from bridge.mobilepay.payment import PaymentFlow
from bridge.wechatpay import outcomes as wx_oc
from tests.flows_unit.ch import PREPAY, alipay_client, ch_script, created_mix, placed, wechat_client, wx_doc
from tests.flows_unit.mp import SHIPPED, TOKEN
from tests.sql import ddl

DOC = Path(__file__).resolve().parents[2] / "docs" / "channels.md"
NAMES = {"PostgreSQL": "postgresql", "SQLite": "sqlite", "Oracle": "oracle", "MariaDB": "mysql",
         "SQL Server": "sqlserver"}
# What "..." stands for in the doc's payloads: the rest of a payment (docs/mobilepay.md "Payloads").
REST = ('"visit_id": "OP1", "id_no": "440106199001010011", "user_name": "张三", "dept_code": "A03", '
        '"dept_name": "内科", "caty": "A03", "total_amount": "20.00", "lines": [{"line_no": 1, '
        '"item_code": "H-XJ01", "item_name": "血常规", "quantity": "1", "price": "20.00", "amount": "20.00"}]')


def section(title: str) -> str:
    text = DOC.read_text(encoding="utf-8")
    start = text.index(f"### {title}")
    return text[start:text.index("\n### ", start + 1)]


def by_dialect(block: str) -> dict[str, str]:
    """The statements of a block whose '-- Name, Name' comment lines say where each runs."""
    out, current = {}, []
    for line in block.splitlines():
        m = re.match(r"--\s*(.+)$", line)
        if m and all(n.strip() in NAMES for n in m.group(1).split(",")):
            current = [NAMES[n.strip()] for n in m.group(1).split(",")]
            continue
        for d in current:
            out[d] = (out.get(d, "") + "\n" + line).strip()
    return out


def sql_block(title: str) -> dict[str, str]:
    [block] = re.findall(r"```sql\n(.*?)```", section(title), re.S)
    return by_dialect(block)


def statements(sql: str) -> list[str]:
    return [s.strip() for s in re.split(r";\s*\n", sql.strip().rstrip(";") + "\n") if s.strip()]


def order_row_result() -> dict:
    """The `order` row a WeChat payment with a cash part writes (the flow's own transition)."""
    key, centre = sm2.generate_private_key(), sm2.generate_private_key()
    public = centre.public_key() if hasattr(centre, "public_key") else centre.public
    mp = MobilePayClient(MobilePayConfig(base_url="http://127.0.0.1:9", app_id="A" * 20, app_secret="s",
                                         org_codg="H0001", org_private_key=key.to_base64(),
                                         platform_public_key=public.to_base64()))
    s = ch_script(PaymentFlow(KIND_OUTPATIENT, SHIPPED), mp, wechat_client(), alipay_client())
    s.answer(wx_oc.MEDINS_CREATE, created_mix())
    t = s.step("channel_order", wx_doc(), data=placed("wechat", prepay_id=PREPAY), secrets={"payToken": TOKEN})
    [row] = t.inbox
    assert row.result_type == "order"
    return row.result


def test_the_doc_names_every_database():
    assert set(sql_block("Enqueue")) == set(NAMES.values())
    assert set(sql_block("The `order` row")) == set(NAMES.values())


def test_the_enqueue_calls_as_the_doc_writes_them(db_url, dialect):
    sql = sql_block("Enqueue")[dialect].replace(", ...}'", ", " + REST + "}'")
    store = Store(db_url)
    try:
        if dialect == "postgresql":
            for stmt in statements(sql):
                store.query(stmt)
        else:
            for stmt in statements(sql):
                store.execute(stmt)
        got = {k: json.loads(p) for k, p in store.query("SELECT business_key, payload FROM mi_outbox")}
    finally:
        store.close()
    assert got["INV-W1001"]["channel"] == "wechat" and got["INV-W1001"]["openid"] == "o-Abc123"
    if dialect == "postgresql":
        assert got["INV-A1002"]["alipay_user_id"] == "2088000000000077" and "pay_auth_no" not in got["INV-A1002"]
        assert got["RF-W1001-1"] == {"payment_key": "INV-W1001", "amount": "10.00", "reason": "退药"}


def test_the_enqueue_calls_parse_on_oracle_and_sqlserver():
    blocks = sql_block("Enqueue")
    # Oracle's is one PL/SQL block, SQL Server's a batch: the calls inside are what the HIS sends.
    assert "mi_enqueue('mobilepay.outpatient', 'INV-W1001', NULL," in blocks["oracle"]
    assert "EXEC mi_enqueue N'mobilepay.outpatient', N'INV-W1001', NULL," in blocks["sqlserver"]
    assert "@id OUTPUT" in blocks["sqlserver"] and "v_id);" in blocks["oracle"]


def test_the_cashier_read_as_the_doc_writes_it(db_url, dialect):
    result = order_row_result()
    store = Store(db_url)
    try:
        store.execute("""INSERT INTO mi_outbox (kind, business_key, serial_key, payload)
                         VALUES ('mobilepay.outpatient', 'INV-W1001', 'INV-W1001', '{}')""")
        [(oid,)] = store.query("SELECT id FROM mi_outbox WHERE business_key = 'INV-W1001'")
        store.execute("""INSERT INTO mi_inbox (outbox_id, kind, business_key, result_type, outcome, order_id,
                                               cash_amount, result_json)
                         VALUES (:o, 'mobilepay.outpatient', 'INV-W1001', 'order', 'ok', 'ORD-1', :cash, :r)""",
                      {"o": oid, "cash": "36.00", "r": json.dumps(result, ensure_ascii=False)})
        [row] = store.query(sql_block("The `order` row")[dialect].rstrip().rstrip(";"))
    finally:
        store.close()
    _, order_id, _, channel, cashier = row
    cashier = cashier if isinstance(cashier, dict) else json.loads(cashier)
    assert (order_id, channel) == ("ORD-1", "wechat")
    assert cashier == result["cashier"]
    assert set(cashier) == {"mixTradeNo", "timeStamp", "nonceStr", "package", "signType", "paySign"}


@pytest.mark.parametrize("dialect", ["oracle", "sqlserver"])
def test_the_cashier_read_parses_on_oracle_and_sqlserver(dialect):
    ddl.parse(dialect, sql_block("The `order` row")[dialect].rstrip().rstrip(";"))
