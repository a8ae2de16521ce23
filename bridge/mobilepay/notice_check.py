"""mobilepay.notice_check: a 6302 notice arrived for a payment request that had
already ended (or for an order mibridge does not know).  Is money unmatched?

The notice endpoint records the notice and enqueues this request instead of
alerting at once (issue 10 #2): a notice that arrives after mibridge refunded a
rejected settlement in full is no news, and an alert telling staff to refund it
by hand would have them refund it twice.  Deciding needs the order's state at
the centre (6301), which is a call: that is a flow's work, with the journal,
retries and a visible end, not the HTTP handler's.

    check   6301 for the order (a read, safe to repeat) -> done quietly, or held

Money is matched, and the check ends quietly (no inbox row), when
  * the payment ended done: the HIS took the settlement; or
  * the centre shows the order refunded in full (ordStas 7), e.g. after the
    单边账 repair (REVERSED); or
  * the payment's own record shows a full reversal and 6301 cannot be asked.
It is held for a person (a `held` inbox row under the payment's business key)
when the centre shows the order paid or partly refunded while the request ended
without the HIS taking it (NOTICE_FOR_CLOSED_PAYMENT), when 6301 says the order
was never paid although the centre's notice says it was
(NOTICE_CONTRADICTS_STATUS), and when the notice names an order or a business
key mibridge never placed (NOTICE_FOR_UNKNOWN_ORDER / _PAYMENT).
"""
from __future__ import annotations

import json

from loguru import logger

from bridge.engine.flow import Fail, Finish, Flow, Hold, Retry, Step, require_text

from .centre import NOTICE, PAY_TOKEN, contradicted, notice_text, order_status, payment_row, query_order
from .kinds import KIND_NOTICE_CHECK
from .messages import OrdStas
from .settings import MobilePaySettings

__all__ = ["KIND_NOTICE_CHECK", "NoticeCheckFlow"]


class NoticeCheckFlow(Flow):
    kind = KIND_NOTICE_CHECK
    initial = "check"
    steps = {"check": Step("check", calls=("6301",), next=())}

    def __init__(self, settings: MobilePaySettings):
        self.settings = settings

    def parse(self, doc: dict) -> dict:
        return {"payment_key": require_text(doc, "payment_key"), "payOrdId": require_text(doc, "payOrdId", 64)}

    def step_check(self, ctx):
        key, pay_ord_id = ctx.payload["payment_key"], ctx.payload["payOrdId"]
        notice = ctx.port.notice(NOTICE, pay_ord_id)
        if notice is None:
            return Fail("NO_NOTICE", f"no 6302 notice for {pay_ord_id} is recorded: nothing to check")
        said = notice_text(notice)
        pay = payment_row(ctx, key)
        if isinstance(pay, Fail):
            return Hold(pay.code, f"the centre says {said}; {pay.message}")
        if pay is None:
            return Hold("NOTICE_FOR_UNKNOWN_PAYMENT", f"the centre says {said} for business key {key}, which no "
                                                      f"mobile-pay payment request has: check in the centre")
        fd = pay["flow_data"]
        settled = fd.get("settled") or {}
        ours = fd.get("payOrdId") or settled.get("payOrdId")
        if ours != pay_ord_id:
            return Hold("NOTICE_FOR_UNKNOWN_ORDER", f"the centre says {said}, but request #{pay['id']} ({key}) "
                                                    f"placed {ours or 'no order'}: an order mibridge did not place "
                                                    f"was paid; check in the centre")
        if pay["state"] not in ("done", "failed", "resolved"):
            # Requeued since the notice came: its own flow cross-checks the notice.
            logger.info("notice check {}: payment #{} is {} again; its flow checks the notice",
                        pay_ord_id, pay["id"], pay["state"])
            return Finish([])
        taken = pay["state"] == "done"
        reversed_ = ctx.port.inbox_state(pay["id"], "reversal") is not None
        ended = f"request #{pay['id']} ({key}) ended {pay['state']}" + (" with a full refund (REVERSED)"
                                                                         if reversed_ else "")
        # mi_secret keeps a payment's payToken after it ended; rows from before
        # mi_secret had it in flow_data.
        token = ctx.port.secrets(pay["id"]).get(PAY_TOKEN) or fd.get(PAY_TOKEN) or settled.get(PAY_TOKEN)
        if not token:
            if taken or reversed_:
                return self._quiet(pay_ord_id, f"{ended}; 6301 cannot be asked (no payToken kept)")
            return Hold("NOTICE_FOR_CLOSED_PAYMENT", f"the centre says {said} after {ended}, and 6301 cannot be "
                                                     f"asked (no payToken kept): check the order in the centre; "
                                                     f"refund by hand only if it is still paid and the HIS did not "
                                                     f"bill it")
        patient = json.loads(pay["payload"])
        r = query_order(ctx, {"payOrdId": pay_ord_id, "payToken": token},
                   {"id_no": patient.get("id_no"), "user_name": patient.get("user_name"),
                    "id_type": patient.get("id_type") or self.settings.default_id_type})
        stas = order_status(r)
        if stas is None:
            return Retry("QUERY_FAILED", f"6301 for the late notice {pay_ord_id} failed: {r.message}")
        if stas is OrdStas.REFUNDED:
            return self._quiet(pay_ord_id, f"{ended}; 6301 says refunded in full")
        if stas is OrdStas.REFUND_IN_PROGRESS:
            return Retry("REFUND_IN_PROGRESS", "the centre is still refunding this order")
        if stas.is_settled or stas.is_refunded:
            if taken:
                return self._quiet(pay_ord_id, f"{ended}; the HIS took the settlement (6301: {stas.value})")
            what = "paid" if stas.is_settled else f"partly refunded (ordStas {stas.value})"
            if reversed_:
                return Hold("NOTICE_FOR_CLOSED_PAYMENT", f"the centre says {said}; {ended}, yet 6301 says the "
                                                         f"order is {what}: check the refund in the centre")
            return Hold("NOTICE_FOR_CLOSED_PAYMENT", f"the centre says {said}; 6301 says the order is {what}, but "
                                                     f"{ended} without the HIS taking it: refund it by hand unless "
                                                     f"the HIS billed it, then resolve this row")
        return contradicted(notice, stas, f"for {ended}")

    @staticmethod
    def _quiet(pay_ord_id: str, why: str) -> Finish:
        logger.info("late 6302 notice {}: money is matched ({}); recorded, nobody alerted", pay_ord_id, why)
        return Finish([], data={"matched": why})
