from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Optional

_NAMED = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")

# The columns a claim returns, in this order (ClaimedRow in bridge/db/store.py).
CLAIM_COLUMNS = ("id", "kind", "business_key", "serial_key", "payload", "was_state", "step",
                 "flow_data", "current_call", "attempts", "max_attempts")
_ROW_COLUMNS = "id, kind, business_key, serial_key, payload, step, flow_data, current_call, attempts, max_attempts"


@dataclass
class CallEnd:
    """What came back from a remote call, for its journal row.  Written together
    with the next write of the row (the next call's journal row, or the step's
    transition), not in a transaction of its own."""

    msg_id: str
    outcome: str
    http_status: Optional[int]
    response_masked: Optional[str]
    error_message: Optional[str]


@dataclass
class Insert:
    """One row to insert when a guarded write holds.  `upsert`: the identity
    upsert (keyed on his_patient_id); `now_cols`: columns set to the database's now."""

    table: str
    values: dict
    now_cols: tuple = ()
    upsert: bool = False


@dataclass
class GuardedWrite:
    """One write of a claimed row, in one transaction (or one statement):

    1. the journal outcomes in `ends` (always: a late answer is still a fact);
    2. UPDATE mi_outbox SET <sets> WHERE id AND lease_owner AND state = 'running'
       [AND step guard] [AND the lease has not run out];
    3. only when 2 touched the row: the `inserts` (journal, inbox, identity rows).

    `sets` is SQL with :named parameters from `params`."""

    row_id: int
    owner: str
    sets: str
    params: dict
    step_guard: bool = True          # compare step with `step` (None: step IS NULL)
    step: Optional[str] = None
    live_lease: bool = False         # also require lease_expires_at > now (begin_call)
    ends: list = field(default_factory=list)
    inserts: list = field(default_factory=list)
    # (sql, params) statements, or callables given the cursor, also run only when
    # the guard holds, after the inserts (the mi_secret writes, the order book).  Rare: a write that has them takes the
    # plain transaction path (write() of this base class) on every dialect.
    after: list = field(default_factory=list)


def journal_end_sql(now: str) -> str:
    return f"""UPDATE mi_journal SET outcome = :outcome, http_status = :status,
                      response_masked = :resp, error_message = :err, ended_at = {now}
                WHERE msg_id = :msg AND outcome IS NULL"""


def journal_end_params(e: CallEnd) -> dict:
    return dict(outcome=e.outcome, status=e.http_status, resp=e.response_masked,
                err=e.error_message, msg=e.msg_id)


def renamed(sql: str, params: dict, tag: str) -> tuple[str, dict]:
    """The same statement with every :name renamed :name_tag, so that several
    statements can share one text and one parameter dict."""
    return (_NAMED.sub(lambda m: f":{m.group(1)}_{tag}", sql),
            {f"{k}_{tag}": v for k, v in params.items()})


class Dialect:
    """What differs between databases.  Subclasses set the class attributes.

    The engine's hot paths (claim, the guarded writes of a claimed row) are
    methods here: the base versions are plain transactions of separate
    statements, correct on every database; PostgreSQL, MariaDB and SQLite
    override them with fewer statements and round trips."""

    name = "base"
    # Driver parameter style: "named" (:x, sqlite/oracle), "pyformat" (%(x)s), "qmark" (?),
    # "dollar" ($1, PostgreSQL's own: the driver sends the text as it is).
    paramstyle = "named"
    # The database's clock; leases and retry times never come from the daemon's clock.
    now = "CURRENT_TIMESTAMP"
    supports_notify = False
    # What a SELECT of constants needs after its select list (MariaDB, Oracle: " FROM DUAL").
    from_dual = ""
    # True: the Store's connection runs in autocommit mode, a single statement
    # is sent alone (no BEGIN/COMMIT), and begin() opens a transaction.  False:
    # the driver opens transactions implicitly and every Store call commits.
    autocommit = False
    # The rescuer as one statement returning the count of rows moved (None:
    # the Store runs its two statements in a transaction).
    recover_sql: Optional[str] = None
    # One claim query: the open, due rows whose serialisation key has no older
    # unfinished row, locked so a concurrent worker skips them.
    claim_sql = ""

    def after(self, param: str) -> str:
        """SQL for 'database now + :param seconds'."""
        raise NotImplementedError

    def seconds(self, value: float):
        """The value to bind for a parameter used in after()."""
        return float(value)

    identity_upsert_sql = ""

    def age_seconds(self, column: str) -> str:
        """SQL for the seconds between a timestamp column and the database's now."""
        raise NotImplementedError

    def connect(self, url):
        raise NotImplementedError

    def prepare(self, conn) -> None:
        """Set up a connection the Store opened (autocommit mode where used)."""

    def begin(self, conn, cur, write: bool = True) -> None:
        """Open a transaction (autocommit dialects); implicit elsewhere."""

    def claim_candidates(self, cur, limit: int) -> list:
        """Run claim_sql and return at most `limit` (id, state) rows.  Oracle
        overrides this: it cannot combine a row limit with FOR UPDATE, so it
        fetches only `limit` rows of the open cursor instead."""
        text, args = self.convert(self.claim_sql, {"limit": limit})
        cur.execute(text, args)
        return cur.fetchall()

    def begin_claim(self, conn) -> None:
        """Start the claim transaction (SQLite needs BEGIN IMMEDIATE)."""

    def _run(self, cur, sql: str, params: dict | None = None):
        text, args = self.convert(sql, params or {})
        cur.execute(text, args)
        return cur

    # -- the claim ---------------------------------------------------------------
    def claim(self, conn, owner: str, lease, limit: int) -> list[tuple]:
        """Claim up to `limit` due rows for `owner` (lease: the value of seconds()),
        committed before it returns.  Rows in CLAIM_COLUMNS order, `attempts`
        already counting this claim.  Generic: lock the candidates, then one
        UPDATE and one SELECT per row, in one transaction."""
        cur = conn.cursor()
        self.begin_claim(conn)
        self.begin(conn, cur)
        claimed = []
        for row_id, was_state in self.claim_candidates(cur, limit):
            self._run(cur, f"""
                UPDATE mi_outbox
                   SET state = 'running', lease_owner = :owner,
                       lease_expires_at = {self.after('lease')},
                       attempts = attempts + 1, updated_at = {self.now}
                 WHERE id = :id AND state = :was""", dict(owner=owner, lease=lease, id=row_id, was=was_state))
            if cur.rowcount != 1:
                continue
            self._run(cur, f"SELECT {_ROW_COLUMNS} FROM mi_outbox WHERE id = :id", {"id": row_id})
            r = cur.fetchone()
            claimed.append(tuple(r[:5]) + (was_state,) + tuple(r[5:]))
        conn.commit()
        return claimed

    # -- the writes of a claimed row ----------------------------------------------
    def guard_sql(self, w: GuardedWrite) -> tuple[str, dict]:
        """The guarded UPDATE of a GuardedWrite (shared by every dialect)."""
        where = "id = :id AND lease_owner = :owner AND state = 'running'"
        if w.step_guard:
            # No COALESCE(step, '') = '': Oracle stores '' as NULL, so that is never true there.
            where += " AND step = :expected_step" if w.step else " AND step IS NULL"
        if w.live_lease:
            where += f" AND lease_expires_at > {self.now}"
        sets = f"{w.sets}, updated_at = {self.now}" if w.sets else f"updated_at = {self.now}"
        return f"UPDATE mi_outbox SET {sets} WHERE {where}", self.guard_params(w)

    @staticmethod
    def guard_params(w: GuardedWrite) -> dict:
        params = dict(w.params, id=w.row_id, owner=w.owner)
        if w.step_guard and w.step:
            params["expected_step"] = w.step
        return params

    def insert_sql(self, ins: Insert) -> tuple[str, dict]:
        """INSERT ... VALUES for one Insert (the identity upsert: identity_upsert_sql)."""
        if ins.upsert:
            return self.identity_upsert_sql, ins.values
        cols = list(ins.values) + list(ins.now_cols)
        vals = [f":{c}" for c in ins.values] + [self.now] * len(ins.now_cols)
        return f"INSERT INTO {ins.table} ({', '.join(cols)}) VALUES ({', '.join(vals)})", ins.values

    @staticmethod
    def _shape(w: GuardedWrite) -> tuple:
        return (w.sets, w.step_guard, w.step is None, w.live_lease, len(w.ends),
                tuple((i.table, tuple(i.values), i.now_cols, i.upsert) for i in w.inserts))

    def combined(self, writes: list, compose):
        """Several GuardedWrites sent as one statement or one round trip.
        compose(writes) builds (text, extra) once per shape of batch, naming the
        parameters of write j with renamed(): its guard g<j>, its journal
        outcomes e<j>_<n>, its inserts i<j>_<n>.  Returns (text, params, extra)."""
        key = (type(self), compose.__name__, tuple(self._shape(w) for w in writes))
        built = _COMPOSED.get(key)
        if built is None:
            built = compose(writes)
            if len(_COMPOSED) < 2048:
                _COMPOSED[key] = built
        params = {}
        for j, w in enumerate(writes):
            params.update({f"{k}_g{j}": v for k, v in self.guard_params(w).items()})
            for n, e in enumerate(w.ends):
                params.update({f"{k}_e{j}_{n}": v for k, v in journal_end_params(e).items()})
            for n, ins in enumerate(w.inserts):
                params.update({f"{k}_i{j}_{n}": v for k, v in ins.values.items()})
        return built[0], params, built[1]

    def _write_in_tx(self, cur, w: GuardedWrite) -> bool:
        for e in w.ends:
            self._run(cur, journal_end_sql(self.now), journal_end_params(e))
        self._run(cur, *self.guard_sql(w))
        if cur.rowcount != 1:
            return False
        for ins in w.inserts:
            self._run(cur, *self.insert_sql(ins))
        for step in w.after:
            if callable(step):          # a Store callback in this transaction (the order book)
                step(cur)
            else:
                self._run(cur, *step)
        return True

    def write(self, conn, w: GuardedWrite) -> bool:
        """Run one GuardedWrite in one transaction; False when the guard touched
        no row (the lease is lost: the journal outcomes are committed all the
        same, nothing else)."""
        cur = conn.cursor()
        self.begin(conn, cur)
        ok = self._write_in_tx(cur, w)
        conn.commit()
        return ok

    def write_many(self, conn, writes: list) -> list[bool]:
        """Writes of different rows, committed before this returns (each one
        alone, here: simple and correct).  An error in any may undo them all."""
        return [self.write(conn, w) for w in writes]

    def write_all_in_tx(self, conn, writes: list) -> list[bool]:
        """Several writes in ONE plain transaction (the composed statements cannot
        carry `after` steps): all or nothing, so that a failure of one never leaves
        the others committed while the caller writes them again alone."""
        cur = conn.cursor()
        self.begin(conn, cur)
        out = [self._write_in_tx(cur, w) for w in writes]
        conn.commit()
        return out

    def write_ends(self, conn, ends: list) -> None:
        """Journal outcomes with nothing else to carry them (the row was lost)."""
        cur = conn.cursor()
        self.begin(conn, cur)
        for e in ends:
            self._run(cur, journal_end_sql(self.now), journal_end_params(e))
        conn.commit()

    def is_disconnect(self, exc: BaseException) -> bool:
        """True when exc means the connection is unusable and must be reopened."""
        return False

    def convert(self, sql: str, params: dict):
        return _convert(self.paramstyle, sql)(params)


# mi_identity's columns as the daemon writes them (his_patient_id is the key; updated_at is
# the database's now).  Migration 007 added the ones after psn_cert_type.
IDENTITY_COLUMNS = ("his_patient_id", "psn_no", "insuplc_admdvs", "insutype", "benefit", "psn_cert_type",
                    "psn_type", "med_type", "benefit_status", "certno_masked", "psn_name_masked", "gend",
                    "chosen", "source_kind", "source_outbox_id")


def on_conflict_identity_upsert(now: str) -> str:
    """The identity upsert for databases with INSERT ... ON CONFLICT (PostgreSQL, SQLite)."""
    return f"""
        INSERT INTO mi_identity ({', '.join(IDENTITY_COLUMNS)}, updated_at)
        VALUES ({', '.join(':' + c for c in IDENTITY_COLUMNS)}, {now})
        {ON_CONFLICT_IDENTITY}"""


ON_CONFLICT_IDENTITY = "ON CONFLICT (his_patient_id) DO UPDATE SET " + ", ".join(
    f"{c} = excluded.{c}" for c in IDENTITY_COLUMNS[1:] + ("updated_at",))


_COMPOSED: dict = {}


@lru_cache(maxsize=1024)
def _convert(style: str, sql: str):
    if style == "named":
        return lambda p: (sql, p)
    if style == "pyformat":
        text = _NAMED.sub(lambda m: f"%({m.group(1)})s", sql.replace("%", "%%"))
        return lambda p: (text, p)
    if style == "qmark":
        order = _NAMED.findall(sql)
        text = _NAMED.sub("?", sql)
        return lambda p: (text, [p[k] for k in order])
    if style == "dollar":
        names: dict = {}
        text = _NAMED.sub(lambda m: f"${names.setdefault(m.group(1), len(names) + 1)}", sql)
        order = list(names)
        return lambda p: (text, [p[k] for k in order])
    raise ValueError(style)
