"""mobilepay.outpatient / mobilepay.registration: one bill paid in the mini-program.

    authorize      a payload naming its channel: the channel's checks, and without pay_auth_no
                   Alipay's auth query or WeChat's auth_code exchange
                   (bridge/mobilepay/channel_payment.py); else nothing
    identify       1101 with the payAuthNo (only when the HIS did not give psn_no)
    upload         6201 fee details -> payOrdId, payToken (no money moves: safe)
    order          6202 (step_order) -> the split; inbox 'order' row for the mini-program.
                   NOT safe to repeat.  Its lost answer: resolve_order asks 6301 -
                   settled -> await_his; placed -> await_payment; only saved (never placed)
                   -> inside the settle window wait (InDoubt waiting), after it send 6202
                   now (a first send); a 6302 notice never settles, it is cross-checked
    prepay, channel_order   a payload naming its channel: the WeChat JSAPI prepay and mixed
                   order, or the Alipay medical order; the 'order' row then carries the
                   cashier (channel_payment.py; channel_order is NOT safe to repeat)
    await_payment  6301 polls (6302 notices and channel callbacks wake it), and the channel's
                   query for a channel payment -> settled (both agree) | deadline -> revoke |
                   cash taken while insurance failed -> cash_refund | a disagreement: held
    revoke         6401 at the deadline (or hold, by configuration); refused -> 6301 at
                   once (paid at the last moment?).  Lost answer: resolve_revoke (6301)
    close_channel  after 6401 of a channel payment: close the WeChat cash order, look once more
    await_his      inbox 'settlement' row written; waits for the HIS to take it
                   (bridge/engine/handover.py); taken -> the patient's message (if configured)
    repair         单边账: the HIS rejected it or did not take it in time -> 6203 ALL (a channel
                   payment: the insurance part, bridge/channels/refund_legs.py).
                   Lost answer: resolve_repair (6301)
    cash_refund, await_cash_refund, refund_notify   the cash back through the channel and
                   WeChat told of the insurance refund (channel_refund.py)

The centre's calls and how their answers are read: bridge/mobilepay/centre.py.
Sequence and rules: ../shared/spec/mobilepay.md §7 (call sequences) and §7.3 (timeouts).
"""
from __future__ import annotations

import hashlib
import time
from decimal import Decimal
from typing import Any, Optional

from loguru import logger

from bridge.calls import CallResult, Outcome
from bridge.engine import handover
from bridge.engine.flow import (Fail, Finish, Flow, Goto, Hold, IdentityRow, InboxRow, InDoubt, Retry, Step,
                                Wait)

from bridge.channels import keys, notices, patient_messages, refund_legs
from bridge.channels.payer import WECHAT
from bridge.channels.status import Verdict, judge

from .centre import (NOTICE, PAY_AUTH, PAY_TOKEN, SECRET_KEYS, centre, contradicted, dec, fen, not_ok,
                     not_settled_yet, notice_split, notice_text, now14, order_status, org_biz_ser, patient_of,
                     pay_auth_no, pay_token, query_order, refund_in_progress, refund_order, refund_state,
                     revoke_order, split_of)
from .channel_payment import (AUTH_CALLS, CLOSE_CALLS, ORDER_CALLS, ORDER_QUERIES, PREPAY_CALLS, STATUS_CALLS,
                              ChannelPaymentSteps, channel_client)
from .channel_refund import (CASH_REFUND_CALLS, CASH_REFUND_QUERIES, NOTIFY_CALLS, ChannelRefundSteps, cash_spec,
                             now_rfc3339)
from .kinds import KIND_OUTPATIENT, KIND_REGISTRATION
from .messages import FeeDetail, OrdStas, PayOrderRequest, SetlType, UploadFeeRequest
from .payloads import PaymentRequest, parse_payment
from .settings import MobilePaySettings


class PaymentFlow(ChannelPaymentSteps, ChannelRefundSteps, Flow):
    """One outpatient bill (or registration fee) paid in the mini-program."""

    kind = KIND_OUTPATIENT      # per instance: outpatient or registration
    initial = "authorize"
    # Its refunds and revokes query and revoke with the payToken; a payAuthNo mibridge asked
    # Alipay for is the refunds' 6203 authorisation (the HIS's is in its payload).
    kept_secrets = (PAY_TOKEN, PAY_AUTH)
    secret_keys = SECRET_KEYS
    steps = {
        "authorize": Step("authorize", calls=AUTH_CALLS, next=("identify",)),
        "identify": Step("identify", calls=("1101",), next=("upload",)),
        "upload": Step("upload", calls=("6201",), next=("order",)),
        # "order" leads back to itself only from resolve_order, once 6301 has shown
        # that the lost 6202 never took effect (the runner enforces that).
        "order": Step("order", calls=("6202",), safe_to_repeat=False, resolves_with=("6301",),
                      next=("await_payment", "await_his", "order", "prepay", "channel_order")),
        "prepay": Step("prepay", calls=PREPAY_CALLS, next=("channel_order", "revoke")),
        # The patient can pay what this creates: resolved by the channel's query, never resent blindly.
        "channel_order": Step("channel_order", calls=ORDER_CALLS, safe_to_repeat=False, resolves_with=ORDER_QUERIES,
                              next=("await_payment", "channel_order", "revoke")),
        "await_payment": Step("await_payment", calls=("6301",) + STATUS_CALLS,
                              next=("await_his", "revoke", "cash_refund")),
        # A refused 6401 is followed by 6301 at once: did the patient pay at the last moment?
        "revoke": Step("revoke", calls=("6401", "6301"), safe_to_repeat=False, resolves_with=("6301",),
                       next=("await_his", "revoke", "await_payment", "close_channel")),
        "close_channel": Step("close_channel", calls=CLOSE_CALLS + ORDER_QUERIES, next=("cash_refund",)),
        "await_his": Step("await_his", next=("repair",)),
        "repair": Step("repair", calls=("6203",), safe_to_repeat=False, resolves_with=("6301",),
                       next=("repair", "cash_refund", "refund_notify")),
        "cash_refund": Step("cash_refund", calls=CASH_REFUND_CALLS, safe_to_repeat=False,
                            resolves_with=CASH_REFUND_QUERIES,
                            next=("cash_refund", "await_cash_refund", "refund_notify", "revoke")),
        "await_cash_refund": Step("await_cash_refund", calls=CASH_REFUND_QUERIES,
                                  next=("cash_refund", "refund_notify", "revoke")),
        "refund_notify": Step("refund_notify", calls=NOTIFY_CALLS),
    }

    def __init__(self, kind: str, settings: MobilePaySettings, med_type: str = "11"):
        # §6.2: med_type 11 普通门诊 is also what registration uses.
        self.kind = kind
        self.settings = settings
        self.med_type = med_type

    def parse(self, doc: dict) -> PaymentRequest:
        return parse_payment(doc, self.med_type, self.settings.default_id_type)

    # -- identify: 1101 with the channel's payAuthNo (§5.7, Shanxi) -------------------
    def step_identify(self, ctx):
        """The insured person and the insurance this bill runs under.  With psn_no in the
        payload: as given.  Else 1101 with the payAuthNo, and the insurance the patient chose
        (the payload's `insutype`, and `insuplc_admdvs` when one type is held in two
        regions; without them, what identity.choose wrote back to mi_identity for this
        patient, docs/identity.md) or the only one in force.  Several in force and none
        chosen: CHOOSE_INSURANCE with the list, never the first (bridge/identity/insurances.py
        pick)."""
        p: PaymentRequest = ctx.payload
        if p.psn_no:
            return Goto("upload", data={"psn_no": p.psn_no, "insutype": p.insutype,
                                        "insuplc_admdvs": p.insuplc_admdvs})
        try:
            offline = ctx.service("offline")
        except RuntimeError:
            return Fail("NO_IDENTITY", "the payload has no psn_no/insutype/insuplc_admdvs and no "
                                       "[offline] section is configured to look them up with 1101")
        from bridge.offline import messages as m
        failure = offline.ensure_signed_in()
        if failure is not None:
            return Retry("SIGN_IN_FAILED", f"9001 sign-in failed: {failure.code} {failure.message}")
        r = ctx.call(offline.send, offline.prepare_person_info(
            m.PersonInfoRequest.by_pay_auth_no(p.pay_auth_no, insuplc_admdvs=p.insuplc_admdvs)))
        if r.refused and r.message and any(k in r.message for k in offline.config.sign_in_invalid_markers):
            # The platform no longer knows our 9001 sign-in (the client dropped it): nothing
            # was looked up; the next try signs in again (as bridge/facepay/fsi.py fsi_call).
            return Retry("SIGN_IN_INVALID", f"1101: {r.message}")
        if r.refused:
            # A verdict on the payAuthNo (expired, used, unknown).  A busy or signature
            # refusal is `transient`, never here (bridge/refusals.py): asked again below.
            return Fail("IDENTIFY_REJECTED", f"1101 with the payAuthNo refused: {r.message}")
        if r.outcome is not Outcome.OK:
            return Retry("IDENTIFY_FAILED", r.message or "1101 failed")
        return self._identified(ctx, r.data)

    def _identified(self, ctx, person):
        """`person`: 1101's answer (bridge/offline/messages.py PersonInfo)."""
        # Imported here, like the offline messages above: the identity rules are only
        # needed on the 1101 path (and this keeps the module's imports as they were).
        from bridge.identity.insurances import (NoChoice, benefit_category, idet_type, insurance_rows, pick,
                                                public)
        from bridge.identity.masking import masked_certno, masked_name
        p: PaymentRequest = ctx.payload
        rows = insurance_rows(person, region_asked=p.insuplc_admdvs)
        chosen = pick(rows, p.insutype, p.insuplc_admdvs)
        by_choice = p.insutype is not None
        if p.insutype is None and p.insuplc_admdvs is None and isinstance(chosen, NoChoice) \
                and chosen.code == "CHOOSE_INSURANCE":
            # The payment names none: the insurance this patient chose before (identity.choose,
            # or a payment that named it, written back to mi_identity), if this is the same
            # person and it can still be used; else the patient chooses again.
            prior = ctx.port.chosen_identity(p.patient_id)
            if prior and prior["chosen"] and prior["psn_no"] == person.psn_no and prior["insutype"]:
                again = pick(rows, prior["insutype"], prior["insuplc_admdvs"])
                if isinstance(again, NoChoice):
                    chosen = NoChoice(chosen.code, f"{chosen.message} (the choice written back before, "
                                                   f"{prior['insutype']} in {prior['insuplc_admdvs']}, cannot be "
                                                   "used now)")
                else:
                    chosen, by_choice = again, True
        if isinstance(chosen, NoChoice):
            # The list goes with the error: the mini-program shows it, the patient chooses,
            # the HIS enqueues a new payment naming `insutype` (and the region if needed).
            return Fail(chosen.code, chosen.message, inbox=[InboxRow(
                result_type="error", outcome="failed", error_code=chosen.code, error_message=chosen.message,
                result={"psn_no": person.psn_no, "insurances": public(rows)})])
        ident = IdentityRow(his_patient_id=p.patient_id, psn_no=person.psn_no,
                            insuplc_admdvs=chosen["insuplc_admdvs"], insutype=chosen["insutype"],
                            psn_cert_type=person.psn_cert_type, psn_type=chosen["psn_type"],
                            benefit=benefit_category({"psn_idet_type": idet_type(person)}, chosen),
                            certno_masked=masked_certno(p.id_no), psn_name_masked=masked_name(p.user_name),
                            gend=person.gend, chosen=by_choice)
        return Goto("upload", data={"psn_no": person.psn_no, "insutype": chosen["insutype"],
                                    "insuplc_admdvs": chosen["insuplc_admdvs"]},
                    identities=[ident])

    # -- upload: 6201 ---------------------------------------------------------------------
    def step_upload(self, ctx):
        p: PaymentRequest = ctx.payload
        d = ctx.data
        begin = p.visit_time or time.strftime("%Y-%m-%d %H:%M:%S")
        batch = p.charge_batch or ctx.row.business_key
        details = [FeeDetail(feedetlSn=f"{ctx.row.business_key}-{ln.line_no}", detItemFeeSumamt=ln.amount,
                             psnNo=d["psn_no"], chrgBchno=batch, feeOcurTime=begin,
                             medListCodg=ln.national_code, medinsListCodg=ln.item_code,
                             medListName=ln.item_name, cnt=ln.quantity, pric=ln.price,
                             bilgDeptCodg=p.dept_code, bilgDeptName=p.dept_name,
                             bilgDrCodg=p.doctor_code, bilgDrName=p.doctor_name, medType=p.med_type)
                   for ln in p.lines]
        s = self.settings
        req = UploadFeeRequest(
            psnNo=d["psn_no"], insutype=d["insutype"], medOrgOrd=ctx.row.business_key, begntime=begin,
            idNo=p.id_no, userName=p.user_name, idType=p.id_type, payAuthNo=pay_auth_no(ctx),
            insuCode=d["insuplc_admdvs"], insuplcAdmdvs=d["insuplc_admdvs"], iptOtpNo=p.visit_id,
            deptCode=p.dept_code, deptName=p.dept_name, caty=p.caty, medType=p.med_type,
            feeType=s.fee_type, medfeeSumamt=p.total_amount, psnSetlway=s.psn_setlway, chrgBchno=batch,
            pubHospRfomFlag=s.pub_hosp_rfom_flag, feedetailList=details, atddrNo=p.doctor_code,
            drName=p.doctor_name, diseCodg=p.diagnosis_code, diseName=p.diagnosis_name,
            acctUsedFlag=self._acct_flag(p))
        client = centre(ctx)
        # 6201 moves no money and is sent again with the same medOrgOrd (§7.3): a
        # lost answer is retried; the centre returns the same order or refuses.
        r = ctx.call(client.send, client.prepare_upload_fee(req))
        if r.outcome is Outcome.OK:
            return Goto("order", data={"payOrdId": r.data.payOrdId,
                                       "mdtrtId": r.data.mdtrtId or p.visit_id, "chrgBchno": batch},
                        secrets={PAY_TOKEN: r.data.payToken})
        if r.refused:
            return Fail("UPLOAD_REJECTED", f"6201 refused: {r.message}")
        return Retry("UPLOAD_FAILED", r.message or "6201 failed")

    def _acct_flag(self, p: PaymentRequest) -> str:
        use = self.settings.use_personal_account if p.use_personal_account is None else p.use_personal_account
        return "1" if use else "0"

    # -- order: 6202 ------------------------------------------------------------------------
    def step_order(self, ctx):
        p: PaymentRequest = ctx.payload
        d = ctx.data
        client = centre(ctx)
        prepared = client.prepare_pay_order(PayOrderRequest(
            payAuthNo=pay_auth_no(ctx), payOrdId=d["payOrdId"], payToken=pay_token(ctx, d),
            orgBizSer=org_biz_ser(), mdtrtId=d["mdtrtId"], chrgBchno=d["chrgBchno"],
            feeType=self.settings.fee_type, acctUsedFlag=self._acct_flag(p)))
        r = ctx.call(client.send, prepared)
        if r.outcome is Outcome.OK:
            o = r.data
            split = split_of(o.feeSumamt, o.fundPay, o.psnAcctPay, o.ownPayAmt)
            data = {"order_msg": prepared.msg_id, "split": split, "polls": 0, "ordStas": o.ordStas.value}
            identities = self._identity_from_presettle(ctx, o.extData)
            if p.channel is not None and not o.ordStas.is_settled:
                return self._to_channel(ctx, data, identities)
            return Goto("await_payment", data=data, inbox=[self._order_row(ctx, o.ordStas, split)],
                        identities=identities)
        return not_ok(r, "ORDER_UNKNOWN", lambda: Fail("ORDER_REJECTED", f"6202 refused: {r.message}"))

    def resolve_order(self, ctx):
        d = ctx.data
        notice = ctx.port.notice(NOTICE, d["payOrdId"])
        r = query_order(ctx, d, patient_of(ctx.payload))
        stas = order_status(r)
        if stas is not None and stas.is_settled:
            return self._settled(ctx, r.data, {"order_msg": ctx.in_doubt_msg_id}, notice)
        if stas is None:
            # A 6302 notice is a trigger, not proof: only 6301 settles (issue 10 #1).
            return InDoubt("QUERY_FAILED", f"6301 after a lost 6202 failed: {r.message}"
                                           + ("; a 6302 notice says paid: waiting for 6301 to confirm it"
                                              if notice else ""))
        if stas in (OrdStas.PRE_SETTLED, OrdStas.AWAITING_PAYMENT):
            q = r.data
            split = split_of(q.feeSumamt, q.fundPay, q.psnAcctPay, q.ownPayAmt) if q.feeSumamt is not None else None
            data = {"order_msg": ctx.in_doubt_msg_id, "split": split, "polls": 0, "ordStas": stas.value}
            if ctx.payload.channel is not None:
                if split is None:
                    # The channel's order needs the split; 6301 gave none for a placed order.
                    return InDoubt("SPLIT_UNKNOWN", "6301 says the order is placed but gives no amounts yet")
                return self._to_channel(ctx, data, [])
            return Goto("await_payment", data=data, inbox=[self._order_row(ctx, stas, split)])
        if stas is OrdStas.SAVED:
            waiting = not_settled_yet(ctx, "the 6202")
            if waiting:
                return waiting
            if notice is not None:
                return contradicted(notice, stas, "after a lost 6202")
            # Confirmed never placed: sending 6202 now is a first send, not a resend.
            return Goto("order")
        if notice is not None:
            return contradicted(notice, stas, "after a lost 6202")
        return self._ended(stas)

    def _order_row(self, ctx, stas: OrdStas, split: Optional[dict], channel: Optional[dict] = None) -> InboxRow:
        """What the mini-program needs to start the payment: the centre's payOrdId and the
        split, and for a payment with a channel the cashier mibridge opened there
        (`channel`: channel, out_trade_no, mix_trade_no / chnl_ord_sn, cashier).  Without a
        channel, the fields the mini-program's back end needs to place WeChat's mixed order
        itself (§10: pay_order_id, serial_no = medOrgOrd and the fees in fen).  payToken
        stays with mibridge (§7.1 step 2: server side only)."""
        d = ctx.data
        split = split or {}
        result = {"payOrdId": d["payOrdId"], "medOrgOrd": ctx.row.business_key, "ordStas": stas.value,
                  "mdtrtId": d["mdtrtId"], **{k: v for k, v in split.items()}}
        if channel:
            result.update(channel)
        elif split:
            result["wechat"] = {"serial_no": ctx.row.business_key, "pay_order_id": d["payOrdId"],
                                "total_fee": fen(split["total"]), "med_ins_gov_fee": fen(split["fund"]),
                                "med_ins_self_fee": fen(split["account"]),
                                "med_ins_cash_fee": fen(split["cash"])}
        return InboxRow(result_type="order", outcome="ok", order_id=d["payOrdId"],
                        total_amount=dec(split.get("total")), fund_amount=dec(split.get("fund")),
                        account_amount=dec(split.get("account")), cash_amount=dec(split.get("cash")),
                        result=result)

    def _identity_from_presettle(self, ctx, ext: Any) -> list[IdentityRow]:
        """The identity the payload carried, confirmed by 6202's extData.preSetl (§5.2)."""
        p: PaymentRequest = ctx.payload
        if not p.psn_no:
            return []      # written from 1101 already
        pre = ext.get("preSetl") if isinstance(ext, dict) else None
        pre = pre if isinstance(pre, dict) else {}
        return [IdentityRow(his_patient_id=p.patient_id, psn_no=str(pre.get("psn_no") or p.psn_no),
                            insuplc_admdvs=p.insuplc_admdvs, insutype=str(pre.get("insutype") or p.insutype),
                            psn_cert_type=pre.get("psn_cert_type"))]

    # -- await_payment: 6301, woken by 6302 -------------------------------------------------
    def step_await_payment(self, ctx):
        d = ctx.data
        if d.get("channel_ordered"):
            return self._await_channel_payment(ctx)
        notice = ctx.port.notice(NOTICE, d["payOrdId"])
        r = query_order(ctx, d, patient_of(ctx.payload))
        stas = order_status(r)
        if stas is not None and stas.is_settled:
            return self._settled(ctx, r.data, {}, notice)
        if stas is not None and not stas.is_processing:
            if notice is not None:
                return contradicted(notice, stas)
            return self._ended(stas)
        polls = int(d.get("polls", 0))
        if notice is not None:
            # A verified notice wakes us but does not settle (issue 10 #1): 6301 must
            # confirm it.  6301 may lag behind the notice by up to settle_seconds.
            since = ctx.port.notice_age_seconds(NOTICE, d["payOrdId"]) or 0.0
            if stas is not None and since > self.settings.settle_seconds:
                return contradicted(notice, stas, f"{since:.0f} s after the notice")
            age = ctx.call_age_seconds(d["order_msg"])
            if stas is None and age is not None and age > self.settings.payment_deadline_seconds:
                return Hold("NOTICE_UNCONFIRMED", f"a 6302 notice says {notice_text(notice)}, and 6301 has not "
                                                  f"confirmed it by the payment deadline ({r.message}): check in "
                                                  f"the centre; requeue once 6301 answers")
            if r.outcome is Outcome.REJECTED:
                return Retry("QUERY_REJECTED", f"6301 refused: {r.message}")
            return Wait("await_payment", self.settings.poll_first_seconds, data={"polls": polls + 1})
        age = ctx.call_age_seconds(d["order_msg"])
        if age is not None and age > self.settings.payment_deadline_seconds:
            if self.settings.on_deadline == "hold":
                return Hold("PAYMENT_DEADLINE", f"not paid {age:.0f} s after the order; revoke (6401) or "
                                                f"wait is for a person to decide")
            return Goto("revoke")
        if r.outcome is Outcome.REJECTED:
            return Retry("QUERY_REJECTED", f"6301 refused: {r.message}")
        # A notice that arrived during our 6301 could not wake this (running) row:
        # look once more before going to sleep, and ask 6301 again soon if one did.
        if ctx.port.notice(NOTICE, d["payOrdId"]) is not None:
            return Wait("await_payment", self.settings.poll_first_seconds, data={"polls": polls + 1})
        delay = min(self.settings.poll_cap_seconds, self.settings.poll_first_seconds * (2 ** min(polls, 16)))
        return Wait("await_payment", delay, data={"polls": polls + 1})

    def _settled(self, ctx, q, data: dict, notice: Optional[dict] = None, channel=None,
                 channel_ids: Optional[dict] = None):
        """6301 says the order is paid (`q`, its answer): compare with what 6202 said,
        with a recorded 6302 notice and, for a channel payment, with what the channel's
        query said (`channel`, a ChannelStatus the caller judged paid), write the
        settlement row.  Only queries settle; a notice is a cross-check (issue 10 #1)."""
        d = {**ctx.data, **data}
        paid = split_of(q.feeSumamt, q.fundPay, q.psnAcctPay, q.ownPayAmt)
        trace, setl_type = q.traceTime, q.setlType.value if q.setlType else None
        if paid["total"] is None:
            return InDoubt("SETTLED_WITHOUT_AMOUNTS", "the centre says settled but gave no amounts yet")
        paid = {k: str(Decimal(v or "0").quantize(Decimal("0.01"))) for k, v in paid.items()}
        stale = bool(notice and notice.get("stale"))
        others = [(d.get("split"), "6202"), (notice_split(notice), "the 6302 notice")]
        if channel is not None:
            others.append((channel.amounts, f"the {channel.channel} order"))
        for other, what in others:
            if other and any(Decimal(other[k]) != Decimal(paid[k]) for k in paid if other.get(k) is not None):
                if stale and what == "the 6302 notice":
                    # A stale notice never holds a payment 6301 shows settled consistently.
                    logger.warning("row {}: the stale 6302 notice for {} differs from 6301 {}: {}; ignored",
                                   ctx.row.id, d["payOrdId"], paid, other)
                    continue
                return Hold("AMOUNT_MISMATCH", f"6301 says settled {paid}, which differs from {what} {other} "
                                               f"(§5.6: review by hand)")
        setl_id = None if stale else (notice or {}).get("setlId")
        settled = {"payOrdId": d["payOrdId"], **paid, "traceTime": trace,
                   "setlType": setl_type, "setlId": setl_id}
        result = {"payOrdId": d["payOrdId"], "medOrgOrd": ctx.row.business_key,
                  "setlId": setl_id, "traceTime": trace, "setlType": setl_type,
                  "confirmed_by": "6301", "notice": notice is not None, **paid}
        if channel is not None:
            # What the refunds of this payment need of the channel, and the order book's keys
            # (bridge/db/orderbook.py RESULT_KEYS).  cash_by is decided here, once per payment
            # (bridge/channels/refund_legs.py).
            facts = {"channel": channel.channel, "out_trade_no": d["out_trade_no"], **(channel_ids or {}),
                     "cash_by": refund_legs.cash_by(channel.channel, self._cash_after(ctx, channel.channel))}
            settled.update(facts)
            result.update({k: v for k, v in facts.items() if k != "cash_by"},
                          confirmed_by=f"6301+{channel.channel}", paid_time=channel.paid_time)
        row = InboxRow(result_type="settlement", outcome="ok", order_id=d["payOrdId"],
                       # The centre's setlId when a notice carried one; else payOrdId stands in.
                       settlement_id=setl_id or d["payOrdId"],
                       total_amount=Decimal(paid["total"]), fund_amount=Decimal(paid["fund"]),
                       account_amount=Decimal(paid["account"]), cash_amount=Decimal(paid["cash"]),
                       result=result)
        return Goto("await_his", data={**data, "settled": settled}, inbox=[row])

    @staticmethod
    def _cash_after(ctx, channel: str) -> str:
        if channel != WECHAT:
            return "hospital_refunds_cash"
        return ctx.service("wechatpay.settings").cash_after_6203

    @staticmethod
    def _ended(stas: OrdStas):
        if stas.is_revoked:
            return Fail("REVOKED", f"the order was revoked (ordStas {stas.value}): nothing was paid")
        if stas is OrdStas.SETTLEMENT_FAILED:
            return Fail("PAYMENT_FAILED", f"the centre reports the settlement failed (ordStas {stas.value})")
        if stas.is_failed:
            # 14 异常 may still settle; 16 took the cash and failed to give it back:
            # neither is "nothing happened", so a person looks before the HIS bills again.
            return Hold("PAYMENT_ANOMALY", f"the centre reports ordStas {stas.value} ({stas.name}): money may "
                                           f"have moved; check in the centre before billing again")
        return Hold("UNEXPECTED_STATE", f"order status {stas.value} ({stas.name}) before mibridge saw a "
                                        f"payment: check in the centre")

    # -- await_payment with a channel: the centre and the channel, judged together ---------------
    def _await_channel_payment(self, ctx):
        """6301 and the channel's query, judged by bridge/channels/status.py.  Callbacks (6302 and
        the channel's) only wake this step; a state that may be one side lagging is given
        the settle window (from the first poll that saw it, database clock) before it is
        acted on: refunding the cash, ending failed, or holding with both answers."""
        d = ctx.data
        s = self.settings
        notice = ctx.port.notice(NOTICE, d["payOrdId"])
        r = query_order(ctx, d, patient_of(ctx.payload))
        stas = order_status(r)
        rc, status = self._channel_status(ctx)
        polls = int(d.get("polls", 0))
        age = ctx.call_age_seconds(d["order_msg"])
        past_deadline = age is not None and age > s.payment_deadline_seconds
        if stas is None or status is None:
            # Nothing is decided on half the picture.
            failed = r if stas is None else rc
            if past_deadline or failed.outcome is Outcome.REJECTED:
                return Retry("QUERY_FAILED", f"{failed.interface}: {failed.message}")
            return Wait("await_payment", self._poll_delay(polls), data={"polls": polls + 1})
        centre = "settled" if stas.is_settled else "processing" if stas.is_processing else "ended"
        cash_due = Decimal(d["split"]["cash"] or "0") > 0
        verdict = judge(centre, status, cash_due)
        both = f"6301 says ordStas {stas.value} ({stas.name}); {status.text}"
        if verdict is Verdict.SETTLE:
            ids = dict(status.ids)
            if status.channel == WECHAT and cash_due:
                tid = self._transaction_id(ctx)
                if tid:
                    ids["transaction_id"] = tid
            return self._settled(ctx, r.data, {"odd_since": None}, notice, channel=status, channel_ids=ids)
        if verdict is Verdict.DISAGREE:
            return Hold("CHANNEL_DISAGREES", f"{both}: the centre and the channel disagree; check both before "
                                             f"billing or refunding")
        if verdict is Verdict.ENDED:
            if notice is not None:
                return contradicted(notice, stas)
            return self._ended(stas)
        if verdict.needs_window:
            since = d.get("odd_since")
            if not since:
                return Wait("await_payment", s.poll_first_seconds, data={"odd_since": r.msg_id, "polls": polls + 1})
            odd_age = ctx.call_age_seconds(since)
            if odd_age is not None and odd_age < s.settle_seconds:
                return Wait("await_payment", s.poll_first_seconds, data={"polls": polls + 1})
            if verdict is Verdict.LAG:
                return Hold("CHANNEL_DISAGREES", f"{both}, for more than {s.settle_seconds:.0f} s: check both "
                                                 f"before billing or refunding")
            if verdict is Verdict.CASH_ONLY:
                # §2.4: the cash was taken and the insurance part failed.  The cash goes back
                # (by its own call, journalled and resolved), then the centre's order is revoked
                # - unless it has ended already (revoked by the HIS or at the deadline while the
                # patient paid the cash): then the payment ends as the centre's order did.
                end = {"code": "PAYMENT_FAILED", "message": f"{both}: the insurance part failed after the cash was "
                                                            f"taken; the cash was refunded", "no_close": True}
                if centre == "ended":
                    if notice is not None:
                        return contradicted(notice, stas)
                    ended = self._ended(stas)
                    if not isinstance(ended, Fail):       # 14/16: money may have moved at the centre
                        return Hold("CHANNEL_DISAGREES", f"{both}: {ended.message}")
                    end = {"code": ended.code, "message": f"{both}: the centre's order ended (ordStas {stas.value}) "
                                                          f"after the patient paid the cash; the cash was refunded",
                           "no_close": True, "closed": True}
                spec = cash_spec(ctx, channel=d["channel"], tag=keys.REVERSAL, key=ctx.row.business_key,
                                 out_trade_no=d["out_trade_no"], amount=Decimal(d["split"]["cash"]),
                                 paid=Decimal(d["split"]["cash"]), purpose="failed_payment",
                                 reason="医保支付失败，退还自费部分")
                return Goto("cash_refund", data={"cash_leg": spec, "end": end})
            return Goto("revoke", data={"end": {"code": "PAYMENT_FAILED",
                                                "message": f"{both}: the channel payment failed"}})
        # PENDING: nobody has paid yet.
        data = {"polls": polls + 1, "odd_since": None}
        if past_deadline:
            if s.on_deadline == "hold":
                return Hold("PAYMENT_DEADLINE", f"not paid {age:.0f} s after the order; revoke (6401) or "
                                                f"wait is for a person to decide")
            return Goto("revoke", data={"odd_since": None})
        if notice is not None or self._channel_notice(ctx):
            return Wait("await_payment", s.poll_first_seconds, data=data)
        return Wait("await_payment", self._poll_delay(polls), data=data)

    def _poll_delay(self, polls: int) -> float:
        s = self.settings
        return min(s.poll_cap_seconds, s.poll_first_seconds * (2 ** min(polls, 16)))

    def _channel_notice(self, ctx) -> bool:
        """A channel callback for this payment has arrived (it woke us): ask again soon."""
        d = ctx.data
        if d["channel"] == WECHAT:
            return bool(d.get("mix_trade_no") and ctx.port.notice(notices.WECHAT_MEDINS, d["mix_trade_no"])) or \
                bool(ctx.port.notice(notices.WECHAT_TRADE, d["out_trade_no"]))
        return False

    # -- revoke: 6401 at the deadline ----------------------------------------------------------
    def step_revoke(self, ctx):
        r = revoke_order(ctx, ctx.data, patient_of(ctx.payload))
        if r.outcome is Outcome.OK:
            return self._expired(ctx, f"not paid within {self.settings.payment_deadline_seconds:.0f} s; "
                                      f"the order was revoked (6401)", OrdStas.REVOKED)
        return not_ok(r, "REVOKE_UNKNOWN", lambda: self._revoke_refused(ctx, r))

    def _expired(self, ctx, message: str, stas: OrdStas):
        """The order was revoked: nothing was paid - unless a 6302 notice says it was.  A
        channel payment then closes the channel's cash order and looks once more."""
        notice = ctx.port.notice(NOTICE, ctx.data["payOrdId"])
        if notice is not None:
            return contradicted(notice, stas, "after the deadline revoke")
        end = ctx.data.get("end")
        if ctx.data.get("channel"):
            return Goto("close_channel", data={"end": end or {"code": "EXPIRED", "message": message}})
        if end:
            return Fail(end["code"], end["message"])
        return Fail("EXPIRED", message)

    def _paid_meanwhile(self, ctx, q, notice):
        """6301 says settled after a 6401 was refused or lost: a channel payment is settled only
        with the channel's agreement (await_payment asks it)."""
        if ctx.data.get("channel_ordered"):
            return Goto("await_payment", data={"odd_since": None})
        if ctx.data.get("channel"):
            return Hold("UNEXPECTED_STATE", "6301 says the order is settled, but its channel order was never "
                                            "placed: check in the centre")
        return self._settled(ctx, q, {}, notice)

    def _revoke_refused(self, ctx, r: CallResult):
        # Refused: most likely the patient paid at the last moment.  Look.
        q = query_order(ctx, ctx.data, patient_of(ctx.payload))
        stas = order_status(q)
        if stas is not None and stas.is_settled:
            return self._paid_meanwhile(ctx, q.data, ctx.port.notice(NOTICE, ctx.data["payOrdId"]))
        if stas is not None and stas.is_revoked:
            return self._expired(ctx, "not paid in time; the order is revoked", stas)
        return Hold("DEADLINE_REVOKE_REJECTED", f"6401 at the deadline refused ({r.message}) and the order "
                                                f"is {stas.value if stas else 'unknown'}: check in the centre")

    def resolve_revoke(self, ctx):
        r = query_order(ctx, ctx.data, patient_of(ctx.payload))
        stas = order_status(r)
        if stas is None:
            return InDoubt("QUERY_FAILED", f"6301 after a lost 6401 failed: {r.message}")
        notice = ctx.port.notice(NOTICE, ctx.data["payOrdId"])
        if stas.is_settled:
            return self._paid_meanwhile(ctx, r.data, notice)
        if stas.is_revoked:
            return self._expired(ctx, "not paid in time; the order was revoked (6401)", stas)
        if stas.is_processing:
            waiting = not_settled_yet(ctx, "the 6401")
            if waiting or notice is None:
                return waiting or Goto("revoke")
        if notice is not None:
            return contradicted(notice, stas, "after a lost 6401")
        return self._ended(stas)

    # -- await_his: the HIS takes the settlement, or 单边账 repair -------------------------------
    def step_await_his(self, ctx):
        window = self.settings.his_take_window_seconds
        v = handover.his_verdict(ctx, "settlement", window)
        if v.status == handover.MISSING:
            return Hold("NO_SETTLEMENT_ROW", "the settlement inbox row is gone; the order is paid: "
                                             "check with the HIS")
        if v.status == handover.ACCEPTED:
            # A payment from before mi_secret has its payToken in flow_data, which the
            # runner strips now: moved to mi_secret for the refunds.
            legacy = ctx.data.get(PAY_TOKEN) or (ctx.data.get("settled") or {}).get(PAY_TOKEN)
            return Finish([], secrets={PAY_TOKEN: legacy} if legacy else {}, enqueue=self._message(ctx))
        if v.status == handover.WAITING:
            return Wait("await_his", min(self.settings.his_poll_seconds, v.wait))
        reason = ("the HIS rejected the settlement" if v.status == handover.REJECTED
                  else f"the HIS did not take the settlement within {window:.0f} s")
        return Goto("repair", data={"repair_reason": reason, "appRefdSn": repair_serial(ctx.data["payOrdId"]),
                                    "appRefdTime": now14()})

    def _message(self, ctx) -> list:
        """The patient's "paid" message, when a template is configured for it (a message never
        affects money: it is a request of its own, bridge/channels/patient_messages.py)."""
        p: PaymentRequest = ctx.payload
        s = ctx.data.get("settled") or {}
        if p.channel is None or not s.get("channel"):
            return []
        event = "registration_paid" if ctx.row.kind == KIND_REGISTRATION else "outpatient_paid"
        fields = patient_messages.template_fields(getattr(channel_client(ctx, p.channel.channel), "config", None),
                                                  event)
        if fields is None:
            return []
        values = {"patient_name": p.user_name, "dept_name": p.dept_name, "doctor_name": p.doctor_name,
                  "visit_time": p.visit_time, "business_key": ctx.row.business_key, "order_no": s["out_trade_no"],
                  "amount": s["total"], "insurance_amount": str(Decimal(s["fund"]) + Decimal(s["account"])),
                  "cash_amount": s["cash"], "paid_time": s.get("paid_time") or _china(s.get("traceTime")),
                  "hospital_name": _hospital(ctx, p.channel.channel)}
        return [patient_messages.message_request(
            event=event, channel=p.channel.channel, source_kind=ctx.row.kind, source_key=ctx.row.business_key,
            source_outbox_id=ctx.row.id, recipient=p.channel.recipient, values=values, fields=fields)]

    # -- repair: 6203 ALL (the insurance part of a channel payment), then the cash -------------------
    def _repair_legs(self, ctx) -> refund_legs.Legs:
        s = ctx.data["settled"]
        return refund_legs.split(s.get("channel"), s.get("cash_by"), SetlType.ALL.value, Decimal(s["fund"]),
                                 Decimal(s["account"]), Decimal(s["cash"]))

    def step_repair(self, ctx):
        d = ctx.data
        s = d["settled"]
        legs = self._repair_legs(ctx)
        if legs.centre_type is None:
            return self._after_centre_repair(ctx, None)
        r = refund_order(ctx, s, d["appRefdSn"], d["appRefdTime"], SetlType(legs.centre_type), legs.centre_fund,
                         legs.centre_account, legs.centre_cash, pay_auth_no(ctx))
        if r.outcome is Outcome.OK:
            return self._after_centre_repair(ctx, r.data.refdSn)
        return not_ok(r, "REPAIR_UNKNOWN", lambda: Hold(
            "REPAIR_FAILED", f"{d['repair_reason']}, and the full refund (6203) was refused: {r.code} {r.message}. "
                             f"The patient has paid: refund by hand, then resolve this row"))

    def resolve_repair(self, ctx):
        d = ctx.data
        s = d["settled"]
        legs = self._repair_legs(ctx)
        zero = Decimal("0.00")
        after = refund_state(s, {"fund": legs.centre_fund, "account": legs.centre_account, "cash": legs.centre_cash})
        r = query_order(ctx, s, patient_of(ctx.payload))
        stas = order_status(r)
        if stas is None:
            return InDoubt("QUERY_FAILED", f"6301 after a lost 6203 failed: {r.message}")
        if stas.value == after:
            return self._after_centre_repair(ctx, None)
        if stas.value == refund_state(s, {"fund": zero, "account": zero, "cash": zero}) or stas.is_settled:
            return not_settled_yet(ctx, "the refund") or Goto("repair")
        if stas is OrdStas.REFUND_IN_PROGRESS:
            return refund_in_progress(ctx, f"the repair refund {d['appRefdSn']}")
        return Hold("REPAIR_UNCLEAR", f"after the repair refund the order is {stas.value} ({stas.name}), "
                                      f"expected {after}: check in the centre")

    def _after_centre_repair(self, ctx, refd_sn: Optional[str]):
        """The centre's part is back; then the channel's cash and WeChat's notify (§2.7)."""
        d = ctx.data
        s = d["settled"]
        legs = self._repair_legs(ctx)
        data = {"refdSn": refd_sn, "centre_done": d["appRefdSn"] if legs.centre_type else None}
        if legs.channel_cash > 0:
            spec = cash_spec(ctx, channel=s["channel"], tag=keys.REVERSAL, key=ctx.row.business_key,
                             out_trade_no=s["out_trade_no"], amount=legs.channel_cash, paid=Decimal(s["cash"]),
                             purpose="reversal", reason="医院未能完成收费，全额退款")
            return Goto("cash_refund", data={**data, "cash_leg": spec})
        if legs.notify and s.get("mix_trade_no"):
            number = keys.reversal_no(ctx.row.business_key, ctx.service("wechatpay.settings").order_prefix)
            return Goto("refund_notify", data={**data, "notify": self._notify_spec(ctx, number, now_rfc3339())})
        return self._reversed(ctx, refd_sn, None)

    def _notify_spec(self, ctx, out_refund_no: str, refund_time: str) -> dict:
        s = ctx.data["settled"]
        legs = self._repair_legs(ctx)
        return {"mix_trade_no": s["mix_trade_no"], "out_refund_no": out_refund_no, "fund": str(legs.centre_fund),
                "account": str(legs.centre_account), "refund_time": refund_time}

    # -- the cash legs (channel_refund.py) call back here -----------------------------------------
    def _cash_refunded(self, ctx, done: dict):
        d = ctx.data
        c = d["cash_leg"]
        if c["purpose"] == "failed_payment":
            end = d["end"]
            if end.get("closed"):          # the centre's order is revoked already
                return self._end_failed(ctx, end["code"], end["message"], done)
            return Goto("revoke", data={"cash_done": done})
        s = d["settled"]
        legs = self._repair_legs(ctx)
        if legs.notify and s.get("mix_trade_no"):
            return Goto("refund_notify", data={"cash_done": done,
                                               "notify": self._notify_spec(ctx, done["number"], done["success_time"])})
        return self._reversed(ctx, d.get("refdSn"), done)

    def _notified(self, ctx, note: Optional[str]):
        d = ctx.data
        return self._reversed(ctx, d.get("refdSn"), d.get("cash_done"), note)

    def _reversed(self, ctx, refd_sn: Optional[str], cash_done: Optional[dict], note: Optional[str] = None):
        d = ctx.data
        s = d["settled"]
        legs = self._repair_legs(ctx)
        parts = [f"6203 {d['appRefdSn']}"] if legs.centre_type else []
        if cash_done:
            parts.append(f"the cash by {s['channel']} refund {cash_done['number']}")
        msg = f"{d['repair_reason']}: refunded in full ({', '.join(parts)})" + (f"; {note}" if note else "")
        result = {"payOrdId": s["payOrdId"], "appRefdSn": d["appRefdSn"], "refdSn": refd_sn,
                  "reason": d["repair_reason"]}
        if s.get("channel"):
            result.update(channel=s["channel"], out_trade_no=s["out_trade_no"],
                          out_refund_no=(cash_done or {}).get("number")
                          or keys.reversal_no(ctx.row.business_key, self._prefix(ctx, s["channel"])),
                          refund_time=(cash_done or {}).get("success_time") or now_rfc3339())
            if note:
                result["note"] = note
        return Fail("REVERSED", msg, inbox=[InboxRow(
            result_type="reversal", outcome="failed", error_code="REVERSED", error_message=msg,
            order_id=s["payOrdId"], settlement_id=refd_sn or d["appRefdSn"],
            total_amount=Decimal(s["total"]), fund_amount=Decimal(s["fund"]),
            account_amount=Decimal(s["account"]), cash_amount=Decimal(s["cash"]), result=result)])

    @staticmethod
    def _prefix(ctx, channel: str) -> str:
        return ctx.service("wechatpay.settings" if channel == WECHAT else "alipay.settings").order_prefix


def _china(trace: Optional[str]) -> Optional[str]:
    """traceTime (yyyyMMddHHmmss) as 'yyyy-MM-dd HH:mm:ss'."""
    if not trace or len(trace) != 14 or not trace.isdigit():
        return trace
    return f"{trace[:4]}-{trace[4:6]}-{trace[6:8]} {trace[8:10]}:{trace[10:12]}:{trace[12:]}"


def _hospital(ctx, channel: str) -> Optional[str]:
    config = getattr(channel_client(ctx, channel), "config", None)
    return getattr(config, "med_inst_name", None) or getattr(config, "merchant_name", None)


def repair_serial(pay_ord_id: str) -> str:
    """appRefdSn of a repair refund: unique per refund at the centre (§5.3), the
    same on every send (§7.3), and never equal to an HIS refund serial.  Derived
    from payOrdId, which the centre keeps unique; 24 characters."""
    return "MIBR" + hashlib.sha256(pay_ord_id.encode()).hexdigest()[:20].upper()
