"""The test flows (state tables below)."""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from bridge.calls import Outcome
from bridge.engine.flow import InboxRow
from bridge.engine.flow import (Fail, Finish, Flow, Goto, InDoubt, Retry, Step,
                                require_amount, require_text)


@dataclass(frozen=True)
class ChargeRequest:
    patient_id: str
    total_amount: Decimal


class TestChargeFlow(Flow):
    """charge (NOT safe to repeat; resolved by querying) -> notify (safe) -> done."""

    kind = "test.charge"
    initial = "charge"
    steps = {
        # "charge" may lead back to itself: only from resolve_charge, once the
        # platform has confirmed that the lost charge was never booked.
        "charge": Step("charge", calls=("charge",), safe_to_repeat=False, next=("notify", "charge"),
                       resolves_with=("charge.query",)),
        "notify": Step("notify", calls=("notify",), safe_to_repeat=True, next=()),
    }

    def __init__(self, settle_seconds: float = 5.0):
        # How long after a send the test platform may still book it (its slowest
        # answer plus the client's timeout).
        self.settle_seconds = settle_seconds

    def parse(self, doc: dict) -> ChargeRequest:
        return ChargeRequest(patient_id=require_text(doc, "patient_id"),
                             total_amount=require_amount(doc, "total_amount"))

    def step_charge(self, ctx):
        client = ctx.service("testplatform")
        ref = ctx.row.business_key
        r = ctx.call(client.send, client.prepare_charge(ref, ctx.payload.total_amount))
        if r.outcome is Outcome.OK:
            return Goto("notify", data={"charge_id": r.data["charge_id"]})
        if r.try_again:
            return Retry("NOT_SENT" if r.outcome is Outcome.NOT_SENT else "PLATFORM_BUSY",
                         r.message or "platform unreachable")
        if r.refused:
            return Fail(r.code or "REJECTED", r.message or "rejected by the platform")
        return InDoubt("CHARGE_UNKNOWN", r.message or "charge outcome unknown")

    def resolve_charge(self, ctx):
        client = ctx.service("testplatform")
        r = ctx.call(client.send, client.prepare_query(ctx.row.business_key))
        if r.outcome is not Outcome.OK:
            return InDoubt("QUERY_FAILED", f"could not query the lost charge: {r.message}")
        charges = r.data["charges"]
        if len(charges) == 1:
            return Goto("notify", data={"charge_id": charges[0]["charge_id"]})
        if charges:
            return Fail("DOUBLE_CHARGE", f"platform shows {len(charges)} charges for one request")
        # Not booked (yet). A request that timed out may still be booked when the
        # platform gets to it: only after the settle window is "not found" final.
        waiting = ctx.settle_window_wait(self.settle_seconds, "NOT_SETTLED_YET", "charge not found yet")
        if waiting is not None:
            return waiting
        # Confirmed never booked: sending it now is a first send, not a resend.
        return Goto("charge")

    def step_notify(self, ctx):
        client = ctx.service("testplatform")
        r = ctx.call(client.send, client.prepare_notify(ctx.row.business_key))
        if r.outcome is Outcome.OK:
            return Finish([InboxRow(result_type="charge", outcome="ok", order_id=ctx.data["charge_id"],
                                    total_amount=ctx.payload.total_amount,
                                    cash_amount=ctx.payload.total_amount,
                                    result={"charge_id": ctx.data["charge_id"]})])
        if r.refused:
            return Fail(r.code or "REJECTED", r.message or "notification rejected")
        return Retry("NOTIFY_FAILED", r.message or "notification failed")


class TestNoopFlow(Flow):
    """One step, no remote call: measures the engine alone."""

    kind = "test.noop"
    initial = "finish"
    steps = {"finish": Step("finish")}

    def step_finish(self, ctx):
        # Who finished it: lets the race test prove both daemons did work.
        return Finish([InboxRow(result_type="noop", outcome="ok", result={"by": ctx.owner})])
