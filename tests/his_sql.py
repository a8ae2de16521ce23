"""The HIS's two calls, exactly as docs/his-integration.md tells an HIS to make
them on each database (a procedure where there is one; SQLite's INSERT into
mi_outbox and into the mi_inbox_consume view)."""
from __future__ import annotations

from typing import Optional

from bridge.db.store import Store


def his_enqueue(store: Store, kind: Optional[str], key: Optional[str], serial: Optional[str],
                payload: Optional[str]) -> Optional[int]:
    """Returns the outbox id (None where the database ignored a repeat: SQLite)."""
    name = store.dialect.name

    def go(cur):
        if name == "postgresql":
            # The Store's PostgreSQL cursors send the text as it is ($n parameters).
            cur.execute("SELECT mi_enqueue($1, $2, $3, $4)", (kind, key, serial, payload))
            return cur.fetchone()[0]
        if name == "mysql":
            cur.execute("CALL mi_enqueue(%s, %s, %s, %s, @mi_id)", (kind, key, serial, payload))
            cur.execute("SELECT @mi_id")
            return cur.fetchone()[0]
        if name == "oracle":
            import oracledb

            out = cur.var(oracledb.DB_TYPE_NUMBER)
            payload_var = cur.var(oracledb.DB_TYPE_CLOB)
            payload_var.setvalue(0, payload)
            cur.callproc("mi_enqueue", [kind, key, serial, payload_var, out])
            return out.getvalue()
        if name == "sqlserver":
            cur.execute("SET NOCOUNT ON; DECLARE @id BIGINT; "
                        "EXEC mi_enqueue @p_kind = ?, @p_business_key = ?, @p_serial_key = ?, "
                        "@p_payload = ?, @p_id = @id OUTPUT; SELECT @id;", (kind, key, serial, payload))
            return cur.fetchone()[0]
        cur.execute("INSERT INTO mi_outbox (kind, business_key, serial_key, payload) VALUES (?, ?, ?, ?)",
                    (kind, key, "" if serial is None else serial, payload))
        if cur.rowcount == 0:      # a repeat with the same payload: ignored
            return None
        cur.execute("SELECT id FROM mi_outbox WHERE kind = ? AND business_key = ?", (kind, key))
        return cur.fetchone()[0]
    got = store._tx(go)
    return None if got is None else int(got)


def his_consume(store: Store, inbox_id, ack) -> None:
    name = store.dialect.name

    def go(cur):
        if name == "postgresql":
            cur.execute("SELECT mi_inbox_consume($1, $2)", (inbox_id, ack))
        elif name == "mysql":
            cur.execute("CALL mi_inbox_consume(%s, %s)", (inbox_id, ack))
        elif name == "oracle":
            cur.callproc("mi_inbox_consume", [inbox_id, ack])
        elif name == "sqlserver":
            cur.execute("EXEC mi_inbox_consume @p_id = ?, @p_ack = ?", (inbox_id, ack))
        else:
            cur.execute("INSERT INTO mi_inbox_consume (id, his_ack) VALUES (?, ?)", (inbox_id, ack))
    store._tx(go)
