"""What a step or resolver method sees: StepContext.

    ctx.row, ctx.payload      the request (ClaimedRow) and its parsed payload
    ctx.data                  what the flow learnt so far (flow_data), READ-ONLY: a
                              step changes it only through its transition's `data`
    ctx.secret(name)          a secret of this request (mi_secret)
    ctx.call(send, prepared)  journal, send, record one remote call: only an interface
                              the step declares (Step.calls, or Step.resolves_with in
                              its resolver); anything else is a flow bug, stopped
                              before anything is journalled or sent
    ctx.service(name)         a platform client the daemon was built with
    ctx.port                  the FlowPort (bridge/engine/port.py): other rows, notices,
                              call ages; poke and withdraw_inbox_row
    ctx.doubt_age_seconds(), ctx.settle_window_wait(...)   the settle-window rule

The runner (bridge/engine/runner.py) builds one per step with the Store's port and
its own call(); bridge/engine/testing.py builds one with a scripted port and
scripted answers.  Both go through this class, so a unit test checks the same
declared-interface rule and the same read-only data the daemon enforces.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional

from bridge.calls import CallResult, PreparedCall
from bridge.db.rows import ClaimedRow
from bridge.engine.flow import InDoubt, Step
from bridge.engine.port import FlowPort


class UndeclaredCall(RuntimeError):
    """A step tried to send an interface its Step does not declare: a flow bug.  Raised
    before anything is journalled or sent; the runner holds the row (FLOW_ERROR)."""


class FrozenDict(dict):
    """flow_data as a step sees it: reads like a dict (and serialises like one), refuses
    every change.  A step's changes go in its transition's `data`."""

    __slots__ = ()

    def _refuse(self, *args: Any, **kw: Any):
        raise TypeError("ctx.data is read-only: return the change in the transition's data")

    __setitem__ = __delitem__ = __ior__ = _refuse
    clear = pop = popitem = setdefault = update = _refuse

    def __reduce__(self):      # a copy (copy.deepcopy, pickle) is an ordinary dict
        return (dict, (dict(self),))


class FrozenList(list):
    __slots__ = ()

    def _refuse(self, *args: Any, **kw: Any):
        raise TypeError("ctx.data is read-only: return the change in the transition's data")

    __setitem__ = __delitem__ = __iadd__ = __imul__ = _refuse
    append = clear = extend = insert = pop = remove = reverse = sort = _refuse

    def __reduce__(self):
        return (list, (list(self),))


def freeze(value: Any) -> Any:
    """A read-only view of JSON-like data, at every depth (a new object: the runner keeps
    its own copy of flow_data)."""
    if isinstance(value, Mapping):
        return FrozenDict((k, freeze(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return FrozenList(freeze(v) for v in value)
    return value


# (ctx, client send, prepared) -> the call's result, journalled.  The runner's call().
Sender = Callable[["StepContext", Callable[[PreparedCall], CallResult], PreparedCall], CallResult]


@dataclass
class StepContext:
    row: ClaimedRow
    owner: str
    payload: Any
    data: Mapping[str, Any]
    step: Step
    resolving: bool
    port: FlowPort = field(repr=False)
    _send: Sender = field(repr=False)
    _services: Mapping[str, Any] = field(default_factory=dict, repr=False)
    last_result: Optional[CallResult] = None
    # The row's secrets (mi_secret), read once per claim when a step first asks; shared
    # by the steps of one claim (the runner adds what a transition just wrote).
    _secrets: dict = field(default_factory=dict, repr=False)
    # Set when the step tried an undeclared interface: whatever it returns then, the
    # runner holds the row (a flow that caught the exception cannot hide it).
    flow_error: Optional[str] = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.data, FrozenDict):
            self.data = freeze(self.data)

    # -- this request ---------------------------------------------------------------
    def secret(self, name: str) -> Optional[str]:
        """A secret this request holds (written by an earlier transition's `secrets`)."""
        if "values" not in self._secrets:
            self._secrets["values"] = self.port.secrets(self.row.id)
        return self._secrets["values"].get(name)

    @property
    def in_doubt_msg_id(self) -> Optional[str]:
        """The message id of the call whose answer was lost (when resolving).
        The resolver's own queries do not replace it."""
        return self.row.current_call

    def doubt_age_seconds(self) -> Optional[float]:
        """How long ago (database clock) the call in doubt was journalled.  A
        platform may book a request after our timeout, so "not found" means
        "never booked" only once the platform's processing window has passed."""
        if not self.row.current_call:
            return None
        return self.port.call_age_seconds(self.row.current_call)

    def call_age_seconds(self, msg_id: str) -> Optional[float]:
        """Seconds since a journalled call of this row started (database clock)."""
        return self.port.call_age_seconds(msg_id)

    def settle_window_wait(self, window: float, code: str, what: str,
                           retry: Optional[float] = None) -> Optional[InDoubt]:
        """For a resolver whose query found nothing: inside the platform's settle window
        (database clock, docs/engine.md rules 7 and 11) "not found" is no answer yet, so
        wait - InDoubt(waiting=True), which uses none of the row's attempts - and ask again
        after `retry` seconds (default: when the window ends).  None once it has passed:
        then "not found" means "never booked"."""
        age = self.doubt_age_seconds()
        if age is None or age >= window:
            return None
        left = window - age
        delay = min(retry, left + 0.1) if retry else left + 0.5
        return InDoubt(code, f"{what}; asking again after the settle window", delay=max(0.2, delay),
                       waiting=True)

    # -- remote calls -------------------------------------------------------------------
    def declared(self) -> tuple[str, ...]:
        """The interfaces this method may send: the step's calls, or in its resolver
        the queries it declares (never the unsafe call itself: that is a resend)."""
        return self.step.resolves_with if self.resolving else self.step.calls

    def call(self, send: Callable[[PreparedCall], CallResult], prepared: PreparedCall) -> CallResult:
        """Journal, send, record.  `send` is the platform client's send()."""
        allowed = self.declared()
        if prepared.interface not in allowed:
            where = f"resolve_{self.step.name}" if self.resolving else f"step {self.step.name!r}"
            self.flow_error = (f"{where} tried to send {prepared.interface}, which it does not declare "
                               f"(declared: {', '.join(allowed) or 'none'}); nothing was sent")
            raise UndeclaredCall(self.flow_error)
        return self._send(self, send, prepared)

    def service(self, name: str):
        """A platform client or other shared object the daemon was built with."""
        try:
            return self._services[name]
        except KeyError:
            raise RuntimeError(f"flow needs service {name!r}, which is not configured") from None
