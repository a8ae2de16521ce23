"""Flows: one explicit state machine per request kind.

A flow declares its steps in one table.  Each Step says
  * which interfaces its method may call (`calls`, interface codes), and whether
    they are safe to repeat (an upload that the platform de-duplicates is; a
    payment or a refund is not);
  * for a step that is not safe to repeat, which queries its resolver may send
    (`resolves_with`): never the unsafe call itself, which would be a resend;
  * which steps may follow it.
For every step `x` the flow has a method `step_x(ctx)`, and for every step
whose call is not safe to repeat a method `resolve_x(ctx)` that finds out, by
querying the platform, what happened to a call whose answer was lost.  The
context refuses any other interface (a flow bug: the row is held FLOW_ERROR
before anything is journalled or sent).  How to write one: docs/engine.md
"Writing a flow".

Both methods return one Transition (below).  The runner persists it before
doing anything the transition leads to, so a crash at any point leaves the row
in a state that says exactly what is known:

    Goto(step)         continue with the next step now (same lease)
    Wait(step, delay)  release the row; continue with `step` after `delay` s
    Finish(...)        done: final state and inbox rows in one transaction
    Fail(...)          a business failure the HIS must see (nothing to retry)
    Retry(...)         try this step again later (only for safe steps, or after
                       an answer that says nothing was done; the runner holds
                       the row once attempts are used up)
    InDoubt(...)       the remote effect is unknown: resolve by query later.
                       waiting=True: the platform's settle window has not passed
                       yet, so "not found" is no answer yet - waiting, not a
                       failed try: the runner leaves the row's attempts as they were
    Hold(...)          stop for a human, with the reason

Secrets (tokens, ID numbers, names) never go into flow_data: a transition carries
them in `secrets`, which the runner writes to the daemon-only mi_secret table in the
same transaction; a step reads them back with ctx.secret(name).  When the request is
final the runner deletes every secret but those the flow names in `kept_secrets`
(what a later request needs, e.g. a payment's payToken for its refund), and strips
the keys in `secret_keys` from flow_data wherever they appear (rows written before
mi_secret existed).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import ClassVar, Optional

# The rows a transition carries; flows import them from here with the transitions.
from bridge.db.rows import IdentityRow, InboxRow, NewRequest  # noqa: F401


class BadInput(Exception):
    """The outbox row cannot be processed as written (bad JSON, missing or
    malformed fields).  Nothing was sent; the HIS gets a 'failed' inbox row."""

    def __init__(self, message: str, code: str = "BAD_INPUT"):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Step:
    name: str
    calls: tuple[str, ...] = ()          # interfaces step_<name> may send, e.g. ("6202",)
    safe_to_repeat: bool = True          # may its calls be re-sent blindly?
    next: tuple[str, ...] = ()           # steps that may follow
    # The queries resolve_<name> may send to find out what a lost call did (e.g.
    # ("6301",)); required exactly when the step is not safe to repeat.
    resolves_with: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("calls", "next", "resolves_with"):
            v = getattr(self, name)
            if not isinstance(v, tuple) or not all(isinstance(x, str) and x for x in v):
                raise TypeError(f"Step {self.name!r}: {name} must be a tuple of names, "
                                f"e.g. {name}=(\"6202\",), not {v!r}")

    @property
    def needs_resolution(self) -> bool:
        return bool(self.calls) and not self.safe_to_repeat


# -- transitions -------------------------------------------------------------
@dataclass
class Goto:
    step: str
    data: dict = field(default_factory=dict)
    inbox: list[InboxRow] = field(default_factory=list)
    identities: list[IdentityRow] = field(default_factory=list)
    secrets: dict[str, Optional[str]] = field(default_factory=dict)
    # Requests to add to the outbox with this transition (bridge/db/rows.py NewRequest).
    enqueue: list[NewRequest] = field(default_factory=list)


@dataclass
class Wait:
    step: str
    delay: float
    data: dict = field(default_factory=dict)
    inbox: list[InboxRow] = field(default_factory=list)
    identities: list[IdentityRow] = field(default_factory=list)
    secrets: dict[str, Optional[str]] = field(default_factory=dict)
    # Requests to add to the outbox with this transition (bridge/db/rows.py NewRequest).
    enqueue: list[NewRequest] = field(default_factory=list)


@dataclass
class Finish:
    inbox: list[InboxRow]
    data: dict = field(default_factory=dict)
    identities: list[IdentityRow] = field(default_factory=list)
    secrets: dict[str, Optional[str]] = field(default_factory=dict)
    # Requests to add to the outbox with this transition (bridge/db/rows.py NewRequest).
    enqueue: list[NewRequest] = field(default_factory=list)


@dataclass
class Fail:
    code: str
    message: str
    inbox: list[InboxRow] = field(default_factory=list)
    data: dict = field(default_factory=dict)
    # Requests to add to the outbox with this transition (bridge/db/rows.py NewRequest).
    enqueue: list[NewRequest] = field(default_factory=list)


@dataclass
class Retry:
    code: str
    message: str
    # Kept with the row for the next try (e.g. "an earlier send may have gone through").
    data: dict = field(default_factory=dict)


@dataclass
class InDoubt:
    code: str
    message: str
    delay: Optional[float] = None     # when to resolve again; default: the backoff
    # True: inside the platform's settle window "not found" is not an answer yet.  A
    # resolver's wait, not a failed try: the row's attempts are left as they were.
    waiting: bool = False


@dataclass
class Hold:
    code: str
    message: str


Transition = Goto | Wait | Finish | Fail | Retry | InDoubt | Hold


class Flow:
    """Base class.  Subclasses set `kind`, `initial` and `steps`."""

    kind: ClassVar[str]
    initial: ClassVar[str]
    steps: ClassVar[dict[str, Step]]
    # mi_secret names a done request keeps for later requests (a refund needs its
    # payment's payToken); every other secret is deleted when the request is final.
    kept_secrets: ClassVar[tuple[str, ...]] = ()
    # Keys that must never stay in flow_data once the request is final, at any depth
    # (flow_data written before mi_secret existed may hold them).  A flow that writes
    # secrets must declare them: only then does the runner delete its secrets when the
    # request is final (and it refuses a transition with secrets from any other flow).
    secret_keys: ClassVar[tuple[str, ...]] = ()

    def parse(self, payload: dict) -> object:
        """Validate the outbox payload; raise BadInput with a clear message."""
        return payload

    @classmethod
    def check_table(cls) -> None:
        """The table must be closed: every `next` names a step, every step has
        its method, every step that needs resolution has its resolver and
        declares the queries that resolver sends, and no other step does."""
        if cls.initial not in cls.steps:
            raise TypeError(f"{cls.__name__}: initial step {cls.initial!r} not in table")
        for name, step in cls.steps.items():
            if step.name != name:
                raise TypeError(f"{cls.__name__}: step key {name!r} != Step.name {step.name!r}")
            if not callable(getattr(cls, f"step_{name}", None)):
                raise TypeError(f"{cls.__name__}: missing step_{name}()")
            if step.needs_resolution and not callable(getattr(cls, f"resolve_{name}", None)):
                raise TypeError(f"{cls.__name__}: step {name!r} is not safe to repeat but has no resolve_{name}()")
            if step.needs_resolution and not step.resolves_with:
                raise TypeError(f"{cls.__name__}: step {name!r} is not safe to repeat: declare the queries "
                                f"resolve_{name}() sends (resolves_with)")
            if not step.needs_resolution and (step.resolves_with or
                                              callable(getattr(cls, f"resolve_{name}", None))):
                raise TypeError(f"{cls.__name__}: step {name!r} is safe to repeat (or calls nothing): "
                                f"it has no resolver, so no resolve_{name}() and no resolves_with")
            for n in step.next:
                if n not in cls.steps:
                    raise TypeError(f"{cls.__name__}: step {name!r} leads to unknown step {n!r}")

    def allowed(self, src: str, dst: str) -> bool:
        return dst in self.steps[src].next

    @classmethod
    def describe(cls) -> str:
        """The table as text, for docs and `mibridge flows`."""
        lines = [f"{cls.kind}  (starts at {cls.initial})"]
        for s in cls.steps.values():
            how = "safe to repeat" if s.safe_to_repeat else \
                f"NOT safe to repeat: resolved by query {' + '.join(s.resolves_with)}"
            call = f"calls {' + '.join(s.calls)} ({how})" if s.calls else "no remote call"
            nxt = ", ".join(s.next) or "(finishes)"
            lines.append(f"  {s.name:<22} {call}; next: {nxt}")
        return "\n".join(lines)


class Registry:
    def __init__(self):
        self._flows: dict[str, Flow] = {}

    def register(self, flow: Flow) -> None:
        type(flow).check_table()
        if flow.kind in self._flows:
            raise ValueError(f"flow for kind {flow.kind!r} registered twice")
        self._flows[flow.kind] = flow

    def get(self, kind: str) -> Optional[Flow]:
        return self._flows.get(kind)

    def kinds(self) -> list[str]:
        return sorted(self._flows)


class JsonNumber(Decimal):
    """A JSON number as the payload wrote it: the Decimal value, and its text
    (`text`), so that an amount is checked on what the HIS sent ("1e3", "-0"),
    exactly as the database's enqueue check reads it."""

    text: str

    def __new__(cls, text: str):
        obj = super().__new__(cls, text)
        obj.text = text
        return obj


def _json_int(text: str):
    # "-0" is the one integer whose value (0) hides what was written.
    return JsonNumber(text) if text == "-0" else int(text)


def _refuse_constant(name: str):
    raise BadInput(f"payload is not valid JSON: {name} is not a JSON number")


def _unique_keys(pairs: list) -> dict:
    doc = dict(pairs)
    if len(doc) != len(pairs):
        seen: set = set()
        dup = next(k for k, _ in pairs if k in seen or seen.add(k))
        raise BadInput(f"payload has the key {dup!r} twice in one object; each key may appear once")
    return doc


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _has_lone_surrogate(value) -> bool:
    if isinstance(value, str):
        return _SURROGATE.search(value) is not None
    if isinstance(value, dict):
        return any(_has_lone_surrogate(k) or _has_lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_lone_surrogate(v) for v in value)
    return False


def parse_json_object(text: str) -> dict:
    """The payload as the database's enqueue checks accept it (sql/<dialect>/install.sql):
    a JSON object, each key once per object, no NaN/Infinity, no lone UTF-16
    surrogate (json.loads would pass one on, and no database could store it)."""
    try:
        doc = json.loads(text, parse_float=JsonNumber, parse_int=_json_int,
                         parse_constant=_refuse_constant, object_pairs_hook=_unique_keys)
    except (ValueError, TypeError) as exc:
        raise BadInput(f"payload is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise BadInput("payload must be a JSON object")
    # A paired escape (\ud83d\ude00) decodes to one character; only a lone one remains.
    if _SURROGATE_ESCAPE.search(text) and _has_lone_surrogate(doc):
        raise BadInput("payload has a lone UTF-16 surrogate escape (\\ud800-\\udfff without its pair)")
    return doc


def require_text(doc: dict, name: str, max_len: int = 64) -> str:
    v = doc.get(name)
    if not isinstance(v, str) or not v.strip():
        raise BadInput(f"payload field {name!r} is required (non-empty text)")
    if len(v) > max_len:
        raise BadInput(f"payload field {name!r} is longer than {max_len} characters")
    return v


# The amount rule of the database's enqueue check (sql/<dialect>/install.sql):
# plain digits, at most 2 decimals, no sign, no exponent, as text or as a JSON number.
AMOUNT_TEXT = re.compile(r"[0-9]+(\.[0-9]{1,2})?")


def require_amount(doc: dict, name: str) -> Decimal:
    """Money as a non-negative decimal with at most 2 places; accepts "12.50" or 12.50,
    refuses what the database's check refuses ("1e3", -0, "+1", " 1")."""
    v = doc.get(name)
    if isinstance(v, bool) or v is None:
        raise BadInput(f"payload field {name!r} is required (an amount like \"12.50\")")
    if isinstance(v, JsonNumber):
        text = v.text
    elif isinstance(v, (str, int)):
        text = str(v)
    else:
        raise BadInput(f"payload field {name!r} is not a number: {v!r}")
    if not AMOUNT_TEXT.fullmatch(text):
        try:
            Decimal(text)
        except Exception:
            raise BadInput(f"payload field {name!r} is not a number: {text!r}") from None
        raise BadInput(f"payload field {name!r} must be a non-negative amount with at most 2 decimals "
                       f"written as plain digits, got {text!r}")
    return Decimal(text).quantize(Decimal("0.01"))


# Line arithmetic (OUR CHOICE, docs/mobilepay.md and docs/facepay.md "Fee lines"): a
# fee line's amount is its quantity times its price, rounded half-up to the fen, give or
# take one fen.  The platforms' field sizes allow it (offline.md §5.5: cnt 16,4, pric
# 16,6, det_item_fee_sumamt 16,2, so cnt x pric must be rounded to fit) but no public
# source states the rule or a tolerance; the centre checks only that the lines add up to
# the total (mobilepay.md §5.1 [S6]).  The one-fen margin covers an HIS that rounds each
# line its own way (half-even, truncation) and nothing more.  A line that does not add
# up is refused before any call: sent, the platform prices it from cnt x pric and the
# order never matches the HIS's bill.
LINE_TOLERANCE = Decimal("0.01")


def check_line_amount(qty: Decimal, price: Decimal, amount: Decimal, where: str,
                      names: tuple[str, str, str]) -> None:
    """BadInput unless |amount - round_half_up(qty x price, 2)| <= 0.01."""
    expected = (qty * price).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    if abs(expected - amount) > LINE_TOLERANCE:
        q, p, a = names
        raise BadInput(f"{where}: {a} {amount} is not {q} x {p} ({qty} x {price} = {expected}, "
                       f"rounded half-up to the fen; at most {LINE_TOLERANCE} apart)")
