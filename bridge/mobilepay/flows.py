"""Mobile payment 2.0 through the tables: payment, refund and revoke flows.

The state tables are below, one per request kind; `mibridge flows` prints them
and docs/mobilepay.md explains them for the HIS side.  Sequence and rules follow
../shared/spec/mobilepay.md §7 (call sequences) and §7.3 (timeouts): 6202, 6203
and 6401 are never re-sent after an unknown answer until 6301 has shown that the
first one did not take effect, and then only after a settle window measured on
the database clock (a request may be booked after our timeout).

    payment (mobilepay.outpatient / mobilepay.registration)
      identify       1101 with the payAuthNo (only when the HIS did not give psn_no)
      upload         6201 fee details -> payOrdId, payToken (no money moves: safe)
      order          6202 -> the split; inbox 'order' row for the mini-program
      await_payment  6301 polls (6302 notices wake it) -> settled | deadline -> revoke
      revoke         6401 at the deadline (or hold, by configuration)
      await_his      inbox 'settlement' row written; waits for the HIS to take it
      repair         单边账: the HIS rejected it or did not take it in time -> 6203 ALL

    refund (mobilepay.refund): check (split within what was paid) -> refund 6203
    revoke (mobilepay.revoke): locate the unpaid order -> revoke 6401
"""
from __future__ import annotations

import hashlib
import json
import secrets
import time
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Literal, Optional

from loguru import logger

from bridge.calls import CallResult, Outcome
from bridge.engine.flow import IdentityRow, InboxRow
from bridge.engine import handover
from bridge.engine.flow import (BadInput, Fail, Finish, Flow, Goto, Hold, InDoubt, Retry, Step, Wait,
                                check_line_amount, require_amount, require_text)

from .messages import (FeeDetail, OrdStas, PayOrderRequest, QueryOrderRequest, RefundRequest,
                       RevokeOrderRequest, SetlType, UploadFeeRequest)

KIND_OUTPATIENT = "mobilepay.outpatient"
KIND_REGISTRATION = "mobilepay.registration"
KIND_REFUND = "mobilepay.refund"
KIND_REVOKE = "mobilepay.revoke"
PAYMENT_KINDS = (KIND_OUTPATIENT, KIND_REGISTRATION)
NOTICE = "6302"
ZERO = Decimal("0.00")
# The payment's payToken (6201) is kept in mi_secret, never in flow_data: §7.1 step 2
# "store payOrdId and payToken server-side only".  A done payment keeps it for its
# refunds (6301) and revokes; nothing else of the patient is stored by mibridge.
PAY_TOKEN = "payToken"
# What must never stay in a final row's flow_data (rows written before mi_secret).
SECRET_KEYS = ("payToken", "pay_auth_no", "id_no", "user_name", "patient")


@dataclass
class MobilePaySettings:
    """[mobilepay] settings of the flows (the client's are in config.py)."""

    # §7.3: WeChat suggests cancelling an unpaid mixed order after about 30 minutes.
    payment_deadline_seconds: float = 1800.0
    on_deadline: Literal["revoke", "hold"] = "revoke"   # 6401, or a person decides
    poll_first_seconds: float = 2.0        # 6301 polls: 2, 4, 8 ... seconds apart
    poll_cap_seconds: float = 30.0
    # 单边账: how long the HIS has to take a settlement before it is refunded.
    his_take_window_seconds: float = 900.0
    his_poll_seconds: float = 5.0
    # After a lost 6202/6203/6401, how long the centre may still book it; only
    # after this is "status unchanged" taken to mean "never happened".
    settle_seconds: float = 60.0
    # How long a revoke waits for its payment to reach the centre (6202 done).
    revoke_wait_seconds: float = 600.0
    use_personal_account: bool = True      # acctUsedFlag, unless the payload says otherwise
    fee_type: str = "01"                   # §6.2: "01" in every sample
    psn_setlway: str = "01"                # §6.2: 01 按项目结算
    pub_hosp_rfom_flag: str = "0"
    default_id_type: str = "01"            # §6.2: 01 居民身份证
    # The 6302 notice endpoint ("host:port"; empty: rely on 6301 polling alone).
    callback_listen: str = ""
    callback_path: str = "/mibridge/mobilepay/notify"
    # The callType values that are settlement notices (§5.6/§6.2: "02" = payment
    # success; others are unknown [U]); anything else is refused.
    notice_call_types: tuple[str, ...] = ("02",)
    # A notice whose envelope timestamp is further than this from our clock (either
    # way) is recorded as stale and never acted on; 0 = no check.  §2.3: the centre's
    # freshness rules are unknown; 10 minutes covers its retries of one notice.
    notice_max_age_seconds: float = 600.0

    def __post_init__(self) -> None:
        if self.on_deadline not in ("revoke", "hold"):
            raise ValueError("on_deadline must be \"revoke\" or \"hold\"")
        for name in ("payment_deadline_seconds", "poll_first_seconds", "poll_cap_seconds",
                     "his_take_window_seconds", "his_poll_seconds", "revoke_wait_seconds"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if self.settle_seconds < 0:
            raise ValueError("settle_seconds must not be negative")
        if not self.notice_call_types:
            raise ValueError("notice_call_types must name at least one callType")
        if self.notice_max_age_seconds < 0:
            raise ValueError("notice_max_age_seconds must not be negative")


# ============================================================== payloads

@dataclass(frozen=True)
class FeeLine:
    line_no: str
    item_code: str          # hospital catalogue code (medinsListCodg)
    item_name: str
    national_code: str      # national catalogue code (medListCodg)
    quantity: Decimal
    price: Decimal
    amount: Decimal


@dataclass(frozen=True)
class PaymentRequest:
    patient_id: str
    visit_id: str
    pay_auth_no: str
    id_no: str
    user_name: str
    id_type: str
    dept_code: str
    dept_name: str
    caty: str
    total_amount: Decimal
    lines: tuple[FeeLine, ...]
    med_type: str
    use_personal_account: Optional[bool]
    psn_no: Optional[str]
    insutype: Optional[str]
    insuplc_admdvs: Optional[str]
    charge_batch: Optional[str]
    visit_time: Optional[str]
    doctor_code: Optional[str]
    doctor_name: Optional[str]
    diagnosis_code: Optional[str]
    diagnosis_name: Optional[str]


def _optional_text(doc: dict, name: str, max_len: int = 64) -> Optional[str]:
    if doc.get(name) in (None, ""):
        return None
    return require_text(doc, name, max_len)


def _decimal(value: Any, what: str) -> Decimal:
    if isinstance(value, bool) or value is None or isinstance(value, (dict, list)):
        raise BadInput(f"{what} is required (a number like \"2\" or \"12.50\")")
    try:
        d = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise BadInput(f"{what} is not a number: {value!r}") from None
    if not d.is_finite():
        raise BadInput(f"{what} is not a number: {value!r}")
    return d


def parse_lines(doc: dict, total: Decimal) -> tuple[FeeLine, ...]:
    raw = doc.get("lines")
    if not isinstance(raw, list) or not raw:
        raise BadInput("payload field 'lines' is required: a non-empty list of fee lines")
    seen: set[str] = set()
    lines = []
    for i, item in enumerate(raw, 1):
        where = f"lines[{i}]"
        if not isinstance(item, dict):
            raise BadInput(f"{where} must be an object")
        no = item.get("line_no")
        if isinstance(no, bool) or no in (None, "") or isinstance(no, (dict, list, float)):
            raise BadInput(f"{where}.line_no is required (an integer or a code)")
        no = str(no)
        if no in seen:
            raise BadInput(f"duplicate line_no {no!r}: each fee line needs its own number")
        seen.add(no)
        try:
            amount = require_amount(item, "amount")
            code = require_text(item, "item_code", 50)
            name = require_text(item, "item_name", 200)
        except BadInput as exc:
            raise BadInput(f"{where}: {exc}") from None
        qty = _decimal(item.get("quantity"), f"{where}.quantity")
        price = _decimal(item.get("price"), f"{where}.price")
        if qty <= 0:
            raise BadInput(f"{where}.quantity must be positive, got {qty}")
        if price < 0:
            raise BadInput(f"{where}.price must not be negative, got {price}")
        check_line_amount(qty, price, amount, where, ("quantity", "price", "amount"))
        national = item.get("national_code") or code
        if not isinstance(national, str) or len(national) > 50:
            raise BadInput(f"{where}.national_code must be text of at most 50 characters")
        lines.append(FeeLine(no, code, name, national, qty, price, amount))
    lines_sum = sum((ln.amount for ln in lines), ZERO)
    if lines_sum != total:
        raise BadInput(f"the lines sum to {lines_sum} but total_amount is {total}")
    return tuple(lines)


def _is_datetime(text: str) -> bool:
    try:
        time.strptime(text, "%Y-%m-%d %H:%M:%S")
        return True
    except ValueError:
        return False


def parse_payment(doc: dict, med_type: str, default_id_type: str) -> PaymentRequest:
    total = require_amount(doc, "total_amount")
    if total <= 0:
        raise BadInput("total_amount must be positive")
    use_acct = doc.get("use_personal_account")
    if use_acct is not None and not isinstance(use_acct, bool):
        raise BadInput("use_personal_account must be true or false")
    req = PaymentRequest(
        patient_id=require_text(doc, "patient_id"), visit_id=require_text(doc, "visit_id"),
        pay_auth_no=require_text(doc, "pay_auth_no", 128),
        id_no=require_text(doc, "id_no", 32), user_name=require_text(doc, "user_name", 64),
        id_type=_optional_text(doc, "id_type", 6) or default_id_type,
        dept_code=require_text(doc, "dept_code", 30), dept_name=require_text(doc, "dept_name", 100),
        caty=require_text(doc, "caty", 30), total_amount=total, lines=parse_lines(doc, total),
        med_type=_optional_text(doc, "med_type", 6) or med_type, use_personal_account=use_acct,
        psn_no=_optional_text(doc, "psn_no", 30), insutype=_optional_text(doc, "insutype", 6),
        insuplc_admdvs=_optional_text(doc, "insuplc_admdvs", 6),
        charge_batch=_optional_text(doc, "charge_batch", 30),
        visit_time=_optional_text(doc, "visit_time", 19),
        doctor_code=_optional_text(doc, "doctor_code", 30), doctor_name=_optional_text(doc, "doctor_name", 50),
        diagnosis_code=_optional_text(doc, "diagnosis_code", 30),
        diagnosis_name=_optional_text(doc, "diagnosis_name", 100))
    if req.visit_time and not _is_datetime(req.visit_time):
        raise BadInput("visit_time must be 'YYYY-MM-DD HH:MM:SS' (§5.1 begntime)")
    if req.psn_no and not (req.insutype and req.insuplc_admdvs):
        raise BadInput("with psn_no, also give insutype and insuplc_admdvs (or leave all three out "
                       "and mibridge looks them up with 1101)")
    return req


# ============================================================== shared pieces

def _money(v: Optional[Decimal]) -> Optional[str]:
    return None if v is None else str(v)


def _dec(v: Any) -> Optional[Decimal]:
    return None if v in (None, "") else Decimal(str(v))


def _split(total, fund, acct, cash) -> dict:
    """The four amounts as text (flow_data is JSON)."""
    return {"total": _money(total), "fund": _money(fund), "account": _money(acct), "cash": _money(cash)}


def _fen(v: Optional[str]) -> Optional[int]:
    return None if v is None else int(Decimal(v) * 100)


def _now14() -> str:
    return time.strftime("%Y%m%d%H%M%S")


def _org_biz_ser() -> str:
    # §5.2: unique per 6202 call and not the medOrgOrd; S6b uses BIZ<epoch-ms>.  The
    # random tail keeps two workers in one millisecond apart.
    return f"BIZ{int(time.time() * 1000)}{secrets.randbelow(10 ** 6):06d}"


def _client(ctx):
    return ctx.service("mobilepay")


def _settings(ctx) -> MobilePaySettings:
    return ctx.service("mobilepay.settings")


def _pay_token(ctx, order: dict) -> str:
    """This request's payToken: mi_secret (a refund or revoke holds its payment's copy),
    or flow_data written before mi_secret existed."""
    token = order.get(PAY_TOKEN) or ctx.secret(PAY_TOKEN)
    if not token:
        raise RuntimeError(f"no payToken on record for payOrdId {order.get('payOrdId')}")
    return token


def _query(ctx, order: dict, patient: dict) -> CallResult:
    """6301 for an order (§5.4); `patient` holds id_no, user_name, id_type."""
    client = _client(ctx)
    return ctx.call(client.send, client.prepare_query_order(QueryOrderRequest(
        payOrdId=order["payOrdId"], payToken=_pay_token(ctx, order), idNo=patient["id_no"],
        userName=patient["user_name"], idType=patient["id_type"])))


def _patient(payload: PaymentRequest) -> dict:
    return {"id_no": payload.id_no, "user_name": payload.user_name, "id_type": payload.id_type}


PATIENT = ("id_no", "user_name", "id_type")


def _payment_secrets(ctx, pay: dict, default_id_type: str) -> dict:
    """What a refund or revoke needs of its payment for 6301/6401 (§5.4, §5.5): the
    payToken and the patient.  Held in the refund's or revoke's own mi_secret from the
    moment it is needed until it is final, so it does not depend on the payment's row
    (a payment revoked under it fails and keeps nothing; a done one may be purged)."""
    doc = json.loads(pay["payload"])
    fd = pay["flow_data"]
    token = ctx.port.secrets(pay["id"]).get(PAY_TOKEN) or fd.get(PAY_TOKEN) or \
        (fd.get("settled") or {}).get(PAY_TOKEN)          # the last two: rows from before mi_secret
    return {PAY_TOKEN: token, "id_no": doc.get("id_no"), "user_name": doc.get("user_name"),
            "id_type": doc.get("id_type") or default_id_type}


def _held_patient(ctx, data: dict) -> dict:
    """The patient a refund or revoke holds (mi_secret), or its flow_data from before."""
    if data.get("patient"):
        return data["patient"]
    return {k: ctx.secret(k) for k in PATIENT}


def _stas(result: CallResult) -> Optional[OrdStas]:
    return result.data.ordStas if result.outcome is Outcome.OK else None


def _retry_later(r: CallResult) -> Retry:
    """Nothing happened (not sent, or refused as busy/rate-limited/signature:
    bridge/refusals.py): send again after the backoff."""
    code = "NOT_SENT" if r.outcome is Outcome.NOT_SENT else "CENTRE_BUSY"
    return Retry(code, f"{r.interface}: {r.message or 'centre unreachable'}")


def _not_ok(r: CallResult, unknown_code: str, refused):
    """An unsafe call (6202, 6203, 6401) that did not succeed: not sent at all, or
    refused for a transient reason -> send again later; refused (a verdict) ->
    `refused()`; anything else -> in doubt, to be resolved by 6301 before anything is
    sent again (§7.3)."""
    if r.try_again:
        return _retry_later(r)
    if r.refused:
        return refused()
    return InDoubt(unknown_code, r.message or f"{r.interface} outcome unknown")


def _not_settled_yet(ctx, what: str) -> Optional[InDoubt]:
    """Inside the settle window "not booked" is not an answer yet: a wait until the window
    ends, which uses none of the row's attempts (the engine's settle_window_wait)."""
    return ctx.settle_window_wait(_settings(ctx).settle_seconds, "NOT_SETTLED_YET",
                                  f"{what} not seen by the centre yet")


def _refund_state(paid: dict, refunded: dict) -> str:
    """ordStas after refunds (§6.1 codes 6-11), from what was paid and refunded."""
    hi_paid = Decimal(paid["fund"]) + Decimal(paid["account"])
    hi_ref = refunded["fund"] + refunded["account"]
    cash_paid, cash_ref = Decimal(paid["cash"]), refunded["cash"]
    hi_all, hi_none = hi_ref == hi_paid and hi_paid > 0, hi_ref == 0
    cash_all, cash_none = cash_ref == cash_paid and cash_paid > 0, cash_ref == 0
    if hi_none and cash_none:
        return "6"
    if (hi_all or hi_paid == 0) and (cash_all or cash_paid == 0):
        return "7"
    if hi_all and cash_none:
        return "8"
    if hi_all:
        return "11"
    if hi_none and cash_all:
        return "9"
    return "10"


# ============================================================== payment

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
            m.PersonInfoRequest(mdtrt_cert_type="01", mdtrt_cert_no=p.pay_auth_no)))
        if r.refused:
            return Fail("IDENTIFY_REJECTED", f"1101 with the payAuthNo refused: {r.message}")
        if r.outcome is not Outcome.OK:
            return Retry("IDENTIFY_FAILED", r.message or "1101 failed")
        person = r.data
        insu = [i for i in person.insuinfo if i.insutype and i.psn_insu_stas in (None, "", "1")]
        if not insu:
            return Fail("NOT_INSURED", "the centre shows no active insurance for this person")
        chosen = insu[0]
        ident = IdentityRow(his_patient_id=p.patient_id, psn_no=person.psn_no,
                            insuplc_admdvs=chosen.insuplc_admdvs, insutype=chosen.insutype,
                            psn_cert_type=person.psn_cert_type)
        return Goto("upload", data={"psn_no": person.psn_no, "insutype": chosen.insutype,
                                    "insuplc_admdvs": chosen.insuplc_admdvs},
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
        client = _client(ctx)
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
        client = _client(ctx)
        prepared = client.prepare_pay_order(PayOrderRequest(
            payAuthNo=p.pay_auth_no, payOrdId=d["payOrdId"], payToken=_pay_token(ctx, d),
            orgBizSer=_org_biz_ser(), mdtrtId=d["mdtrtId"], chrgBchno=d["chrgBchno"],
            feeType=self.settings.fee_type, acctUsedFlag=self._acct_flag(p)))
        r = ctx.call(client.send, prepared)
        if r.outcome is Outcome.OK:
            o = r.data
            split = _split(o.feeSumamt, o.fundPay, o.psnAcctPay, o.ownPayAmt)
            return Goto("await_payment", data={"order_msg": prepared.msg_id, "split": split, "polls": 0},
                        inbox=[self._order_row(ctx, o.ordStas, split)],
                        identities=self._identity_from_presettle(ctx, o.extData))
        return _not_ok(r, "ORDER_UNKNOWN", lambda: Fail("ORDER_REJECTED", f"6202 refused: {r.message}"))

    def resolve_order(self, ctx):
        d = ctx.data
        notice = ctx.port.notice(NOTICE, d["payOrdId"])
        r = _query(ctx, d, _patient(ctx.payload))
        stas = _stas(r)
        if stas is not None and stas.is_settled:
            return self._settled(ctx, r.data, {"order_msg": ctx.in_doubt_msg_id}, notice)
        if stas is None:
            # A 6302 notice is a trigger, not proof: only 6301 settles (issue 10 #1).
            return InDoubt("QUERY_FAILED", f"6301 after a lost 6202 failed: {r.message}"
                                           + ("; a 6302 notice says paid: waiting for 6301 to confirm it"
                                              if notice else ""))
        if stas in (OrdStas.PRE_SETTLED, OrdStas.AWAITING_PAYMENT):
            q = r.data
            split = _split(q.feeSumamt, q.fundPay, q.psnAcctPay, q.ownPayAmt) if q.feeSumamt is not None else None
            return Goto("await_payment", data={"order_msg": ctx.in_doubt_msg_id, "split": split, "polls": 0},
                        inbox=[self._order_row(ctx, stas, split)])
        if stas is OrdStas.SAVED:
            waiting = _not_settled_yet(ctx, "the 6202")
            if waiting:
                return waiting
            if notice is not None:
                return _contradicted(notice, stas, "after a lost 6202")
            # Confirmed never placed: sending 6202 now is a first send, not a resend.
            return Goto("order")
        if notice is not None:
            return _contradicted(notice, stas, "after a lost 6202")
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
                                "total_fee": _fen(split["total"]), "med_ins_gov_fee": _fen(split["fund"]),
                                "med_ins_self_fee": _fen(split["account"]),
                                "med_ins_cash_fee": _fen(split["cash"])}
        return InboxRow(result_type="order", outcome="ok", order_id=d["payOrdId"],
                        total_amount=_dec(split.get("total")), fund_amount=_dec(split.get("fund")),
                        account_amount=_dec(split.get("account")), cash_amount=_dec(split.get("cash")),
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
        r = _query(ctx, d, _patient(ctx.payload))
        stas = _stas(r)
        if stas is not None and stas.is_settled:
            return self._settled(ctx, r.data, {}, notice)
        if stas is not None and not stas.is_processing:
            if notice is not None:
                return _contradicted(notice, stas)
            return self._ended(stas)
        polls = int(d.get("polls", 0))
        if notice is not None:
            # A verified notice wakes us but does not settle (issue 10 #1): 6301 must
            # confirm it.  6301 may lag behind the notice by up to settle_seconds.
            since = ctx.port.notice_age_seconds(NOTICE, d["payOrdId"]) or 0.0
            if stas is not None and since > self.settings.settle_seconds:
                return _contradicted(notice, stas, f"{since:.0f} s after the notice")
            age = ctx.call_age_seconds(d["order_msg"])
            if stas is None and age is not None and age > self.settings.payment_deadline_seconds:
                return Hold("NOTICE_UNCONFIRMED", f"a 6302 notice says {_notice_text(notice)}, and 6301 has not "
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
        paid = _split(q.feeSumamt, q.fundPay, q.psnAcctPay, q.ownPayAmt)
        trace, setl_type = q.traceTime, q.setlType.value if q.setlType else None
        if paid["total"] is None:
            return InDoubt("SETTLED_WITHOUT_AMOUNTS", "the centre says settled but gave no amounts yet")
        paid = {k: str(Decimal(v or "0").quantize(Decimal("0.01"))) for k, v in paid.items()}
        stale = bool(notice and notice.get("stale"))
        for other, what in ((d.get("split"), "6202"), (_notice_split(notice), "the 6302 notice")):
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
        r = _revoke(ctx, ctx.data, _patient(ctx.payload))
        if r.outcome is Outcome.OK:
            return self._expired(ctx, f"not paid within {self.settings.payment_deadline_seconds:.0f} s; "
                                      f"the order was revoked (6401)", OrdStas.REVOKED)
        return _not_ok(r, "REVOKE_UNKNOWN", lambda: self._revoke_refused(ctx, r))

    def _expired(self, ctx, message: str, stas: OrdStas):
        """The order was revoked: nothing was paid - unless a 6302 notice says it was."""
        notice = ctx.port.notice(NOTICE, ctx.data["payOrdId"])
        if notice is not None:
            return _contradicted(notice, stas, "after the deadline revoke")
        return Fail("EXPIRED", message)

    def _revoke_refused(self, ctx, r: CallResult):
        # Refused: most likely the patient paid at the last moment.  Look.
        q = _query(ctx, ctx.data, _patient(ctx.payload))
        stas = _stas(q)
        if stas is not None and stas.is_settled:
            return self._settled(ctx, q.data, {}, ctx.port.notice(NOTICE, ctx.data["payOrdId"]))
        if stas is not None and stas.is_revoked:
            return self._expired(ctx, "not paid in time; the order is revoked", stas)
        return Hold("DEADLINE_REVOKE_REJECTED", f"6401 at the deadline refused ({r.message}) and the order "
                                                f"is {stas.value if stas else 'unknown'}: check in the centre")

    def resolve_revoke(self, ctx):
        r = _query(ctx, ctx.data, _patient(ctx.payload))
        stas = _stas(r)
        if stas is None:
            return InDoubt("QUERY_FAILED", f"6301 after a lost 6401 failed: {r.message}")
        notice = ctx.port.notice(NOTICE, ctx.data["payOrdId"])
        if stas.is_settled:
            return self._settled(ctx, r.data, {}, notice)
        if stas.is_revoked:
            return self._expired(ctx, "not paid in time; the order was revoked (6401)", stas)
        if stas.is_processing:
            waiting = _not_settled_yet(ctx, "the 6401")
            if waiting or notice is None:
                return waiting or Goto("revoke")
        if notice is not None:
            return _contradicted(notice, stas, "after a lost 6401")
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
        return Goto("repair", data={"repair_reason": reason, "appRefdSn": _repair_serial(ctx.data["payOrdId"]),
                                    "appRefdTime": _now14()})

    # -- repair: 6203 ALL -----------------------------------------------------------------------
    def step_repair(self, ctx):
        d = ctx.data
        s = d["settled"]
        r = _refund(ctx, s, d["appRefdSn"], d["appRefdTime"], SetlType.ALL,
                    Decimal(s["fund"]), Decimal(s["account"]), Decimal(s["cash"]), ctx.payload.pay_auth_no)
        if r.outcome is Outcome.OK:
            return self._reversed(ctx, r.data.refdSn)
        return _not_ok(r, "REPAIR_UNKNOWN", lambda: Hold(
            "REPAIR_FAILED", f"{d['repair_reason']}, and the full refund (6203) was refused: {r.code} {r.message}. "
                             f"The patient has paid: refund by hand, then resolve this row"))

    def resolve_repair(self, ctx):
        d = ctx.data
        r = _query(ctx, d["settled"], _patient(ctx.payload))
        stas = _stas(r)
        if stas is None:
            return InDoubt("QUERY_FAILED", f"6301 after a lost 6203 failed: {r.message}")
        if stas is OrdStas.REFUNDED:
            return self._reversed(ctx, None)
        if stas.is_settled:
            return _not_settled_yet(ctx, "the refund") or Goto("repair")
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


def _repair_serial(pay_ord_id: str) -> str:
    """appRefdSn of a repair refund: unique per refund at the centre (§5.3), the
    same on every send (§7.3), and never equal to an HIS refund serial.  Derived
    from payOrdId, which the centre keeps unique; 24 characters."""
    return "MIBR" + hashlib.sha256(pay_ord_id.encode()).hexdigest()[:20].upper()


def _notice_split(notice: Optional[dict]) -> Optional[dict]:
    if not notice:
        return None
    return {"total": notice.get("feeSumamt"), "fund": notice.get("fundPay"),
            "account": notice.get("psnAcctPay"), "cash": notice.get("ownPayAmt")}


def _notice_text(notice: dict) -> str:
    """A recorded notice, for a person: what it says was paid, and when."""
    stale = f"; stale: {notice['stale']}" if notice.get("stale") else ""
    return (f"{notice.get('payOrdId')} was paid {notice.get('feeSumamt')} (fund {notice.get('fundPay')}, "
            f"account {notice.get('psnAcctPay')}, cash {notice.get('ownPayAmt')}; traceTime "
            f"{notice.get('traceTime')}{stale})")


def _contradicted(notice: dict, stas: OrdStas, when: str = "") -> Hold:
    """A verified notice says paid; 6301 says the order is not (still processing
    past the settle window, revoked, failed).  Money may have moved on one side
    only: a person looks, with both answers (issue 10 #1)."""
    return Hold("NOTICE_CONTRADICTS_STATUS", f"the 6302 notice says {_notice_text(notice)}, but 6301 says ordStas "
                                             f"{stas.value} ({stas.name}){' ' + when if when else ''}: check the "
                                             f"order in the centre before billing or refunding")


def _revoke(ctx, order: dict, patient: dict) -> CallResult:
    client = _client(ctx)
    return ctx.call(client.send, client.prepare_revoke_order(RevokeOrderRequest(
        payOrdId=order["payOrdId"], payToken=_pay_token(ctx, order), idNo=patient["id_no"],
        userName=patient["user_name"], idType=patient["id_type"])))


def _refund(ctx, settled: dict, sn: str, at: str, kind: SetlType, fund: Decimal, acct: Decimal,
            cash: Decimal, pay_auth_no: str) -> CallResult:
    """6203 (§5.3).  The same appRefdSn and appRefdTime on every send (§7.3).
    The authorisation: §5.3 wants ecToken or payAuthNo; we send the payment's
    payAuthNo unless the HIS gave a fresh one (our choice, docs/platform-choices.md)."""
    client = _client(ctx)
    return ctx.call(client.send, client.prepare_refund(RefundRequest(
        payOrdId=settled["payOrdId"], appRefdSn=sn, appRefdTime=at, totlRefdAmt=fund + acct + cash,
        cashRefdAmt=cash, psnAcctRefdAmt=acct, fundRefdAmt=fund, refdType=kind, payAuthNo=pay_auth_no)))


# ============================================================== refund

@dataclass(frozen=True)
class RefundPayload:
    payment_key: str
    amount: Optional[Decimal]
    refund_type: Optional[SetlType]
    reason: Optional[str]
    pay_auth_no: Optional[str]


class RefundFlow(Flow):
    """A full or partial refund of a settled payment; its business key is the
    HIS's refund serial (sent as appRefdSn)."""

    kind = KIND_REFUND
    initial = "check"
    secret_keys = SECRET_KEYS
    steps = {
        "check": Step("check", next=("refund",)),      # may Wait on itself while the payment is open
        "refund": Step("refund", calls=("6203",), safe_to_repeat=False, resolves_with=("6301",),
                       next=("refund",)),
    }

    def __init__(self, settings: MobilePaySettings):
        self.settings = settings

    def parse(self, doc: dict) -> RefundPayload:
        amount = require_amount(doc, "amount") if doc.get("amount") not in (None, "") else None
        if amount is not None and amount <= 0:
            raise BadInput("amount must be positive (leave it out to refund everything still refundable)")
        rtype = doc.get("refund_type")
        if rtype not in (None, "", "ALL", "CASH", "HI"):
            raise BadInput("refund_type must be ALL, CASH or HI (or left out)")
        return RefundPayload(payment_key=require_text(doc, "payment_key"), amount=amount,
                             refund_type=SetlType(rtype) if rtype else None,
                             reason=_optional_text(doc, "reason", 200),
                             pay_auth_no=_optional_text(doc, "pay_auth_no", 128))

    def step_check(self, ctx):
        p: RefundPayload = ctx.payload
        if len(ctx.row.business_key) > 30:
            return Fail("BAD_INPUT", "the refund serial (business key) is sent as appRefdSn: at most 30 characters")
        if ctx.row.serial_key != p.payment_key:
            return Fail("BAD_INPUT", f"enqueue refunds with serial_key = the payment's business key "
                                     f"({p.payment_key!r}), so that they wait for the payment and run one "
                                     f"at a time; got {ctx.row.serial_key!r}")
        pay = _payment_row(ctx, p.payment_key)
        if isinstance(pay, Fail):
            return pay
        if pay is None:
            return Fail("NO_SUCH_PAYMENT", f"no mobile-pay payment with business key {p.payment_key!r}")
        if pay["state"] in ("pending", "running", "in_doubt", "held"):
            # Normally the serial key holds a refund back; this covers a payment
            # enqueued under another serial key (a visit number, say).
            return Wait("check", 5.0)
        if pay["state"] != "done" or "settled" not in pay["flow_data"]:
            return Fail("NOT_PAID", f"payment {p.payment_key} is {pay['state']} (step {pay['step']}): "
                                    f"nothing was paid that could be refunded")
        settled = pay["flow_data"]["settled"]
        unreconciled = ctx.port.count_requests(KIND_REFUND, p.payment_key, ("resolved", "held"),
                                                exclude_id=ctx.row.id)
        if unreconciled:
            # A refund closed by hand has no amounts on record: what is left is unknown.
            return Hold("PRIOR_REFUND_UNRECONCILED", f"{unreconciled} earlier refund(s) of {p.payment_key} were "
                                                     f"held or resolved by hand, so what is left to refund is not "
                                                     f"known here: refund by hand, then resolve this row")
        before = ctx.port.inbox_sums("refund", settled["payOrdId"])
        left = {k: Decimal(settled[k]) - before[k] for k in ("fund", "account", "cash")}
        try:
            kind, fund, acct, cash = _refund_split(p, left)
        except BadInput as exc:
            return Fail(exc.code, str(exc))
        # The payment's payToken and patient go to this refund's mi_secret (never to
        # flow_data); its payAuthNo is read from the payment's payload when 6203 goes out.
        return Goto("refund", data={
            "settled": {k: v for k, v in settled.items() if k not in SECRET_KEYS},
            "type": kind.value, "fund": str(fund), "account": str(acct),
            "cash": str(cash), "appRefdTime": _now14(),
            "state_before": _refund_state(settled, before),
            "state_after": _refund_state(settled, {"fund": before["fund"] + fund,
                                                   "account": before["account"] + acct,
                                                   "cash": before["cash"] + cash})},
                    secrets=_payment_secrets(ctx, pay, self.settings.default_id_type))

    def _auth(self, ctx) -> Optional[str]:
        """6203's authorisation (§5.3): a fresh payAuthNo from this refund's payload, else
        the payment's (docs/platform-choices.md), read from the payment's payload now."""
        d = ctx.data
        if ctx.payload.pay_auth_no or d.get("pay_auth_no"):
            return ctx.payload.pay_auth_no or d["pay_auth_no"]
        pay = _payment_row(ctx, ctx.payload.payment_key)
        return json.loads(pay["payload"]).get("pay_auth_no") if isinstance(pay, dict) else None

    def _order(self, ctx) -> dict:
        return ctx.data["settled"]

    def _patient(self, ctx) -> dict:
        return _held_patient(ctx, ctx.data)

    def step_refund(self, ctx):
        d = ctx.data
        r = _refund(ctx, d["settled"], ctx.row.business_key, d["appRefdTime"], SetlType(d["type"]),
                    Decimal(d["fund"]), Decimal(d["account"]), Decimal(d["cash"]), self._auth(ctx))
        if r.outcome is Outcome.OK:
            return self._done(ctx, r.data.refdSn, r.data.hiRefdSn)
        return _not_ok(r, "REFUND_UNKNOWN", lambda: Fail("REFUND_REJECTED", f"6203 refused: {r.code} {r.message}"))

    def resolve_refund(self, ctx):
        """§7.2: after EXP or a lost answer, 6301 first.  Its ordStas (7-11) shows
        refund progress; when this refund would not change it, 6301 cannot tell and
        a person checks (never a resend on a guess)."""
        d = ctx.data
        r = _query(ctx, self._order(ctx), self._patient(ctx))
        stas = _stas(r)
        if stas is None:
            return InDoubt("QUERY_FAILED", f"6301 after a lost 6203 failed: {r.message}")
        if stas is OrdStas.REFUND_IN_PROGRESS:
            return InDoubt("REFUND_IN_PROGRESS", "the centre is still refunding")
        before, after = d["state_before"], d["state_after"]
        if before == after:
            return Hold("REFUND_UNKNOWN", f"6203 {ctx.row.business_key}: outcome lost, and the order status "
                                          f"({stas.value}) cannot show it. Check in the centre, finish the "
                                          f"refund by hand if needed, then resolve this row")
        if stas.value == after:
            return self._done(ctx, None, None)
        if stas.value == before:
            return _not_settled_yet(ctx, "the refund") or Goto("refund")
        return Hold("REFUND_UNCLEAR", f"after refund {ctx.row.business_key} the order is {stas.value}, "
                                      f"expected {before} or {after}: check in the centre")

    def _done(self, ctx, refd_sn: Optional[str], hi_refd_sn: Optional[str]):
        d = ctx.data
        fund, acct, cash = Decimal(d["fund"]), Decimal(d["account"]), Decimal(d["cash"])
        return Finish([InboxRow(
            result_type="refund", outcome="ok", order_id=d["settled"]["payOrdId"],
            settlement_id=refd_sn or ctx.row.business_key, total_amount=fund + acct + cash,
            fund_amount=fund, account_amount=acct, cash_amount=cash,
            result={"appRefdSn": ctx.row.business_key, "refdSn": refd_sn, "hiRefdSn": hi_refd_sn,
                    "refdType": d["type"], "payment_key": ctx.payload.payment_key})])


def _payment_row(ctx, key: str):
    """The payment a refund or revoke names.  Business keys are per kind in the
    outbox, but they are medOrgOrd at the centre: the same key as both an
    outpatient bill and a registration is refused rather than guessed."""
    rows = [r for r in (ctx.port.find_request((k,), key) for k in PAYMENT_KINDS) if r]
    if len(rows) > 1:
        return Fail("AMBIGUOUS_PAYMENT", f"business key {key!r} names both an outpatient payment and a "
                                         f"registration; refund or revoke it by hand")
    return rows[0] if rows else None


def _refund_split(p: RefundPayload, left: dict) -> tuple[SetlType, Decimal, Decimal, Decimal]:
    """What a refund of `amount` sends, within what is left (§5.3): ALL refunds
    every remaining part (insurance and self-pay together), CASH only cash, HI the
    whole insurance part (the centre cancels the insurance settlement whole)."""
    fund, acct, cash = left["fund"], left["account"], left["cash"]
    hi, everything = fund + acct, fund + acct + cash
    if everything <= 0:
        raise BadInput("the payment has been refunded in full already", "NOTHING_LEFT")
    if p.amount is None and p.refund_type is not None and {SetlType.CASH: cash, SetlType.HI: hi}.get(
            p.refund_type, everything) <= 0:
        raise BadInput(f"nothing left to refund as {p.refund_type.value}", "NOTHING_LEFT")
    default = {SetlType.CASH: cash, SetlType.HI: hi}.get(p.refund_type, everything)
    amount = default if p.amount is None else p.amount
    if amount > everything:
        raise BadInput(f"refund {amount} exceeds what is left to refund ({everything})", "REFUND_EXCEEDS_PAID")
    kind = p.refund_type
    if kind is None:
        if amount == everything:
            kind = SetlType.ALL if hi and cash else (SetlType.HI if hi else SetlType.CASH)
        elif amount <= cash:
            kind = SetlType.CASH
        elif amount == hi:
            kind = SetlType.HI
        else:
            raise BadInput(f"a partial refund of {amount} cannot be split: the self-pay part can be refunded "
                           f"up to {cash}, the insurance part ({hi}) only whole", "REFUND_SPLIT")
    if kind is SetlType.ALL:
        if amount != everything:
            raise BadInput(f"refund_type ALL refunds everything left ({everything}), not {amount}", "REFUND_SPLIT")
        return kind, fund, acct, cash
    if kind is SetlType.HI:
        if hi <= 0 or amount != hi:
            raise BadInput(f"refund_type HI refunds the whole insurance part ({hi}), not {amount}", "REFUND_SPLIT")
        return kind, fund, acct, ZERO
    if amount > cash:
        raise BadInput(f"refund_type CASH refunds at most the self-pay left ({cash}), not {amount}", "REFUND_SPLIT")
    return kind, ZERO, ZERO, amount


# ============================================================== revoke

class RevokeFlow(Flow):
    """The HIS cancels a payment the patient has not paid (6401, §5.5).  Enqueued
    with its own serial key: it must not wait for the payment it cancels."""

    kind = KIND_REVOKE
    initial = "locate"
    secret_keys = SECRET_KEYS
    steps = {
        "locate": Step("locate", next=("revoke",)),
        "revoke": Step("revoke", calls=("6401",), safe_to_repeat=False, resolves_with=("6301",),
                       next=("revoke",)),
    }

    def __init__(self, settings: MobilePaySettings):
        self.settings = settings

    def parse(self, doc: dict) -> dict:
        return {"payment_key": require_text(doc, "payment_key")}

    def step_locate(self, ctx):
        key = ctx.payload["payment_key"]
        if ctx.row.serial_key == key:
            return Fail("BAD_INPUT", "enqueue a revoke with its own serial key (not the payment's): "
                                     "it must not wait for the payment it cancels")
        pay = _payment_row(ctx, key)
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
            return Goto("revoke", data={"payOrdId": fd["payOrdId"], "payment_id": pay["id"]},
                        secrets=_payment_secrets(ctx, pay, self.settings.default_id_type))
        waits = int(ctx.data.get("waits", 0))
        if waits * 2.0 > self.settings.revoke_wait_seconds:
            return Hold("PAYMENT_NOT_PLACED", f"payment {key} has not reached the centre (step {pay['step']}, "
                                              f"{pay['state']}) after {self.settings.revoke_wait_seconds:.0f} s")
        return Wait("locate", 2.0, data={"waits": waits + 1})

    def _patient(self, ctx) -> dict:
        return _held_patient(ctx, ctx.data)

    def step_revoke(self, ctx):
        d = ctx.data
        r = _revoke(ctx, d, self._patient(ctx))
        if r.outcome is Outcome.OK:
            return self._revoked(ctx)
        return _not_ok(r, "REVOKE_UNKNOWN", lambda: Fail(
            "REVOKE_REJECTED", f"6401 refused: {r.message} (if the patient paid, enqueue a refund)"))

    def resolve_revoke(self, ctx):
        d = ctx.data
        r = _query(ctx, d, self._patient(ctx))
        stas = _stas(r)
        if stas is None:
            return InDoubt("QUERY_FAILED", f"6301 after a lost 6401 failed: {r.message}")
        if stas.is_revoked:
            return self._revoked(ctx)
        if stas.is_processing:
            return _not_settled_yet(ctx, "the 6401") or Goto("revoke")
        if stas.is_settled:
            return Fail("ALREADY_PAID", "the patient paid before the revoke: enqueue a refund instead")
        return Hold("REVOKE_UNCLEAR", f"order status {stas.value} after a lost 6401: check in the centre")

    def _revoked(self, ctx):
        # Wake the payment so it sees the revoked order now, not at its next poll.
        ctx.port.poke(PAYMENT_KINDS, ctx.payload["payment_key"])
        return Finish([InboxRow(result_type="revoke", outcome="ok", order_id=ctx.data["payOrdId"],
                                result={"payment_key": ctx.payload["payment_key"],
                                        "payOrdId": ctx.data["payOrdId"]})])


def flows(settings: MobilePaySettings) -> list[Flow]:
    from .notice_check import NoticeCheckFlow     # it builds on this module

    return [PaymentFlow(KIND_OUTPATIENT, settings), PaymentFlow(KIND_REGISTRATION, settings),
            RefundFlow(settings), RevokeFlow(settings), NoticeCheckFlow(settings)]
