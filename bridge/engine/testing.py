"""Run one step or resolver of a flow without a daemon, a database or a platform.

A flow's decisions are its step and resolver methods: given the request, what it
learnt so far, what the platform answers and what other rows say, which transition
does it return?  This module runs exactly that, in a millisecond:

    from bridge.engine.testing import FlowScript, ok, refused, not_sent, transient, unknown

    s = FlowScript(PaymentFlow(KIND_OUTPATIENT, settings), services={"mobilepay": client, ...})
    s.answer("6202", unknown("6202"))                     # what the centre answers, per interface
    t = s.step("order", payload, data={"payOrdId": "O1", ...}, secrets={"payToken": "T"})
    assert isinstance(t, InDoubt) and t.code == "ORDER_UNKNOWN"
    assert s.sent == ["6202"]

    s.answer("6301", ok("6301", QueryOrderResponse(ordStas=OrdStas.SAVED, ...)))
    t = s.resolve("order", payload, data=..., doubt_age=10.0)      # inside the settle window
    assert isinstance(t, InDoubt) and t.waiting

* The context is the real StepContext (bridge/engine/context.py): ctx.data is
  read-only, and a call of an interface the step does not declare (Step.calls; in a
  resolver Step.resolves_with) fails the test - the daemon would hold the row.
* The port is a ScriptedPort: dict-backed reads (other requests, inbox rows,
  notices, secrets, call ages) and a record of the writes (pokes, withdrawals).
* The services are whatever the test gives: the real platform clients, which build
  and sign the real request (nothing is sent: the scripted answer comes back), so a
  request a client refuses to build fails here too.
* Answers are CallResults built from the real message types (`ok(iface, data)`); an
  interface with no answer left fails the test.
"""
from __future__ import annotations

import json
from collections import deque
from dataclasses import replace
from decimal import Decimal
from typing import Any, Iterable, Mapping, Optional

from bridge.calls import CallResult, Outcome, PreparedCall
from bridge.db.rows import ClaimedRow
from bridge.engine.context import StepContext, UndeclaredCall
from bridge.engine.flow import Flow, parse_json_object

__all__ = ["FlowScript", "ScriptedPort", "ok", "refused", "transient", "not_sent", "unknown",
           "LOST_MSG"]

# The message id of the call in doubt when a resolver runs (ctx.in_doubt_msg_id).
LOST_MSG = "MSG-LOST-1"


# ----------------------------------------------------------------------------- answers

def expect(t, kind, code: Optional[str] = None, step: Optional[str] = None):
    """Assert a step's transition is a ``kind`` (Goto, Fail, Hold, ...) with that code and next
    step when given; returns it for further checks."""
    assert isinstance(t, kind), t
    if code is not None:
        assert t.code == code, t
    if step is not None:
        assert t.step == step, t
    return t


def ok(interface: str, data: Any = None, **kw: Any) -> CallResult:
    """The platform accepted the call; `data` is the typed answer (the client's message type)."""
    return CallResult(outcome=Outcome.OK, interface=interface, msg_id="", data=data, **kw)


def refused(interface: str, message: str = "refused by the platform", code: str = "-1", **kw: Any) -> CallResult:
    """A business verdict: the platform saw the request and said no (nothing happened)."""
    return CallResult(outcome=Outcome.REJECTED, interface=interface, msg_id="", code=code, message=message, **kw)


def transient(interface: str, message: str = "系统繁忙，请稍后再试", code: str = "-1") -> CallResult:
    """A refusal that says nothing about the request (busy, rate-limited, signature)."""
    return CallResult(outcome=Outcome.REJECTED, interface=interface, msg_id="", code=code, message=message,
                      transient=True)


def not_sent(interface: str, message: str = "not sent: connection refused") -> CallResult:
    return CallResult(outcome=Outcome.NOT_SENT, interface=interface, msg_id="", message=message)


def unknown(interface: str, message: str = "read timeout") -> CallResult:
    """Sent, answer lost: the effect may or may not have happened."""
    return CallResult(outcome=Outcome.UNKNOWN, interface=interface, msg_id="", message=message)


# ----------------------------------------------------------------------------- the port

class ScriptedPort:
    """A FlowPort (bridge/engine/port.py) over dicts the test fills."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.inbox: dict[tuple[int, str], dict] = {}
        self.sums: dict[tuple[str, str], dict] = {}
        self.notices: dict[tuple[str, str], dict] = {}
        self.notice_ages: dict[tuple[str, str], float] = {}
        self.secret_values: dict[int, dict[str, str]] = {}
        self.call_ages: dict[str, float] = {}
        # admdvs -> the insured_region() answer (the region list, mi_insured_region).
        self.regions: dict[str, dict] = {}
        # his_patient_id -> the chosen_identity() answer (mi_identity).
        self.identities: dict[str, dict] = {}
        # What the flow did outside its transition.
        self.pokes: list[tuple[tuple[str, ...], str]] = []
        self.withdrawn: list[int] = []
        # Inbox row ids the HIS consumes "at the same instant": withdraw_inbox_row -> False.
        self.consumed_first: set[int] = set()

    # -- filling ------------------------------------------------------------------------
    def add_request(self, *, id: int, kind: str, business_key: str, state: str, step: Optional[str] = None,
                    flow_data: Optional[dict] = None, payload: Any = None, serial_key: Optional[str] = None,
                    secrets: Optional[dict] = None) -> dict:
        """Another request of the HIS; `payload` as the HIS wrote it (a dict is JSON-encoded)."""
        row = {"id": id, "kind": kind, "business_key": business_key, "state": state, "step": step,
               "flow_data": dict(flow_data or {}), "serial_key": serial_key or business_key,
               "payload": payload if isinstance(payload, str) or payload is None else json.dumps(payload)}
        self.requests.append(row)
        if secrets:
            self.secret_values[id] = dict(secrets)
        return row

    def set_inbox(self, outbox_id: int, result_type: str, *, consumed: bool = False,
                  his_ack: Optional[str] = None, age_seconds: float = 0.0, id: int = 900) -> None:
        self.inbox[(outbox_id, result_type)] = {"id": id, "consumed": consumed, "his_ack": his_ack,
                                                "age_seconds": age_seconds}

    def set_sums(self, result_type: str, order_id: str, *, fund="0.00", account="0.00", cash="0.00",
                 count: int = 1) -> None:
        f, a, c = Decimal(fund), Decimal(account), Decimal(cash)
        self.sums[(result_type, order_id)] = {"total": f + a + c, "fund": f, "account": a, "cash": c,
                                              "count": count}

    def set_notice(self, interface: str, key: str, notice: dict, age_seconds: float = 1.0) -> None:
        self.notices[(interface, key)] = dict(notice)
        self.notice_ages[(interface, key)] = age_seconds

    # -- FlowPort -----------------------------------------------------------------------
    def find_request(self, kinds: Iterable[str], business_key: str) -> Optional[dict]:
        kinds = set(kinds)
        rows = sorted((r for r in self.requests if r["kind"] in kinds and r["business_key"] == business_key),
                      key=lambda r: r["id"])
        if not rows:
            return None
        r = rows[0]
        return {k: (json.loads(json.dumps(r[k])) if k == "flow_data" else r[k])
                for k in ("id", "kind", "state", "step", "flow_data", "payload")}

    def count_requests(self, kind: str, serial_key: str, states: Iterable[str],
                       exclude_id: Optional[int] = None) -> int:
        states = set(states)
        return sum(1 for r in self.requests if r["kind"] == kind and r["serial_key"] == serial_key
                   and r["state"] in states and r["id"] != exclude_id)

    def inbox_state(self, outbox_id: int, result_type: str) -> Optional[dict]:
        st = self.inbox.get((outbox_id, result_type))
        return dict(st) if st else None

    def inbox_sums(self, result_type: str, order_id: str) -> dict:
        zero = Decimal("0.00")
        return dict(self.sums.get((result_type, order_id),
                                  {"total": zero, "fund": zero, "account": zero, "cash": zero, "count": 0}))

    def notice(self, interface: str, notice_key: str) -> Optional[dict]:
        n = self.notices.get((interface, notice_key))
        return dict(n) if n is not None else None

    def notice_age_seconds(self, interface: str, notice_key: str) -> Optional[float]:
        return self.notice_ages.get((interface, notice_key))

    def secrets(self, outbox_id: int) -> dict[str, str]:
        return dict(self.secret_values.get(outbox_id, {}))

    def call_age_seconds(self, msg_id: str) -> Optional[float]:
        return self.call_ages.get(msg_id)

    def insured_region(self, admdvs: str) -> Optional[dict]:
        r = self.regions.get(admdvs)
        return dict(r) if r is not None else None

    def set_region(self, admdvs: str, name: str = "", *, enabled: bool = True,
                   channels: Iterable[str] = ("wechat", "alipay", "counter", "kiosk"),
                   insutypes: Optional[Iterable[str]] = None) -> None:
        self.regions[admdvs] = {"admdvs": admdvs, "name": name or admdvs, "enabled": enabled,
                                "channels": list(channels), "insutypes": None if insutypes is None else list(insutypes)}

    def chosen_identity(self, his_patient_id: str) -> Optional[dict]:
        r = self.identities.get(his_patient_id)
        return dict(r) if r is not None else None

    def set_identity(self, his_patient_id: str, psn_no: str, insutype: str, insuplc_admdvs: str, *,
                     chosen: bool = True, source_kind: str = "identity.choose") -> None:
        self.identities[his_patient_id] = {"psn_no": psn_no, "insutype": insutype, "insuplc_admdvs": insuplc_admdvs,
                                           "chosen": chosen, "source_kind": source_kind}

    def poke(self, kinds: Iterable[str], business_key: str) -> int:
        self.pokes.append((tuple(kinds), business_key))
        return 1

    def withdraw_inbox_row(self, inbox_id: int) -> bool:
        if inbox_id in self.consumed_first:
            return False
        self.withdrawn.append(inbox_id)
        return True


# ----------------------------------------------------------------------------- running

class FlowScript:
    """One flow, a scripted port and scripted answers; `step()` / `resolve()` run one method."""

    def __init__(self, flow: Flow, *, services: Optional[Mapping[str, Any]] = None,
                 port: Optional[ScriptedPort] = None, row_id: int = 1, business_key: str = "K1",
                 serial_key: Optional[str] = None) -> None:
        type(flow).check_table()
        self.flow = flow
        self.services = dict(services or {})
        self.port = port or ScriptedPort()
        self.row_id = row_id
        self.business_key = business_key
        self.serial_key = serial_key or business_key
        self._answers: dict[str, deque] = {}
        self.prepared: list[PreparedCall] = []       # every call the method made, in order
        self.direct: list[str] = []                  # calls a client made itself (send_direct)
        self.ctx: Optional[StepContext] = None

    @property
    def sent(self) -> list[str]:
        """The interfaces the last run called, in order."""
        return [p.interface for p in self.prepared]

    def answer(self, interface: str, *results: CallResult) -> "FlowScript":
        """Queue what the platform answers to the next calls of `interface`."""
        for r in results:
            if r.interface != interface:
                raise ValueError(f"an answer of {r.interface} queued for {interface}")
            self._answers.setdefault(interface, deque()).append(r)
        return self

    def send_direct(self, prepared: PreparedCall) -> CallResult:
        """A client's own send, outside the journal (the offline client's automatic 9001
        sign-in): give it as the client's `send` and script its answers with answer()."""
        queue = self._answers.get(prepared.interface)
        if not queue:
            raise AssertionError(f"the client sent {prepared.interface} itself; no answer is scripted")
        self.direct.append(prepared.interface)
        r = queue.popleft()
        return replace(r, msg_id=r.msg_id or prepared.msg_id)

    def unanswered(self) -> dict[str, int]:
        """Answers queued but never asked for (a test may want none left)."""
        return {k: len(v) for k, v in self._answers.items() if v}

    def step(self, name: str, payload: Any, data: Optional[dict] = None, *,
             secrets: Optional[dict] = None, current_call: Optional[str] = None):
        """Run step_<name> as the runner would on a claimed row; its transition.
        `current_call`: a call of this row whose answer was never written (the daemon
        died during it) - what ctx.row.current_call shows."""
        return self._run(name, payload, data, secrets, resolving=False, current_call=current_call)

    def resolve(self, name: str, payload: Any, data: Optional[dict] = None, *,
                doubt_age: Optional[float] = None, secrets: Optional[dict] = None,
                lost_msg: str = LOST_MSG):
        """Run resolve_<name> for a call in doubt (message id `lost_msg`) journalled
        `doubt_age` seconds ago by the database clock; its transition."""
        if doubt_age is not None:
            self.port.call_ages[lost_msg] = doubt_age
        return self._run(name, payload, data, secrets, resolving=True, current_call=lost_msg)

    def _run(self, name: str, payload: Any, data: Optional[dict], secrets: Optional[dict], *,
             resolving: bool, current_call: Optional[str]):
        flow = self.flow
        step = flow.steps[name]
        if resolving and not step.needs_resolution:
            raise AssertionError(f"{flow.kind}: step {name!r} has no resolver")
        text = payload if isinstance(payload, str) else json.dumps(payload, default=str)
        parsed = flow.parse(parse_json_object(text))
        if secrets is not None:
            self.port.secret_values[self.row_id] = dict(secrets)
        row = ClaimedRow(id=self.row_id, kind=flow.kind, business_key=self.business_key,
                         serial_key=self.serial_key, payload=text,
                         was_state="in_doubt" if resolving else "pending", step=name,
                         flow_data=dict(data or {}), current_call=current_call, attempts=1, max_attempts=10)
        self.prepared = []
        self.direct = []
        ctx = StepContext(row=row, owner="unit", payload=parsed, data=row.flow_data, step=step,
                          resolving=resolving, port=self.port, _send=self._send, _services=self.services)
        self.ctx = ctx
        method = getattr(flow, f"{'resolve' if resolving else 'step'}_{name}")
        try:
            t = method(ctx)
        except UndeclaredCall as exc:
            raise AssertionError(f"{flow.kind}: {exc}") from None
        if ctx.flow_error:       # the flow caught UndeclaredCall: the daemon holds it anyway
            raise AssertionError(f"{flow.kind}: {ctx.flow_error}")
        return t

    def _send(self, ctx: StepContext, send, prepared: PreparedCall) -> CallResult:
        queue = self._answers.get(prepared.interface)
        if not queue:
            raise AssertionError(f"{self.flow.kind} {ctx.step.name}: called {prepared.interface}, "
                                 f"for which no answer is scripted (sent so far: {self.sent})")
        result = queue.popleft()
        result = replace(result, msg_id=result.msg_id or prepared.msg_id)
        self.prepared.append(prepared)
        if not ctx.resolving:      # as the runner: a step's call becomes the row's current call
            ctx.row.current_call = prepared.msg_id
        ctx.last_result = result
        return result
