"""The daemon's configuration: a TOML file (install/mibridge.example.toml) plus
environment variables for anything secret.  Secrets never live in the
database and never in the TOML file: the file names the environment variable."""
from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]


class ConfigError(ValueError):
    pass


@dataclass
class DatabaseConfig:
    url: str = "sqlite:///mibridge.db"
    password_env: str = "MIBRIDGE_DB_PASSWORD"


@dataclass
class DaemonConfig:
    workers: int = 4
    claim_batch: int = 10               # most rows one claim takes for the idle workers (1: one at a time)
    group_writes: bool = False          # workers' coinciding writes in one round trip (less database work, less throughput)
    poll_interval: float = 1.0          # seconds between polls when idle (NOTIFY wakes PostgreSQL sooner)
    lease_seconds: float = 30.0         # a worker's claim on a row; renewed every third of it
    retry_base_seconds: float = 2.0
    retry_cap_seconds: float = 600.0
    recovery_interval: float = 10.0     # how often the rescuer looks for expired leases
    purge_keep_days: int = 400          # finished, consumed requests older than this are deleted
    purge_hour: int = 3                 # local hour of the nightly purge
    name: str = field(default_factory=socket.gethostname)
    stop_timeout: float = 30.0          # on SIGTERM, how long in-flight rows may take to finish


@dataclass
class LoggingConfig:
    level: str = "INFO"
    file: str = ""                      # empty: stderr only (journald / the Windows event log collect it)
    rotation: str = "50 MB"
    retention: str = "90 days"


@dataclass
class TestPlatformConfig:
    url: str = ""                       # the built-in test flow's platform; empty: test flows disabled
    timeout: float = 2.0
    settle_seconds: float = 5.0         # after this, a charge the platform does not know was never booked


@dataclass
class Config:
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    daemon: DaemonConfig = field(default_factory=DaemonConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    testplatform: TestPlatformConfig = field(default_factory=TestPlatformConfig)
    # Platform sections ([mobilepay], [offline], [facepay]) are read by the
    # code that builds each client, as plain dicts.
    platforms: dict = field(default_factory=dict)
    source: Optional[Path] = None


_SECTIONS = {"database": DatabaseConfig, "daemon": DaemonConfig, "logging": LoggingConfig,
             "testplatform": TestPlatformConfig}


def _build(cls, section: str, raw: dict):
    known = set(cls.__dataclass_fields__)
    unknown = set(raw) - known
    if unknown:
        raise ConfigError(f"[{section}]: unknown setting(s) {', '.join(sorted(unknown))}; "
                          f"known: {', '.join(sorted(known))}")
    try:
        return cls(**raw)
    except TypeError as exc:
        raise ConfigError(f"[{section}]: {exc}") from None


def load(path: Optional[str | Path] = None) -> Config:
    raw: dict = {}
    if path:
        p = Path(path)
        try:
            raw = tomllib.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file {p} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {p} is not valid TOML: {exc}") from None
    cfg = Config(source=Path(path) if path else None)
    for name, cls in _SECTIONS.items():
        if name in raw:
            setattr(cfg, name, _build(cls, name, raw.pop(name)))
    cfg.platforms = raw
    # Environment overrides, for containers and service managers.
    if os.environ.get("MIBRIDGE_DB_URL"):
        cfg.database.url = os.environ["MIBRIDGE_DB_URL"]
    if cfg.daemon.workers < 1:
        raise ConfigError("[daemon] workers must be at least 1")
    if not isinstance(cfg.daemon.claim_batch, int) or not 1 <= cfg.daemon.claim_batch <= 500:
        raise ConfigError("[daemon] claim_batch must be a whole number from 1 to 500")
    if cfg.daemon.lease_seconds < 1:
        raise ConfigError("[daemon] lease_seconds must be at least 1")
    return cfg
