"""patient.message: the success message to the patient, at most once per event.

A payment flow adds the request with its transition when the HIS takes a registration or
an outpatient settlement, or when a refund completes (bridge/channels/patient_messages.py
``message_request``; one per event and source request, so a repeated transition adds
nothing).  This flow sends it:

    send   WeChat: the mini-program subscribe message, or the 公众号 template message, as the
           template's ``kind`` says (channels.md §4.2, §4.3); Alipay: the template message (§9)
           -> done / failed; never held

At most once.  A message is not safe to send twice and there is no query for a sent one,
so nothing here ever sends it again after the channel may have seen it:

* an answer that was lost (timeout, reset, 5xx, WeChat's errcode -1 "system busy", a body
  we cannot read: the client's UNKNOWN) ends the request ``done`` with the outcome
  "unknown" noted - the patient may or may not have the message;
* a send that was journalled but whose answer was never written (the daemon died during
  it: ``ctx.row.current_call``) ends the same way, without sending.

The step is "safe to repeat" in the engine's sense only: it has no resolver (there is no
query to resolve with), so the rescuer gives a crashed row back as pending, and the check
above ends it.  A retry happens only after an answer that says nothing was sent: not sent
(no connection, no access_token) and the channel's transient refusals (WeChat 45009/45011
quotas, a refused signature: bridge/wechatpay/outcomes.py, bridge/alipay/outcomes.py),
with the engine's backoff, until the row's attempts run out; then the request FAILS with
the reason.  It is never held: a message never affects money, and a hold is for money.

Outcomes (flow_data "outcome", and the HIS's inbox row ``message``):

    sent         done    inbox message ok      (result: msgid)
    refused      done    inbox message failed  USER_REFUSED: WeChat 43101, the patient refused
                                               or never subscribed (a one-off subscription
                                               was used up) - a final not-sent, not an error
    unknown      done    inbox message failed  SEND_UNKNOWN: may have been sent; not resent
    no_template  done    no inbox row          the hospital configured no template for the
                                               event on that channel (or not the channel)
    not_sent     failed  inbox message failed  the channel refused (a bad template, openid or
                                               field: fix the config), a value the template
                                               needs is missing, or transient refusals used
                                               every attempt

Personal data: the template's values go in the request's payload (as the HIS's own
payment payload holds the patient's name); the journal keeps the request as the clients
mask it (a value named ``*name`` masked by bridge/masking.py); flow_data and the inbox row
keep no value at all.
"""
from __future__ import annotations

from typing import Any, Optional

from loguru import logger

from bridge.alipay import outcomes as ali
from bridge.alipay.messages import TemplateMessageRequest
from bridge.calls import CallResult, Outcome
from bridge.engine.flow import BadInput, Fail, Finish, Flow, InboxRow, Retry, Step
from bridge.wechatpay import outcomes as wx
from bridge.wechatpay.messenger import PatientMessage

from .patient_messages import KIND_MESSAGE, check_message

__all__ = ["KIND_MESSAGE", "MessageFlow", "RESULT_TYPE"]

RESULT_TYPE = "message"
# What the channels answer when the patient has not agreed to the message: WeChat 43101
# "user refuse to accept the msg" (channels.md §4.2; also a one-off subscription used up).
# Alipay publishes no such code (§9, §10.4 item 14): its refusals are plain not-sent.
REFUSED = {"wechat": frozenset({"43101"}), "alipay": frozenset()}
SEND_INTERFACES = (wx.SUBSCRIBE_MESSAGE, wx.TEMPLATE_MESSAGE, ali.TEMPLATE_MESSAGE_CALL)


class MessageFlow(Flow):
    kind = KIND_MESSAGE
    initial = "send"
    # No resolver: there is no query for a sent message.  The flow itself never sends
    # twice (the module note): a lost answer and a crashed send both end "unknown".
    steps = {"send": Step("send", calls=SEND_INTERFACES, next=())}

    def parse(self, doc: dict) -> dict:
        try:
            return check_message(doc)
        except ValueError as exc:
            raise BadInput(f"patient message: {exc}") from None

    # ------------------------------------------------------------------ the step
    def step_send(self, ctx):
        m = ctx.payload
        if ctx.row.current_call:
            # Journalled by an earlier run whose answer was never written: it may have
            # reached the channel.  At most once: never again.
            return self._unknown(m, "the daemon stopped during the send; the answer was never recorded")
        built = self._build(ctx, m)
        if not isinstance(built, tuple):
            return built
        send, prepared = built
        return self._outcome(ctx, m, ctx.call(send, prepared))

    def _build(self, ctx, m: dict):
        """(the client's send, the prepared call); or the transition instead: a quiet Finish
        when no template is configured for the event, a Fail when the message cannot be
        built (no recipient for the template's kind, a value the template needs missing)."""
        if m["channel"] == "wechat":
            messenger = _service(ctx, "wechatpay.messenger")
            template = messenger.config.template(m["event"]) if messenger is not None else None
            if template is None:
                return self._no_template(m)
            official = template.kind == "official"
            touser = m["recipient"].get("official_openid" if official else "openid")
            if not touser:
                return self._not_sent(m, "NO_RECIPIENT", (
                    "the template is an official-account (公众号) message, which needs the patient's openid "
                    "under that account (recipient official_openid); the request gives none") if official else
                    "the request gives no mini-program openid (recipient openid)")
            try:
                return messenger.send, messenger.prepare_message(PatientMessage(event=m["event"], touser=touser,
                                                                                values=m["values"]))
            except ValueError as exc:
                return self._not_sent(m, "MESSAGE_INCOMPLETE", str(exc))
        client = _service(ctx, "alipay")
        template = client.config.templates.get(m["event"]) if client is not None else None
        if template is None:
            return self._no_template(m)
        kind = client.config.message_user_id            # "user_id" or "open_id" (§9)
        to_user = m["recipient"].get(kind)
        if not to_user:
            return self._not_sent(m, "NO_RECIPIENT", f"[alipay] sends messages to the {kind}; the request "
                                                           f"gives {', '.join(m['recipient'])}")
        try:
            return client.send, client.prepare_template_message(TemplateMessageRequest(
                event=m["event"], to_user=to_user, values=m["values"]))
        except ValueError as exc:
            return self._not_sent(m, "MESSAGE_INCOMPLETE", str(exc))

    def _outcome(self, ctx, m: dict, r: CallResult):
        if r.ok:
            msgid = getattr(r.data, "msgid", None) if r.data is not None else None
            logger.info("patient message {} {} for {}: sent", m["event"], m["channel"], m["source_key"])
            return Finish([self._row(m, "ok", sent=True, msgid=msgid)],
                          data={"outcome": "sent", **({"msgid": msgid} if msgid else {})})
        if r.outcome is Outcome.UNKNOWN:
            return self._unknown(m, f"the channel's answer was lost ({r.code}: {r.message})")
        if r.try_again:
            why = f"not sent ({r.code}: {r.message})"
            if ctx.row.attempts < ctx.row.max_attempts:
                return Retry("NOT_SENT" if r.outcome is Outcome.NOT_SENT else "BUSY", why)
            return self._not_sent(m, "SEND_FAILED", f"{why}; gave up after {ctx.row.attempts} attempts")
        if r.code in REFUSED[m["channel"]]:
            logger.info("patient message {} {} for {}: the patient refused it (or never subscribed)",
                        m["event"], m["channel"], m["source_key"])
            return Finish([self._row(m, "failed", sent=False, code="USER_REFUSED",
                                     message=f"the patient refused the message or has no subscription left "
                                             f"({r.code}: {r.message}); not sent")],
                          data={"outcome": "refused", "code": r.code})
        return self._not_sent(m, "MESSAGE_REFUSED", f"the channel refused the message ({r.code}: {r.message})")

    # ------------------------------------------------------------------ endings
    @staticmethod
    def _row(m: dict, outcome: str, *, sent: Optional[bool], code: Optional[str] = None,
             message: Optional[str] = None, msgid: Optional[str] = None) -> InboxRow:
        result: dict[str, Any] = {"event": m["event"], "channel": m["channel"], "source_kind": m["source_kind"],
                                  "source_key": m["source_key"], "source_outbox_id": m["source_outbox_id"],
                                  "sent": sent}
        if msgid:
            result["msgid"] = msgid
        return InboxRow(result_type=RESULT_TYPE, outcome=outcome, error_code=code, error_message=message,
                        result=result)

    def _unknown(self, m: dict, why: str) -> Finish:
        logger.warning("patient message {} {} for {}: {}; it may have been sent and is not sent again",
                       m["event"], m["channel"], m["source_key"], why)
        return Finish([self._row(m, "failed", sent=None, code="SEND_UNKNOWN",
                                 message=f"{why}; the message may have reached the patient and is not sent again "
                                         f"(at most once)")],
                      data={"outcome": "unknown", "why": why})

    def _not_sent(self, m: dict, code: str, why: str) -> Fail:
        logger.warning("patient message {} {} for {}: not sent: [{}] {}", m["event"], m["channel"], m["source_key"],
                       code, why)
        return Fail(code, why, inbox=[self._row(m, "failed", sent=False, code=code, message=why)],
                    data={"outcome": "not_sent"})

    @staticmethod
    def _no_template(m: dict) -> Finish:
        why = f"no [{'wechatpay' if m['channel'] == 'wechat' else 'alipay'}.templates.{m['event']}] configured"
        logger.info("patient message {} {} for {}: {}; nothing sent", m["event"], m["channel"], m["source_key"], why)
        return Finish([], data={"outcome": "no_template", "why": why})


def _service(ctx, name: str):
    """The channel's client, or None when its section is not configured (then no template
    is either: nothing to send)."""
    try:
        return ctx.service(name)
    except RuntimeError:
        return None
