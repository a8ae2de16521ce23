"""The Guangdong real-account face-pay extension (facepay.md): expContent, UnionPay, fpy001, mpc004.

Only a tender document describes it, so every field name of the extension is kept here, in
one place, to be corrected in one place:

* expContent (facepay.md table): merchantNo, terminalNo, isvNo, acctType, down_payment.
  Face-pay mode = acct_used_flag "1" and an expContent that carries merchantNo.
* fpy001 and mpc004 (infno tgdupc004) travel in the offline envelope (facepay.md §2-3).
  Their field lists are NOT public. Only `origPlatformSeqId` (mpc004 input) is named by the
  tender; every other name is OUR CHOICE, defined once in bridge/facepay/fields.py and
  imported from there by this module AND by the client (bridge/facepay/client.py), so the
  two sides cannot drift apart:
    fpy001 input  `data`: setl_id (required), psn_no, mdtrt_id (checked when given)
    fpy001 output `data`: setl_id, mdtrt_id, psn_no, setl_stas ("1" valid, "0" cancelled),
                          acct_pay, acct_stas (ACCT_STAS), platformSeqId (always the deduction's
                          UnionPay serial, as the tender says), refNo (reference number),
                          termSeqNo (channel terminal serial), refundSeqId
    mpc004 input  `data`: setl_id (required), psn_no, mdtrt_id, origPlatformSeqId (optional;
                          checked when given), appRefdSn, appRefdTime, psnAcctRefdAmt (checked
                          when given: must equal the deducted amount - no partial refunds here)
    mpc004 output `data`: refStatus "SUCC", setl_id, acct_refd_amt, origPlatformSeqId,
                          refundSeqId, acct_stas
  mpc004 is idempotent: once the deduction is refunded, a repeat answers the same refund.

UnionPay legs can be made to fail with faults on "unionpay.balance", "unionpay.deduct",
"unionpay.refund" (faults.py).
"""
from __future__ import annotations

import itertools
import json
import threading
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Optional

from bridge.facepay import fields as F

from .config import SimulatorConfig
from .faults import Faults
from .ledger import Ledger
from .persons import Person, Persons

EXP_FIELDS = F.EXP_CONTENT_REQUIRED   # down_payment optional
ACCT_STAS = {"deducted": F.ACCT_STAS_DEDUCTED, "refunded": F.ACCT_STAS_REFUNDED,
             "refund_failed": F.ACCT_STAS_REFUND_FAILED}


class FacePayError(ValueError):
    pass


@dataclass
class Deduction:
    setl_id: str
    mdtrt_id: str
    psn_no: str
    amount: Decimal
    platform_seq_id: str
    ref_no: str
    term_seq_no: str
    status: str = "deducted"
    refund_seq_id: str = ""

    def public(self) -> dict:
        return {"setl_id": self.setl_id, "psn_no": self.psn_no, "amount": str(self.amount),
                "status": self.status, "platformSeqId": self.platform_seq_id,
                "refNo": self.ref_no, "termSeqNo": self.term_seq_no, "refundSeqId": self.refund_seq_id}


def exp_content(node: dict) -> Optional[dict]:
    """The extension object, whether sent as a JSON string or an object, either spelling."""
    raw = node.get(F.EXP_CONTENT, node.get("exp_content"))
    if raw in (None, ""):
        return None
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            raise FacePayError("expContent不是合法的JSON") from None
    if not isinstance(raw, dict):
        raise FacePayError("expContent不是JSON对象")
    return raw


def facepay_requested(node: dict) -> Optional[dict]:
    """The face-pay extension if this call asks for face-pay mode, else None."""
    ext = exp_content(node)
    if ext is None or F.MERCHANT_NO not in ext or str(node.get("acct_used_flag", "")) != "1":
        return None
    missing = [k for k in EXP_FIELDS if ext.get(k) in (None, "")]
    if missing:
        raise FacePayError("expContent缺少字段: " + ",".join(missing))
    return ext


class RealAccounts:
    """UnionPay-held personal accounts and the deductions made from them."""

    def __init__(self, cfg: SimulatorConfig, persons: Persons, faults: Faults, ledger: Ledger) -> None:
        self.cfg = cfg
        self.persons = persons
        self.faults = faults
        self.ledger = ledger
        self._lock = threading.RLock()
        self.deductions: dict[str, Deduction] = {}   # setl_id -> deduction
        self._seq = itertools.count(1)

    def reset(self) -> None:
        with self._lock:
            self.deductions.clear()

    def _serial(self, prefix: str) -> str:
        return f"{prefix}{time.strftime('%Y%m%d%H%M%S')}{next(self._seq):08d}"

    def _leg(self, name: str, message: str) -> None:
        if self.faults.take("unionpay." + name) is not None:
            raise FacePayError(message)

    def balance(self, fixmedins_code: str, person: Person) -> Decimal:
        """Step 3 checks, then the UnionPay balance query."""
        if fixmedins_code not in self.cfg.facepay_institutions:
            raise FacePayError("机构未开通医保码实账一次刷脸支付功能")
        if person.account != "real":
            raise FacePayError("参保人个人账户不是实账账户")
        self._leg("balance", "银联个人账户余额查询失败")
        return person.balc

    def deduct(self, setl_id: str, mdtrt_id: str, person: Person, amount: Decimal) -> Optional[Deduction]:
        if amount == 0:
            return None       # balance 0 (or nothing to pay): no UnionPay deduction at all
        self._leg("deduct", "银联个人账户扣款失败")
        with self._lock:
            self.persons.debit(person.psn_no, amount)
            d = Deduction(setl_id, mdtrt_id, person.psn_no, amount, self._serial("UP"),
                          self._serial("")[-12:], self._serial("T")[-10:])
            self.deductions[setl_id] = d
            self.ledger.record("account.deduction", setl_id, amount, platformSeqId=d.platform_seq_id)
            return d

    def refund(self, setl_id: str) -> Optional[Deduction]:
        """Refund the deduction of a settlement; a no-op when there is none or it is refunded."""
        with self._lock:
            d = self.deductions.get(setl_id)
            if d is None or d.status == "refunded":
                return d
            try:
                self._leg("refund", "银联个人账户退款失败")
            except FacePayError:
                d.status = "refund_failed"
                raise
            self.persons.credit(d.psn_no, d.amount)
            d.status = "refunded"
            d.refund_seq_id = self._serial("UR")
            self.ledger.record("account.refund", setl_id, d.amount, refundSeqId=d.refund_seq_id)
            return d

    def rededuct(self, setl_id: str) -> None:
        """Take a refunded deduction again (a 2601 reversal of a cancellation)."""
        with self._lock:
            d = self.deductions.get(setl_id)
            if d is None or d.status != "refunded":
                return
            self._leg("deduct", "银联个人账户扣款失败")
            self.persons.debit(d.psn_no, d.amount)
            d.status = "deducted"
            self.ledger.record("account.deduction", setl_id, d.amount, platformSeqId=d.platform_seq_id)

    def status(self, setl_id: str) -> Optional[Deduction]:
        with self._lock:
            return self.deductions.get(setl_id)

    def public(self) -> dict:
        with self._lock:
            return {k: d.public() for k, d in self.deductions.items()}


def fpy001_output(setl: Any, d: Optional[Deduction]) -> dict:
    out: dict[str, Any] = {F.SETL_ID: setl.setl_id, F.MDTRT_ID: setl.mdtrt_id, F.PSN_NO: setl.psn_no,
                           F.SETL_STAS: F.SETL_STAS_VALID if setl.valid else F.SETL_STAS_CANCELLED,
                           F.ACCT_PAY: setl.split.acct, F.ACCT_STAS: F.ACCT_STAS_NONE}
    if d is not None:
        out.update({F.ACCT_STAS: ACCT_STAS[d.status], F.PLATFORM_SEQ_ID: d.platform_seq_id,
                    F.REF_NO: d.ref_no, F.TERM_SEQ_NO: d.term_seq_no, F.REFUND_SEQ_ID: d.refund_seq_id})
    return out


def check_settlement_keys(node: dict, setl: Any) -> None:
    """psn_no / mdtrt_id, when given, must name the same settlement as setl_id."""
    if node.get(F.PSN_NO) not in (None, "") and str(node[F.PSN_NO]) != setl.psn_no:
        raise FacePayError("人员编号与结算信息不符")
    if node.get(F.MDTRT_ID) not in (None, "") and str(node[F.MDTRT_ID]) != setl.mdtrt_id:
        raise FacePayError("就诊ID与结算信息不符")


def mpc004(accounts: RealAccounts, node: dict) -> dict:
    setl_id = str(node.get(F.SETL_ID) or "")
    if not setl_id:
        raise FacePayError("setl_id不能为空")
    d = accounts.status(setl_id)
    if d is None:
        raise FacePayError("该结算没有实账个人账户扣款")
    if node.get(F.PSN_NO) not in (None, "") and node[F.PSN_NO] != d.psn_no:
        raise FacePayError("人员编号与扣款记录不符")
    orig = node.get(F.ORIG_PLATFORM_SEQ_ID)
    if orig not in (None, "") and orig != d.platform_seq_id:
        raise FacePayError("原银联支付流水号不符")
    if node.get(F.PSN_ACCT_REFD_AMT) not in (None, ""):
        try:
            asked = Decimal(str(node[F.PSN_ACCT_REFD_AMT]))
        except ArithmeticError:
            raise FacePayError("退款金额格式错误") from None
        if asked != d.amount:
            raise FacePayError(f"退款金额{asked}与实账扣款金额{d.amount}不符")
    d = accounts.refund(setl_id)
    return {F.REF_STATUS: "SUCC", F.SETL_ID: setl_id, F.ACCT_REFD_AMT: d.amount,
            F.ORIG_PLATFORM_SEQ_ID: d.platform_seq_id, F.REFUND_SEQ_ID: d.refund_seq_id,
            F.ACCT_STAS: ACCT_STAS[d.status]}
