from __future__ import annotations

from bridge.db.dialects.base import Dialect


class MySQLDialect(Dialect):
    """MariaDB 10.7+ (SKIP LOCKED needs 10.6, JSON_EQUALS in the SQL needs 10.7)."""

    name = "mysql"
    paramstyle = "pyformat"
    # The claim reads the virtual columns ready_at / open_serial_key (see
    # sql/mysql/install.sql): they are NULL exactly for rows it must skip, so
    # their indexes hold only open rows, like PostgreSQL's partial indexes.
    # UTC, like the column defaults: independent of any session's time_zone.
    now = "UTC_TIMESTAMP(6)"
    claim_sql = """
        SELECT o.id, o.state FROM mi_outbox o FORCE INDEX (mi_outbox_ready_ix)
         WHERE o.ready_at <= UTC_TIMESTAMP(6)
           AND NOT EXISTS (SELECT 1 FROM mi_outbox p
                            WHERE p.open_serial_key = o.serial_key AND p.id < o.id)
         ORDER BY o.ready_at, o.id
         LIMIT :limit
           FOR UPDATE SKIP LOCKED"""
    identity_upsert_sql = """
        INSERT INTO mi_identity (his_patient_id, psn_no, insuplc_admdvs, insutype, benefit,
                                 psn_cert_type, source_outbox_id, updated_at)
        VALUES (:his_patient_id, :psn_no, :insuplc_admdvs, :insutype, :benefit,
                :psn_cert_type, :source_outbox_id, UTC_TIMESTAMP(6))
        ON DUPLICATE KEY UPDATE
            psn_no = VALUES(psn_no), insuplc_admdvs = VALUES(insuplc_admdvs),
            insutype = VALUES(insutype), benefit = VALUES(benefit),
            psn_cert_type = VALUES(psn_cert_type), source_outbox_id = VALUES(source_outbox_id),
            updated_at = VALUES(updated_at)"""

    def after(self, param: str) -> str:
        return f"TIMESTAMPADD(MICROSECOND, :{param}, UTC_TIMESTAMP(6))"

    def seconds(self, value: float):
        return int(value * 1_000_000)

    def age_seconds(self, column: str) -> str:
        return f"(TIMESTAMPDIFF(MICROSECOND, {column}, UTC_TIMESTAMP(6)) / 1000000)"

    def connect(self, url):
        import pymysql

        conn = pymysql.connect(host=url.host, port=url.port or 3306, user=url.user,
                               password=url.password, database=url.database,
                               charset="utf8mb4", autocommit=False,
                               connect_timeout=int(url.options.get("connect_timeout", 10)),
                               # A half-open connection must fail, not hang a heartbeat.
                               read_timeout=int(url.options.get("read_timeout", 120)),
                               write_timeout=int(url.options.get("write_timeout", 120)),
                               unix_socket=url.options.get("unix_socket"))
        with conn.cursor() as cur:
            # READ COMMITTED: the claim's "no older open row with my serial key"
            # check must see other workers' latest commits, not a snapshot.
            cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
            # Whatever the server's default: a value too long for its column is an
            # error, never cut short (a cut key could become another request's key),
            # and backslashes in strings are escapes, as the driver assumes.
            cur.execute("SET SESSION sql_mode = 'STRICT_ALL_TABLES,ERROR_FOR_DIVISION_BY_ZERO,"
                        "NO_ZERO_DATE,NO_ENGINE_SUBSTITUTION'")
        conn.commit()
        return conn

    def is_disconnect(self, exc: BaseException) -> bool:
        import pymysql

        return isinstance(exc, (pymysql.err.OperationalError, pymysql.err.InterfaceError))
