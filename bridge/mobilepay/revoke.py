"""mobilepay.revoke: the HIS cancels a payment the patient has not paid (6401, §5.5).

    locate   find the payment (payment_row); revoke it only while it waits for the
             patient at await_payment and nobody works on it; Finish when it already
             ended; Fail when it is paid (refund it instead)
    revoke   6401 (centre.revoke_order), then poke the payment so it sees the revoke.
             Refused: 6301 at once - the payment's own deadline 6401 may have revoked it a
             moment earlier (then "already revoked", done), or the patient paid
             (ALREADY_PAID).  Its lost answer: resolve_revoke asks 6301 (centre.query_order)
    close_channel  a payment placed in WeChat with a cash part: close its JSAPI cash order
             (channels.md §2.1; safe to repeat).  The mixed order's own close endpoint is not
             public (§2.4, §10.4 item 3) and Alipay's medical order has none in the digest
             (§7.2): neither can be paid once the centre's order is revoked (the insurance part
             is refused), which the payment's own flow checks when it ends
"""
from __future__ import annotations

from bridge.calls import Outcome
from bridge.channels.payer import WECHAT
from bridge.engine.flow import Fail, Finish, Flow, Goto, Hold, InboxRow, InDoubt, Retry, Step, Wait
from bridge.wechatpay import outcomes as wx_oc

from .centre import (SECRET_KEYS, held_patient, not_ok, not_settled_yet, order_status, payment_row,
                     payment_secrets, query_order, revoke_order)
from .kinds import KIND_REVOKE, PAYMENT_KINDS
from .payloads import parse_revoke
from .settings import MobilePaySettings


class RevokeFlow(Flow):
    """The HIS cancels a payment the patient has not paid (6401, §5.5).  Enqueued
    with its own serial key: it must not wait for the payment it cancels."""

    kind = KIND_REVOKE
    initial = "locate"
    secret_keys = SECRET_KEYS
    steps = {
        "locate": Step("locate", next=("revoke",)),
        # A refused 6401 is followed by 6301 at once: revoked already, or paid?
        "revoke": Step("revoke", calls=("6401", "6301"), safe_to_repeat=False, resolves_with=("6301",),
                       next=("revoke", "close_channel")),
        "close_channel": Step("close_channel", calls=(wx_oc.TRANSACTION_CLOSE,)),
    }

    def __init__(self, settings: MobilePaySettings):
        self.settings = settings

    def parse(self, doc: dict) -> dict:
        return parse_revoke(doc)

    def step_locate(self, ctx):
        key = ctx.payload["payment_key"]
        if ctx.row.serial_key == key:
            return Fail("BAD_INPUT", "enqueue a revoke with its own serial key (not the payment's): "
                                     "it must not wait for the payment it cancels")
        pay = payment_row(ctx, key)
        if isinstance(pay, Fail):
            return pay
        if pay is None:
            return Fail("NO_SUCH_PAYMENT", f"no mobile-pay payment with business key {key!r}")
        if pay["state"] in ("failed", "resolved"):
            return Finish([InboxRow(result_type="revoke", outcome="ok",
                                    result={"payment_key": key, "note": f"the payment already ended {pay['state']}"})])
        if pay["state"] == "done" or pay["step"] in ("await_his", "repair"):
            return Fail("ALREADY_PAID", f"payment {key} is paid: enqueue a refund instead")
        fd = pay["flow_data"]
        # Only a payment that is waiting for the patient, and not being worked on, is
        # revoked from here: at its own "revoke" step (or running, or in doubt) the
        # payment has a 6401 of its own on the way, and a second one is a resend.
        if pay["step"] == "await_payment" and pay["state"] == "pending" and fd.get("payOrdId"):
            # The payment's payToken and patient go to this revoke's mi_secret.
            channel = {k: fd[k] for k in ("channel", "out_trade_no", "prepay_id") if fd.get(k)}
            return Goto("revoke", data={"payOrdId": fd["payOrdId"], "payment_id": pay["id"], **channel},
                        secrets=payment_secrets(ctx, pay, self.settings.default_id_type))
        waits = int(ctx.data.get("waits", 0))
        if waits * 2.0 > self.settings.revoke_wait_seconds:
            return Hold("PAYMENT_NOT_PLACED", f"payment {key} has not reached the centre (step {pay['step']}, "
                                              f"{pay['state']}) after {self.settings.revoke_wait_seconds:.0f} s")
        return Wait("locate", 2.0, data={"waits": waits + 1})

    def _patient(self, ctx) -> dict:
        return held_patient(ctx, ctx.data)

    def step_revoke(self, ctx):
        d = ctx.data
        r = revoke_order(ctx, d, self._patient(ctx))
        if r.outcome is Outcome.OK:
            return self._revoked(ctx)
        return not_ok(r, "REVOKE_UNKNOWN", lambda: self._refused(ctx, r))

    def _refused(self, ctx, r):
        """6401 refused.  The payment's own deadline 6401 can race this one: the loser is
        refused although the order is revoked.  6301 tells (a read)."""
        q = query_order(ctx, ctx.data, self._patient(ctx))
        stas = order_status(q)
        if stas is not None and stas.is_revoked:
            return self._revoked(ctx, note=f"already revoked (ordStas {stas.value}); this 6401 was refused: "
                                           f"{r.message}")
        if stas is not None and stas.is_settled:
            return Fail("ALREADY_PAID", f"6401 refused ({r.message}): the patient paid before the revoke; "
                                        f"enqueue a refund instead")
        if stas is None:
            # Nothing is decided on a refusal alone: resolve_revoke asks 6301 again.
            return InDoubt("QUERY_FAILED", f"6401 refused ({r.message}) and 6301 failed: {q.message}")
        return Fail("REVOKE_REJECTED", f"6401 refused: {r.message}; 6301 says ordStas {stas.value} (if the patient "
                                       f"paid, enqueue a refund)")

    def resolve_revoke(self, ctx):
        d = ctx.data
        r = query_order(ctx, d, self._patient(ctx))
        stas = order_status(r)
        if stas is None:
            return InDoubt("QUERY_FAILED", f"6301 after a lost 6401 failed: {r.message}")
        if stas.is_revoked:
            return self._revoked(ctx)
        if stas.is_processing:
            return not_settled_yet(ctx, "the 6401") or Goto("revoke")
        if stas.is_settled:
            return Fail("ALREADY_PAID", "the patient paid before the revoke: enqueue a refund instead")
        return Hold("REVOKE_UNCLEAR", f"order status {stas.value} after a lost 6401: check in the centre")

    def _revoked(self, ctx, note=None):
        d = ctx.data
        if d.get("channel") == WECHAT and d.get("prepay_id"):
            return Goto("close_channel", data={"note": note} if note else {})
        return self._finish(ctx, None, note)

    def step_close_channel(self, ctx):
        """§2.1 close (204): the patient can no longer pay the cash part.  A refusal (already
        paid: the payment's flow sees that cash and refunds it) is noted, not held."""
        client = ctx.service("wechatpay")
        r = ctx.call(client.send, client.prepare_close_transaction(ctx.data["out_trade_no"]))
        note = ctx.data.get("note")
        if r.ok or wx_oc.is_not_found(r):
            return self._finish(ctx, "closed", note)
        if r.refused:
            return self._finish(ctx, f"close refused: {r.code} {r.message}", note)
        return Retry("CLOSE_FAILED", f"{r.interface}: {r.message}")

    def _finish(self, ctx, closed, note=None):
        d = ctx.data
        # Wake the payment so it sees the revoked order now, not at its next poll.
        ctx.port.poke(PAYMENT_KINDS, ctx.payload["payment_key"])
        result = {"payment_key": ctx.payload["payment_key"], "payOrdId": d["payOrdId"]}
        if note:
            result["note"] = note
        if d.get("channel"):
            result.update(channel=d["channel"], out_trade_no=d.get("out_trade_no"),
                          channel_closed=closed or ("no cash order" if d["channel"] == WECHAT else
                                                    "Alipay has no close (channels.md §7.2)"))
        return Finish([InboxRow(result_type="revoke", outcome="ok", order_id=d["payOrdId"], result=result)])
