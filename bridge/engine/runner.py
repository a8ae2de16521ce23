"""Runs one claimed outbox row through its flow, persisting every transition.

The order of events for a step that calls a platform is fixed:

    1. the row is ours (claimed, lease renewed by the heartbeat)
    2. journal row written + row marked "in a call"      (one transaction)
    3. the request is sent                                (no transaction open)
    4. the transition the flow chose is written, with the
       answer for the journal                             (one transaction)

The answer (4) rides with the next write of the row: the transition, or the
journal row of the step's next call (2 again).  A crash between 2 and 4 leaves
`current_call` set and the journal's outcome NULL: the rescuer then puts the
row in doubt (if the call was not safe to repeat) and the flow's resolver
asks the platform what happened before anything is sent again.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from loguru import logger

from bridge.calls import CallResult, Outcome, PreparedCall
from bridge.db.dialects.base import CallEnd
from bridge.db.store import ClaimedRow, InboxRow, LostLease, Store
from bridge.engine.backoff import Backoff
from bridge.engine import events
from bridge.engine.context import StepContext, UndeclaredCall
from bridge.engine.crashpoints import crashpoint
from bridge.engine.flow import (BadInput, Fail, Finish, Flow, Goto, Hold, InDoubt, Registry,
                                Retry, Transition, Wait, parse_json_object)
from bridge.engine.port import StorePort


@dataclass
class RunnerSettings:
    lease_seconds: float = 30.0
    backoff: Backoff = field(default_factory=Backoff)
    # How long to keep retrying a database write after the database went away
    # before giving the row up to the rescuer.
    persist_timeout: float = 30.0


class Runner:
    def __init__(self, store: Store, registry: Registry, settings: RunnerSettings,
                 services: Optional[dict] = None):
        self.store = store
        self.registry = registry
        self.settings = settings
        # Platform clients and other shared objects the flows need, by name.
        self.services = services or {}
        # Answers of calls not yet in the journal: the next write of the row
        # carries them (a runner runs one row at a time).
        self._ended: list[CallEnd] = []
        # What flows may read and write beyond their own row (bridge/engine/port.py).
        self.port = StorePort(store)

    # -- the remote call -------------------------------------------------------
    def call(self, ctx: StepContext, send, prepared: PreparedCall) -> CallResult:
        row, owner = ctx.row, ctx.owner
        # A resolver's query is journalled, but current_call keeps naming the
        # call in doubt: if the query is lost too, the doubt is still about that call.
        mark = not ctx.resolving
        self._write(lambda ended: self.store.begin_call(
            row.id, owner, ctx.step.name, prepared.msg_id, prepared.interface,
            prepared.masked_request, unsafe=not ctx.step.safe_to_repeat, mark=mark, ended=ended))
        if mark:
            row.current_call = prepared.msg_id
        crashpoint("after_journal", prepared.interface)
        started = time.monotonic()
        try:
            result = send(prepared)
        except Exception as exc:  # a client bug must not lose the fact that we sent
            logger.exception("client raised instead of classifying (row {}, {})", row.id, prepared.interface)
            result = CallResult(outcome=Outcome.UNKNOWN, interface=prepared.interface,
                                msg_id=prepared.msg_id, message=f"client error: {type(exc).__name__}: {exc}")
        crashpoint("after_call", prepared.interface)
        events.emit("call", interface=prepared.interface, outcome=result.outcome.value, seconds=time.monotonic() - started, transient=bool(result.transient), message=result.message)
        # The one line per call: what was sent (msg id) and what came back (code, message).
        logger.info("row {} {} {} {} -> {} ({} ms) code={} {}", row.id, ctx.step.name, prepared.interface,
                    prepared.msg_id, result.outcome.value + (" (transient)" if result.transient else ""),
                    int((time.monotonic() - started) * 1000), result.code, result.message or "")
        outcome, message = result.outcome.value, result.message
        if result.outcome is Outcome.NOT_SENT:
            # The journal's outcomes are ok/rejected/unknown: "not sent" is recorded as a
            # rejection (nothing happened remotely) whose message says so.
            outcome = Outcome.REJECTED.value
            message = message if (message or "").startswith("not sent") else f"not sent: {message or ''}"
        # The answer rides with the row's next write (the next call's journal row or
        # the step's transition): no transaction of its own.
        self._ended.append(CallEnd(prepared.msg_id, outcome, result.http_status, result.response_text, message))
        ctx.last_result = result
        return result

    # -- one row ---------------------------------------------------------------
    def run(self, row: ClaimedRow, owner: str) -> None:
        try:
            self._run(row, owner)
        finally:
            self._flush_ended(row)

    def _run(self, row: ClaimedRow, owner: str) -> None:
        crashpoint("after_claim")
        flow = self.registry.get(row.kind)
        if flow is None:
            # Held, not failed: the kind is usually right and this daemon's config
            # wrong (a platform section missing); requeue it once the config is fixed.
            self._hold_unknown_kind(row, owner)
            return
        try:
            payload = flow.parse(parse_json_object(row.payload))
        except BadInput as exc:
            if row.step is None:
                self._fail_input(row, owner, exc.code, str(exc))
            else:  # the payload was fine when the flow started: someone edited it
                self._apply(flow, row, owner, None, Hold(exc.code, f"payload no longer valid: {exc}"))
            return
        resolving = row.was_state == "in_doubt"
        secrets: dict = {}          # the row's secrets, shared by the steps of this claim
        while True:
            step_name = row.step or flow.initial
            step = flow.steps.get(step_name)
            if step is None:
                self._apply(flow, row, owner, None,
                            Hold("UNKNOWN_STEP", f"row is at step {step_name!r}, which flow {flow.kind} does not have"))
                return
            ctx = StepContext(row=row, owner=owner, payload=payload, data=row.flow_data, step=step,
                              resolving=resolving, port=self.port, _send=self.call,
                              _services=self.services, _secrets=secrets)
            try:
                if resolving and step.needs_resolution:
                    t = getattr(flow, f"resolve_{step.name}")(ctx)
                else:
                    t = getattr(flow, f"step_{step.name}")(ctx)
            except LostLease:
                logger.warning("row {}: lease lost during step {}; leaving it to the rescuer", row.id, step.name)
                return
            except UndeclaredCall as exc:     # refused before anything was journalled or sent
                logger.error("row {}: flow {}: {}", row.id, flow.kind, exc)
                t = Hold("FLOW_ERROR", str(exc))
            except BadInput as exc:
                t = Hold(exc.code, str(exc)) if ctx.row.current_call else Fail(exc.code, str(exc))
            except Exception as exc:
                logger.exception("row {}: step {} raised", row.id, step.name)
                if row.current_call and step.needs_resolution:
                    t = InDoubt("STEP_ERROR", f"{type(exc).__name__}: {exc}")
                else:
                    t = Retry("STEP_ERROR", f"{type(exc).__name__}: {exc}")
            if ctx.flow_error and not (isinstance(t, Hold) and t.code == "FLOW_ERROR"):
                # An undeclared call the step caught and went on from: still a flow bug.
                logger.error("row {}: flow {}: {}", row.id, flow.kind, ctx.flow_error)
                t = Hold("FLOW_ERROR", ctx.flow_error)
            if not self._apply(flow, row, owner, ctx, t):
                return
            resolving = False

    # -- transitions -------------------------------------------------------------
    def _apply(self, flow: Flow, row: ClaimedRow, owner: str, ctx: Optional[StepContext],
               t: Transition) -> bool:
        """Persist one transition.  Returns True when the row stays ours and the
        loop should run the next step now."""
        step_name = row.step or flow.initial
        step = flow.steps.get(step_name)
        # The runner's own copy: ctx.data is read-only, a step's changes are its t.data.
        data = dict(row.flow_data)
        s = self.store
        # Safety net against flow bugs: after an unknown answer to a call that is
        # not safe to repeat, the only way on is through the resolver.  Any other
        # transition (retry, goto, wait, fail, finish) could resend or drop a charge.
        if step is not None and step.needs_resolution and ctx is not None and not ctx.resolving \
                and ctx.last_result is not None and ctx.last_result.outcome is Outcome.UNKNOWN \
                and not isinstance(t, (InDoubt, Hold)):
            logger.error("row {}: flow {} answered {} after an unknown {}; treating it as in doubt",
                         row.id, flow.kind, type(t).__name__, ctx.last_result.interface)
            t = InDoubt("UNKNOWN_OUTCOME", ctx.last_result.message or "remote outcome unknown")
        try:
            if getattr(t, "secrets", None) and not flow.secret_keys:
                # Only a flow that declares its secrets gets them deleted when it is final.
                raise RuntimeError(f"flow {flow.kind} writes secrets but declares no secret_keys")
            # A flow with secrets: delete them when the request is final (but kept_secrets).
            keep = flow.kept_secrets if flow.secret_keys else None
            if isinstance(t, Goto):
                if not flow.allowed(step_name, t.step):
                    raise RuntimeError(f"flow {flow.kind}: {step_name} -> {t.step} is not in its table")
                if t.step == step_name and step.needs_resolution and not (ctx and ctx.resolving):
                    # Re-entering an unsafe step is a resend: only a resolver that
                    # has established the first send never took effect may do it.
                    raise RuntimeError(f"flow {flow.kind}: {step_name} -> {step_name} outside its resolver")
                data.update(t.data)
                self._write(lambda ended: s.advance(row, owner, t.step, data, inbox=t.inbox,
                                                    identities=t.identities, secrets=t.secrets,
                                                    enqueue=t.enqueue, ended=ended))
                _remember(ctx, t.secrets)
                return True
            if isinstance(t, Wait):
                if t.step != step_name and not flow.allowed(step_name, t.step):
                    raise RuntimeError(f"flow {flow.kind}: {step_name} -> {t.step} is not in its table")
                data.update(t.data)
                self._write(lambda ended: s.advance(row, owner, t.step, data, inbox=t.inbox,
                                                    identities=t.identities, release_after=t.delay,
                                                    secrets=t.secrets, enqueue=t.enqueue, ended=ended))
                return False
            if isinstance(t, Finish):
                data.update(t.data)
                # Final: no secret stays in flow_data; mi_secret keeps only what a later
                # request of the HIS needs (Flow.kept_secrets).
                final = _without(data, flow.secret_keys)
                self._write(lambda ended: s.finish(row, owner, "done", final, t.inbox, identities=t.identities,
                                                   secrets=t.secrets, keep_secrets=keep, enqueue=t.enqueue,
                                                   ended=ended))
                crashpoint("after_inbox")
                return False
            if isinstance(t, Fail):
                data.update(t.data)
                inbox = t.inbox or [InboxRow(result_type="error", outcome="failed",
                                             error_code=t.code, error_message=t.message)]
                final = _without(data, flow.secret_keys)
                # A failed request keeps its kept_secrets too: a payment that placed an
                # order may still get a late 6302 notice, which is checked with 6301.
                self._write(lambda ended: s.finish(row, owner, "failed", final, inbox,
                                                   error_code=t.code, error_message=t.message,
                                                   keep_secrets=keep, enqueue=t.enqueue, ended=ended))
                crashpoint("after_inbox")
                return False
            if isinstance(t, (Retry, InDoubt, Hold)):
                if isinstance(t, Retry):
                    data.update(t.data)
                # A resolver waiting for the settle window to pass is not failing: only
                # there (a call in doubt, resolving it) does the runner leave attempts alone.
                waiting = isinstance(t, InDoubt) and t.waiting and ctx is not None and ctx.resolving \
                    and bool(row.current_call)
                self._release(row, owner, data, t, waiting=waiting)
                return False
            raise TypeError(f"step returned {t!r}, not a Transition")
        except LostLease:
            logger.warning("row {}: lease lost before {} could be written; the rescuer has it",
                           row.id, type(t).__name__)
            return False
        except _GaveUp as exc:
            logger.error("row {}: database unavailable for {:.0f}s while writing {}; "
                         "leaving the row to the rescuer", row.id, exc.seconds, type(t).__name__)
            return False
        except (RuntimeError, TypeError) as exc:  # a flow bug: stop the row, loudly
            logger.error("row {}: {}", row.id, exc)
            if isinstance(t, Hold):
                return False
            return self._apply(flow, row, owner, ctx, Hold("FLOW_ERROR", str(exc)))
        except Exception as exc:
            # The database refused the write (a value too long or too large ...):
            # retrying the same write cannot help.  Hold the row for a person; if
            # even that fails, the rescuer holds it once its attempts run out.
            logger.error("row {}: database refused {}: {}: {}", row.id, type(t).__name__,
                         type(exc).__name__, exc)
            if isinstance(t, Hold):
                return False
            return self._apply(flow, row, owner, ctx,
                               Hold("DB_REFUSED", f"database refused the result: {type(exc).__name__}: {exc}"))

    def _release(self, row: ClaimedRow, owner: str, data: dict, t, waiting: bool = False) -> None:
        s, st = self.store, self.settings
        used_up = row.attempts >= row.max_attempts and not waiting
        if isinstance(t, Hold) or used_up:
            code = t.code
            reason = t.message if isinstance(t, Hold) else \
                f"gave up after {row.attempts} attempts ({'in doubt' if isinstance(t, InDoubt) else 'retrying'}): {t.message}"
            logger.warning("row {} held: [{}] {}", row.id, code, reason)
            held = InboxRow(result_type="held", outcome="held", error_code=code, error_message=reason)
            # A Retry that ran out clears the call (the step was safe to redo); a
            # Hold or an unresolved doubt keeps it, so a requeue queries first.
            self._write(lambda ended: s.release(row, owner, "held", 0, data, error_code=code,
                                                error_message=reason, keep_call=not isinstance(t, Retry),
                                                inbox=[held], ended=ended))
            return
        delay = t.delay if isinstance(t, InDoubt) and t.delay is not None else st.backoff.delay(row.attempts)
        state = "in_doubt" if isinstance(t, InDoubt) else "pending"
        self._write(lambda ended: s.release(row, owner, state, delay, data, error_code=t.code,
                                            error_message=t.message, keep_call=isinstance(t, InDoubt),
                                            keep_attempts=waiting, ended=ended))

    def _hold_unknown_kind(self, row: ClaimedRow, owner: str) -> None:
        reason = (f"this daemon runs no flow for request kind {row.kind!r} (is its config section missing?); "
                  f"fix the config or the kind, then requeue. Kinds run here: {', '.join(self.registry.kinds())}")
        logger.error("row {} ({} {}) held: [UNKNOWN_KIND] {}", row.id, row.kind, row.business_key, reason)
        held = InboxRow(result_type="held", outcome="held", error_code="UNKNOWN_KIND", error_message=reason)
        try:
            self._write(lambda ended: self.store.release(row, owner, "held", 0, dict(row.flow_data),
                                                         error_code="UNKNOWN_KIND", error_message=reason,
                                                         keep_call=True, inbox=[held], ended=ended))
        except (LostLease, _GaveUp):
            logger.warning("row {}: could not record the hold; the rescuer will retry it", row.id)

    def _fail_input(self, row: ClaimedRow, owner: str, code: str, message: str) -> None:
        logger.warning("row {} ({} {}) refused: [{}] {}", row.id, row.kind, row.business_key, code, message)
        inbox = [InboxRow(result_type="error", outcome="failed", error_code=code, error_message=message)]
        try:
            self._write(lambda ended: self.store.finish(row, owner, "failed", dict(row.flow_data), inbox,
                                                        error_code=code, error_message=message, ended=ended))
        except (LostLease, _GaveUp):
            logger.warning("row {}: could not record the refusal; the rescuer will retry it", row.id)

    def _write(self, write: Callable[[list], Any]):
        """Persist one write of the row, carrying the call answers not yet in the
        journal.  They are written even when the lease turns out lost (LostLease),
        so they are dropped from the list then too."""
        ended = list(self._ended)
        try:
            result = self._persist(lambda: write(ended))
        except LostLease:
            del self._ended[:len(ended)]
            raise
        except _GaveUp:
            raise
        except Exception as exc:
            if not ended:
                raise
            # The database refused the write.  If it was a journal answer, the
            # row's own write must not depend on it: record the answers alone
            # (or log them), then write the row without them.
            del self._ended[:len(ended)]
            try:
                self._persist(lambda: self.store.end_calls(ended))
            except LostLease:
                raise
            except Exception as jexc:
                logger.error("journal refused the answer(s) of {}: {}: {}; first error: {}",
                             ", ".join(e.msg_id for e in ended), type(jexc).__name__, jexc, exc)
            return self._persist(lambda: write([]))
        del self._ended[:len(ended)]
        return result

    def _flush_ended(self, row: ClaimedRow) -> None:
        """Answers no write carried (the row was given up, or the database was
        away): the journal keeps them all the same, when it can."""
        if not self._ended:
            return
        ended, self._ended = self._ended, []
        try:
            self._persist(lambda: self.store.end_calls(ended))
        except Exception as exc:
            logger.warning("row {}: could not record {} call answer(s) in the journal: {}",
                           row.id, len(ended), type(exc).__name__)

    def _persist(self, write: Callable[[], Any]):
        """Run a database write, riding out a database that went away: retry on
        disconnects until persist_timeout, then give up (the row stays leased
        until its lease expires and the rescuer takes it)."""
        deadline = time.monotonic() + self.settings.persist_timeout
        pause = 0.2
        while True:
            try:
                return write()
            except LostLease:
                raise
            except Exception as exc:
                if not self.store.is_disconnect(exc):
                    raise
                if time.monotonic() > deadline:
                    raise _GaveUp(self.settings.persist_timeout) from exc
                logger.warning("database unavailable ({}); retrying the write", type(exc).__name__)
                time.sleep(pause)
                pause = min(pause * 2, 5.0)


def _remember(ctx: Optional[StepContext], written: dict) -> None:
    """Secrets a transition just wrote are what the next step of this claim reads."""
    if ctx is not None and written and "values" in ctx._secrets:
        for k, v in written.items():
            if v in (None, ""):
                ctx._secrets["values"].pop(k, None)
            else:
                ctx._secrets["values"][k] = str(v)


def _without(value: Any, keys: tuple[str, ...]) -> Any:
    """`value` with every dict key in `keys` removed, at any depth."""
    if not keys:
        return value
    if isinstance(value, dict):
        return {k: _without(v, keys) for k, v in value.items() if k not in keys}
    if isinstance(value, list):
        return [_without(v, keys) for v in value]
    return value


class _GaveUp(Exception):
    def __init__(self, seconds: float):
        super().__init__(seconds)
        self.seconds = seconds
