"""SQL Server 2016+ through pyodbc and Microsoft's ODBC driver.

URL: mssql://mibridge_daemon@dbhost:1433/hisdb?driver=ODBC+Driver+18+for+SQL+Server
options:
  driver                    ODBC driver name (default "ODBC Driver 18 for SQL Server")
  encrypt                   yes | no | strict (default yes, as Driver 18 does)
  trust_server_certificate  yes | no (default no; yes accepts a self-signed
                            server certificate: only on a trusted network)
  instance                  named instance (e.g. SQLEXPRESS) instead of a port
  connect_timeout           login timeout in seconds (default 10)
With no user in the URL the driver logs in with the service account
(Trusted_Connection=yes, Windows or Kerberos authentication).
"""
from __future__ import annotations

from bridge.db.dialects.base import IDENTITY_COLUMNS, Dialect

# The parameter types of the identity MERGE (the driver cannot type a bare "? AS name",
# which breaks NULLs): the columns' own (install.sql).
_IDENTITY_TYPES = {"his_patient_id": "NVARCHAR(64)", "psn_no": "NVARCHAR(40)", "insuplc_admdvs": "NVARCHAR(12)",
                   "insutype": "NVARCHAR(12)", "benefit": "NVARCHAR(40)", "psn_cert_type": "NVARCHAR(8)",
                   "psn_type": "NVARCHAR(12)", "med_type": "NVARCHAR(8)", "benefit_status": "NVARCHAR(16)",
                   "certno_masked": "NVARCHAR(40)", "psn_name_masked": "NVARCHAR(100)", "gend": "NVARCHAR(4)",
                   "chosen": "SMALLINT", "source_kind": "NVARCHAR(40)", "source_outbox_id": "BIGINT"}

DEFAULT_DRIVER = "ODBC Driver 18 for SQL Server"
_TRUE = {"1", "yes", "true", "on"}
_FALSE = {"0", "no", "false", "off"}


class SQLServerDialect(Dialect):
    name = "sqlserver"
    paramstyle = "qmark"
    now = "SYSUTCDATETIME()"
    # READPAST: rows another worker is claiming are skipped (SQL Server's SKIP
    # LOCKED); ROWLOCK: no page locks.  No UPDLOCK: it would also lock, until
    # the claim commits, every row the NOT EXISTS then rejects (past about
    # 5,000 locks the whole table, and the HIS's inserts wait).  The candidates
    # are not locked: the claim's UPDATE is guarded by the row's state, so of
    # two workers that chose the same row only one takes it.
    claim_sql = """
        SELECT TOP (:limit) o.id, o.state FROM mi_outbox o WITH (READPAST, ROWLOCK)
         WHERE o.state IN (N'pending', N'in_doubt') AND o.next_attempt_at <= SYSUTCDATETIME()
           AND NOT EXISTS (SELECT 1 FROM mi_outbox p
                            WHERE p.serial_key = o.serial_key AND p.id < o.id
                              AND p.state IN (N'pending', N'running', N'in_doubt', N'held'))
         ORDER BY o.next_attempt_at, o.id"""
    # HOLDLOCK: without it two concurrent MERGEs for a new patient can both
    # take the INSERT branch.  The CASTs give the parameters a type (the driver
    # cannot infer one for a bare "? AS name", which breaks NULLs).
    identity_upsert_sql = f"""
        MERGE mi_identity WITH (HOLDLOCK) AS t
        USING (SELECT {', '.join(f'CAST(:{c} AS {_IDENTITY_TYPES[c]}) AS {c}' for c in IDENTITY_COLUMNS)}) AS s
           ON t.his_patient_id = s.his_patient_id
         WHEN MATCHED THEN UPDATE SET
              {', '.join(f'{c} = s.{c}' for c in IDENTITY_COLUMNS[1:])}, updated_at = SYSUTCDATETIME()
         WHEN NOT MATCHED THEN INSERT ({', '.join(IDENTITY_COLUMNS)}, updated_at)
              VALUES ({', '.join('s.' + c for c in IDENTITY_COLUMNS)}, SYSUTCDATETIME());"""

    def after(self, param: str) -> str:
        # DATEADD takes an int: milliseconds overflow it after 24.8 days (purge
        # goes back months), so whole days and the remaining milliseconds are
        # added separately.  T-SQL's / and % truncate toward zero, which keeps
        # negative values right.
        return (f"DATEADD(MILLISECOND, :{param} % 86400000, "
                f"DATEADD(DAY, :{param} / 86400000, SYSUTCDATETIME()))")

    def seconds(self, value: float):
        """after() takes whole milliseconds."""
        return int(round(value * 1000))

    def age_seconds(self, column: str) -> str:
        return f"(DATEDIFF_BIG(MICROSECOND, {column}, SYSUTCDATETIME()) / 1000000.0)"

    def connection_string(self, url) -> str:
        opts = {k.lower(): v for k, v in url.options.items()}
        driver = opts.get("driver", DEFAULT_DRIVER)
        server = f"tcp:{url.host}"
        if opts.get("instance"):
            server += "\\" + opts["instance"]
        else:
            server += f",{url.port or 1433}"
        parts = [("DRIVER", driver), ("SERVER", server)]
        if url.database:
            parts.append(("DATABASE", url.database))
        if url.user:
            parts += [("UID", url.user), ("PWD", url.password)]
        else:
            parts.append(("Trusted_Connection", "yes"))
        encrypt = opts.get("encrypt", "yes").lower()
        if encrypt in _TRUE:
            encrypt = "yes"
        elif encrypt in _FALSE:
            encrypt = "no"
        elif encrypt != "strict":
            raise ValueError(f"encrypt must be yes, no or strict, not {opts['encrypt']!r}")
        parts.append(("Encrypt", encrypt))
        trust = opts.get("trust_server_certificate", opts.get("trustservercertificate", "no")).lower()
        if trust not in _TRUE | _FALSE:
            raise ValueError(f"trust_server_certificate must be yes or no, not {trust!r}")
        parts.append(("TrustServerCertificate", "yes" if trust in _TRUE else "no"))
        parts.append(("APP", "mibridge"))
        # The driver name is always braced, as the ODBC documentation writes it.
        return ";".join(f"{k}={{{v}}}" if k == "DRIVER" else f"{k}={_odbc_value(v)}" for k, v in parts)

    def connect(self, url):
        import pyodbc

        conn = pyodbc.connect(self.connection_string(url), autocommit=False,
                              timeout=int(url.options.get("connect_timeout", 10)))
        cur = conn.cursor()
        # XACT_ABORT: any error rolls back the whole transaction on the server,
        # so a failed step never leaves half its writes behind.  NOCOUNT OFF:
        # a server-wide 'user options' NOCOUNT would make pyodbc report a
        # rowcount of -1, and every guarded UPDATE would look like a lost lease.
        # The rest are ODBC's defaults, set in case the server's differ.
        cur.execute("SET XACT_ABORT ON; SET NOCOUNT OFF; SET ANSI_NULLS ON; SET QUOTED_IDENTIFIER ON; "
                    "SET ANSI_WARNINGS ON; SET ARITHABORT ON; SET CONCAT_NULL_YIELDS_NULL ON; "
                    "SET ANSI_PADDING ON; SET NUMERIC_ROUNDABORT OFF")
        cur.close()
        conn.commit()
        return conn

    def is_disconnect(self, exc: BaseException) -> bool:
        import pyodbc

        if not isinstance(exc, pyodbc.Error):
            return False
        state = str(exc.args[0]) if exc.args else ""
        # SQLSTATE class 08: connection exceptions (08S01 communication link failure, ...).
        if state.startswith("08"):
            return True
        return "closed connection" in str(exc).lower()


def _odbc_value(value) -> str:
    """Quote an ODBC connection-string value: {...} with } doubled when needed."""
    text = "" if value is None else str(value)
    if any(c in text for c in ";{}=") or text != text.strip():
        return "{" + text.replace("}", "}}") + "}"
    return text
