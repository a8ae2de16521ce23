"""The step table is checked: a step sends only the interfaces it declares (Step.calls),
a resolver only its queries (Step.resolves_with, never the unsafe call itself).
Anything else is a flow bug: the row is held FLOW_ERROR before anything is journalled
or sent.  The runner on a real database (SQLite: the check is before any SQL)."""
from __future__ import annotations

import pytest

from bridge.calls import CallResult, Outcome, PreparedCall
from bridge.db.store import Store
from bridge.engine.backoff import Backoff
from bridge.engine.flow import Finish, Flow, Goto, InboxRow, Registry, Step
from bridge.engine.runner import Runner, RunnerSettings
from tests.conftest import make_database


class Recorder:
    """A client that builds calls and counts what reaches send()."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    def prepare(self, interface: str) -> PreparedCall:
        return PreparedCall(interface=interface, msg_id=f"m-{interface}-{len(self.sent)}", url="http://x",
                            body=b"", headers={}, masked_request="{}",
                            decode=lambda status, raw: None)

    def send(self, p: PreparedCall) -> CallResult:
        self.sent.append(p.interface)
        return CallResult(outcome=Outcome.OK, interface=p.interface, msg_id=p.msg_id, data={})


class SloppyFlow(Flow):
    """pay declares "charge" and sends "refund"; catch declares "charge", sends "refund"
    and swallows the refusal; resend's resolver sends its own unsafe call again."""

    kind = "test.sloppy"
    initial = "start"
    steps = {
        "start": Step("start", next=("pay", "catch", "resend")),
        "pay": Step("pay", calls=("charge",), next=()),
        "catch": Step("catch", calls=("charge",), next=()),
        "resend": Step("resend", calls=("charge",), safe_to_repeat=False, resolves_with=("charge.query",),
                       next=()),
    }

    def step_start(self, ctx):
        return Goto(ctx.payload["go"])

    def step_pay(self, ctx):
        c = ctx.service("c")
        ctx.call(c.send, c.prepare("refund"))
        return Finish([InboxRow(result_type="x", outcome="ok")])

    def step_catch(self, ctx):
        c = ctx.service("c")
        try:
            ctx.call(c.send, c.prepare("refund"))
        except Exception:
            pass
        return Finish([InboxRow(result_type="x", outcome="ok")])

    def step_resend(self, ctx):
        c = ctx.service("c")
        ctx.call(c.send, c.prepare("charge"))
        return Finish([InboxRow(result_type="x", outcome="ok")])

    def resolve_resend(self, ctx):
        c = ctx.service("c")
        ctx.call(c.send, c.prepare("charge"))      # a blind resend: refused by the context
        return Finish([InboxRow(result_type="x", outcome="ok")])


@pytest.fixture
def run(tmp_path):
    url, drop = make_database("sqlite", tmp_path)
    store = Store(url)
    reg = Registry()
    reg.register(SloppyFlow())
    client = Recorder()
    r = Runner(store, reg, RunnerSettings(backoff=Backoff(0.01, 0.02, 0.0)), {"c": client})
    yield store, r, client
    store.close()
    drop()


def _row(store: Store, oid: int) -> tuple:
    return tuple(store.query("SELECT state, last_error_code, last_error_message FROM mi_outbox WHERE id = :i",
                             {"i": oid})[0])


def _journal(store: Store, oid: int) -> list:
    return [tuple(r) for r in store.query("SELECT interface FROM mi_journal WHERE outbox_id = :i", {"i": oid})]


@pytest.mark.parametrize("go", ["pay", "catch"])
def test_an_undeclared_interface_is_held_before_anything_is_journalled_or_sent(run, go):
    store, r, client = run
    oid = store.enqueue("test.sloppy", f"K-{go}", {"go": go})
    [row] = store.claim("w", 30)
    r.run(row, "w")
    state, code, message = _row(store, oid)
    assert (state, code) == ("held", "FLOW_ERROR")
    assert "refund" in message and "declared: charge" in message, message
    assert client.sent == [] and _journal(store, oid) == []
    held = store.query("SELECT outcome, error_code FROM mi_inbox WHERE outbox_id = :i", {"i": oid})
    assert [tuple(h) for h in held] == [("held", "FLOW_ERROR")]


def test_a_resolver_may_not_resend_the_call_it_resolves(run):
    store, r, client = run
    oid = store.enqueue("test.sloppy", "K-resend", {"go": "resend"})
    # The step's charge was sent and its answer lost: the row is in doubt.
    store.execute("""UPDATE mi_outbox SET state = 'in_doubt', step = 'resend', current_call = 'LOST',
                            call_unsafe = 1 WHERE id = :i""", {"i": oid})
    [row] = store.claim("w", 30)
    r.run(row, "w")
    state, code, message = _row(store, oid)
    assert (state, code) == ("held", "FLOW_ERROR") and "resolve_resend" in message, message
    assert client.sent == [] and _journal(store, oid) == []
    # Held with the call in doubt still named: a requeue queries first, never resends.
    assert store.query("SELECT current_call FROM mi_outbox WHERE id = :i", {"i": oid}) == [("LOST",)]


def test_the_table_is_checked_when_the_flow_is_registered():
    with pytest.raises(TypeError, match="tuple of names"):
        Step("x", calls="6202")                         # free text: refused
    with pytest.raises(TypeError, match="tuple of names"):
        Step("x", calls=("2205+2204", ""))

    class NoQueries(Flow):
        kind, initial = "t.a", "pay"
        steps = {"pay": Step("pay", calls=("6202",), safe_to_repeat=False)}
        step_pay = resolve_pay = lambda self, ctx: None

    class SafeWithResolver(Flow):
        kind, initial = "t.b", "pay"
        steps = {"pay": Step("pay", calls=("6201",), resolves_with=("6301",))}
        step_pay = resolve_pay = lambda self, ctx: None

    with pytest.raises(TypeError, match="declare the queries"):
        Registry().register(NoQueries())
    with pytest.raises(TypeError, match="has no resolver"):
        Registry().register(SafeWithResolver())


def test_mibridge_flows_prints_the_declared_interfaces(capsys):
    from daemon import cli

    assert cli.cmd_flows(None) == 0
    out = capsys.readouterr().out
    assert "revoke                 calls 6401 + 6301 (NOT safe to repeat: resolved by query 6301)" in out
    assert "upload_fees            calls 2205 + 2204 (safe to repeat)" in out
    assert "refund_account         calls tgdupc004 (NOT safe to repeat: resolved by query fpy001)" in out
    assert "settle                 calls 2260 (NOT safe to repeat: resolved by query 2601)" in out

