"""One module per database: how to connect, and the few SQL fragments that differ.

Everything else the engine runs is shared SQL in bridge/db/store.py, written
with :named parameters that each dialect turns into its driver's style.
"""
from __future__ import annotations

from bridge.db.dialects.base import Dialect


def get_dialect(name: str) -> Dialect:
    if name == "sqlite":
        from bridge.db.dialects.sqlite import SQLiteDialect
        return SQLiteDialect()
    if name == "postgresql":
        from bridge.db.dialects.postgresql import PostgreSQLDialect
        return PostgreSQLDialect()
    if name == "mysql":
        from bridge.db.dialects.mysql import MySQLDialect
        return MySQLDialect()
    if name == "oracle":
        from bridge.db.dialects.oracle import OracleDialect
        return OracleDialect()
    if name == "sqlserver":
        from bridge.db.dialects.sqlserver import SQLServerDialect
        return SQLServerDialect()
    raise ValueError(f"unknown dialect {name!r}")
