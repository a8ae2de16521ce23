"""The SQL docs/identity.md gives the HIS and the mini-program backend, run as written on
SQLite, PostgreSQL and MariaDB (Oracle's and SQL Server's lines are parsed only)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from bridge.db.store import Store
from bridge.regions import storage
from bridge.regions.merge import plan_load
from bridge.regions.model import Region
from tests.sql import ddl

DOC = Path(__file__).resolve().parents[2] / "docs" / "identity.md"


def sql_blocks() -> list[str]:
    return re.findall(r"```sql\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)


def by_dialect(block: str) -> dict[str, str]:
    """The statements of a block whose '-- Name, Name' comment lines say where each runs."""
    names = {"PostgreSQL": "postgresql", "SQLite": "sqlite", "Oracle": "oracle", "MariaDB": "mysql",
             "SQL Server": "sqlserver"}
    out, current = {}, []
    for line in block.splitlines():
        m = re.match(r"--\s*(.+)$", line)
        if m and all(n.strip() in names for n in m.group(1).split(",")):
            current = [names[n.strip()] for n in m.group(1).split(",")]
            continue
        for d in current:
            out[d] = (out.get(d, "") + "\n" + line).strip()
    return out


@pytest.fixture
def store(db_url):
    s = Store(db_url)
    storage.run(s, lambda cur: plan_load(cur, [
        Region("440100", "广州市", insutypes=("310", "390"), sort_order=2, source="csv"),
        Region("440300", "深圳市", channels=("alipay",), insutypes=("310",), sort_order=1, source="csv"),
        Region("440600", "佛山市", source="csv"), Region("442000", "中山市", False, source="csv")]))
    yield s
    s.close()


def test_the_channel_list_as_the_doc_writes_it(store):
    block = sql_blocks()[0]
    assert [tuple(r) for r in store.query(block.strip().rstrip(";"))] == [("440100", "广州市"), ("440600", "佛山市")]
    for d in ("oracle", "sqlserver"):
        ddl.parse(d, block.strip().rstrip(";"))


def test_the_insutype_check_as_the_doc_writes_it(store, dialect):
    stmts = by_dialect(sql_blocks()[1])
    assert set(stmts) == {"postgresql", "sqlite", "oracle", "mysql", "sqlserver"}
    sql = stmts[dialect].rstrip(";")
    assert [tuple(r) for r in store.query(sql)] == [("440100", "广州市")]
    assert list(store.query(sql.replace("440100", "440300"))) == []     # 440300 takes 310 only
    ddl.parse("oracle", stmts["oracle"].rstrip(";"))
    ddl.parse("sqlserver", stmts["sqlserver"].rstrip(";"))
