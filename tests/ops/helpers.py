"""What the operations tests share: a database with rows in every state an
operator meets (held with and without a call in doubt, in doubt, pending, done),
console users, and a console served by the daemon's own HTTP listener."""
from __future__ import annotations

import secrets

from werkzeug.security import generate_password_hash

from bridge.db.store import InboxRow, Store
from daemon.config import ConsoleConfig, ConsoleUser

PASSWORDS = {"olga": "operator-pw-" + secrets.token_hex(4), "victor": "viewer-pw-" + secrets.token_hex(4)}
# Hashing is slow on purpose: once per test session.
_HASHES = {name: generate_password_hash(pw) for name, pw in PASSWORDS.items()}


def console_env(monkeypatch) -> ConsoleConfig:
    """[console] as an operator writes it, secrets in the environment."""
    monkeypatch.setenv("MI_TEST_CONSOLE_SECRET", secrets.token_urlsafe(48))
    monkeypatch.setenv("MI_TEST_HASH_OLGA", _HASHES["olga"])
    monkeypatch.setenv("MI_TEST_HASH_VICTOR", _HASHES["victor"])
    return ConsoleConfig(enabled=True, listen="127.0.0.1:0", secret_key_env="MI_TEST_CONSOLE_SECRET",
                         users=[ConsoleUser(name="olga", role="operator", password_hash_env="MI_TEST_HASH_OLGA"),
                                ConsoleUser(name="victor", role="viewer", password_hash_env="MI_TEST_HASH_VICTOR")])


def fill(store: Store) -> dict:
    """Rows of every kind an operator meets.  Returns their ids by name."""
    ids = {}
    ids["held"] = store.enqueue("test.charge", "INV-HELD-1", {"patient_id": "P1", "total_amount": "12.50",
                                                              "id_no": "110101199003071234"})
    ids["held_doubt"] = store.enqueue("test.charge", "INV-DOUBT-2", {"patient_id": "P2", "total_amount": "3.00"})
    ids["pending"] = store.enqueue("test.charge", "INV-WAIT-3", {"patient_id": "P3", "total_amount": "1.00"})
    ids["done"] = store.enqueue("test.charge", "INV-DONE-4", {"patient_id": "P4", "total_amount": "4.00"})
    rows = {r.id: r for r in store.claim("w", 30, limit=10)}
    # held, no call in doubt (a safe step gave up)
    store.begin_call(ids["held"], "w", "charge", "MSG-H1", "charge", '{"certno": "110101********1234"}',
                     unsafe=False)
    store.end_call("MSG-H1", "rejected", 503, '{"error": "busy"}', "platform busy")
    store.release(rows[ids["held"]], "w", "held", 0, {}, error_code="NOTIFY_FAILED",
                  error_message="gave up after 10 attempts: platform busy", keep_call=False,
                  inbox=[InboxRow("held", "held", "NOTIFY_FAILED", "gave up")])
    # held inside an unsafe call whose answer was lost
    store.begin_call(ids["held_doubt"], "w", "charge", "MSG-D2", "charge", "{}", unsafe=True)
    store.end_call("MSG-D2", "unknown", None, None, "read timeout")
    store.release(rows[ids["held_doubt"]], "w", "held", 0, {}, error_code="CHARGE_IN_DOUBT",
                  error_message="the charge may have been booked", keep_call=True)
    store.release(rows[ids["pending"]], "w", "pending", 3600, {}, error_code=None, error_message=None,
                  keep_call=False)
    store.finish(rows[ids["done"]], "w", "done", {}, [InboxRow("charge", "ok")])
    return ids
