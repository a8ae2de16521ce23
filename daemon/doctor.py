"""`mibridge doctor`: everything `mibridge run` needs, checked one by one, each
with what is wrong in words.

    crypto        the SM2 backend (OpenSSL or the pure-Python fallback)
    config        the file loads (unknown sections and keys are named)
    database      reachable with the configured login; mi_ objects installed
    schema        the schema version is the one this mibridge needs (db status)
    clock         the difference between this machine's clock and the database's
    grants        the login may do what the daemon does on every mi_ table, and run
                  the admin functions (each probed by a statement that touches no
                  row, in a transaction that is rolled back)
    <platform>    for each configured platform: its secrets readable, its keys
                  parseable, its base URLs answering, and (offline gateway) a 9001
                  sign-in that succeeds
    console       the session secret and every user's password hash readable

None of these changes anything but the 9001 sign-in, which the daemon does at
start anyway.
"""
from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from typing import Callable, Optional
from urllib.parse import urlsplit

from loguru import logger

CLOCK_LIMIT_SECONDS = 30.0

# What the daemon does on each table (grants.sql gives exactly this): probes that
# touch no row.  {t} is the table.
_PROBES = {
    "SELECT": "SELECT 1 FROM {t} WHERE 1 = 0",
    "INSERT": "INSERT INTO {t} ({c}) SELECT {c} FROM {t} WHERE 1 = 0",
    "UPDATE": "UPDATE {t} SET {c} = {c} WHERE 1 = 0",
    "DELETE": "DELETE FROM {t} WHERE 1 = 0",
}
_NEEDS = {
    "mi_outbox": ("SELECT", "INSERT", "UPDATE", "DELETE"),
    "mi_inbox": ("SELECT", "INSERT", "UPDATE", "DELETE"),
    "mi_journal": ("SELECT", "INSERT", "UPDATE", "DELETE"),
    "mi_identity": ("SELECT", "INSERT", "UPDATE", "DELETE"),
    "mi_secret": ("SELECT", "INSERT", "DELETE"),
    "mi_audit": ("SELECT", "INSERT"),
    "mi_notice": ("SELECT", "INSERT", "UPDATE"),
    "mi_schema_version": ("SELECT",),
}
_PROBE_COLUMN = {"mi_outbox": "kind", "mi_inbox": "kind", "mi_journal": "step", "mi_identity": "psn_no",
                 "mi_secret": "name", "mi_audit": "action", "mi_notice": "interface",
                 "mi_schema_version": "name"}


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


def run_checks(cfg, url: Optional[str] = None, *, sign_in: bool = True) -> list[Check]:
    from bridge.db.store import Store

    out: list[Check] = []
    try:
        from bridge.crypto import sm2
        out.append(Check("crypto", True, f"SM2 backend {sm2.backend_name()}"))
    except Exception as exc:
        out.append(Check("crypto", False, f"SM2 unavailable ({_first_line(exc)})"))

    store = Store(url or cfg.database.url, cfg.database.password_env)
    where = store.url.redacted()
    try:
        store.ping()
        out.append(Check("database", True, f"reachable ({where}), mi_ tables present"))
        db_ok = True
    except Exception as exc:
        logger.opt(exception=exc).debug("doctor: database")
        out.append(Check("database", False, f"not reachable or mibridge not installed at {where} "
                                            f"({_first_line(exc)})"))
        db_ok = False
    if db_ok:
        out.append(_schema(store))
        out.append(_clock(store))
        out.append(_grants(store))
    store.close()

    for name, check in (("mobilepay", _mobilepay), ("offline", lambda c: _offline(c, sign_in)),
                        ("facepay", _facepay)):
        if cfg.platforms.get(name):
            out.extend(check(cfg))
    for name, raw in sorted(cfg.platforms.items()):
        if name not in ("mobilepay", "offline", "facepay") and isinstance(raw, dict):
            out.extend(_urls(name, raw))
    if cfg.console.enabled:
        try:
            from daemon.console import check
            check(cfg)
            out.append(Check("console", True, f"{len(cfg.console.users)} user(s), secret readable; "
                                              f"listening on {cfg.console.listen}"))
        except Exception as exc:
            out.append(Check("console", False, str(exc)))
    return out


def _schema(store) -> Check:
    from bridge.db import schema

    try:
        conn = store.conn
        have = schema.installed_version(conn, store.dialect.name)
        latest = schema.latest_version(store.dialect.name)
    except Exception as exc:
        return Check("schema", False, f"cannot read the schema version ({_first_line(exc)})")
    if have == latest:
        return Check("schema", True, f"version {have}, the latest")
    if have is None:
        return Check("schema", False, "mibridge is not installed: run 'mibridge db install'")
    if have < latest:
        return Check("schema", False, f"version {have}; this mibridge needs {latest}: stop the daemon and "
                                      f"run 'mibridge db upgrade'")
    return Check("schema", False, f"version {have} is newer than this mibridge knows ({latest}): "
                                  f"install the matching mibridge")


def _db_now(store) -> float:
    """The database's clock as a Unix time."""
    v = store.query(f"SELECT {store.dialect.now} FROM mi_schema_version WHERE version = 1"
                    if store.dialect.name == "oracle" else f"SELECT {store.dialect.now}")
    value = v[0][0] if v else None
    if isinstance(value, str):          # SQLite: UTC text
        value = dt.datetime.fromisoformat(value)
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:        # MariaDB UTC_TIMESTAMP, SQL Server SYSUTCDATETIME, SQLite: UTC
            value = value.replace(tzinfo=dt.timezone.utc)
        return value.timestamp()
    raise ValueError(f"unexpected clock value {value!r}")


def _clock(store) -> Check:
    try:
        before = time.time()
        db = _db_now(store)
        mine = (before + time.time()) / 2
    except Exception as exc:
        return Check("clock", False, f"cannot read the database's clock ({_first_line(exc)})")
    diff = mine - db
    text = f"this machine is {abs(diff):.1f} s {'ahead of' if diff >= 0 else 'behind'} the database"
    if abs(diff) > CLOCK_LIMIT_SECONDS:
        return Check("clock", False, text + f" (more than {CLOCK_LIMIT_SECONDS:.0f} s: leases and retries use "
                                            f"the database's clock, but platforms check the times we sign; "
                                            f"synchronise both with NTP)")
    return Check("clock", True, text)


def _grants(store) -> Check:
    if store.dialect.name == "sqlite":
        return Check("grants", True, "SQLite has no logins: the database file's permissions decide "
                                     "(sql/sqlite/grants.sql)")
    missing = []
    conn = store.conn
    for table, needs in _NEEDS.items():
        for priv in needs:
            sql = _PROBES[priv].format(t=table, c=_PROBE_COLUMN[table])
            try:
                cur = conn.cursor()
                cur.execute(sql)
            except Exception as exc:
                logger.debug("doctor: {} on {}: {}", priv, table, exc)
                missing.append(f"{priv} on {table}")
            finally:
                try:
                    conn.rollback()
                except Exception:
                    pass
    from bridge.db.store import AdminRefused

    for action in ("requeue", "resolve", "cancel"):
        try:
            store._admin(action, -1, "doctor", "doctor: rights probe")
        except AdminRefused as exc:
            if "does not exist" not in str(exc):
                missing.append(f"EXECUTE on mi_{action} ({exc})")
        except Exception as exc:
            logger.debug("doctor: mi_{}: {}", action, exc)
            missing.append(f"EXECUTE on mi_{action}")
    if missing:
        return Check("grants", False, f"the login {store.url.user or '(default)'} lacks: {', '.join(missing)} "
                                      f"(run sql/{store.dialect.name}/grants.sql, or mibridge db grants)")
    return Check("grants", True, f"the login {store.url.user or '(default)'} may do all the daemon does")


def _reachable(what: str, url: str, timeout: float = 5.0) -> Check:
    import httpx

    try:
        r = httpx.get(url, timeout=timeout)
        return Check(what, True, f"{url} answers (HTTP {r.status_code})")
    except Exception as exc:
        return Check(what, False, f"{url} does not answer ({_first_line(exc)})")


# Addresses the channels call *us* at (behind the hospital's HTTPS front): probing them
# from inside proves nothing and fails wherever the public name does not resolve
# internally, so only the addresses we call are probed.
_INBOUND_URLS = frozenset({"notify_url", "callback_url", "refund_notify_url", "call_url"})


def _urls(section: str, raw: dict) -> list[Check]:
    return [_reachable(f"{section} {k}", v) for k, v in sorted(raw.items())
            if k.endswith("url") and k not in _INBOUND_URLS
            and isinstance(v, str) and urlsplit(v).scheme in ("http", "https")]


def _guard(name: str, fn: Callable[[], list[Check]]) -> list[Check]:
    try:
        return fn()
    except Exception as exc:
        logger.opt(exception=exc).debug("doctor: {}", name)
        return [Check(name, False, str(exc) if exc.__class__.__name__ == "ConfigError" else _first_line(exc))]


def _mobilepay(cfg) -> list[Check]:
    def go():
        from bridge.mobilepay.client import MobilePayClient
        from daemon.platforms import mobilepay_parts

        client_cfg, _ = mobilepay_parts(cfg)
        out = [Check("mobilepay secrets", True, "app_secret and the institution's private key readable")]
        try:
            MobilePayClient(client_cfg).close()
            out.append(Check("mobilepay keys", True, "the SM2 private key and the platform's public key parse"))
        except Exception as exc:
            out.append(Check("mobilepay keys", False, f"a key does not parse ({_first_line(exc)})"))
        out.append(_reachable("mobilepay base_url", client_cfg.base_url))
        return out
    return _guard("mobilepay", go)


def _offline(cfg, sign_in: bool) -> list[Check]:
    def go():
        from bridge.offline import messages as m
        from bridge.offline.client import OfflineClient
        from daemon.platforms import offline_parts

        client_cfg, op = offline_parts(cfg)
        out = [Check("offline secrets", True, "paas_secret readable")]
        out.append(_reachable("offline base_url", client_cfg.base_url))
        if not sign_in:
            return out
        client = OfflineClient(client_cfg, sign_in_request=lambda o: m.SignInRequest(
            opter_no=o.opter, mac=op.sign_in_mac or "00-00-00-00-00-00", ip=op.sign_in_ip or "127.0.0.1"))
        try:
            res = client.sign_in(m.SignInRequest(opter_no=op.operator, mac=op.sign_in_mac or "00-00-00-00-00-00",
                                                 ip=op.sign_in_ip or "127.0.0.1"))
            if res.ok:
                out.append(Check("offline sign-in (9001)", True, f"operator {op.operator} signed in"))
            else:
                out.append(Check("offline sign-in (9001)", False, f"operator {op.operator}: {res.outcome.value} "
                                                                 f"{res.code or ''} {res.message or ''}".strip()))
        finally:
            client.close() if hasattr(client, "close") else None
        return out
    return _guard("offline", go)


def _facepay(cfg) -> list[Check]:
    def go():
        from daemon.platforms_facepay import facepay_parts

        fp = facepay_parts(cfg)
        out = [Check("facepay settings", True, "valid")]
        if fp and fp.terminal_url:
            out.append(_reachable("facepay terminal_url", fp.terminal_url))
        return out
    return _guard("facepay", go)
