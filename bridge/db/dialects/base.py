from __future__ import annotations

import re
from functools import lru_cache

_NAMED = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


class Dialect:
    """What differs between databases.  Subclasses set the class attributes."""

    name = "base"
    # Driver parameter style: "named" (:x, sqlite/oracle), "pyformat" (%(x)s), "qmark" (?).
    paramstyle = "named"
    # The database's clock; leases and retry times never come from the daemon's clock.
    now = "CURRENT_TIMESTAMP"
    supports_notify = False
    # One claim query: the open, due rows whose serialisation key has no older
    # unfinished row, locked so a concurrent worker skips them.
    claim_sql = ""

    def after(self, param: str) -> str:
        """SQL for 'database now + :param seconds'."""
        raise NotImplementedError

    def seconds(self, value: float):
        """The value to bind for a parameter used in after()."""
        return float(value)

    identity_upsert_sql = ""

    def age_seconds(self, column: str) -> str:
        """SQL for the seconds between a timestamp column and the database's now."""
        raise NotImplementedError

    def connect(self, url):
        raise NotImplementedError

    def claim_candidates(self, cur, limit: int) -> list:
        """Run claim_sql and return at most `limit` (id, state) rows.  Oracle
        overrides this: it cannot combine a row limit with FOR UPDATE, so it
        fetches only `limit` rows of the open cursor instead."""
        text, args = self.convert(self.claim_sql, {"limit": limit})
        cur.execute(text, args)
        return cur.fetchall()

    def begin_claim(self, conn) -> None:
        """Start the claim transaction (SQLite needs BEGIN IMMEDIATE)."""

    def is_disconnect(self, exc: BaseException) -> bool:
        """True when exc means the connection is unusable and must be reopened."""
        return False

    def convert(self, sql: str, params: dict):
        return _convert(self.paramstyle, sql, tuple(sorted(params)) if params else ())(params)


def on_conflict_identity_upsert(now: str) -> str:
    """The identity upsert for databases with INSERT ... ON CONFLICT (PostgreSQL, SQLite)."""
    return f"""
        INSERT INTO mi_identity (his_patient_id, psn_no, insuplc_admdvs, insutype, benefit,
                                 psn_cert_type, source_outbox_id, updated_at)
        VALUES (:his_patient_id, :psn_no, :insuplc_admdvs, :insutype, :benefit,
                :psn_cert_type, :source_outbox_id, {now})
        ON CONFLICT (his_patient_id) DO UPDATE SET
            psn_no = excluded.psn_no, insuplc_admdvs = excluded.insuplc_admdvs,
            insutype = excluded.insutype, benefit = excluded.benefit,
            psn_cert_type = excluded.psn_cert_type, source_outbox_id = excluded.source_outbox_id,
            updated_at = excluded.updated_at"""


@lru_cache(maxsize=512)
def _convert(style: str, sql: str, _keys: tuple):
    if style == "named":
        return lambda p: (sql, p)
    if style == "pyformat":
        text = _NAMED.sub(lambda m: f"%({m.group(1)})s", sql.replace("%", "%%"))
        return lambda p: (text, p)
    if style == "qmark":
        order = _NAMED.findall(sql)
        text = _NAMED.sub("?", sql)
        return lambda p: (text, [p[k] for k in order])
    raise ValueError(style)
