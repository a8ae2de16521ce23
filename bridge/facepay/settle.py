"""facepay.{outpatient,inpatient,document}.settle: the settlement that moves money.

    start             the visit of the done pre-settlement (its secrets from mi_secret)
    settle            2207 / 2304 / 2260 setl_flag 1 (step_settle).  NOT safe to repeat.
                      Its lost answer: resolve_settle sends 2601 with the lost msgid
                      (offline.md §9.3; no setl_id is known, nothing else can be asked):
                      reversed -> send again as a new message (at most max_reversals);
                      "not found" -> wait out the settle window, then send (a first
                      send); 2260 or a refused reversal -> held for a person
    without_face_pay  the face-pay settlement was refused: the plain one, when asked
    references        fpy001 after a settlement that deducted the real account: its UnionPay
                      references (refNo, termSeqNo, platformSeqId) into the settlement row
                      (references.py; safe; never fails or holds the settlement)
    notify            cn.nhsa.settle.notify to the face terminal (safe to repeat)
    await_his         单边账 guard: the HIS takes the settlement row, or it is cancelled
                      (the cancel steps of cancel.py, in this same row)
"""
from __future__ import annotations

import json
import time
from decimal import Decimal

from bridge.calls import CallResult
from bridge.engine import handover
from bridge.engine.flow import Fail, Finish, Flow, Goto, Hold, InboxRow, InDoubt, Step, Wait
from bridge.facepay import fields as F
from bridge.facepay.client import FacePayClient, SettleNotice
from bridge.offline import messages as m
from bridge.offline.client import OfflineClient

from .cancel import CancelSteps, cancel_steps
from .fsi import (NEVER_BOOKED, REVERSED, classify_rejection, fsi_call, operator_of, retry_later,
                  reversal_verdict)
from .kinds import DOC, INFNO, INP, OUT, kind
from .patient import SECRET_KEYS, lookup, own_secrets, split_person, with_secrets
from .payloads import SettleRequest, parse_settle
from .references import ReferenceSteps, wanted as references_wanted
from .results import dec, money_row, split_of
from .settings import FacePaySettings
from .visit import settle_request


class _SettleBase(ReferenceSteps, CancelSteps, Flow):
    setting: str
    secret_keys = SECRET_KEYS       # its secrets (the visit's) go when it is final

    def __init__(self, settings: FacePaySettings):
        self.settings = settings

    def parse(self, doc: dict) -> SettleRequest:
        return parse_settle(doc)

    @property
    def presettle_kind(self) -> str:
        """The kind of the pre-settlement this settlement names (the kiosk's differs:
        bridge/identity/kiosk.py)."""
        return kind(self.setting, "presettle")

    def _visit(self, ctx) -> dict | Fail:
        if "visit" in ctx.data:
            return ctx.data["visit"]
        pk = ctx.payload.presettle_key
        row = lookup(ctx, (self.presettle_kind,), pk)
        if row is None:
            return Fail("PRESETTLE_NOT_FOUND", f"no {self.presettle_kind} request {pk!r}")
        if row["state"] != "done" or "visit" not in row["flow_data"]:
            return Fail("PRESETTLE_NOT_DONE", f"pre-settlement {pk!r} is {row['state']}; "
                                              "settle only after a successful pre-settlement")
        # The visit with its secrets (in memory only), split again by step_start.
        v = with_secrets(row["flow_data"]["visit"], ctx.port.secrets(row["id"]))
        v["retry_without_face_pay"] = json.loads(row["payload"]).get("retry_without_face_pay", False)
        return v

    def step_start(self, ctx):
        v = self._visit(ctx)
        if isinstance(v, Fail):
            return v
        v, secret = split_person(v)
        face_pay = bool(v.get("face_pay")) and self.settings.enabled and ctx.payload.face_pay is not False
        if face_pay and not v.get("terms"):
            face_pay = False
        retry_plain = ctx.payload.retry_without_face_pay
        if retry_plain is None:
            retry_plain = bool(v.get("retry_without_face_pay"))
        return Goto("settle", data={"visit": v, "face_pay": face_pay, "retry_plain": retry_plain,
                                    "reversals": 0, "operator": ctx.payload.operator or v.get("operator")},
                    secrets=secret)

    def step_settle(self, ctx):
        # Reached only when nothing of this request stands at the core: the first send, or
        # after the resolver reversed a lost one or found it never booked.
        client: OfflineClient = ctx.service("facepay").offline
        v, face_pay = with_secrets(ctx.data["visit"], own_secrets(ctx)), bool(ctx.data["face_pay"])
        req = settle_request(self.setting, v, face_pay, client, setl_flag="1")
        prep = {OUT: client.prepare_settle_outpatient, INP: client.prepare_settle_inpatient,
                DOC: client.prepare_document_settle}[self.setting]
        r = fsi_call(ctx, prep, req, face_pay=False, nothing_stands=True)
        if not isinstance(r, CallResult):
            return r
        if r.ok:
            return self._settled(ctx, r.data)
        if r.try_again:
            return retry_later(r)
        if r.refused:
            code, msg, fp_specific = classify_rejection(r)
            if face_pay and fp_specific and ctx.data.get("retry_plain"):
                note = InboxRow(result_type="face_pay_refused", outcome="failed", error_code=code,
                                error_message=msg, result={"next": "settle without face-pay"})
                return Goto("without_face_pay", inbox=[note])
            return Fail(code, msg)
        return InDoubt("SETTLE_UNKNOWN", r.message or "settlement outcome unknown")

    def _cancel_refused(self, code: str, message: str):
        # 单边账: the HIS did not keep this settlement and the cancel was refused; a failed
        # row would hide a settlement that stands at the core.  A person must act.
        return Hold("UNILATERAL_SETTLEMENT", f"the settlement the HIS did not keep could not be cancelled "
                                             f"({code}: {message}); it stands at the core")

    def step_without_face_pay(self, ctx):
        # A REJECTED face-pay settlement moved nothing; the plain one is a new request.
        return Goto("settle", data={"face_pay": False})

    def resolve_settle(self, ctx):
        """2601 with the lost message's msgid and infno (offline.md §9.3): the only tool when
        no setl_id is known.  OK = whatever it booked is undone (fund and account)."""
        client: OfflineClient = ctx.service("facepay").offline
        v = ctx.data["visit"]
        infno = INFNO[self.setting]["settle"]
        r = fsi_call(ctx, client.prepare_reverse, m.ReversalRequest(
            psn_no=v["psn_no"], omsgid=ctx.in_doubt_msg_id, oinfno=infno,
            insuplc_admdvs=v["insuplc_admdvs"]))
        verdict = reversal_verdict(ctx, self.settings, r, infno, "settlement", "SETTLE_UNRESOLVED",
                                   "SETTLE_NOT_SEEN_YET")
        if verdict == NEVER_BOOKED:
            return Goto("settle")    # the first send as far as the core knows
        if verdict == REVERSED:
            n = int(ctx.data.get("reversals", 0)) + 1
            note = InboxRow(result_type="settlement_reversed", outcome="ok",
                            result=self._tagged({"omsgid": ctx.in_doubt_msg_id, "oinfno": infno,
                                                 "why": "the settlement's answer was lost; 2601 undid whatever "
                                                        "it booked", "reversals": n}))
            if n > self.settings.max_reversals:
                return Hold("TOO_MANY_REVERSALS", f"{n} settlements of this request were lost and reversed; "
                                                  "nothing stands at the core; enqueue again when the link is sound")
            return Goto("settle", data={"reversals": n}, inbox=[note])
        return verdict

    def _settled(self, ctx, s: m.Settlement):
        v = ctx.data["visit"]
        split = split_of(s)
        face_pay = bool(ctx.data["face_pay"])
        target = {"setl_id": s.setl_id, "mdtrt_id": s.mdtrt_id or v["mdtrt_id"], "psn_no": v["psn_no"],
                  "insuplc_admdvs": v["insuplc_admdvs"], "face_pay": face_pay,
                  "terms": v.get("terms") if face_pay else None, "split": split,
                  "setl_time": s.setl_time, "infno": INFNO[self.setting]["settle"],
                  "medins_setl_id": s.medins_setl_id, "operator": ctx.data.get("operator")}
        result = self._settlement_result(ctx, s, {
            "setl_id": s.setl_id, "mdtrt_id": target["mdtrt_id"], "setl_time": s.setl_time,
            "face_pay": face_pay, "medins_setl_id": s.medins_setl_id,
            "presettle_split": v.get("presettle_split")})
        if references_wanted(self.settings, face_pay, split):
            # The settlement row waits for fpy001's UnionPay references (references.py);
            # `target` is kept now, so that whatever happens next, the settlement is known.
            last = ctx.last_result
            return Goto("references", data={"target": target, "settlement_result": result,
                                            "settle_msg": last.msg_id if last is not None else None})
        return self._write_settlement(ctx, result, {"target": target})

    def _settlement_result(self, ctx, s: m.Settlement, result: dict) -> dict:
        """The settlement row's result (the kiosk adds what the book needs)."""
        return result

    def _write_settlement(self, ctx, result: dict, data: dict):
        """The settlement row, then the terminal notice or the HIS's take."""
        tg = {**ctx.data, **data}["target"]
        row = money_row("settlement", tg["split"], settlement_id=tg["setl_id"], result=self._tagged(result))
        if ctx.data["visit"].get("face") and self.settings.notify_terminal:
            return Goto("notify", data=data, inbox=[row])
        return Goto("await_his", data=data, inbox=[row])

    def step_notify(self, ctx):
        """cn.nhsa.settle.notify (facepay.md "settlement result notification"; offline.md §7.2).
        Safe to repeat: it moves no money; a repeat shows the result on the screen again."""
        fp: FacePayClient = ctx.service("facepay")
        v, tg = with_secrets(ctx.data["visit"], own_secrets(ctx)), ctx.data["target"]
        face, sp = v["face"], tg["split"]
        op = operator_of(ctx, fp.offline)
        notice = SettleNotice(
            outBizNo=face["out_biz_no"], medicalSettleState="SUCCESS", authNo=face["auth_no"],
            operatorId=op.opter, operatorName=op.opter_name, totalFee=Decimal(sp["total"]),
            bizType="settle", idNo=face["id_no"], userName=face["user_name"],
            setlTime=tg.get("setl_time") or time.strftime("%Y-%m-%d %H:%M:%S"),
            hospitalName=self.settings.hospital_name or fp.offline.config.fixmedins_name,
            officeId=(face.get("office") or {}).get("id") or self.settings.office_id,
            officeName=(face.get("office") or {}).get("name") or self.settings.office_name,
            doctorName=v.get("dr_name") or "", medicalSettleNo=tg["setl_id"],
            ownAmt=Decimal(sp["cash"]), hifAmt=Decimal(sp["fund"]), acctAmt=Decimal(sp["account"]),
            balance=dec(sp.get("balc")))
        r = ctx.call(fp.send_terminal, fp.prepare_notify_terminal(notice))
        if r.ok:
            return Goto("await_his", inbox=[InboxRow(result_type="terminal_notice", outcome="ok",
                                                     settlement_id=tg["setl_id"])])
        tries = int(ctx.data.get("notify_tries", 0)) + 1
        if tries < self.settings.notify_attempts and not r.refused:
            return Wait("notify", self.settings.notify_retry_seconds, data={"notify_tries": tries})
        # The settlement stands whatever the screen shows: report and go on.
        return Goto("await_his", inbox=[InboxRow(result_type="terminal_notice", outcome="failed",
                                                 settlement_id=tg["setl_id"], error_code="NOTICE_FAILED",
                                                 error_message=r.message or r.outcome.value)])

    def step_await_his(self, ctx):
        """单边账 guard: the settlement row must be taken by the HIS.  Rejected, or not taken
        within his_ack_timeout_seconds -> cancel it (offline.md §9.3: GZ calls 2208 at once
        when the HIS cannot keep a settlement)."""
        s = self.settings
        if s.his_ack_timeout_seconds <= 0:
            return Finish([])
        v = handover.his_verdict(ctx, "settlement", s.his_ack_timeout_seconds)
        if v.status == handover.MISSING:
            return Hold("NO_SETTLEMENT_ROW", "the settlement's inbox row is missing")
        if v.status == handover.ACCEPTED:
            return Finish([])
        if v.status in (handover.REJECTED, handover.EXPIRED):
            why = "his_rejected" if v.status == handover.REJECTED else "his_not_taken"
            note = InboxRow(result_type="cancel_progress", outcome="ok",
                            result={"step": f"cancelling the settlement ({why})",
                                    "setl_id": ctx.data["target"]["setl_id"]})
            return Goto("cancel", data={"cancel_reason": why, "with_extension": True}, inbox=[note])
        return Wait("await_his", min(s.his_ack_poll_seconds, max(0.1, v.wait)))


def _settle_steps(setting: str) -> dict[str, Step]:
    steps = {
        "start": Step("start", next=("settle",)),
        # NOT safe to repeat: resolved by 2601 (see resolve_settle); "settle" may lead back to
        # itself only from the resolver, after a reversal or a confirmed "never booked".
        "settle": Step("settle", calls=(INFNO[setting]["settle"],), safe_to_repeat=False,
                       resolves_with=("2601",),
                       next=("references", "notify", "await_his", "without_face_pay", "settle")),
        "without_face_pay": Step("without_face_pay", next=("settle",)),
        # fpy001 (a query, safe to repeat): the settlement's UnionPay references (references.py).
        "references": Step("references", calls=(F.FPY001_INFNO,), next=("notify", "await_his")),
        "notify": Step("notify", calls=("cn.nhsa.settle.notify",), next=("await_his",)),
        "await_his": Step("await_his", next=("cancel",)),
    }
    steps.update(cancel_steps(setting))
    return steps


class OutpatientSettleFlow(_SettleBase):
    kind = kind(OUT, "settle")
    setting = OUT
    initial = "start"
    steps = _settle_steps(OUT)


class InpatientSettleFlow(_SettleBase):
    kind = kind(INP, "settle")
    setting = INP
    initial = "start"
    steps = _settle_steps(INP)


class DocumentSettleFlow(_SettleBase):
    """2260 with setl_flag 1, the same document as the trial.  A lost answer: 2601 of that
    msgid (oinfno 2260); a platform that refuses to reverse 2260 -> held (SETTLE_UNRESOLVED)."""
    kind = kind(DOC, "settle")
    setting = DOC
    initial = "start"
    steps = _settle_steps(DOC)
