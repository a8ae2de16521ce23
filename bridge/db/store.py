"""Every query the engine runs against the mi_ tables.

One Store wraps one database connection and is used by one thread.  Each
method is one short transaction, or one statement in autocommit where the
database has it (a read, a claim, a claimed row's write on PostgreSQL); none
is ever held open across a remote call.  Every change to a claimed row is
guarded by `state = 'running' AND lease_owner = :owner` (and the expected step
where it matters), so a worker whose lease expired and whose row was rescued
can never overwrite it: its UPDATE touches no row and the method raises
LostLease.  The claim and the writes of a claimed row are built here and run
by the dialect (bridge/db/dialects), which sends them in as few statements
and round trips as its database allows.
"""
from __future__ import annotations

import json
import re
import time
from decimal import Decimal
from typing import Any, Iterable, Optional

from loguru import logger

from bridge.db import orderbook
from bridge.db.dialects import get_dialect
from bridge.db.dialects.base import CallEnd, GuardedWrite, Insert
# The row types live in bridge/db/rows.py (flows use them without the Store); named here too.
from bridge.db.rows import ClaimedRow, IdentityRow, InboxRow, NewRequest  # noqa: F401
from bridge.masking import mask_text
from bridge.db.url import DbUrl, parse_url

FINAL_STATES = ("done", "failed", "resolved")
OPEN_STATES = ("pending", "running", "in_doubt", "held")


class AdminRefused(ValueError):
    """The database refused an admin action (requeue, resolve, cancel): the text
    says why, in words (the mibridge: message of its function)."""


# How each database runs mi_requeue / mi_resolve / mi_cancel.  MariaDB procedures
# have no default arguments: who asked travels in @mibridge_actor (the procedure
# reads and clears it).  SQLite has no procedures: an INSERT into a view whose
# INSTEAD OF trigger does the work.
_ADMIN_CALLS = {
    "postgresql": ["SELECT mi_{a}(:id, :note, :actor)"],
    "mysql": ["SET @mibridge_actor = :actor", "CALL mi_{a}(:id, :note)"],
    "sqlite": ["INSERT INTO mi_{a} (id, note, actor) VALUES (:id, :note, :actor)"],
    "oracle": ["BEGIN mi_{a}(:id, :note, :actor); END;"],
    "sqlserver": ["EXEC mi_{a} :id, :note, :actor"],
}
_ADMIN_PARAMS = {sql: [p for p in ("id", "note", "actor") if f":{p}" in sql]
                 for calls in _ADMIN_CALLS.values() for sql in calls}


def admin_refusal(exc: BaseException, action: str) -> Optional[str]:
    """The words of a database's refusal of an admin action, or None when the
    error is something else (a lost connection, no rights ...)."""
    text = str(exc)
    i = text.find("mibridge: ")
    if i >= 0:
        msg = text[i + len("mibridge: "):].splitlines()[0]
        # MariaDB: (1644, 'mibridge: ...'); SQL Server: ... (50000) (SQLExecDirectW)
        msg = re.sub(r"\s*\(\d+\)\s*\(SQL\w+\)\s*$", "", msg)
        msg = re.sub(r"['\"]\)$", "", msg).strip()
        return msg
    low = text.lower()
    if f"mi_{action}" in low and any(w in low for w in ("does not exist", "doesn't exist", "no such table",
                                                         "not found", "could not find", "must be declared",
                                                         "identifier")):
        return (f"this database has no mi_{action} (its mibridge schema is older than version 5); "
                f"run 'mibridge db upgrade'")
    return None


class LostLease(Exception):
    """The row is no longer ours (rescued after our lease expired)."""


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
        # A GroupWriter (bridge/db/groupwrite.py) shared by a daemon's workers:
        # claimed rows' writes then go through it, several in one round trip.
        self.writer = None

    # -- connection ---------------------------------------------------------
    @property
    def conn(self):
        if self._conn is None:
            conn = self.dialect.connect(self.url)
            try:
                self.dialect.prepare(conn)
            except BaseException:
                conn.close()
                raise
            self._conn = conn
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

    def _on_conn(self, fn):
        """Run fn(connection); on any error roll back whatever it left open and,
        when the connection is gone, drop it so the next call reconnects."""
        conn = self.conn
        try:
            return fn(conn)
        except BaseException as exc:
            try:
                conn.rollback()
            except Exception:
                pass
            if self.dialect.is_disconnect(exc) or not isinstance(exc, Exception):
                self.close()
            raise

    def _tx(self, fn, *, claim: bool = False):
        """Run fn(cursor) in one transaction."""
        def go(conn):
            if claim:
                self.dialect.begin_claim(conn)
            cur = conn.cursor()
            self.dialect.begin(conn, cur)
            result = fn(cur)
            conn.commit()
            return result
        return self._on_conn(go)

    def _single(self, fn):
        """Run fn(cursor), which sends ONE statement: alone in autocommit where the
        dialect has it (no BEGIN/COMMIT around it), else in a transaction."""
        if not self.dialect.autocommit:
            return self._tx(fn)
        return self._on_conn(lambda conn: fn(conn.cursor()))

    def ping(self) -> None:
        self._single(lambda cur: self._exec(cur, "SELECT 1 FROM mi_outbox WHERE 1 = 0"))

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
        """Lease up to `limit` due rows to `owner` (unique per claim: every row of
        one claim shares it), committed before this returns.  Two rows of one
        serial key are never claimed together: the second has an older
        unfinished row, the first."""
        d = self.dialect
        rows = self._on_conn(lambda conn: d.claim(conn, owner, d.seconds(lease_seconds), max(1, int(limit))))
        return [ClaimedRow(id=int(r[0]), kind=r[1], business_key=r[2], serial_key=r[3], payload=r[4],
                           was_state=r[5], step=r[6], flow_data=json.loads(r[7]) if r[7] else {},
                           current_call=r[8], attempts=int(r[9]), max_attempts=int(r[10]))
                for r in rows]

    def unclaim(self, row: ClaimedRow, owner: str) -> bool:
        """Give back a row claimed but never started (the daemon is stopping):
        its state and attempts as before the claim."""
        return self.execute(f"""
            UPDATE mi_outbox SET state = :was, attempts = attempts - 1, lease_owner = NULL,
                   lease_expires_at = NULL, updated_at = {self.dialect.now}
             WHERE id = :id AND lease_owner = :owner AND state = 'running'""",
                            dict(was=row.was_state, id=row.id, owner=owner)) == 1

    def heartbeat(self, row_id: int, owner: str, lease_seconds: float) -> bool:
        return not self.heartbeat_many({row_id: owner}, lease_seconds)

    def heartbeat_many(self, held: dict, lease_seconds: float) -> list[int]:
        """Renew the lease of every row in `held` (row id -> owner), one
        statement per 500 rows.  Returns the ids whose lease is no longer theirs."""
        d = self.dialect
        items = sorted(held.items())
        lost = []
        for i in range(0, len(items), 500):
            chunk = dict(items[i:i + 500])
            params = {f"i{n}": k for n, k in enumerate(chunk)}
            owners = sorted(set(chunk.values()))
            params.update({f"o{n}": o for n, o in enumerate(owners)})
            # id IN and owner IN: a row is renewed only while one of our live
            # claims owns it (owners are unique per claim, never reused).
            where = (f"state = 'running' AND id IN ({', '.join(':i%d' % n for n in range(len(chunk)))}) "
                     f"AND lease_owner IN ({', '.join(':o%d' % n for n in range(len(owners)))})")
            renewed = self.execute(f"UPDATE mi_outbox SET lease_expires_at = {d.after('lease')} WHERE {where}",
                                   dict(params, lease=d.seconds(lease_seconds)))
            if renewed != len(chunk):
                ours = {(int(r[0]), r[1]) for r in self.query(f"SELECT id, lease_owner FROM mi_outbox WHERE {where}",
                                                             params)}
                lost += [k for k, o in chunk.items() if (k, o) not in ours]
        return lost

    # -- the call journal ----------------------------------------------------
    def begin_call(self, row_id: int, owner: str, step: str, msg_id: str, interface: str,
                   masked_request: str, unsafe: bool, mark: bool = True,
                   ended: Iterable[CallEnd] = ()) -> None:
        """Write the journal row and mark the row as 'in a call' in one
        transaction, BEFORE anything is sent.  Raises LostLease, also when our
        lease has already run out (a rescuer may be about to take the row).
        mark=False (a resolver's query) journals the call but leaves
        current_call naming the call that is in doubt.  `ended`: outcomes of
        earlier calls not written yet; they are written whatever the guard says."""
        if mark:
            sets, params = "current_call = :msg, call_unsafe = :unsafe", dict(msg=msg_id, unsafe=1 if unsafe else 0)
        else:
            sets, params = "", {}
        journal = Insert("mi_journal", dict(msg_id=msg_id, outbox_id=row_id, step=step, interface=interface,
                                            request_masked=masked_request,
                                            # 005: what mi_cancel checks (a call that may have moved money)
                                            unsafe=1 if unsafe else 0))
        self._write(GuardedWrite(row_id=row_id, owner=owner, sets=sets, params=params, step_guard=False,
                                 live_lease=True, ends=self._ends(ended), inserts=[journal]))

    def end_call(self, msg_id: str, outcome: str, http_status: Optional[int],
                 response_masked: Optional[str], error_message: Optional[str]) -> None:
        """Record what came back, on its own.  The runner does not call this: it
        hands the outcome to the next write of the row (`ended=`).  Not guarded
        by the lease: the journal is a record of facts, and a late answer is
        still a fact worth keeping."""
        self.end_calls([CallEnd(msg_id, outcome, http_status, response_masked, error_message)])

    def end_calls(self, ended: Iterable[CallEnd]) -> None:
        ends = self._ends(ended)
        if ends:
            self._on_conn(lambda conn: self.dialect.write_ends(conn, ends))

    @staticmethod
    def _ends(ended: Iterable[CallEnd]) -> list[CallEnd]:
        return [CallEnd(e.msg_id, e.outcome, e.http_status, e.response_masked, _masked(e.error_message))
                for e in ended]

    def call_age_seconds(self, msg_id: str) -> Optional[float]:
        """Seconds since the call was journalled, by the database clock: lets a
        resolver tell "not booked yet" from "never booked"."""
        rows = self.query(f"SELECT {self.dialect.age_seconds('started_at')} FROM mi_journal WHERE msg_id = :m",
                          {"m": msg_id})
        return float(rows[0][0]) if rows and rows[0][0] is not None else None

    # -- transitions of a claimed row -----------------------------------------
    def _write(self, w: GuardedWrite) -> None:
        if self.writer is not None:
            ok = self.writer.write(w, self)
        else:
            ok = self._on_conn(lambda conn: self.dialect.write(conn, w))
        if not ok:
            raise LostLease(w.row_id)

    def write_many(self, writes: list) -> list:
        """Writes of different claimed rows together (GroupWriter).  Per write:
        True, False (its guard touched no row), or the exception it raised.
        Rows are written in id order, so two batches lock in the same order.
        When the batch fails for a reason other than a lost connection, each
        write is tried alone, so that one bad write fails only itself."""
        d = self.dialect
        if len(writes) > 1:
            order = sorted(range(len(writes)), key=lambda j: writes[j].row_id)
            try:
                done = self._on_conn(lambda conn: d.write_many(conn, [writes[j] for j in order]))
                out = [None] * len(writes)
                for j, ok in zip(order, done):
                    out[j] = ok
                return out
            except Exception as exc:
                if d.is_disconnect(exc):
                    return [exc] * len(writes)
                logger.warning("a group of {} writes failed ({}: {}); writing each alone",
                               len(writes), type(exc).__name__, exc)
        out = []
        for w in writes:
            try:
                out.append(self._on_conn(lambda conn: d.write(conn, w)))
            except Exception as exc:
                out.append(exc)
        return out

    @staticmethod
    def _results(row: ClaimedRow, inbox: Iterable[InboxRow], identities: Iterable[IdentityRow]) -> list[Insert]:
        out = [Insert("mi_inbox", dict(
            outbox_id=row.id, kind=row.kind, business_key=row.business_key, result_type=ib.result_type,
            outcome=ib.outcome, error_code=ib.error_code, error_message=_masked(ib.error_message),
            order_id=ib.order_id, settlement_id=ib.settlement_id,
            total_amount=_money(ib.total_amount), fund_amount=_money(ib.fund_amount),
            account_amount=_money(ib.account_amount), cash_amount=_money(ib.cash_amount),
            result_json=_json(ib.result))) for ib in inbox]
        for ident in identities:
            out.append(Insert("mi_identity", dict(
                his_patient_id=ident.his_patient_id, psn_no=ident.psn_no,
                insuplc_admdvs=ident.insuplc_admdvs, insutype=ident.insutype,
                benefit=ident.benefit, psn_cert_type=ident.psn_cert_type,
                psn_type=ident.psn_type, med_type=ident.med_type, benefit_status=ident.benefit_status,
                certno_masked=ident.certno_masked, psn_name_masked=ident.psn_name_masked, gend=ident.gend,
                chosen=1 if ident.chosen else 0, source_kind=row.kind, source_outbox_id=row.id),
                now_cols=("updated_at",), upsert=True))
        return out

    def _write_results(self, cur, row: ClaimedRow, inbox: Iterable[InboxRow],
                       identities: Iterable[IdentityRow]) -> None:
        """Inbox and identity rows in a transaction the caller holds (the reconciliation's
        report), booked into the order book like a transition's."""
        inbox = list(inbox)
        for ins in self._results(row, inbox, identities):
            self._exec(cur, *self.dialect.insert_sql(ins))
        for ib in inbox:
            orderbook.book(self, cur, row, ib)

    def _transition(self, row: ClaimedRow, owner: str, sets: str, params: dict, inserts: list,
                    ended: Iterable[CallEnd], after: Optional[list] = None,
                    inbox: Iterable[InboxRow] = ()) -> None:
        after = list(after or [])
        # The order book follows the inbox in the same transaction (bridge/db/orderbook.py).
        # Rare (a settlement, a refund): such a write takes the plain transaction path.
        for ib in inbox:
            if orderbook.books(row, ib):
                after.append(lambda cur, ib=ib: orderbook.book(self, cur, row, ib))
        self._write(GuardedWrite(row_id=row.id, owner=owner, sets=sets, params=params, step=row.step,
                                 ends=self._ends(ended), inserts=inserts, after=after))

    def _enqueue_statements(self, enqueue: Iterable[NewRequest]) -> list[tuple[str, dict]]:
        """INSERT each new request unless one of its kind and business key exists (a
        repeated transition adds nothing).  The outbox triggers validate it as they
        validate the HIS's rows."""
        out = []
        for r in enqueue:
            out.append((f"""INSERT INTO mi_outbox (kind, business_key, serial_key, payload)
                            SELECT :k, :b, :s, :p{self.dialect.from_dual}
                             WHERE NOT EXISTS (SELECT 1 FROM mi_outbox WHERE kind = :k2 AND business_key = :b2)""",
                        dict(k=r.kind, b=r.business_key, s=r.serial_key or r.business_key, p=_json(r.payload),
                             k2=r.kind, b2=r.business_key)))
        return out

    def advance(self, row: ClaimedRow, owner: str, new_step: str, flow_data: dict,
                *, inbox: Iterable[InboxRow] = (), identities: Iterable[IdentityRow] = (),
                release_after: Optional[float] = None,
                secrets: Optional[dict[str, Optional[str]]] = None,
                enqueue: Iterable[NewRequest] = (),
                ended: Iterable[CallEnd] = ()) -> None:
        """Move to the next step (keeping the lease, or releasing the row to be
        picked up again after `release_after` seconds).  The step's inbox rows,
        secrets and new requests commit in the same transaction."""
        d = self.dialect
        if release_after is None:
            sets = "step = :step, flow_data = :fd, current_call = NULL, call_unsafe = 0, attempts = 0"
            params = dict(step=new_step, fd=_json(flow_data))
        else:
            sets = (f"step = :step, flow_data = :fd, current_call = NULL, call_unsafe = 0, attempts = 0, "
                    f"state = 'pending', lease_owner = NULL, lease_expires_at = NULL, "
                    f"next_attempt_at = {d.after('delay')}")
            params = dict(step=new_step, fd=_json(flow_data), delay=d.seconds(release_after))
        inbox = list(inbox)
        self._transition(row, owner, sets, params, self._results(row, inbox, identities), ended,
                         after=self._secret_statements(row.id, secrets, None) + self._enqueue_statements(enqueue),
                         inbox=inbox)
        row.step = new_step
        row.flow_data = flow_data
        row.current_call = None
        if release_after is None:
            row.attempts = 0

    def finish(self, row: ClaimedRow, owner: str, state: str, flow_data: dict,
               inbox: Iterable[InboxRow], *, identities: Iterable[IdentityRow] = (),
               error_code: Optional[str] = None, error_message: Optional[str] = None,
               secrets: Optional[dict[str, Optional[str]]] = None,
               keep_secrets: Optional[Iterable[str]] = None,
               enqueue: Iterable[NewRequest] = (),
               ended: Iterable[CallEnd] = ()) -> None:
        """Final state and the HIS's inbox rows (and any new requests), in ONE transaction.  With
        keep_secrets (a flow that holds secrets) the row's secrets are deleted in
        it too, except the names given."""
        assert state in ("done", "failed")
        d = self.dialect
        sets = (f"state = :state, flow_data = :fd, current_call = NULL, call_unsafe = 0, "
                f"lease_owner = NULL, lease_expires_at = NULL, finished_at = {d.now}, "
                f"last_error_code = :ecode, last_error_message = :emsg")
        params = dict(state=state, fd=_json(flow_data), ecode=error_code, emsg=_masked(error_message))
        keep = None if keep_secrets is None else tuple(keep_secrets)
        inbox = list(inbox)
        self._transition(row, owner, sets, params, self._results(row, inbox, identities), ended,
                         after=self._secret_statements(row.id, secrets, keep) + self._enqueue_statements(enqueue),
                         inbox=inbox)

    def release(self, row: ClaimedRow, owner: str, state: str, delay: float, flow_data: dict,
                *, error_code: Optional[str], error_message: Optional[str],
                keep_call: bool, inbox: Iterable[InboxRow] = (), keep_attempts: bool = False,
                ended: Iterable[CallEnd] = ()) -> None:
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
        self._transition(row, owner, sets, params, self._results(row, inbox, ()), ended)

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
        if d.recover_sql:
            return self._single(lambda cur: int(self._exec(cur, d.recover_sql).fetchone()[0]))
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
    # requeue, resolve and cancel are the database's own functions (migration 005:
    # mi_requeue, mi_resolve, mi_cancel), the same a DBA runs in SQL: one place for
    # the rules (a held row with a call in doubt requeues to in_doubt, never to a
    # resend; resolve and cancel need a note; cancel refuses a row that journalled an
    # unsafe call or is running), one audit row each.
    def _admin(self, action: str, row_id: int, actor: str, note: Optional[str]) -> str:
        name = self.dialect.name
        calls = _ADMIN_CALLS[name]
        params = dict(id=row_id, note=note, actor=(actor or "")[:64] or None)

        def go(cur):
            for sql in calls:
                self._exec(cur, sql.format(a=action), {k: params[k] for k in _ADMIN_PARAMS[sql]})
            self._exec(cur, "SELECT state FROM mi_outbox WHERE id = :id", {"id": row_id})
            r = cur.fetchone()
            return r[0] if r else None
        try:
            return self._tx(go)
        except Exception as exc:
            refusal = admin_refusal(exc, action)
            if refusal is None:
                raise
            raise AdminRefused(refusal) from None

    def requeue(self, row_id: int, actor: str, note: Optional[str]) -> str:
        """A held row goes back to work.  If it was stopped inside a call whose
        effect is unknown it goes to in_doubt (query first), never straight to a resend."""
        return self._admin("requeue", row_id, actor, note)

    def resolve(self, row_id: int, actor: str, note: str) -> str:
        """A human settled a held row by hand (e.g. after checking the platform):
        close it, tell the HIS, and keep who and why in mi_audit."""
        return self._admin("resolve", row_id, actor, note)

    def cancel(self, row_id: int, actor: str, note: str) -> str:
        """A pending or held row that made no call that may have moved money ends
        'failed'; the HIS gets a 'cancelled' inbox row (CANCELLED_BY_HAND)."""
        return self._admin("cancel", row_id, actor, note)

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
    @staticmethod
    def _secret_statements(outbox_id: int, secrets: Optional[dict[str, Optional[str]]],
                           keep: Optional[tuple[str, ...]]) -> list[tuple[str, dict]]:
        """The mi_secret statements of a transition, run in its transaction only when
        its guard holds: replace the named secrets (None or "" deletes one: Oracle
        would store "" as NULL, which the NOT NULL column refuses), then, when the
        request is final (`keep` not None), delete every other secret but `keep`."""
        out: list[tuple[str, dict]] = []
        for name, value in (secrets or {}).items():
            out.append(("DELETE FROM mi_secret WHERE outbox_id = :o AND name = :n", {"o": outbox_id, "n": name}))
            if value not in (None, ""):
                out.append(("INSERT INTO mi_secret (outbox_id, name, value) VALUES (:o, :n, :v)",
                            {"o": outbox_id, "n": name, "v": str(value)}))
        if keep is not None:
            marks = ", ".join(f":k{n}" for n in range(len(keep)))
            out.append(("DELETE FROM mi_secret WHERE outbox_id = :o" + (f" AND name NOT IN ({marks})" if keep else ""),
                        dict({f"k{n}": k for n, k in enumerate(keep)}, o=outbox_id)))
        return out

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
        [ins] = self._results(claimed, [row], ())
        self._single(lambda cur: self._exec(cur, *self.dialect.insert_sql(ins)))

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

    def insured_region(self, admdvs: str) -> Optional[dict]:
        """One row of mi_insured_region (migration 006), enabled or not, for the identity
        flows' check of the patient's region: {"admdvs", "name", "enabled" (bool),
        "channels" (wechat/alipay/counter/kiosk it is offered on), "insutypes" (a list, or
        None = every type)}; None when the code is not listed.  (bridge/regions/storage.find
        reads the same row as a Region; a flow cannot import it: it reads the Store.)"""
        rows = self.query("""SELECT admdvs, name, enabled, on_wechat, on_alipay, on_counter, on_kiosk, insutypes
                               FROM mi_insured_region WHERE admdvs = :a""", {"a": admdvs})
        if not rows:
            return None
        a, name, enabled, *flags, insutypes = rows[0]
        return {"admdvs": str(a), "name": str(name), "enabled": int(enabled) == 1,
                "channels": [c for c, f in zip(("wechat", "alipay", "counter", "kiosk"), flags) if int(f) == 1],
                "insutypes": str(insutypes).split(",") if insutypes else None}

    def chosen_identity(self, his_patient_id: str) -> Optional[dict]:
        """The mi_identity row of an HIS patient (FlowPort.chosen_identity): {"psn_no",
        "insutype", "insuplc_admdvs", "chosen" (bool), "source_kind"}, or None."""
        rows = self.query("""SELECT psn_no, insutype, insuplc_admdvs, chosen, source_kind
                               FROM mi_identity WHERE his_patient_id = :p""", {"p": his_patient_id})
        if not rows:
            return None
        psn_no, insutype, region, chosen, source_kind = rows[0]
        return {"psn_no": str(psn_no), "insutype": None if insutype is None else str(insutype),
                "insuplc_admdvs": None if region is None else str(region),
                "chosen": chosen is not None and int(chosen) == 1,
                "source_kind": None if source_kind is None else str(source_kind)}

    # -- reading -------------------------------------------------------------------
    def query(self, sql: str, params: dict | None = None) -> list[tuple]:
        """One SELECT, in autocommit where the database has it."""
        return self._single(lambda cur: self._exec(cur, sql, params).fetchall())

    def execute(self, sql: str, params: dict | None = None) -> int:
        """One statement, committed on its own; returns the row count."""
        return self._single(lambda cur: self._exec(cur, sql, params).rowcount)

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
