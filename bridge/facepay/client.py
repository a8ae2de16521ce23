"""Guangdong real-account face-pay: fpy001 status query, mpc004 personal-account refund
(infno tgdupc004), and the face-scan terminal calls (facepay.md; offline.md §7).

fpy001 and tgdupc004 travel in the offline envelope through the offline client (same
config, gateway headers, sign_no, classification).  The terminal calls are those of
bridge/terminal (shared with kiosk identification); FacePayClient keeps its face-pay
names for them.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Mapping, Optional

import httpx

from bridge.calls import CallResult, Outcome, PreparedCall
from bridge.facepay import expcontent as names
from bridge.offline import messages as m
from bridge.offline.client import OfflineClient
from bridge.offline.config import Operator
from bridge.offline.envelope import wrap_input
from bridge.terminal.client import TerminalClient, TerminalConfig
from bridge.terminal.messages import (FaceAuthorisation, FaceAuthRequest, InsuredIdentity,
                                      SettleNotice)

__all__ = ["FacePayClient", "RealAccountQuery", "RealAccountStatus", "PersonalAccountRefund",
           "RefundResult", "TerminalConfig", "FaceAuthRequest", "FaceAuthorisation",
           "InsuredIdentity", "SettleNotice"]


# ============================================================== fpy001 / mpc004

@dataclass(frozen=True, kw_only=True)
class RealAccountQuery(m.Record):
    setl_id: str
    mdtrt_id: str
    psn_no: str

    def to_record(self) -> dict[str, Any]:
        rec = {n: getattr(self, n) for n in names.FPY001_INPUT_FIELDS}
        rec.update(self.extra)
        return rec


def _record(output: Any, infno: str) -> Mapping[str, Any]:
    """The answer's record: `output.data` (names.OUTPUT_NODE, our choice shared with the
    simulator in bridge/facepay/fields.py)."""
    rec = output.get(names.OUTPUT_NODE) if isinstance(output, Mapping) else None
    if not isinstance(rec, Mapping):
        raise ValueError(f"{infno} answer without output.{names.OUTPUT_NODE}")
    return rec


@dataclass(frozen=True)
class RealAccountStatus:
    """fpy001 answer (field names: bridge/facepay/fields.py; `output` keeps the record whole)."""

    output: Mapping[str, Any]
    setl_stas: Optional[str] = None          # "1" valid, "0" cancelled
    acct_stas: Optional[str] = None          # "0" none, "1" deducted, "2" refunded, "3" refund failed
    acct_pay: Optional[Decimal] = None
    platform_seq_id: Optional[str] = None    # UnionPay serial of the deduction
    refund_seq_id: Optional[str] = None
    ref_no: Optional[str] = None             # reference number (merchant/acquirer reconciliation)
    term_seq_no: Optional[str] = None        # channel terminal serial (the same)

    @property
    def settlement_valid(self) -> bool:
        return self.setl_stas == names.SETL_STAS_VALID

    @classmethod
    def from_output(cls, output: Any) -> "RealAccountStatus":
        rec = _record(output, "fpy001")
        if rec.get(names.SETL_STAS) in (None, ""):
            raise ValueError(f"fpy001 answer without {names.SETL_STAS}")

        def text(key: str) -> Optional[str]:
            v = rec.get(key)
            return None if v in (None, "") else str(v)
        return cls(output=rec, setl_stas=text(names.SETL_STAS), acct_stas=text(names.ACCT_STAS),
                   acct_pay=m.to_decimal(rec.get(names.ACCT_PAY)),
                   platform_seq_id=text(names.PLATFORM_SEQ_ID),
                   refund_seq_id=text(names.REFUND_SEQ_ID), ref_no=text(names.REF_NO),
                   term_seq_no=text(names.TERM_SEQ_NO))


@dataclass(frozen=True, kw_only=True)
class PersonalAccountRefund(m.Record):
    setl_id: str
    mdtrt_id: str
    psn_no: str
    psn_acct_refd_amt: Decimal
    app_refd_sn: str                   # one per refund request; reuse it when retrying
    app_refd_time: str                 # yyyyMMddHHmmss (mobilepay.md §5.3)
    orig_platform_seq_id: Optional[str] = None   # optional per facepay.md

    def to_record(self) -> dict[str, Any]:
        if not isinstance(self.psn_acct_refd_amt, Decimal) or self.psn_acct_refd_amt <= 0:
            raise ValueError("refund amount must be a positive Decimal")
        rec: dict[str, Any] = {n: getattr(self, n) for n in names.MPC004_SETTLEMENT_FIELDS}
        rec[names.APP_REFD_SN] = self.app_refd_sn
        rec[names.APP_REFD_TIME] = self.app_refd_time
        rec[names.PSN_ACCT_REFD_AMT] = self.psn_acct_refd_amt
        if self.orig_platform_seq_id:
            rec[names.ORIG_PLATFORM_SEQ_ID] = self.orig_platform_seq_id
        rec.update(self.extra)
        return rec


@dataclass(frozen=True)
class RefundResult:
    ref_status: Optional[str]
    output: Mapping[str, Any]
    acct_refd_amt: Optional[Decimal] = None
    refund_seq_id: Optional[str] = None

    @classmethod
    def from_output(cls, output: Any) -> "RefundResult":
        rec = _record(output, "mpc004")
        status = rec.get(names.REF_STATUS)
        if status in (None, ""):
            raise ValueError(f"mpc004 answer without {names.REF_STATUS}")
        return cls(ref_status=str(status), output=rec,
                   acct_refd_amt=m.to_decimal(rec.get(names.ACCT_REFD_AMT)),
                   refund_seq_id=rec.get(names.REFUND_SEQ_ID) or None)


class FacePayClient:
    def __init__(self, offline: OfflineClient, terminal: Optional[TerminalConfig] = None, *,
                 transport: Optional[httpx.BaseTransport] = None):
        self.offline = offline
        self.terminal = terminal
        self.terminal_client: Optional[TerminalClient] = None
        if terminal is not None:
            self.terminal_client = TerminalClient(terminal, offline.next_msgid, transport=transport)

    def close(self) -> None:
        if self.terminal_client is not None:
            self.terminal_client.close()

    # ------------------------------------------------------------ fpy001

    def prepare_query_real_account(self, req: RealAccountQuery, *,
                                   operator: Optional[Operator] = None) -> PreparedCall:
        infno = names.FPY001_INFNO
        record = req.to_record()
        return self.offline.prepare(infno, wrap_input(self.offline.config, infno, record),
                                    parse=RealAccountStatus.from_output, operator=operator,
                                    insuplc_admdvs=req.insuplc_admdvs, effect=False,
                                    keys_from=record)

    def query_real_account(self, req: RealAccountQuery, **kw) -> CallResult[RealAccountStatus]:
        return self.offline.call(self.prepare_query_real_account, req, **kw)

    # ------------------------------------------------------------ mpc004 / tgdupc004

    def prepare_refund_personal_account(self, req: PersonalAccountRefund, *,
                                        operator: Optional[Operator] = None) -> PreparedCall:
        url = self.offline.config.union_refund_url
        if not url:
            raise ValueError("union_refund_url is not configured (mpc004 has its own path)")
        infno = names.MPC004_INFNO
        record = req.to_record()
        prepared = self.offline.prepare(infno, wrap_input(self.offline.config, infno, record),
                                        parse=RefundResult.from_output, operator=operator,
                                        insuplc_admdvs=req.insuplc_admdvs, effect=True, url=url,
                                        keys_from=record)
        inner = prepared.decode

        def decode(status: int, raw: bytes) -> CallResult[RefundResult]:
            res = inner(status, raw)
            status_text = res.data.ref_status if res.ok and res.data else None   # SUCC when OK
            # 6203 semantics (mobilepay.md §5.3): FAIL = not refunded, EXP = unknown.
            if status_text == "FAIL":
                return dataclasses.replace(res, outcome=Outcome.REJECTED, code="FAIL",
                                           message="refund failed (refStatus FAIL)")
            if status_text is not None and status_text != "SUCC":
                return dataclasses.replace(res, outcome=Outcome.UNKNOWN, code=status_text,
                                           message=f"refund state {status_text}")
            return res

        keys = dict(prepared.keys, appRefdSn=req.app_refd_sn)
        return dataclasses.replace(prepared, decode=decode, keys=keys)

    def refund_personal_account(self, req: PersonalAccountRefund, **kw
                                ) -> CallResult[RefundResult]:
        return self.offline.call(self.prepare_refund_personal_account, req, **kw)

    # ------------------------------------------------------------ terminal

    def _terminal(self) -> TerminalClient:
        if self.terminal_client is None:
            raise ValueError("no TerminalConfig")
        return self.terminal_client

    def prepare_face_authorise(self, req: FaceAuthRequest, *, out_biz_no: Optional[str] = None
                               ) -> PreparedCall:
        return self._terminal().prepare_face_authorise(req, out_biz_no=out_biz_no)

    def prepare_check_authorisation(self, req: FaceAuthRequest, *, auth_no: str,
                                    out_biz_no: str) -> PreparedCall:
        return self._terminal().prepare_check_authorisation(req, auth_no=auth_no,
                                                            out_biz_no=out_biz_no)

    def prepare_notify_terminal(self, notice: SettleNotice) -> PreparedCall:
        return self._terminal().prepare_notify(notice)

    def face_authorise(self, req: FaceAuthRequest, **kw) -> CallResult[FaceAuthorisation]:
        return self.send_terminal(self.prepare_face_authorise(req, **kw))

    def check_authorisation(self, req: FaceAuthRequest, **kw) -> CallResult[InsuredIdentity]:
        return self.send_terminal(self.prepare_check_authorisation(req, **kw))

    def identify_by_face(self, req: FaceAuthRequest) -> CallResult:
        """Face authorisation -> insured identity (offline.md §7.3 steps 1-2)."""
        return self._terminal().identify_by_face(req)

    def notify_terminal(self, notice: SettleNotice) -> CallResult:
        return self.send_terminal(self.prepare_notify_terminal(notice))

    def send_terminal(self, prepared: PreparedCall) -> CallResult:
        return self._terminal().send(prepared)
