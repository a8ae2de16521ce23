"""The daemon's configuration: a TOML file (install/mibridge.example.toml) plus
environment variables for anything secret.  Secrets never live in the
database and never in the TOML file: the file names the environment variable.

Every section is checked at start by a pydantic model (https://docs.pydantic.dev):
an unknown section (a misspelt [mobilpay]), an unknown setting or a value of the
wrong type stops the daemon with a message that names the section and the key.
The models are strict, as a TOML file has real types: `workers = "two"` or
`workers = "4"` is refused, not guessed.

    SECTIONS        the registry: section name -> model.  The core sections are
                    below; the platform modules (daemon/platforms.py,
                    daemon/platforms_facepay.py) register theirs, and so will the
                    later ones ([wechatpay], [alipay], [console], [metrics]);
                    daemon/regions.py registers [regions].
                    daemon/reconcile_job.py registers [reconciliation].
"""
from __future__ import annotations

import difflib
import importlib
import json
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from daemon.http_server import HttpLimits

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]


class ConfigError(ValueError):
    pass


STRICT = ConfigDict(extra="forbid", strict=True)


class DatabaseConfig(BaseModel):
    model_config = STRICT

    url: str = "sqlite:///mibridge.db"
    password_env: str = "MIBRIDGE_DB_PASSWORD"

    @field_validator("url")
    @classmethod
    def _no_password(cls, url: str) -> str:
        try:
            password = urlsplit(url).password
        except ValueError:
            password = None
        if password:
            raise ValueError("the URL holds a password; leave it out and put it in the environment "
                             "variable named by password_env (default MIBRIDGE_DB_PASSWORD)")
        return url


class DaemonConfig(BaseModel):
    model_config = STRICT

    workers: int = Field(4, ge=1, le=256)
    claim_batch: int = Field(10, ge=1, le=500)  # most rows one claim takes for the idle workers (1: one at a time)
    group_writes: bool = False                  # workers' coinciding writes in one round trip (less database work, less throughput)
    poll_interval: float = Field(1.0, gt=0)     # seconds between polls when idle (NOTIFY wakes PostgreSQL sooner)
    lease_seconds: float = Field(30.0, ge=1)    # a worker's claim on a row; renewed every third of it
    retry_base_seconds: float = Field(2.0, gt=0)
    retry_cap_seconds: float = Field(600.0, gt=0)
    recovery_interval: float = Field(10.0, gt=0)  # how often the rescuer looks for expired leases
    purge_keep_days: int = Field(400, ge=1)     # finished, consumed requests older than this are deleted
    purge_hour: int = Field(3, ge=0, le=23)     # local hour of the nightly purge
    name: str = Field(default_factory=socket.gethostname)
    stop_timeout: float = Field(30.0, ge=0)     # on SIGTERM, how long in-flight rows may take to finish


class LoggingConfig(BaseModel):
    model_config = STRICT

    level: str = "INFO"
    file: str = ""                      # empty: stderr only (journald / the Windows event log collect it)
    # "json": one JSON object per line (loguru's serialize), for log shippers.
    format: Literal["text", "json"] = "text"
    # A platform that cannot be reached: one WARNING per interface per this many seconds, with a count.
    outage_log_seconds: float = Field(60.0, gt=0)
    rotation: str = "50 MB"
    retention: str = "90 days"

    @field_validator("level")
    @classmethod
    def _level(cls, v: str) -> str:
        levels = ("TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL")
        if v.upper() not in levels:
            raise ValueError(f"must be one of {', '.join(levels)}")
        return v.upper()


class ConsoleUser(BaseModel):
    """One console login.  The password is given only as a hash (werkzeug's
    generate_password_hash: scrypt or pbkdf2), and only through the environment or a
    file readable by the service account: `mibridge console-hash` makes one."""
    model_config = STRICT

    name: str = Field(..., min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_.@-]+$")
    role: Literal["viewer", "operator"]
    password_hash_env: Optional[str] = None
    password_hash_file: Optional[str] = None


class ConsoleConfig(BaseModel):
    """[console]: the web console (daemon/console/), off by default, on loopback."""
    model_config = STRICT

    enabled: bool = False
    listen: str = "127.0.0.1:8780"
    # The session-signing secret: from the environment or a file, never here.
    secret_key_env: Optional[str] = None
    secret_key_file: Optional[str] = None
    users: list[ConsoleUser] = Field(default_factory=list)
    language: Literal["zh+en", "zh", "en"] = "zh+en"
    # Behind an HTTPS front (docs/operations.md): cookies are sent over TLS only.
    secure_cookies: bool = False
    session_minutes: int = Field(60, ge=1, le=24 * 60)   # idle time before a new login is needed
    login_attempts: int = Field(5, ge=1)                  # failed logins per name and address ...
    login_window_seconds: int = Field(900, ge=1)          # ... within this window, then refused


class MetricsConfig(BaseModel):
    """[metrics]: /metrics (Prometheus), /healthz and /readyz.  Off by default; on
    loopback; the same listen address as [console] puts them on its listener."""
    model_config = STRICT

    enabled: bool = False
    listen: str = "127.0.0.1:8781"
    cache_seconds: float = Field(5.0, ge=0)       # the database figures are read at most this often
    # /readyz: a worker that has not come back to its loop for this long is stuck.
    worker_stall_seconds: float = Field(300.0, gt=0)


class TestPlatformConfig(BaseModel):
    model_config = STRICT
    __test__ = False                    # not a pytest test class

    url: str = ""                       # the built-in test flow's platform; empty: test flows disabled
    timeout: float = Field(2.0, gt=0)
    settle_seconds: float = Field(5.0, ge=0)  # after this, a charge the platform does not know was never booked


# The registry of sections.  [http]: the limits of every HTTP listener the
# daemon opens for the platforms' callbacks (daemon/http_server.py).
SECTIONS: dict[str, type[BaseModel]] = {
    "database": DatabaseConfig, "daemon": DaemonConfig, "logging": LoggingConfig,
    "testplatform": TestPlatformConfig, "http": HttpLimits, "console": ConsoleConfig,
    "metrics": MetricsConfig,
}
# Modules that register more sections when imported (kept out of this module's
# imports: they build on it).
_SECTION_MODULES = ("daemon.platforms", "daemon.platforms_facepay", "daemon.regions", "daemon.platforms_channels",
                    "daemon.reconcile_job", "daemon.wiring_identity")


def register_section(name: str, model: type[BaseModel]) -> None:
    if SECTIONS.get(name, model) is not model:
        raise ValueError(f"config section [{name}] registered twice")
    SECTIONS[name] = model


def sections() -> dict[str, type[BaseModel]]:
    for mod in _SECTION_MODULES:
        importlib.import_module(mod)
    return SECTIONS


@dataclass
class Config:
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    daemon: DaemonConfig = field(default_factory=DaemonConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    testplatform: TestPlatformConfig = field(default_factory=TestPlatformConfig)
    http: HttpLimits = field(default_factory=HttpLimits)
    console: ConsoleConfig = field(default_factory=ConsoleConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    # Platform sections ([mobilepay], [offline], [facepay]), as written: validated
    # by load(), turned into clients and settings by the code that builds them
    # (daemon/platforms.py), which validates them again.
    platforms: dict = field(default_factory=dict)
    source: Optional[Path] = None


_CORE = ("database", "daemon", "logging", "testplatform", "http", "console", "metrics")


def validate_section(name: str, raw: Any) -> BaseModel:
    """One section's table -> its model, or a ConfigError naming each bad key."""
    model = sections().get(name)
    if model is None:
        raise ConfigError(_unknown_section(name))
    if not isinstance(raw, dict):
        raise ConfigError(f"[{name}] must be a table (a [{name}] header with key = value lines)")
    for key, value in raw.items():
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            raise ConfigError(f"[{name}] {key}: a {type(value).__name__} is not a value mibridge reads "
                              f"(write a number, text, true/false or a list)") from None
    try:
        # JSON mode: a TOML list fills a tuple setting, text or a number an amount.
        return model.model_validate_json(json.dumps(raw))
    except ValidationError as exc:
        raise ConfigError(_explain(name, exc)) from None


def _explain(section: str, exc: ValidationError) -> str:
    lines = []
    for e in exc.errors(include_url=False):
        key = ".".join(str(p) for p in e["loc"])
        if not key:                     # a check of the whole section: its message names the key
            lines.append(f"[{section}] {e['msg'].removeprefix('Value error, ')}")
            continue
        if e["type"] == "extra_forbidden":
            known = ", ".join(sorted(sections()[section].model_fields))
            close = difflib.get_close_matches(str(e["loc"][0]), sections()[section].model_fields, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            lines.append(f"[{section}] {key}: unknown setting{hint}; known: {known}")
        elif e["type"] == "missing":
            lines.append(f"[{section}] {key}: required")
        else:
            given = e.get("input")
            # The value is shown for a type or range error only: a value our own checks
            # refuse may be a secret (a password inside a URL).
            shown = "" if e["type"] == "value_error" or isinstance(given, (dict, list)) or given is None \
                else f" (given {str(given)[:60]!r})"
            msg = e["msg"].removeprefix("Value error, ")
            lines.append(f"[{section}] {key}: {msg}{shown}")
    return "; ".join(lines)


def _unknown_section(name: str) -> str:
    known = sorted(sections())
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" (did you mean [{close[0]}]?)" if close else ""
    return f"unknown section [{name}]{hint}; known sections: {', '.join(f'[{k}]' for k in known)}"


def load(path: Optional[str | Path] = None) -> Config:
    raw: dict = {}
    if path:
        p = Path(path)
        try:
            raw = tomllib.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file {p} does not exist") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"config file {p} cannot be read: {exc}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {p} is not valid TOML: {exc}") from None
    cfg = Config(source=Path(path) if path else None)
    problems = []
    for name in raw:
        if name not in sections():
            problems.append(_unknown_section(name))
    for name, table in raw.items():
        if name not in SECTIONS:
            continue
        try:
            model = validate_section(name, table)
        except ConfigError as exc:
            problems.append(str(exc))
            continue
        if name in _CORE:
            setattr(cfg, name, model)
        else:
            cfg.platforms[name] = table
    if problems:
        where = f"config file {path}: " if path else ""
        raise ConfigError(where + "; ".join(problems))
    # Environment overrides, for containers and service managers (the
    # environment may hold a password: it is where secrets go).
    if os.environ.get("MIBRIDGE_DB_URL"):
        cfg.database.url = os.environ["MIBRIDGE_DB_URL"]
    return cfg
