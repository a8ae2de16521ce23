from __future__ import annotations

from bridge.db.dialects.base import Dialect, on_conflict_identity_upsert


class PostgreSQLDialect(Dialect):
    name = "postgresql"
    paramstyle = "pyformat"
    now = "now()"
    supports_notify = True
    claim_sql = """
        SELECT o.id, o.state FROM mi_outbox o
         WHERE o.state IN ('pending', 'in_doubt') AND o.next_attempt_at <= now()
           AND NOT EXISTS (SELECT 1 FROM mi_outbox p
                            WHERE p.serial_key = o.serial_key AND p.id < o.id
                              AND p.state NOT IN ('done', 'failed', 'resolved'))
         ORDER BY o.next_attempt_at, o.id
         LIMIT :limit
           FOR UPDATE OF o SKIP LOCKED"""
    identity_upsert_sql = on_conflict_identity_upsert("now()")

    def after(self, param: str) -> str:
        return f"(now() + make_interval(secs => :{param}))"

    def age_seconds(self, column: str) -> str:
        return f"EXTRACT(EPOCH FROM now() - {column})"

    def connect(self, url, autocommit: bool = False):
        import psycopg

        kwargs = dict(host=url.host, port=url.port or 5432, user=url.user or None,
                      password=url.password or None, dbname=url.database,
                      connect_timeout=int(url.options.get("connect_timeout", 10)),
                      autocommit=autocommit, application_name="mibridge",
                      # A half-open connection (network cut) must fail in seconds, not
                      # hang the heartbeat while leases run out.
                      keepalives=1, keepalives_idle=10, keepalives_interval=5, keepalives_count=3)
        return psycopg.connect(**{k: v for k, v in kwargs.items() if v is not None})

    def is_disconnect(self, exc: BaseException) -> bool:
        import psycopg

        return isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError))
