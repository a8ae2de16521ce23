"""Console logins: users and roles from [console], password hashes and the session
secret from the environment or files only, server-side sessions (a fresh id at
every login, gone at logout or after the idle time), and throttled sign-in.

Passwords are checked with werkzeug.security (the library Flask itself uses):
the hash is what `generate_password_hash` writes (scrypt by default, or pbkdf2),
made with `mibridge console-hash`.  A user name that does not exist costs the
same hash check as a wrong password, so the answer does not tell which it was.
"""
from __future__ import annotations

import os
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Optional

from werkzeug.security import check_password_hash, generate_password_hash

from daemon.config import ConfigError, ConsoleConfig

ROLES = ("viewer", "operator")
# A hash of a random password: what an unknown user name is checked against.
_DUMMY = generate_password_hash(secrets.token_urlsafe(16))


@dataclass(frozen=True)
class User:
    name: str
    role: str
    password_hash: str

    @property
    def may_act(self) -> bool:
        return self.role == "operator"


def _secret(what: str, env: Optional[str], path: Optional[str]) -> str:
    from daemon.platforms import read_secret_file

    if env:
        value = os.environ.get(env)
        if not value:
            raise ConfigError(f"{what}_env: environment variable {env} is not set")
        return value.strip()
    if path:
        return read_secret_file(f"{what}_file", path)
    raise ConfigError(f"{what}_env or {what}_file is required")


def load_users(cfg: ConsoleConfig) -> dict[str, User]:
    users: dict[str, User] = {}
    for u in cfg.users:
        if u.name in users:
            raise ConfigError(f"[console] users: {u.name!r} is listed twice")
        h = _secret(f"[console] users {u.name}: password_hash", u.password_hash_env, u.password_hash_file)
        if not h.startswith(("scrypt:", "pbkdf2:")) or h.count("$") != 2:
            raise ConfigError(f"[console] users {u.name}: the password must be given as a hash "
                              f"(scrypt:... or pbkdf2:..., made by `mibridge console-hash`), not as the password")
        users[u.name] = User(u.name, u.role, h)
    if not users:
        raise ConfigError("[console] is enabled but has no users: add [[console.users]] with name, role "
                          "and password_hash_env or password_hash_file")
    return users


def load_secret_key(cfg: ConsoleConfig) -> str:
    key = _secret("[console] secret_key", cfg.secret_key_env, cfg.secret_key_file)
    if len(key) < 32:
        raise ConfigError("[console] secret_key: at least 32 characters (e.g. python3 -c "
                          "'import secrets; print(secrets.token_urlsafe(48))')")
    return key


def check_password(users: dict[str, User], name: str, password: str) -> Optional[User]:
    user = users.get(name)
    ok = check_password_hash(user.password_hash if user else _DUMMY, password or "")
    return user if ok and user is not None else None


class Throttle:
    """Failed sign-ins per user name and per address within a window: past the
    limit, sign-in is refused (even with the right password) until the window
    has passed.  An address gets four times the per-name limit."""

    def __init__(self, attempts: int, window: float, clock=time.monotonic):
        self.attempts = attempts
        self.window = window
        self._clock = clock
        self._lock = threading.Lock()
        self._fails: dict[str, deque] = {}

    def _recent(self, key: str, now: float) -> deque:
        q = self._fails.setdefault(key, deque())
        while q and now - q[0] > self.window:
            q.popleft()
        return q

    def blocked(self, name: str, addr: str) -> bool:
        now = self._clock()
        with self._lock:
            return (len(self._recent("n:" + name, now)) >= self.attempts
                    or len(self._recent("a:" + addr, now)) >= 4 * self.attempts)

    def failed(self, name: str, addr: str) -> None:
        now = self._clock()
        with self._lock:
            self._recent("n:" + name, now).append(now)
            self._recent("a:" + addr, now).append(now)
            if len(self._fails) > 10000:        # bounded: forget the quiet keys
                for k in [k for k, q in self._fails.items() if not q]:
                    del self._fails[k]

    def succeeded(self, name: str) -> None:
        with self._lock:
            self._fails.pop("n:" + name, None)


class Sessions:
    """Server-side sessions: the signed cookie carries only a random id; the
    user, role and last activity live here.  Logout or idle time removes the id,
    so an old cookie is worth nothing.  In memory: a restart signs everyone out."""

    def __init__(self, idle_seconds: float, clock=time.monotonic):
        self.idle = idle_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._by_id: dict[str, dict] = {}

    def new(self, user: User) -> str:
        sid = secrets.token_urlsafe(32)
        with self._lock:
            now = self._clock()
            for k in [k for k, v in self._by_id.items() if now - v["last"] > self.idle]:
                del self._by_id[k]
            self._by_id[sid] = {"name": user.name, "role": user.role, "last": now}
        return sid

    def get(self, sid: Optional[str]) -> Optional[dict]:
        if not sid:
            return None
        with self._lock:
            s = self._by_id.get(sid)
            now = self._clock()
            if s is None or now - s["last"] > self.idle:
                self._by_id.pop(sid, None)
                return None
            s["last"] = now
            return dict(s)

    def end(self, sid: Optional[str]) -> None:
        with self._lock:
            self._by_id.pop(sid or "", None)
