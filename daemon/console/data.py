"""What the console pages read: plain SQL on the mi_ tables and views, the same
on every database (the dialect gives the clock expressions).  Personal data is
masked before it reaches a page: payloads and flow data by field name
(bridge.masking.mask_value), journal texts and messages as free text (mask_text),
although the journal is already masked when it is written."""
from __future__ import annotations

import json
from typing import Any, Optional

from bridge.db.store import Store
from bridge.masking import mask_text, mask_value

STATES = ("pending", "running", "in_doubt", "held", "done", "failed", "resolved")
OPEN = ("pending", "running", "in_doubt", "held")


def _masked_json(text: Optional[str]) -> str:
    if not text:
        return ""
    try:
        return json.dumps(mask_value(json.loads(text)), ensure_ascii=False, indent=2, sort_keys=True)
    except (ValueError, TypeError):
        return mask_text(text)


def _text(v: Any) -> str:
    return "" if v is None else mask_text(str(v))


def counts(store: Store) -> dict:
    """{kind: {state: n}} and the totals per state."""
    by_kind: dict[str, dict[str, int]] = {}
    totals = {s: 0 for s in STATES}
    for kind, state, n in store.query("SELECT kind, state, COUNT(*) FROM mi_outbox GROUP BY kind, state"):
        by_kind.setdefault(kind, {})[state] = int(n)
        totals[state] = totals.get(state, 0) + int(n)
    return {"by_kind": dict(sorted(by_kind.items())), "totals": totals, "states": STATES}


def oldest_open(store: Store) -> Optional[dict]:
    marks = ", ".join(f"'{s}'" for s in OPEN)
    first = store.query(f"SELECT MIN(id) FROM mi_outbox WHERE state IN ({marks})")[0][0]
    if first is None:
        return None
    age = store.dialect.age_seconds("created_at")
    r = store.query(f"SELECT id, kind, business_key, state, step, {age} FROM mi_outbox WHERE id = :i",
                    {"i": int(first)})[0]
    return {"id": int(r[0]), "kind": r[1], "business_key": r[2], "state": r[3], "step": r[4],
            "age_seconds": int(float(r[5] or 0))}


def held_and_in_doubt(store: Store, states=("held", "in_doubt"), limit: int = 200) -> list[dict]:
    age = store.dialect.age_seconds("created_at")
    marks = ", ".join(f":s{n}" for n in range(len(states)))
    rows = store.query(f"""SELECT id, kind, business_key, serial_key, state, step, attempts, current_call,
                                  last_error_code, last_error_message, updated_at, {age}
                             FROM mi_outbox WHERE state IN ({marks}) ORDER BY id""",
                       {f"s{n}": s for n, s in enumerate(states)})[:limit]
    out = [{"id": int(r[0]), "kind": r[1], "business_key": r[2], "serial_key": r[3], "state": r[4],
            "step": r[5], "attempts": int(r[6]), "current_call": r[7], "reason_code": r[8],
            "reason": _text(r[9]), "updated_at": r[10], "age_seconds": int(float(r[11] or 0)), "last_call": None}
           for r in rows]
    if out:
        ids = {f"o{n}": row["id"] for n, row in enumerate(out)}
        marks = ", ".join(f":{k}" for k in ids)
        last = store.query(f"""SELECT outbox_id, interface, outcome, error_message, started_at, msg_id
                                 FROM mi_journal WHERE id IN (SELECT MAX(id) FROM mi_journal
                                                               WHERE outbox_id IN ({marks}) GROUP BY outbox_id)""",
                           ids)
        by_id = {int(r[0]): {"interface": r[1], "outcome": r[2] or "no answer", "message": _text(r[3]),
                             "at": r[4], "msg_id": r[5]} for r in last}
        for row in out:
            row["last_call"] = by_id.get(row["id"])
    return out


def calls_last_hour(store: Store) -> list[tuple[str, str, int]]:
    d = store.dialect
    rows = store.query(f"""SELECT interface, outcome, COUNT(*) FROM mi_journal
                            WHERE started_at >= {d.after('back')} GROUP BY interface, outcome""",
                       {"back": d.seconds(-3600)})
    return sorted((r[0], r[1] or "in_flight", int(r[2])) for r in rows)


def notices(store: Store) -> dict:
    d = store.dialect
    r = store.query(f"""SELECT COUNT(*), MAX(last_received_at) FROM mi_notice
                         WHERE last_received_at >= {d.after('back')}""", {"back": d.seconds(-3600)})[0]
    last = store.query("SELECT MAX(last_received_at) FROM mi_notice")[0][0]
    return {"last_hour": int(r[0] or 0), "last": last}


def find(store: Store, business_key: str, limit: int = 100) -> list[dict]:
    """Requests by business key (exact), and those whose serial key is that key
    (a refund names its payment's key as its serial key)."""
    rows = store.query("""SELECT id, kind, business_key, serial_key, state, step, created_at, last_error_code
                            FROM mi_outbox WHERE business_key = :k
                          UNION
                          SELECT id, kind, business_key, serial_key, state, step, created_at, last_error_code
                            FROM mi_outbox WHERE serial_key = :k
                          ORDER BY 1""", {"k": business_key})[:limit]
    return [{"id": int(r[0]), "kind": r[1], "business_key": r[2], "serial_key": r[3], "state": r[4],
             "step": r[5], "created_at": r[6], "reason_code": r[7]} for r in rows]


def row(store: Store, row_id: int) -> Optional[dict]:
    age = store.dialect.age_seconds("created_at")
    rows = store.query(f"""SELECT id, kind, business_key, serial_key, state, step, attempts, max_attempts,
                                  current_call, call_unsafe, next_attempt_at, lease_owner, lease_expires_at,
                                  created_at, updated_at, finished_at, last_error_code, last_error_message,
                                  payload, flow_data, {age}
                             FROM mi_outbox WHERE id = :i""", {"i": row_id})
    if not rows:
        return None
    r = rows[0]
    names = ("id", "kind", "business_key", "serial_key", "state", "step", "attempts", "max_attempts",
             "current_call", "call_unsafe", "next_attempt_at", "lease_owner", "lease_expires_at", "created_at",
             "updated_at", "finished_at", "reason_code", "reason")
    out = dict(zip(names, r[:len(names)]))
    out["reason"] = _text(out["reason"])
    out["payload"] = _masked_json(r[18])
    out["flow_data"] = _masked_json(r[19])
    out["age_seconds"] = int(float(r[20] or 0))
    out["journal"] = [
        {"msg_id": j[0], "step": j[1], "interface": j[2], "started_at": j[3], "ended_at": j[4],
         "outcome": j[5] or "no answer", "http_status": j[6], "message": _text(j[7]),
         "request": _masked_json(j[8]), "response": _masked_json(j[9])}
        for j in store.query("""SELECT msg_id, step, interface, started_at, ended_at, outcome, http_status,
                                       error_message, request_masked, response_masked
                                  FROM mi_journal WHERE outbox_id = :i ORDER BY id""", {"i": row_id})]
    out["inbox"] = [
        {"id": int(i[0]), "result_type": i[1], "outcome": i[2], "error_code": i[3], "message": _text(i[4]),
         "total": i[5], "fund": i[6], "account": i[7], "cash": i[8], "created_at": i[9], "consumed_at": i[10],
         "his_ack": i[11]}
        for i in store.query("""SELECT id, result_type, outcome, error_code, error_message, total_amount,
                                       fund_amount, account_amount, cash_amount, created_at, consumed_at, his_ack
                                  FROM mi_inbox WHERE outbox_id = :i ORDER BY id""", {"i": row_id})]
    out["audit"] = [{"action": a[0], "actor": a[1], "note": _text(a[2]), "at": a[3]}
                    for a in store.query("SELECT action, actor, note, at FROM mi_audit WHERE outbox_id = :i "
                                         "ORDER BY id", {"i": row_id})]
    # Cancel is offered for a row that waits and has journalled no call that may
    # have moved money (the database function checks it again, under its lock).
    out["unsafe_calls"] = unsafe_calls(store, row_id)
    return out


def unsafe_calls(store: Store, row_id: int) -> int:
    """Journalled calls of this row that were not safe to repeat (or of unknown
    safety: rows journalled before the column existed)."""
    return int(store.query("SELECT COUNT(*) FROM mi_journal WHERE outbox_id = :i AND COALESCE(unsafe, 1) = 1",
                           {"i": row_id})[0][0])
