"""Oracle Free and SQL Server in Docker for a test run, where a Docker engine
exists (pip install -e '.[containers]'):

    MIBRIDGE_TEST_CONTAINERS=oracle,sqlserver python3 -m pytest tests/engine

tests/conftest.py calls start_requested() before it lists the dialects; the
containers' URLs then go into MIBRIDGE_TEST_ORACLE_URL / MIBRIDGE_TEST_MSSQL_URL
exactly as a site's own staging server would, and every database-backed test
runs on them too.  The containers stop when the run ends.
"""
from __future__ import annotations

import atexit
import os

ORACLE_IMAGE = os.environ.get("MIBRIDGE_TEST_ORACLE_IMAGE", "gvenzl/oracle-free:slim-faststart")
MSSQL_IMAGE = os.environ.get("MIBRIDGE_TEST_MSSQL_IMAGE", "mcr.microsoft.com/mssql/server:2022-latest")


def start_requested(spec: str) -> None:
    wanted = {s.strip().lower() for s in spec.split(",") if s.strip()}
    if wanted & {"1", "all", "yes"}:
        wanted = {"oracle", "sqlserver"}
    unknown = wanted - {"oracle", "sqlserver"}
    if unknown:
        raise SystemExit(f"MIBRIDGE_TEST_CONTAINERS: unknown {', '.join(sorted(unknown))} "
                         f"(use oracle, sqlserver)")
    try:
        import docker
        docker.from_env().ping()
    except Exception as exc:
        raise SystemExit(f"MIBRIDGE_TEST_CONTAINERS needs the 'containers' extra and a running "
                         f"Docker engine: {type(exc).__name__}: {exc}") from None
    if "oracle" in wanted and not os.environ.get("MIBRIDGE_TEST_ORACLE_URL"):
        from testcontainers.oracle import OracleDbContainer

        c = OracleDbContainer(ORACLE_IMAGE)
        c.start()
        atexit.register(c.stop)
        # SYSTEM may create users and kill their sessions, as make_database needs.
        os.environ["MIBRIDGE_TEST_ORACLE_URL"] = (
            f"oracle://system:{c.oracle_password}@{c.get_container_host_ip()}:"
            f"{c.get_exposed_port(1521)}/FREEPDB1")
    if "sqlserver" in wanted and not os.environ.get("MIBRIDGE_TEST_MSSQL_URL"):
        from testcontainers.mssql import SqlServerContainer

        c = SqlServerContainer(MSSQL_IMAGE)
        c.start()
        atexit.register(c.stop)
        os.environ["MIBRIDGE_TEST_MSSQL_URL"] = (
            f"mssql://sa:{c.password}@{c.get_container_host_ip()}:{c.get_exposed_port(1433)}/master"
            f"?trust_server_certificate=yes")
