"""Database URLs, e.g.

    sqlite:///var/lib/mibridge/his.db      (three slashes, then the path; sqlite:///:memory: for tests)
    postgresql://mibridge_daemon@db.example:5432/hisdb
    mysql://mibridge_daemon@db.example:3306/hisdb
    oracle://mibridge_daemon@db.example:1521/HISPDB      (service name)
    mssql://mibridge_daemon@db.example:1433/hisdb?driver=ODBC+Driver+18+for+SQL+Server

The password is best left out of the URL (and so out of config files): it is
read from the environment variable named by `password_env` (default
MIBRIDGE_DB_PASSWORD) when the URL has none.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote, urlsplit

SCHEMES = {
    "sqlite": "sqlite",
    "postgresql": "postgresql", "postgres": "postgresql",
    "mysql": "mysql", "mariadb": "mysql",
    "oracle": "oracle",
    "mssql": "sqlserver", "sqlserver": "sqlserver",
}


class UrlError(ValueError):
    pass


@dataclass(frozen=True)
class DbUrl:
    dialect: str
    host: str = ""
    port: int | None = None
    user: str = ""
    password: str = field(default="", repr=False)
    database: str = ""
    options: dict = field(default_factory=dict)

    def redacted(self) -> str:
        if self.dialect == "sqlite":
            return f"sqlite:///{self.database}"
        port = f":{self.port}" if self.port else ""
        return f"{self.dialect}://{self.user}@{self.host}{port}/{self.database}"


def parse_url(url: str, password_env: str = "MIBRIDGE_DB_PASSWORD") -> DbUrl:
    parts = urlsplit(url)
    scheme = parts.scheme.split("+")[0].lower()
    if scheme not in SCHEMES:
        raise UrlError(f"unsupported database URL scheme {parts.scheme!r}; use one of "
                       f"{', '.join(sorted(set(SCHEMES)))}")
    dialect = SCHEMES[scheme]
    if dialect == "sqlite":
        path = url.split("://", 1)[1]
        if not path.startswith("/"):
            raise UrlError("sqlite URLs look like sqlite:///relative/or/absolute/path.db")
        path = path[1:]  # sqlite:///x.db -> x.db ; sqlite:////abs/x.db -> /abs/x.db
        if not path:
            raise UrlError("sqlite URL has no file path")
        return DbUrl(dialect="sqlite", database=path)
    password = unquote(parts.password or "") or os.environ.get(password_env, "")
    return DbUrl(
        dialect=dialect,
        host=parts.hostname or "localhost",
        port=parts.port,
        user=unquote(parts.username or ""),
        password=password,
        database=parts.path.lstrip("/"),
        options=dict(parse_qsl(parts.query)),
    )
