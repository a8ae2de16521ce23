"""A reconciliation run's life in mi_recon_run, and its results in mi_recon_item and
mi_channel_bill.

* One run per day and platform at a time: a running run holds active_key "<day>:<platform>"
  (unique); a finished one "run:<id>".  A run whose heartbeat is older than stale_seconds
  (database clock) was killed: the next run takes over, marks it abandoned and drops what it
  had written.  The views show done runs only, so a half-written run never shows.
* Results are written in short batches (memory and transactions stay small).  When a run is
  done, the older runs of its day keep their row (the history) and lose their results.
* The end of a run is one transaction: its state, its summary and, when its differences are
  not those the HIS already got, the report (report.py): an outbox row of kind
  reconciliation.report, written done, and its inbox rows of type `reconciliation`.
"""
from __future__ import annotations

import hashlib
import json
import os
import secrets
import socket
import time
from decimal import Decimal
from typing import Any, Iterable, Iterator, Optional

from loguru import logger

from bridge.db.orderbook import money_param
from bridge.db.store import ClaimedRow, InboxRow, Store
from bridge.reconcile.model import BALANCED, CLASSES, Item, q

ITEM_COLUMNS = ("run_id", "order_key", "leg", "diff_class", "order_ref", "business_key", "channel", "channel_ref",
                "hospital_amount", "platform_amount", "channel_amount", "hospital_state", "platform_state",
                "source", "note")
BILL_COLUMNS = ("run_id", "channel", "bill_day", "line_no", "row_type", "out_trade_no", "trade_no",
                "out_refund_no", "refund_id", "amount", "trade_state", "trade_time")
REPORT_KIND = "reconciliation.report"


class RunBusy(RuntimeError):
    """Another run of the same day and platform is alive."""


class RunLost(RuntimeError):
    """This run was taken over (its heartbeat went stale) and must stop."""


def page(store: Store, sql: str, n: int) -> str:
    """A keyset page: the first n rows of an ORDER BY query."""
    if store.dialect.name in ("oracle", "sqlserver"):
        return f"{sql} OFFSET 0 ROWS FETCH NEXT {int(n)} ROWS ONLY"
    return f"{sql} LIMIT {int(n)}"


def insert_many(store: Store, table: str, columns: tuple[str, ...], rows: list[dict]) -> None:
    """Many rows in one short transaction, the fast way each driver has: COPY on PostgreSQL,
    PyMySQL's multi-row INSERT on MariaDB, array binding (executemany) elsewhere."""
    if not rows:
        return
    dialect = store.dialect.name
    cols = ", ".join(columns)

    def go(cur):
        if dialect == "postgresql":
            with cur.copy(f"COPY {table} ({cols}) FROM STDIN") as copy:
                for r in rows:
                    copy.write_row(tuple(r[c] for c in columns))
        elif dialect == "mysql":
            # PyMySQL turns this executemany into INSERT ... VALUES (...), (...), ...
            cur.executemany(f"INSERT INTO {table} ({cols}) VALUES ({', '.join(['%s'] * len(columns))})",
                            [tuple(r[c] for c in columns) for r in rows])
        else:
            sql = f"INSERT INTO {table} ({cols}) VALUES ({', '.join(':' + c for c in columns)})"
            text, _ = store.dialect.convert(sql, rows[0])
            cur.executemany(text, [store.dialect.convert(sql, r)[1] for r in rows])
    store._tx(go)


def _text(v: Optional[str], n: int) -> Optional[str]:
    # Oracle stores '' as NULL: never bind an empty string.
    return None if v in (None, "") else str(v)[:n]


class Runs:
    def __init__(self, store: Store, *, stale_seconds: float = 600.0, beat_every: float = 2.0):
        self.store = store
        self.stale_seconds = stale_seconds
        self.beat_every = beat_every
        self._last_beat = 0.0
        self.owner = f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(4)}"

    # -- start ------------------------------------------------------------------------------
    def start(self, day: str, platform: str) -> int:
        key = f"{day}:{platform}"
        s, d = self.store, self.store.dialect
        for _ in range(3):
            try:
                s.execute("""INSERT INTO mi_recon_run (recon_day, platform, state, active_key, owner, step)
                             VALUES (:d, :p, 'running', :k, :o, 'start')""", {"d": day, "p": platform, "k": key,
                                                                           "o": self.owner})
                run_id = int(s.query("SELECT id FROM mi_recon_run WHERE active_key = :k", {"k": key})[0][0])
                self._last_beat = time.monotonic()
                return run_id
            except Exception as exc:
                if s.is_disconnect(exc):
                    raise
                other = s.query(f"""SELECT id, owner, {d.age_seconds('heartbeat_at')} FROM mi_recon_run
                                     WHERE active_key = :k""", {"k": key})
                if not other:
                    raise
                other_id, other_owner, age = int(other[0][0]), other[0][1], float(other[0][2] or 0)
                if age < self.stale_seconds:
                    raise RunBusy(f"run {other_id} of {day} {platform} is in progress ({other_owner}, last heartbeat "
                                  f"{age:.0f} s ago); wait for it or stop it") from None
                self.abandon(other_id, f"no heartbeat for {age:.0f} s: the process was killed; taken over")
        raise RunBusy(f"could not start a run of {day} {platform}")

    def abandon(self, run_id: int, why: str) -> None:
        d = self.store.dialect
        n = self.store.execute(f"""UPDATE mi_recon_run SET state = 'abandoned', active_key = :k,
                                          error_message = :m, finished_at = {d.now}
                                    WHERE id = :id AND state = 'running'""",
                               {"k": f"run:{run_id}", "m": why[:1000], "id": run_id})
        if n:
            logger.warning("reconciliation run {} abandoned: {}", run_id, why)
            self.drop_results(run_id)

    # -- while running ----------------------------------------------------------------------
    def beat(self, run_id: int, step: Optional[str] = None, done: Optional[int] = None,
             total: Optional[int] = None, force: bool = False) -> None:
        """Heartbeat and progress (at most every beat_every seconds unless forced).  Raises
        RunLost when another process took the run over."""
        now = time.monotonic()
        if not force and now - self._last_beat < self.beat_every:
            return
        self._last_beat = now
        sets, params = [f"heartbeat_at = {self.store.dialect.now}"], {"id": run_id, "o": self.owner}
        if step is not None:
            sets.append("step = :step")
            params["step"] = step
        if done is not None:
            sets.append("progress_done = :done")
            params["done"] = int(done)
        if total is not None:
            sets.append("progress_total = :total")
            params["total"] = int(total)
        n = self.store.execute(f"UPDATE mi_recon_run SET {', '.join(sets)} WHERE id = :id AND state = 'running' "
                               f"AND owner = :o", params)
        if n != 1:
            raise RunLost(f"run {run_id} is no longer this process's (taken over or stopped)")

    def detail(self, run_id: int) -> dict:
        rows = self.store.query("SELECT detail_json FROM mi_recon_run WHERE id = :id", {"id": run_id})
        text = rows[0][0] if rows else None
        if text is not None and not isinstance(text, str):
            text = text.read()          # an Oracle CLOB
        return json.loads(text) if text else {}

    def note(self, run_id: int, **facts: Any) -> None:
        """Merge facts into the run's detail (what each call answered, files uploaded ...)."""
        detail = self.detail(run_id)
        detail.update(facts)
        self.store.execute("UPDATE mi_recon_run SET detail_json = :j WHERE id = :id AND owner = :o",
                           {"j": json.dumps(detail, ensure_ascii=False, default=str), "id": run_id, "o": self.owner})

    def add_items(self, run_id: int, items: Iterable[Item]) -> int:
        rows = []
        for it in items:
            rows.append({
                "run_id": run_id, "order_key": _text(it.order_key, 64) or "?", "leg": it.leg,
                "diff_class": it.diff_class, "order_ref": it.order_ref, "business_key": _text(it.business_key, 64),
                "channel": _text(it.channel, 16), "channel_ref": _text(it.channel_ref, 64),
                "hospital_amount": self._money(it.hospital_amount), "platform_amount": self._money(it.platform_amount),
                "channel_amount": self._money(it.channel_amount), "hospital_state": _text(it.hospital_state, 40),
                "platform_state": _text(it.platform_state, 40), "source": _text(it.source, 16) or "?",
                "note": _text(it.note, 1000)})
        insert_many(self.store, "mi_recon_item", ITEM_COLUMNS, rows)
        return len(rows)

    def add_bill_rows(self, run_id: int, rows: list[dict]) -> None:
        insert_many(self.store, "mi_channel_bill", BILL_COLUMNS,
                    [dict(r, run_id=run_id, amount=self._money(r["amount"]),
                          **{k: _text(r.get(k), 64) for k in ("out_trade_no", "trade_no", "out_refund_no",
                                                                "refund_id")},
                          trade_state=_text(r.get("trade_state"), 32), trade_time=_text(r.get("trade_time"), 19))
                     for r in rows])

    def _money(self, v: Optional[Decimal]):
        return None if v is None else money_param(self.store, q(v))

    # -- the end ----------------------------------------------------------------------------
    def fail(self, run_id: int, message: str) -> None:
        d = self.store.dialect
        self.store.execute(f"""UPDATE mi_recon_run SET state = 'failed', active_key = :k, error_message = :m,
                                      finished_at = {d.now}, heartbeat_at = {d.now}
                                WHERE id = :id AND state = 'running' AND owner = :o""",
                           {"k": f"run:{run_id}", "m": message[:1000], "id": run_id, "o": self.owner})

    def counts(self, run_id: int) -> dict[str, int]:
        got = {c: 0 for c in CLASSES}
        for cls, n in self.store.query("SELECT diff_class, COUNT(*) FROM mi_recon_item WHERE run_id = :r "
                                       "GROUP BY diff_class", {"r": run_id}):
            got[cls] = int(n)
        return got

    def differences(self, run_id: int, page_size: int = 1000) -> Iterator[dict]:
        """The run's differing items, in pages (flat memory)."""
        cols = ("id", "order_key", "leg", "diff_class", "order_ref", "business_key", "channel", "channel_ref",
                "hospital_amount", "platform_amount", "channel_amount", "hospital_state", "platform_state",
                "source", "note")
        last = 0
        while True:
            rows = self.store.query(page(self.store, f"""
                SELECT {', '.join(cols)} FROM mi_recon_item
                 WHERE run_id = :r AND id > :last AND diff_class <> 'balanced' ORDER BY id""", page_size),
                                    {"r": run_id, "last": last})
            for r in rows:
                d = dict(zip(cols, r))
                for m in ("hospital_amount", "platform_amount", "channel_amount"):
                    d[m] = q(d[m])
                yield d
            if len(rows) < page_size:
                return
            last = int(rows[-1][0])

    def digest(self, run_id: int, page_size: int = 1000) -> str:
        """The run's differences, whatever order they were written in: a sum of hashes."""
        total = 0
        for d in self.differences(run_id, page_size):
            text = "|".join(str(d[k]) for k in ("order_key", "leg", "diff_class", "hospital_amount",
                                                "platform_amount", "channel_amount"))
            total = (total + int.from_bytes(hashlib.sha256(text.encode()).digest(), "big")) % (1 << 256)
        return f"{total:064x}"

    def previous_digest(self, day: str, platform: str, run_id: int) -> Optional[str]:
        rows = self.store.query("""SELECT digest FROM mi_recon_run
                                    WHERE recon_day = :d AND platform = :p AND state = 'done' AND id < :r
                                    ORDER BY id DESC""", {"d": day, "p": platform, "r": run_id})
        return rows[0][0] if rows else None

    def complete(self, run_id: int, *, balanced: bool, counts: dict[str, int], digest: str,
                 report: Optional[tuple[str, dict, list[InboxRow]]]) -> Optional[int]:
        """Done, in one transaction with the report (kind, business key, payload, inbox rows).
        Returns the report's outbox id."""
        s, d = self.store, self.store.dialect
        total = sum(counts.values())
        differ = total - counts.get(BALANCED, 0)

        def go(cur):
            outbox_id = None
            if report is not None:
                key, payload, rows = report
                s._exec(cur, """INSERT INTO mi_outbox (kind, business_key, serial_key, payload)
                                VALUES (:k, :b, :b2, :p)""",
                        {"k": REPORT_KIND, "b": key, "b2": key, "p": json.dumps(payload, ensure_ascii=False)})
                # Written done at once: no flow runs it; the engine never claims it.
                s._exec(cur, f"""UPDATE mi_outbox SET state = 'done', step = 'reported', finished_at = {d.now},
                                        updated_at = {d.now}
                                  WHERE kind = :k AND business_key = :b AND state = 'pending'""",
                        {"k": REPORT_KIND, "b": key})
                s._exec(cur, "SELECT id FROM mi_outbox WHERE kind = :k AND business_key = :b",
                        {"k": REPORT_KIND, "b": key})
                outbox_id = int(cur.fetchall()[0][0])
                holder = ClaimedRow(id=outbox_id, kind=REPORT_KIND, business_key=key, serial_key=key, payload="",
                                    was_state="", step=None, flow_data={}, current_call=None, attempts=0,
                                    max_attempts=0)
                s._write_results(cur, holder, rows, ())
            s._exec(cur, f"""UPDATE mi_recon_run
                                SET state = 'done', active_key = :k, balanced = :bal, items_total = :t,
                                    items_differ = :df, digest = :dg, report_outbox_id = {'CAST(:rep AS BIGINT)' if d.name == 'postgresql' else ':rep'},
                                    step = 'done', finished_at = {d.now}, heartbeat_at = {d.now}
                              WHERE id = :id AND state = 'running' AND owner = :o""",
                    {"k": f"run:{run_id}", "bal": 1 if balanced else 0, "t": total, "df": differ, "dg": digest,
                     "rep": outbox_id, "id": run_id, "o": self.owner})
            if cur.rowcount != 1:
                raise RunLost(f"run {run_id} was taken over before it could finish")
            return outbox_id
        return s._tx(go)

    # -- results of other runs ----------------------------------------------------------------
    def drop_results(self, run_id: int, chunk: int = 5000) -> None:
        """Delete a run's items and bill rows in short transactions (id ranges)."""
        for table in ("mi_recon_item", "mi_channel_bill"):
            lo, hi = self.store.query(f"SELECT MIN(id), MAX(id) FROM {table} WHERE run_id = :r", {"r": run_id})[0]
            if lo is None:
                continue
            a = int(lo)
            while a <= int(hi):
                self.store.execute(f"DELETE FROM {table} WHERE run_id = :r AND id >= :a AND id < :b",
                                   {"r": run_id, "a": a, "b": a + chunk})
                a += chunk

    def supersede(self, day: str, platform: str, run_id: int) -> None:
        """The older runs of the day keep their row and lose their results."""
        for (other,) in self.store.query("""SELECT id FROM mi_recon_run
                                             WHERE recon_day = :d AND platform = :p AND id < :r
                                               AND state <> 'running'""", {"d": day, "p": platform, "r": run_id}):
            self.drop_results(int(other))

    def latest(self, day: str, platform: str) -> Optional[dict]:
        cols = ("id", "state", "balanced", "items_total", "items_differ", "error_message", "report_outbox_id", "step")
        rows = self.store.query(f"""SELECT {', '.join(cols)} FROM mi_recon_run
                                     WHERE recon_day = :d AND platform = :p ORDER BY id DESC""",
                                {"d": day, "p": platform})
        return dict(zip(cols, rows[0])) if rows else None
