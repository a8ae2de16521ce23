"""mobilepay.outpatient / mobilepay.registration: one bill paid in the mini-program.

    identify       1101 with the payAuthNo (only when the HIS did not give psn_no)
    upload         6201 fee details -> payOrdId, payToken (no money moves: safe)
    order          6202 (step_order) -> the split; inbox 'order' row for the mini-program.
                   NOT safe to repeat.  Its lost answer: resolve_order asks 6301 -
                   settled -> await_his; placed -> await_payment; only saved (never placed)
                   -> inside the settle window wait (InDoubt waiting), after it send 6202
                   now (a first send); a 6302 notice never settles, it is cross-checked
    await_payment  6301 polls (6302 notices wake it) -> settled | deadline -> revoke
    revoke         6401 at the deadline (or hold, by configuration); refused -> 6301 at
                   once (paid at the last moment?).  Lost answer: resolve_revoke (6301)
    await_his      inbox 'settlement' row written; waits for the HIS to take it
                   (bridge/engine/handover.py)
    repair         单边账: the HIS rejected it or did not take it in time -> 6203 ALL.
                   Lost answer: resolve_repair (6301)

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

from .centre import (NOTICE, PAY_TOKEN, SECRET_KEYS, centre, contradicted, dec, fen, not_ok, not_settled_yet,
                     notice_split, notice_text, now14, order_status, org_biz_ser, patient_of, pay_token,
                     query_order, refund_order, revoke_order, split_of)
from .kinds import KIND_OUTPATIENT
from .messages import FeeDetail, OrdStas, PayOrderRequest, SetlType, UploadFeeRequest
from .payloads import PaymentRequest, parse_payment
from .settings import MobilePaySettings


class PaymentFlow(Flow):
    """One outpatient bill (or registration fee) paid in the mini-program."""

    kind = KIND_OUTPATIENT      # per instance: outpatient or registration
    initial = "identify"
    kept_secrets = (PAY_TOKEN,)     # its refunds and revokes query and revoke with it
    secret_keys = SECRET_KEYS
    steps = {
        "identify": Step("identify", calls=("1101",), next=("upload",)),
        "upload": Step("upload", calls=("6201",), next=("order",)),
        # "order" leads back to itself only from resolve_order, once 6301 has shown
        # that the lost 6202 never took effect (the runner enforces that).
        "order": Step("order", calls=("6202",), safe_to_repeat=False, resolves_with=("6301",),
                      next=("await_payment", "await_his", "order")),
        "await_payment": Step("await_payment", calls=("6301",), next=("await_his", "revoke")),
        # A refused 6401 is followed by 6301 at once: did the patient pay at the last moment?
        "revoke": Step("revoke", calls=("6401", "6301"), safe_to_repeat=False, resolves_with=("6301",),
                       next=("await_his", "revoke")),
        "await_his": Step("await_his", next=("repair",)),
        "repair": Step("repair", calls=("6203",), safe_to_repeat=False, resolves_with=("6301",),
                       next=("repair",)),
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
        regions - what identity.choose wrote back, docs/identity.md) or the only one in
        force.  Several in force and none chosen: CHOOSE_INSURANCE with the list, never the
        first (bridge/identity/insurances.py pick)."""
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
                            gend=person.gend, chosen=p.insutype is not None)
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
            idNo=p.id_no, userName=p.user_name, idType=p.id_type, payAuthNo=p.pay_auth_no,
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
            payAuthNo=p.pay_auth_no, payOrdId=d["payOrdId"], payToken=pay_token(ctx, d),
            orgBizSer=org_biz_ser(), mdtrtId=d["mdtrtId"], chrgBchno=d["chrgBchno"],
            feeType=self.settings.fee_type, acctUsedFlag=self._acct_flag(p)))
        r = ctx.call(client.send, prepared)
        if r.outcome is Outcome.OK:
            o = r.data
            split = split_of(o.feeSumamt, o.fundPay, o.psnAcctPay, o.ownPayAmt)
            return Goto("await_payment", data={"order_msg": prepared.msg_id, "split": split, "polls": 0},
                        inbox=[self._order_row(ctx, o.ordStas, split)],
                        identities=self._identity_from_presettle(ctx, o.extData))
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
            return Goto("await_payment", data={"order_msg": ctx.in_doubt_msg_id, "split": split, "polls": 0},
                        inbox=[self._order_row(ctx, stas, split)])
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

    def _order_row(self, ctx, stas: OrdStas, split: Optional[dict]) -> InboxRow:
        """What the mini-program needs to start the channel payment: the centre's
        payOrdId and the split.  No cashier URL exists in 2.0 (§5.7, §10: WeChat's
        mixed order takes pay_order_id, serial_no = medOrgOrd and the fees in fen).
        payToken stays with mibridge (§7.1 step 2: server side only)."""
        d = ctx.data
        split = split or {}
        result = {"payOrdId": d["payOrdId"], "medOrgOrd": ctx.row.business_key, "ordStas": stas.value,
                  "mdtrtId": d["mdtrtId"], **{k: v for k, v in split.items()}}
        if split:
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

    def _settled(self, ctx, q, data: dict, notice: Optional[dict] = None):
        """6301 says the order is paid (`q`, its answer): compare with what 6202 said
        and with a recorded 6302 notice, write the settlement row.  Only 6301
        settles; a notice is a cross-check (issue 10 #1)."""
        d = {**ctx.data, **data}
        paid = split_of(q.feeSumamt, q.fundPay, q.psnAcctPay, q.ownPayAmt)
        trace, setl_type = q.traceTime, q.setlType.value if q.setlType else None
        if paid["total"] is None:
            return InDoubt("SETTLED_WITHOUT_AMOUNTS", "the centre says settled but gave no amounts yet")
        paid = {k: str(Decimal(v or "0").quantize(Decimal("0.01"))) for k, v in paid.items()}
        stale = bool(notice and notice.get("stale"))
        for other, what in ((d.get("split"), "6202"), (notice_split(notice), "the 6302 notice")):
            if other and any(Decimal(other[k]) != Decimal(paid[k]) for k in paid if other.get(k) is not None):
                if stale and what != "6202":
                    # A stale notice never holds a payment 6301 shows settled consistently.
                    logger.warning("row {}: the stale 6302 notice for {} differs from 6301 {}: {}; ignored",
                                   ctx.row.id, d["payOrdId"], paid, other)
                    continue
                return Hold("AMOUNT_MISMATCH", f"6301 says settled {paid}, which differs from {what} {other} "
                                               f"(§5.6: review by hand)")
        setl_id = None if stale else (notice or {}).get("setlId")
        settled = {"payOrdId": d["payOrdId"], **paid, "traceTime": trace,
                   "setlType": setl_type, "setlId": setl_id}
        row = InboxRow(result_type="settlement", outcome="ok", order_id=d["payOrdId"],
                       # The centre's setlId when a notice carried one; else payOrdId stands in.
                       settlement_id=setl_id or d["payOrdId"],
                       total_amount=Decimal(paid["total"]), fund_amount=Decimal(paid["fund"]),
                       account_amount=Decimal(paid["account"]), cash_amount=Decimal(paid["cash"]),
                       result={"payOrdId": d["payOrdId"], "medOrgOrd": ctx.row.business_key,
                               "setlId": setl_id, "traceTime": trace, "setlType": setl_type,
                               "confirmed_by": "6301", "notice": notice is not None, **paid})
        return Goto("await_his", data={**data, "settled": settled}, inbox=[row])

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

    # -- revoke: 6401 at the deadline ----------------------------------------------------------
    def step_revoke(self, ctx):
        r = revoke_order(ctx, ctx.data, patient_of(ctx.payload))
        if r.outcome is Outcome.OK:
            return self._expired(ctx, f"not paid within {self.settings.payment_deadline_seconds:.0f} s; "
                                      f"the order was revoked (6401)", OrdStas.REVOKED)
        return not_ok(r, "REVOKE_UNKNOWN", lambda: self._revoke_refused(ctx, r))

    def _expired(self, ctx, message: str, stas: OrdStas):
        """The order was revoked: nothing was paid - unless a 6302 notice says it was."""
        notice = ctx.port.notice(NOTICE, ctx.data["payOrdId"])
        if notice is not None:
            return contradicted(notice, stas, "after the deadline revoke")
        return Fail("EXPIRED", message)

    def _revoke_refused(self, ctx, r: CallResult):
        # Refused: most likely the patient paid at the last moment.  Look.
        q = query_order(ctx, ctx.data, patient_of(ctx.payload))
        stas = order_status(q)
        if stas is not None and stas.is_settled:
            return self._settled(ctx, q.data, {}, ctx.port.notice(NOTICE, ctx.data["payOrdId"]))
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
            return self._settled(ctx, r.data, {}, notice)
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
            return Finish([], secrets={PAY_TOKEN: legacy} if legacy else {})
        if v.status == handover.WAITING:
            return Wait("await_his", min(self.settings.his_poll_seconds, v.wait))
        reason = ("the HIS rejected the settlement" if v.status == handover.REJECTED
                  else f"the HIS did not take the settlement within {window:.0f} s")
        return Goto("repair", data={"repair_reason": reason, "appRefdSn": repair_serial(ctx.data["payOrdId"]),
                                    "appRefdTime": now14()})

    # -- repair: 6203 ALL -----------------------------------------------------------------------
    def step_repair(self, ctx):
        d = ctx.data
        s = d["settled"]
        r = refund_order(ctx, s, d["appRefdSn"], d["appRefdTime"], SetlType.ALL,
                    Decimal(s["fund"]), Decimal(s["account"]), Decimal(s["cash"]), ctx.payload.pay_auth_no)
        if r.outcome is Outcome.OK:
            return self._reversed(ctx, r.data.refdSn)
        return not_ok(r, "REPAIR_UNKNOWN", lambda: Hold(
            "REPAIR_FAILED", f"{d['repair_reason']}, and the full refund (6203) was refused: {r.code} {r.message}. "
                             f"The patient has paid: refund by hand, then resolve this row"))

    def resolve_repair(self, ctx):
        d = ctx.data
        r = query_order(ctx, d["settled"], patient_of(ctx.payload))
        stas = order_status(r)
        if stas is None:
            return InDoubt("QUERY_FAILED", f"6301 after a lost 6203 failed: {r.message}")
        if stas is OrdStas.REFUNDED:
            return self._reversed(ctx, None)
        if stas.is_settled:
            return not_settled_yet(ctx, "the refund") or Goto("repair")
        if stas is OrdStas.REFUND_IN_PROGRESS:
            return InDoubt("REFUND_IN_PROGRESS", "the centre is still refunding")
        return Hold("REPAIR_UNCLEAR", f"after the repair refund the order is {stas.value} ({stas.name}): "
                                      f"check in the centre")

    def _reversed(self, ctx, refd_sn: Optional[str]):
        d = ctx.data
        s = d["settled"]
        msg = f"{d['repair_reason']}: refunded in full (6203 {d['appRefdSn']})"
        return Fail("REVERSED", msg, inbox=[InboxRow(
            result_type="reversal", outcome="failed", error_code="REVERSED", error_message=msg,
            order_id=s["payOrdId"], settlement_id=refd_sn or d["appRefdSn"],
            total_amount=Decimal(s["total"]), fund_amount=Decimal(s["fund"]),
            account_amount=Decimal(s["account"]), cash_amount=Decimal(s["cash"]),
            result={"payOrdId": s["payOrdId"], "appRefdSn": d["appRefdSn"], "refdSn": refd_sn,
                    "reason": d["repair_reason"]})])


def repair_serial(pay_ord_id: str) -> str:
    """appRefdSn of a repair refund: unique per refund at the centre (§5.3), the
    same on every send (§7.3), and never equal to an HIS refund serial.  Derived
    from payOrdId, which the centre keeps unique; 24 characters."""
    return "MIBR" + hashlib.sha256(pay_ord_id.encode()).hexdigest()[:20].upper()
