"""Every query the engine runs against the mi_ tables.

One Store wraps one database connection and is used by one thread.  Each
method is one short transaction; none is ever held open across a remote call.
Every change to a claimed row is guarded by `state = 'running' AND
lease_owner = :owner` (and the expected step where it matters), so a worker
whose lease expired and whose row was rescued can never overwrite it: its
UPDATE touches no row and the method returns False.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Iterable, Optional

from loguru import logger

from bridge.db import orderbook
from bridge.db.dialects import get_dialect
from bridge.masking import mask_text
from bridge.db.url import DbUrl, parse_url

FINAL_STATES = ("done", "failed", "resolved")
OPEN_STATES = ("pending", "running", "in_doubt", "held")


class LostLease(Exception):
    """The row is no longer ours (rescued after our lease expired)."""


@dataclass
class ClaimedRow:
    id: int
    kind: str
    business_key: str
    serial_key: str
    payload: str
    was_state: str          # 'pending' or 'in_doubt'
    step: Optional[str]
    flow_data: dict
    current_call: Optional[str]
    attempts: int           # tries of the current step, including this one
    max_attempts: int


@dataclass
class InboxRow:
    result_type: str                     # e.g. 'charge', 'order', 'settlement', 'error'
    outcome: str                         # 'ok' | 'failed' | 'held' | 'resolved'
    error_code: Optional[str] = None
    error_message: Optional[str] = None
    order_id: Optional[str] = None
    settlement_id: Optional[str] = None
    total_amount: Optional[Decimal] = None
    fund_amount: Optional[Decimal] = None
    account_amount: Optional[Decimal] = None
    cash_amount: Optional[Decimal] = None
    result: dict = field(default_factory=dict)


@dataclass
class IdentityRow:
    his_patient_id: str
    psn_no: str
    insuplc_admdvs: Optional[str] = None
    insutype: Optional[str] = None
    benefit: Optional[str] = None
    psn_cert_type: Optional[str] = None


def _json(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, default=_json_default, sort_keys=True)


def _json_default(o):
    if isinstance(o, Decimal):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _masked(text: Optional[str]) -> Optional[str]:
    """Error texts go to tables DBAs and the HIS read: mask personal data, cap length."""
    return mask_text(text)[:1000] if text else None


def _money(v: Optional[Decimal]):
    if v is None:
        return None
    if not isinstance(v, Decimal):
        raise TypeError("money must be Decimal")
    return str(v.quantize(Decimal("0.01")))


class Store:
    def __init__(self, url: str | DbUrl, password_env: str = "MIBRIDGE_DB_PASSWORD"):
        self.url = url if isinstance(url, DbUrl) else parse_url(url, password_env)
        self.dialect = get_dialect(self.url.dialect)
        self._conn = None

    # -- connection ---------------------------------------------------------
    @property
    def conn(self):
        if self._conn is None:
            self._conn = self.dialect.connect(self.url)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:
                pass
            self._conn = None

    def _exec(self, cur, sql: str, params: dict | None = None):
        text, args = self.dialect.convert(sql, params or {})
        cur.execute(text, args)
        return cur

    def _tx(self, fn, *, claim: bool = False):
        """Run fn(cursor) in one transaction; on any error roll back and, when the
        connection is gone, drop it so the next call reconnects."""
        conn = self.conn
        try:
            if claim:
                self.dialect.begin_claim(conn)
            cur = conn.cursor()
            result = fn(cur)
            conn.commit()
            return result
        except BaseException as exc:
            try:
                conn.rollback()
            except Exception:
                pass
            if self.dialect.is_disconnect(exc) or not isinstance(exc, Exception):
                self.close()
            raise

    def ping(self) -> None:
        self._tx(lambda cur: self._exec(cur, "SELECT 1 FROM mi_outbox WHERE 1 = 0"))

    def is_disconnect(self, exc: BaseException) -> bool:
        return self.dialect.is_disconnect(exc)

    # -- HIS side (used by tests, the demo and the CLI) ----------------------
    def enqueue(self, kind: str, business_key: str, payload: dict | str,
                serial_key: Optional[str] = None) -> int:
        """The plain-INSERT way to enqueue (what an HIS trigger does); the
        database's triggers validate it.  Returns the outbox id."""
        text = payload if isinstance(payload, str) else _json(payload)

        def go(cur):
            self._exec(cur, """INSERT INTO mi_outbox (kind, business_key, serial_key, payload)
                               VALUES (:kind, :bkey, :skey, :payload)""",
                       dict(kind=kind, bkey=business_key, skey=serial_key or business_key,
                            payload=text))
            self._exec(cur, "SELECT id FROM mi_outbox WHERE kind = :kind AND business_key = :bkey",
                       dict(kind=kind, bkey=business_key))
            return int(cur.fetchone()[0])
        return self._tx(go)

    # -- claim and lease -----------------------------------------------------
    def claim(self, owner: str, lease_seconds: float, limit: int = 1) -> list[ClaimedRow]:
        d = self.dialect

        def go(cur):
            candidates = d.claim_candidates(cur, limit)
            claimed = []
            for row_id, was_state in candidates:
                self._exec(cur, f"""
                    UPDATE mi_outbox
                       SET state = 'running', lease_owner = :owner,
                           lease_expires_at = {d.after('lease')},
                           attempts = attempts + 1, updated_at = {d.now}
                     WHERE id = :id AND state = :was""",
                           dict(owner=owner, lease=d.seconds(lease_seconds), id=row_id, was=was_state))
                if cur.rowcount != 1:
                    continue
                self._exec(cur, """
                    SELECT id, kind, business_key, serial_key, payload, step, flow_data,
                           current_call, attempts, max_attempts
                      FROM mi_outbox WHERE id = :id""", {"id": row_id})
                r = cur.fetchone()
                claimed.append(ClaimedRow(
                    id=int(r[0]), kind=r[1], business_key=r[2], serial_key=r[3], payload=r[4],
                    was_state=was_state, step=r[5], flow_data=json.loads(r[6]) if r[6] else {},
                    current_call=r[7], attempts=int(r[8]), max_attempts=int(r[9])))
            return claimed
        return self._tx(go, claim=True)

    def heartbeat(self, row_id: int, owner: str, lease_seconds: float) -> bool:
        d = self.dialect

        def go(cur):
            self._exec(cur, f"""
                UPDATE mi_outbox SET lease_expires_at = {d.after('lease')}
                 WHERE id = :id AND lease_owner = :owner AND state = 'running'""",
                       dict(id=row_id, owner=owner, lease=d.seconds(lease_seconds)))
            return cur.rowcount == 1
        return self._tx(go)

    # -- the call journal ----------------------------------------------------
    def begin_call(self, row_id: int, owner: str, step: str, msg_id: str, interface: str,
                   masked_request: str, unsafe: bool, mark: bool = True) -> None:
        """Write the journal row and mark the row as 'in a call' in one
        transaction, BEFORE anything is sent.  Raises LostLease, also when our
        lease has already run out (a rescuer may be about to take the row).
        mark=False (a resolver's query) journals the call but leaves
        current_call naming the call that is in doubt."""
        d = self.dialect
        sets = "current_call = :msg, call_unsafe = :unsafe, " if mark else ""

        def go(cur):
            self._exec(cur, f"""
                UPDATE mi_outbox SET {sets}updated_at = {d.now}
                 WHERE id = :id AND lease_owner = :owner AND state = 'running'
                   AND lease_expires_at > {d.now}""",
                       dict(id=row_id, owner=owner, **(dict(msg=msg_id, unsafe=1 if unsafe else 0) if mark else {})))
            if cur.rowcount != 1:
                raise LostLease(row_id)
            self._exec(cur, """
                INSERT INTO mi_journal (msg_id, outbox_id, step, interface, request_masked)
                VALUES (:msg, :id, :step, :iface, :req)""",
                       dict(msg=msg_id, id=row_id, step=step, iface=interface, req=masked_request))
        self._tx(go)

    def end_call(self, msg_id: str, outcome: str, http_status: Optional[int],
                 response_masked: Optional[str], error_message: Optional[str]) -> None:
        """Record what came back.  Not guarded by the lease: the journal is a
        record of facts, and a late answer is still a fact worth keeping."""
        d = self.dialect

        def go(cur):
            self._exec(cur, f"""
                UPDATE mi_journal SET outcome = :outcome, http_status = :status,
                       response_masked = :resp, error_message = :err, ended_at = {d.now}
                 WHERE msg_id = :msg AND outcome IS NULL""",
                       dict(outcome=outcome, status=http_status, resp=response_masked,
                            err=_masked(error_message), msg=msg_id))
        self._tx(go)

    def call_age_seconds(self, msg_id: str) -> Optional[float]:
        """Seconds since the call was journalled, by the database clock: lets a
        resolver tell "not booked yet" from "never booked"."""
        rows = self.query(f"SELECT {self.dialect.age_seconds('started_at')} FROM mi_journal WHERE msg_id = :m",
                          {"m": msg_id})
        return float(rows[0][0]) if rows and rows[0][0] is not None else None

    # -- transitions of a claimed row -----------------------------------------
    def _guarded_update(self, cur, row_id: int, owner: str, expected_step: Optional[str],
                        sets: str, params: dict) -> None:
        # No COALESCE(step, '') = '': Oracle stores '' as NULL, so that is never true there.
        if expected_step:
            step_guard, guard = "step = :expected_step", dict(expected_step=expected_step)
        else:
            step_guard, guard = "step IS NULL", {}
        self._exec(cur, f"""
            UPDATE mi_outbox SET {sets}, updated_at = {self.dialect.now}
             WHERE id = :id AND lease_owner = :owner AND state = 'running'
               AND {step_guard}""",
                   dict(params, id=row_id, owner=owner, **guard))
        if cur.rowcount != 1:
            raise LostLease(row_id)

    def _write_results(self, cur, row: ClaimedRow, inbox: Iterable[InboxRow],
                       identities: Iterable[IdentityRow]) -> None:
        for ib in inbox:
            self._exec(cur, """
                INSERT INTO mi_inbox (outbox_id, kind, business_key, result_type, outcome,
                                      error_code, error_message, order_id, settlement_id,
                                      total_amount, fund_amount, account_amount, cash_amount,
                                      result_json)
                VALUES (:oid, :kind, :bkey, :rtype, :outcome, :ecode, :emsg, :order_id, :setl_id,
                        :total, :fund, :acct, :cash, :result)""",
                       dict(oid=row.id, kind=row.kind, bkey=row.business_key, rtype=ib.result_type,
                            outcome=ib.outcome, ecode=ib.error_code,
                            emsg=_masked(ib.error_message),
                            order_id=ib.order_id, setl_id=ib.settlement_id,
                            total=_money(ib.total_amount), fund=_money(ib.fund_amount),
                            acct=_money(ib.account_amount), cash=_money(ib.cash_amount),
                            result=_json(ib.result)))
            # The order book follows the inbox in the same transaction (bridge/db/orderbook.py).
            orderbook.book(self, cur, row, ib)
        for ident in identities:
            self._exec(cur, self.dialect.identity_upsert_sql, dict(
                his_patient_id=ident.his_patient_id, psn_no=ident.psn_no,
                insuplc_admdvs=ident.insuplc_admdvs, insutype=ident.insutype,
                benefit=ident.benefit, psn_cert_type=ident.psn_cert_type, source_outbox_id=row.id))

    def advance(self, row: ClaimedRow, owner: str, new_step: str, flow_data: dict,
                *, inbox: Iterable[InboxRow] = (), identities: Iterable[IdentityRow] = (),
                release_after: Optional[float] = None,
                secrets: Optional[dict[str, Optional[str]]] = None) -> None:
        """Move to the next step (keeping the lease, or releasing the row to be
        picked up again after `release_after` seconds).  The step's inbox rows
        and secrets commit in the same transaction."""
        d = self.dialect
        if release_after is None:
            sets = "step = :step, flow_data = :fd, current_call = NULL, call_unsafe = 0, attempts = 0"
            params = dict(step=new_step, fd=_json(flow_data))
        else:
            sets = (f"step = :step, flow_data = :fd, current_call = NULL, call_unsafe = 0, attempts = 0, "
                    f"state = 'pending', lease_owner = NULL, lease_expires_at = NULL, "
                    f"next_attempt_at = {d.after('delay')}")
            params = dict(step=new_step, fd=_json(flow_data), delay=d.seconds(release_after))

        def go(cur):
            self._guarded_update(cur, row.id, owner, row.step, sets, params)
            self._write_results(cur, row, inbox, identities)
            self._write_secrets(cur, row.id, secrets)
        self._tx(go)
        row.step = new_step
        row.flow_data = flow_data
        row.current_call = None
        if release_after is None:
            row.attempts = 0

    def finish(self, row: ClaimedRow, owner: str, state: str, flow_data: dict,
               inbox: Iterable[InboxRow], *, identities: Iterable[IdentityRow] = (),
               error_code: Optional[str] = None, error_message: Optional[str] = None,
               secrets: Optional[dict[str, Optional[str]]] = None,
               keep_secrets: Optional[Iterable[str]] = None) -> None:
        """Final state and the HIS's inbox rows, in ONE transaction.  With
        keep_secrets (a flow that holds secrets) the row's secrets are deleted in
        it too, except the names given."""
        assert state in ("done", "failed")
        d = self.dialect
        sets = (f"state = :state, flow_data = :fd, current_call = NULL, call_unsafe = 0, "
                f"lease_owner = NULL, lease_expires_at = NULL, finished_at = {d.now}, "
                f"last_error_code = :ecode, last_error_message = :emsg")
        params = dict(state=state, fd=_json(flow_data), ecode=error_code, emsg=_masked(error_message))
        keep = None if keep_secrets is None else tuple(keep_secrets)

        def go(cur):
            self._guarded_update(cur, row.id, owner, row.step, sets, params)
            self._write_results(cur, row, inbox, identities)
            self._write_secrets(cur, row.id, secrets)
            if keep is not None:
                self._drop_secrets(cur, row.id, keep)
        self._tx(go)

    def release(self, row: ClaimedRow, owner: str, state: str, delay: float, flow_data: dict,
                *, error_code: Optional[str], error_message: Optional[str],
                keep_call: bool, inbox: Iterable[InboxRow] = (), keep_attempts: bool = False) -> None:
        """Give the row back: 'pending' (retry the step after delay), 'in_doubt'
        (resolve by query after delay) or 'held' (wait for a human).  keep_call
        keeps current_call so the row stays marked as having an unresolved call.
        keep_attempts gives back the attempt this claim took (a wait, not a try)."""
        assert state in ("pending", "in_doubt", "held")
        d = self.dialect
        call_sets = "" if keep_call else "current_call = NULL, call_unsafe = 0, "
        if keep_attempts:
            call_sets += "attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END, "
        sets = (f"state = :state, flow_data = :fd, {call_sets}lease_owner = NULL, "
                f"lease_expires_at = NULL, next_attempt_at = {d.after('delay')}, "
                f"last_error_code = :ecode, last_error_message = :emsg")
        params = dict(state=state, fd=_json(flow_data), delay=d.seconds(delay), ecode=error_code,
                      emsg=_masked(error_message))

        def go(cur):
            self._guarded_update(cur, row.id, owner, row.step, sets, params)
            self._write_results(cur, row, inbox, ())
        self._tx(go)

    # -- recovery (the rescuer) ------------------------------------------------
    def recover_expired_leases(self) -> int:
        """Rows whose worker vanished (crash, kill, lost network) go back to work:
        - a row that has used up its attempts -> held (a person looks at it; the
          HIS gets a 'held' inbox row), keeping any call in doubt on record;
        - a row that was inside a call that is not safe to repeat -> in_doubt,
          to be resolved by querying the platform, never by sending again;
        - otherwise -> pending.
        Plain SQL, so a DBA can run the same statements by hand."""
        d = self.dialect
        expired = f"state = 'running' AND lease_expires_at < {d.now}"

        def go(cur):
            self._exec(cur, f"""
                INSERT INTO mi_inbox (outbox_id, kind, business_key, result_type, outcome, error_code, error_message)
                SELECT id, kind, business_key, 'held', 'held', 'LEASE_EXPIRED',
                       'worker lost repeatedly; attempts used up'
                  FROM mi_outbox WHERE {expired} AND attempts >= max_attempts""")
            self._exec(cur, f"""
                UPDATE mi_outbox
                   SET state = CASE WHEN attempts >= max_attempts THEN 'held'
                                    WHEN current_call IS NOT NULL AND call_unsafe = 1 THEN 'in_doubt'
                                    ELSE 'pending' END,
                       last_error_code = 'LEASE_EXPIRED',
                       last_error_message = CASE
                           WHEN attempts >= max_attempts
                               THEN 'worker lost repeatedly; attempts used up'
                           WHEN current_call IS NOT NULL AND call_unsafe = 1
                               THEN 'worker lost during a call that is not safe to repeat; will query the platform'
                           ELSE 'worker lost; will retry' END,
                       lease_owner = NULL, lease_expires_at = NULL,
                       next_attempt_at = {d.now}, updated_at = {d.now}
                 WHERE {expired}""")
            return cur.rowcount
        return self._tx(go)

    # -- administration ----------------------------------------------------------
    def _audit(self, cur, row_id: int, action: str, actor: str, note: Optional[str]) -> None:
        self._exec(cur, "INSERT INTO mi_audit (outbox_id, action, actor, note) VALUES (:id, :a, :actor, :note)",
                   dict(id=row_id, a=action, actor=actor, note=note and note[:1000]))

    def requeue(self, row_id: int, actor: str, note: Optional[str]) -> str:
        """A held row goes back to work.  If it was stopped inside a call whose
        effect is unknown it goes to in_doubt (query first), never straight to a resend."""
        d = self.dialect

        def go(cur):
            self._exec(cur, f"""
                UPDATE mi_outbox
                   SET state = CASE WHEN current_call IS NOT NULL AND call_unsafe = 1
                                    THEN 'in_doubt' ELSE 'pending' END,
                       attempts = 0, next_attempt_at = {d.now}, updated_at = {d.now}
                 WHERE id = :id AND state = 'held'""", {"id": row_id})
            if cur.rowcount != 1:
                raise ValueError(f"outbox row {row_id} is not held; only held rows can be requeued")
            self._audit(cur, row_id, "requeue", actor, note)
            self._exec(cur, "SELECT state FROM mi_outbox WHERE id = :id", {"id": row_id})
            return cur.fetchone()[0]
        return self._tx(go)

    def resolve(self, row_id: int, actor: str, note: str) -> None:
        """A human settled a held row by hand (e.g. after checking the platform):
        close it, tell the HIS, and keep who and why in mi_audit."""
        if not note or not note.strip():
            raise ValueError("resolve needs a note saying what was checked and decided")
        d = self.dialect

        def go(cur):
            self._exec(cur, "SELECT kind, business_key FROM mi_outbox WHERE id = :id AND state = 'held'",
                       {"id": row_id})
            r = cur.fetchone()
            if r is None:
                raise ValueError(f"outbox row {row_id} is not held; only held rows can be resolved")
            self._exec(cur, f"""
                UPDATE mi_outbox SET state = 'resolved', finished_at = {d.now}, updated_at = {d.now},
                       current_call = NULL, call_unsafe = 0
                 WHERE id = :id AND state = 'held'""", {"id": row_id})
            if cur.rowcount != 1:  # requeued between our SELECT and UPDATE
                raise ValueError(f"outbox row {row_id} is no longer held; nothing was changed")
            self._drop_secrets(cur, row_id, ())   # closed by hand: no later step needs them
            self._exec(cur, """
                INSERT INTO mi_inbox (outbox_id, kind, business_key, result_type, outcome,
                                      error_code, error_message, result_json)
                VALUES (:id, :kind, :bkey, 'manual', 'resolved', 'RESOLVED_BY_HAND', :note, :result)""",
                       dict(id=row_id, kind=r[0], bkey=r[1], note=note[:1000],
                            result=_json({"resolved_by": actor, "note": note})))
            self._audit(cur, row_id, "resolve", actor, note)
        self._tx(go)

    def purge(self, keep_days: int) -> int:
        """Delete finished requests older than keep_days, with their inbox and
        journal rows, once the HIS consumed every inbox row.  Rows with audit
        records are kept for good.  The order book (mi_order, mi_order_refund)
        is never purged: a later refund still finds its payment's totals."""
        d = self.dialect
        old = f"""SELECT o.id FROM mi_outbox o
                   WHERE o.state IN ('done', 'failed') AND o.finished_at < {d.after('age')}
                     AND NOT EXISTS (SELECT 1 FROM mi_inbox i WHERE i.outbox_id = o.id AND i.consumed_at IS NULL)
                     AND NOT EXISTS (SELECT 1 FROM mi_audit a WHERE a.outbox_id = o.id)"""

        ids = [int(r[0]) for r in self.query(old, {"age": d.seconds(-keep_days * 86400)})]
        # One short transaction per chunk: one transaction for all of them would
        # hold every row lock to the end (SQL Server escalates past ~5,000 locks
        # to a table lock, and the HIS's inserts wait).
        for i in range(0, len(ids), 200):
            chunk = ids[i:i + 200]
            params = {f"i{n}": v for n, v in enumerate(chunk)}
            marks = ", ".join(f":i{n}" for n in range(len(chunk)))

            def go(cur):
                for table, col in (("mi_secret", "outbox_id"), ("mi_journal", "outbox_id"),
                                   ("mi_inbox", "outbox_id"), ("mi_outbox", "id")):
                    self._exec(cur, f"DELETE FROM {table} WHERE {col} IN ({marks})", params)
            self._tx(go)
        return len(ids)

    # -- secrets (mi_secret: daemon only, never in HIS-readable rows) ------------------
    def _write_secrets(self, cur, outbox_id: int, secrets: Optional[dict[str, Optional[str]]]) -> None:
        """Replace the named secrets of a row; None or "" deletes one (Oracle would
        store "" as NULL, which the NOT NULL column refuses)."""
        for name, value in (secrets or {}).items():
            self._exec(cur, "DELETE FROM mi_secret WHERE outbox_id = :o AND name = :n", {"o": outbox_id, "n": name})
            if value not in (None, ""):
                self._exec(cur, "INSERT INTO mi_secret (outbox_id, name, value) VALUES (:o, :n, :v)",
                           {"o": outbox_id, "n": name, "v": str(value)})

    def _drop_secrets(self, cur, outbox_id: int, keep: tuple[str, ...]) -> None:
        marks = ", ".join(f":k{n}" for n in range(len(keep)))
        self._exec(cur, "DELETE FROM mi_secret WHERE outbox_id = :o" + (f" AND name NOT IN ({marks})" if keep else ""),
                   dict({f"k{n}": k for n, k in enumerate(keep)}, o=outbox_id))

    def secrets(self, outbox_id: int) -> dict[str, str]:
        """The secrets a request holds (its own, or a related one's: a refund reads its
        payment's payToken)."""
        return {r[0]: r[1] for r in self.query("SELECT name, value FROM mi_secret WHERE outbox_id = :o",
                                               {"o": outbox_id})}

    def secret_values(self, outbox_ids: Iterable[int], name: str) -> dict[int, str]:
        """One named secret of several requests (the reconciliation's 6301 reads each
        payment's payToken)."""
        ids = list(outbox_ids)
        if not ids:
            return {}
        marks = ", ".join(f":o{n}" for n in range(len(ids)))
        rows = self.query(f"SELECT outbox_id, value FROM mi_secret WHERE outbox_id IN ({marks}) AND name = :n",
                          dict({f"o{n}": v for n, v in enumerate(ids)}, n=name))
        return {int(r[0]): r[1] for r in rows}

    # -- what flows read besides their own row -------------------------------------
    def inbox_state(self, outbox_id: int, result_type: str) -> Optional[dict]:
        """The HIS's handling of a flow's inbox row: consumed or not, its ack, and
        the row's age in seconds by the database clock (newest row of that type)."""
        rows = self.query(f"""SELECT id, consumed_at, his_ack, {self.dialect.age_seconds('created_at')}
                                FROM mi_inbox WHERE outbox_id = :o AND result_type = :t
                               ORDER BY id DESC""", {"o": outbox_id, "t": result_type})
        if not rows:
            return None
        r = rows[0]
        return {"id": int(r[0]), "consumed": r[1] is not None, "his_ack": r[2],
                "age_seconds": float(r[3]) if r[3] is not None else 0.0}

    def withdraw_inbox_row(self, inbox_id: int) -> bool:
        """Take an unconsumed inbox row back from the HIS (its window passed): it
        counts as rejected from now on, so the HIS cannot accept it while mibridge
        reverses it.  False when the HIS consumed it first."""
        d = self.dialect
        return self.execute(f"""UPDATE mi_inbox SET consumed_at = {d.now}, his_ack = 'rejected'
                                 WHERE id = :id AND consumed_at IS NULL""", {"id": inbox_id}) == 1

    def find_request(self, kinds: Iterable[str], business_key: str) -> Optional[dict]:
        """Another request of the HIS, by its business key (e.g. the payment a
        refund refers to)."""
        kinds = list(kinds)
        marks = ", ".join(f":k{n}" for n in range(len(kinds)))
        rows = self.query(f"""SELECT id, kind, state, step, flow_data, payload
                                FROM mi_outbox WHERE business_key = :b AND kind IN ({marks})
                               ORDER BY id""", dict({f"k{n}": k for n, k in enumerate(kinds)}, b=business_key))
        if not rows:
            return None
        r = rows[0]
        return {"id": int(r[0]), "kind": r[1], "state": r[2], "step": r[3],
                "flow_data": json.loads(r[4]) if r[4] else {}, "payload": r[5]}

    def count_requests(self, kind: str, serial_key: str, states: Iterable[str],
                       exclude_id: Optional[int] = None) -> int:
        states = list(states)
        marks = ", ".join(f":s{n}" for n in range(len(states)))
        return int(self.query(f"""SELECT COUNT(*) FROM mi_outbox
                                   WHERE kind = :k AND serial_key = :sk AND state IN ({marks}) AND id <> :x""",
                              dict({f"s{n}": v for n, v in enumerate(states)}, k=kind, sk=serial_key,
                                   x=-1 if exclude_id is None else exclude_id))[0][0])

    def add_inbox_row(self, outbox_id: int, kind: str, business_key: str, row: InboxRow) -> None:
        """An inbox row outside a flow's transition (the notice endpoint reporting a
        payment notice for a request that is already closed)."""
        claimed = ClaimedRow(id=outbox_id, kind=kind, business_key=business_key, serial_key="", payload="",
                             was_state="", step=None, flow_data={}, current_call=None, attempts=0,
                             max_attempts=0)
        self._tx(lambda cur: self._write_results(cur, claimed, [row], ()))

    def inbox_sums(self, result_type: str, order_id: str) -> dict:
        """Sums of the amount columns of the successful inbox rows of one type for
        one platform order (e.g. every refund of a payment so far)."""
        rows = self.query("""SELECT total_amount, fund_amount, account_amount, cash_amount
                               FROM mi_inbox WHERE result_type = :t AND order_id = :o AND outcome = 'ok'""",
                          {"t": result_type, "o": order_id})
        out = {"total": Decimal("0.00"), "fund": Decimal("0.00"), "account": Decimal("0.00"),
               "cash": Decimal("0.00"), "count": len(rows)}
        for r in rows:
            for name, v in zip(("total", "fund", "account", "cash"), r):
                if v is not None:
                    out[name] += Decimal(str(v))
        return out

    # -- the order book (mi_order, mi_order_refund; bridge/db/orderbook.py) ----------------
    _ORDER_COLUMNS = ("id", "platform", "channel", "kind", "business_key", "outbox_id", "platform_order_id",
                      "settlement_id", "mix_trade_no", "out_trade_no", "trade_no", "status", "total_amount",
                      "fund_amount", "account_amount", "cash_amount", "refunded_total", "refunded_fund",
                      "refunded_account", "refunded_cash", "refund_count", "settle_day")
    _MONEY_COLUMNS = frozenset(c for c in _ORDER_COLUMNS if c.endswith(("_amount", "_total", "_fund",
                                                                        "_account", "_cash")))

    def _order_rows(self, where: str, params: dict) -> list[dict]:
        rows = self.query(f"SELECT {', '.join(self._ORDER_COLUMNS)} FROM mi_order WHERE {where} ORDER BY id", params)
        out = []
        for r in rows:
            d = dict(zip(self._ORDER_COLUMNS, r))
            for c in self._MONEY_COLUMNS:
                d[c] = Decimal(str(d[c])).quantize(Decimal("0.01"))
            d["id"], d["outbox_id"], d["refund_count"] = int(d["id"]), int(d["outbox_id"]), int(d["refund_count"])
            out.append(d)
        return out

    def order(self, platform_order_id: str) -> Optional[dict]:
        """A payment in the order book by its platform order id (payOrdId / setl_id), with
        its refunded totals per leg; kept after the payment's requests were purged."""
        rows = self._order_rows("platform_order_id = :k", {"k": platform_order_id})
        return rows[0] if rows else None

    def orders_of(self, business_key: str) -> list[dict]:
        """The payments an HIS business key booked (normally one)."""
        return self._order_rows("business_key = :b", {"b": business_key})

    def poke(self, kinds: Iterable[str], business_key: str) -> int:
        """Make a waiting request due now (a notice arrived for it)."""
        kinds = list(kinds)
        marks = ", ".join(f":k{n}" for n in range(len(kinds)))
        d = self.dialect
        return self.execute(f"""UPDATE mi_outbox SET next_attempt_at = {d.now}
                                 WHERE business_key = :b AND kind IN ({marks})
                                   AND state IN ('pending', 'in_doubt')""",
                            dict({f"k{n}": k for n, k in enumerate(kinds)}, b=business_key))

    # -- platform notices (mi_notice) -------------------------------------------------
    def record_notice(self, interface: str, notice_key: str, business_key: Optional[str],
                      outbox_id: Optional[int], notice: dict) -> bool:
        """Record a verified notice once; a repeat only counts.  Returns True when
        it was new."""
        d = self.dialect
        bump = f"""UPDATE mi_notice SET received_count = received_count + 1, last_received_at = {d.now}
                    WHERE interface = :i AND notice_key = :k"""
        params = {"i": interface, "k": notice_key}

        def go(cur):
            self._exec(cur, bump, params)
            if cur.rowcount == 1:
                return False
            self._exec(cur, """INSERT INTO mi_notice (interface, notice_key, business_key, outbox_id, notice_json)
                               VALUES (:i, :k, :b, :o, :j)""",
                       dict(params, b=business_key, o=outbox_id, j=_json(notice)))
            return True
        try:
            return self._tx(go)
        except Exception as exc:
            if self.is_disconnect(exc):
                raise
            # Two deliveries of one notice raced past the UPDATE and the other inserted
            # it; anything else (a value too long ...) leaves no row to bump: re-raise.
            if self.execute(bump, params) != 1:
                raise
            return False

    def notice(self, interface: str, notice_key: str) -> Optional[dict]:
        rows = self.query("SELECT notice_json FROM mi_notice WHERE interface = :i AND notice_key = :k",
                          {"i": interface, "k": notice_key})
        return json.loads(rows[0][0]) if rows else None

    def notice_age_seconds(self, interface: str, notice_key: str) -> Optional[float]:
        """Seconds since a notice first arrived, by the database clock (None: never)."""
        rows = self.query(f"""SELECT {self.dialect.age_seconds('first_received_at')} FROM mi_notice
                               WHERE interface = :i AND notice_key = :k""", {"i": interface, "k": notice_key})
        return float(rows[0][0]) if rows and rows[0][0] is not None else None

    # -- reading -------------------------------------------------------------------
    def query(self, sql: str, params: dict | None = None) -> list[tuple]:
        def go(cur):
            self._exec(cur, sql, params)
            return cur.fetchall()
        return self._tx(go)

    def execute(self, sql: str, params: dict | None = None) -> int:
        """One statement in its own transaction; returns the row count."""
        return self._tx(lambda cur: self._exec(cur, sql, params).rowcount)

    def status(self) -> dict:
        """Counts by state, the age of the oldest open request, and the held rows."""
        age = self.dialect.age_seconds("created_at")
        counts = dict(self.query("SELECT state, COUNT(*) FROM mi_outbox GROUP BY state"))
        oldest = self.query(f"SELECT MAX({age}) FROM mi_outbox WHERE state IN ('pending', 'in_doubt')")[0][0]
        held = self.query("""SELECT id, kind, business_key, last_error_code, last_error_message
                               FROM mi_outbox WHERE state = 'held' ORDER BY id""")
        return {"counts": {k: int(v) for k, v in counts.items()},
                "oldest_open_age_seconds": None if oldest is None else float(oldest),
                "held": [dict(zip(("id", "kind", "business_key", "reason_code", "reason"), h)) for h in held]}


def wait_for_db(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        s = Store(url)
        try:
            s.ping()
            return
        except Exception as exc:
            if time.monotonic() > deadline:
                raise
            logger.debug("database not ready: {}", exc)
            time.sleep(0.5)
        finally:
            s.close()
