"""The region list's queries on every dialect without a server (Oracle and SQL Server cannot
run here): each statement the storage module sends parses as its database's SQL, binds
exactly its names (Oracle) or one value per mark (SQL Server), and never binds ''."""
from __future__ import annotations

import re

import pytest
from sqlglot import exp

from bridge.db.store import Store
from bridge.regions import storage
from bridge.regions.merge import Change, Plan
from bridge.regions.model import Region
from tests.engine.test_oracle_sqlserver import ORACLE_RESERVED, RecordingConnection
from tests.sql import ddl
from tests.sql.test_static import URLS


def recorded(dialect: str) -> list:
    s = Store(URLS[dialect])
    conn = RecordingConnection()
    RecordingConnection.begin_immediate = lambda self: None      # SQLite's write transaction
    s._conn = conn
    old = Region("440100", "广州市", source="1901")
    storage.run(s, lambda current: Plan("test", [
        Change("insert", Region("440300", "深圳市", False, ("kiosk",), ("310", "390"), 2, "csv")),
        Change("update", Region("440100", "广州", source="1901"), old, ("1901",)),
        Change("update", Region("440100", "广州", source="manual"), old, None)]))
    storage.read_all(s)
    storage.read_view(s)
    storage.find(s, "440100")
    return [(sql, p) for sql, p in conn.log if sql != "fetchmany"]


@pytest.mark.parametrize("dialect", ddl.DIALECTS)
def test_every_region_query_parses_on_its_database(dialect):
    log = recorded(dialect)
    assert len(log) >= 6
    for sql, _ in log:
        text = sql
        if dialect in ("mysql", "postgresql"):
            text = re.sub(r"%\((\w+)\)s", r":\1", text)
        if dialect == "postgresql":
            text = re.sub(r"\$(\d+)", r":p\1", text)
        tree = ddl.parse(dialect, text.replace("?", ":x") if dialect == "sqlserver" else text)
        assert not isinstance(tree, exp.Command), text[:120]


def test_oracle_binds_exactly_its_names_and_never_an_empty_string():
    for sql, params in recorded("oracle"):
        names = set(re.findall(r"(?<![:\w]):([A-Za-z_]\w*)", sql))
        assert names == set(params or {}), (sql, params)
        assert not names & {n.lower() for n in ORACLE_RESERVED}, names
        assert all(v != "" for v in (params or {}).values()), params
        assert not sql.rstrip().endswith(";") and "LIMIT" not in sql


def test_sqlserver_binds_one_value_per_mark():
    for sql, params in recorded("sqlserver"):
        assert isinstance(params, list) and sql.count("?") == len(params), (sql, params)


def test_updates_are_guarded_by_the_source_and_keyed_by_the_code():
    updates = [(sql, p) for sql, p in recorded("postgresql") if sql.lstrip().startswith("UPDATE")]
    assert len(updates) == 2
    assert "WHERE admdvs = " in updates[0][0] and "AND source IN (" in updates[0][0]
    assert "source IN" not in updates[1][0].split("WHERE")[1]
