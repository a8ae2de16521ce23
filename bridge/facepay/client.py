"""Guangdong real-account face-pay: fpy001 status query, mpc004 personal-account refund
(infno tgdupc004), and the face-scan terminal calls (facepay.md; offline.md §7).

fpy001 and tgdupc004 travel in the offline envelope through the offline client (same
config, gateway headers, sign_no, classification).  The terminal is reached through
the national e-credential library, `NationEcTrans(url, inJson, outBuf)` (offline.md
§7.1, NMG DllHelper.cs); we POST the library's JSON request wrapper
``{orgId, transType, data, extra}`` to that same URL and read its reply wrapper
``{code, message, data: <JSON string>}`` - the wrapper shape is from
newtouch-cloud/openhis WinServiceAPI/NeiMengGuYiBaoApp/Models/Input/NationECCodeDll/InputBasePost.cs;
that the URL accepts it over plain HTTP without the DLL is our assumption.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Mapping, Optional

import httpx

from bridge import refusals
from bridge.calls import CallResult, Outcome, PreparedCall
from bridge.facepay import expcontent as names
from bridge.masking import mask_value
from bridge.offline import messages as m
from bridge.offline.client import OfflineClient
from bridge.offline.config import Operator
from bridge.offline.envelope import dumps, loads, wrap_input


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
                   refund_seq_id=text(names.REFUND_SEQ_ID))


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


# ============================================================== face-scan terminal

@dataclass(frozen=True)
class TerminalConfig:
    url: str                      # the URL handed to NationEcTrans
    org_id: str                   # the institution code (fixmedins_code)
    connect_timeout: float = 5.0
    # cn.nhsa.ec.auth returns when the patient has scanned; allow for a person at a kiosk.
    read_timeout: float = 120.0


@dataclass(frozen=True)
class FaceAuthRequest:            # cn.nhsa.ec.auth / cn.nhsa.auth.check input (offline.md §7.2)
    businessType: str             # 5-char usage code, e.g. 01101
    operatorId: str
    operatorName: str
    officeId: str
    officeName: str
    extData: Optional[Mapping[str, Any]] = None


@dataclass(frozen=True)
class FaceAuthorisation:
    authNo: str
    outBizNo: Optional[str] = None


@dataclass(frozen=True)
class InsuredIdentity:            # cn.nhsa.auth.check output (offline.md §7.2)
    authNo: Optional[str]
    idNo: str
    idType: Optional[str] = None
    userName: Optional[str] = None
    ecToken: Optional[str] = None
    insuOrg: Optional[str] = None  # insured division -> envelope insuplc_admdvs (§7.3)
    ecIndexNo: Optional[str] = None
    gender: Optional[str] = None
    birthday: Optional[str] = None
    nationality: Optional[str] = None


@dataclass(frozen=True, kw_only=True)
class SettleNotice:
    """cn.nhsa.settle.notify input (offline.md §7.2).  Needed only when the terminal did
    not collect the payment itself.  Amount fields apply to SUCCESS."""

    outBizNo: str                 # the serial of the face authorisation
    medicalSettleState: str       # SUCCESS / FAIL
    authNo: str
    operatorId: str
    operatorName: str
    totalFee: Decimal
    bizType: str                  # register / settle
    idNo: str
    userName: str
    setlTime: str
    hospitalName: str
    officeId: str
    officeName: str
    doctorName: str
    medicalSettleNo: Optional[str] = None
    ownAmt: Optional[Decimal] = None
    hifAmt: Optional[Decimal] = None
    acctAmt: Optional[Decimal] = None
    hifpAmt: Optional[Decimal] = None
    hifmiAmt: Optional[Decimal] = None
    cvlservAmt: Optional[Decimal] = None
    maAmt: Optional[Decimal] = None
    hosPreAmt: Optional[Decimal] = None
    medOverLmtAmt: Optional[Decimal] = None
    mafAmt: Optional[Decimal] = None
    cvlservDedcAmt: Optional[Decimal] = None
    balance: Optional[Decimal] = None
    drugList: Optional[str] = None   # JSON string of items (ITEM_NO, ITEMNAME, ...)
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_data(self) -> dict[str, Any]:
        if self.medicalSettleState not in ("SUCCESS", "FAIL"):
            raise ValueError("medicalSettleState must be SUCCESS or FAIL")
        if self.medicalSettleState == "SUCCESS" and not self.medicalSettleNo:
            raise ValueError("a SUCCESS notice needs medicalSettleNo")
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
               if f.name != "extra" and getattr(self, f.name) is not None}
        out.update(self.extra)
        return out


def _identity(data: Any) -> InsuredIdentity:
    if not isinstance(data, Mapping) or not data.get("idNo"):
        raise ValueError("auth.check answer without idNo")
    known = {f.name for f in dataclasses.fields(InsuredIdentity)}
    return InsuredIdentity(**{k: data.get(k) for k in known if k in data or k == "authNo"})


def _authorisation(data: Any) -> FaceAuthorisation:
    if not isinstance(data, Mapping) or not data.get("authNo"):
        raise ValueError("ec.auth answer without authNo")
    return FaceAuthorisation(authNo=str(data["authNo"]), outBizNo=data.get("outBizNo"))


class FacePayClient:
    def __init__(self, offline: OfflineClient, terminal: Optional[TerminalConfig] = None, *,
                 transport: Optional[httpx.BaseTransport] = None):
        self.offline = offline
        self.terminal = terminal
        self._http = None
        if terminal is not None:
            self._http = httpx.Client(
                timeout=httpx.Timeout(connect=terminal.connect_timeout,
                                      read=terminal.read_timeout, write=10.0, pool=5.0),
                limits=httpx.Limits(max_connections=4), transport=transport)

    def close(self) -> None:
        if self._http is not None:
            self._http.close()

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

    def _prepare_terminal(self, trans_type: str, data: Mapping[str, Any], parse,
                          out_biz_no: str) -> PreparedCall:
        if self.terminal is None:
            raise ValueError("no TerminalConfig")
        msg_id = self.offline.next_msgid()
        payload = {"orgId": self.terminal.org_id, "transType": trans_type,
                   "data": {"orgId": self.terminal.org_id, **data}, "extra": ""}

        def decode(status: int, raw: bytes) -> CallResult:
            return _decode_terminal(trans_type, msg_id, status, raw, parse)

        return PreparedCall(interface=trans_type, msg_id=msg_id, url=self.terminal.url,
                            body=dumps(payload),
                            headers={"Content-Type": "application/json;charset=utf-8"},
                            masked_request=dumps(mask_value(payload)).decode("utf-8"),
                            decode=decode, keys={"outBizNo": out_biz_no})

    def prepare_face_authorise(self, req: FaceAuthRequest, *, out_biz_no: Optional[str] = None
                               ) -> PreparedCall:
        """cn.nhsa.ec.auth: start the face scan; answers authNo.  `outBizNo` must be
        unique and is reused for the check and the settlement notice (§7.2)."""
        out_biz_no = out_biz_no or self.offline.next_msgid()
        data = {**_auth_data(req), "outBizNo": out_biz_no}
        return self._prepare_terminal("cn.nhsa.ec.auth", data, _authorisation, out_biz_no)

    def prepare_check_authorisation(self, req: FaceAuthRequest, *, auth_no: str,
                                    out_biz_no: str) -> PreparedCall:
        """cn.nhsa.auth.check: exchange authNo for the insured identity."""
        data = {**_auth_data(req), "outBizNo": out_biz_no, "authNo": auth_no}
        return self._prepare_terminal("cn.nhsa.auth.check", data, _identity, out_biz_no)

    def prepare_notify_terminal(self, notice: SettleNotice) -> PreparedCall:
        return self._prepare_terminal("cn.nhsa.settle.notify", notice.to_data(),
                                      lambda d: d, notice.outBizNo)

    def face_authorise(self, req: FaceAuthRequest, **kw) -> CallResult[FaceAuthorisation]:
        return self.send_terminal(self.prepare_face_authorise(req, **kw))

    def check_authorisation(self, req: FaceAuthRequest, **kw) -> CallResult[InsuredIdentity]:
        return self.send_terminal(self.prepare_check_authorisation(req, **kw))

    def identify_by_face(self, req: FaceAuthRequest) -> CallResult:
        """Face authorisation -> insured identity (offline.md §7.3 steps 1-2), both under
        one outBizNo.  Returns the failed first step, or the identity result."""
        out_biz_no = self.offline.next_msgid()
        auth = self.face_authorise(req, out_biz_no=out_biz_no)
        if not auth.ok:
            return auth
        return self.check_authorisation(req, auth_no=auth.data.authNo, out_biz_no=out_biz_no)

    def notify_terminal(self, notice: SettleNotice) -> CallResult:
        return self.send_terminal(self.prepare_notify_terminal(notice))

    def send_terminal(self, prepared: PreparedCall) -> CallResult:
        assert self._http is not None
        try:
            resp = self._http.post(prepared.url, content=prepared.body, headers=prepared.headers)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            return CallResult(outcome=Outcome.NOT_SENT, interface=prepared.interface,
                              msg_id=prepared.msg_id, message=f"not sent: {type(exc).__name__}")
        except httpx.HTTPError as exc:
            return CallResult(outcome=Outcome.UNKNOWN, interface=prepared.interface,
                              msg_id=prepared.msg_id,
                              message=f"transport error after sending: {type(exc).__name__}")
        return prepared.decode(resp.status_code, resp.content)


def _auth_data(req: FaceAuthRequest) -> dict[str, Any]:
    data = {"businessType": req.businessType, "operatorId": req.operatorId,
            "operatorName": req.operatorName, "officeId": req.officeId,
            "officeName": req.officeName}
    if req.extData is not None:
        data["extData"] = dict(req.extData)
    return data


def _decode_terminal(trans_type: str, msg_id: str, status: int, raw: bytes, parse) -> CallResult:
    def result(outcome, *, code=None, message=None, data=None, body=None, transient=False):
        text = dumps(mask_value(body)).decode("utf-8") if body is not None else None
        return CallResult(outcome=outcome, interface=trans_type, msg_id=msg_id, data=data,
                          code=code, message=message, http_status=status, response_text=text,
                          raw=body, transient=transient)

    if status >= 500:
        return result(Outcome.UNKNOWN, message=f"HTTP {status}")
    if status == refusals.RATE_LIMITED_STATUS:
        return result(Outcome.NOT_SENT, message=f"not sent: HTTP {status} (rate limited)")
    try:
        body = loads(raw)
    except (ValueError, UnicodeDecodeError):
        return result(Outcome.UNKNOWN, message=f"unparseable answer (HTTP {status})")
    if not isinstance(body, dict) or "code" not in body:
        return result(Outcome.UNKNOWN, message="answer without code")
    code = str(body["code"]).strip()
    if code != "0":
        # The terminal calls move no money; a refusal means nothing was done.
        return result(Outcome.REJECTED, code=code, message=body.get("message"), body=body,
                      transient=refusals.is_transient(body.get("message")))
    data = body.get("data")
    try:
        if isinstance(data, str):       # the library returns `data` as a JSON string (§7.1)
            data = loads(data) if data.strip() else {}
        typed = parse(data)
    except (ValueError, TypeError) as exc:
        return result(Outcome.UNKNOWN, code=code, message=f"malformed data: {exc}", body=body)
    return result(Outcome.OK, code=code, message=body.get("message"), data=typed,
                  body=dict(body, data=data))
