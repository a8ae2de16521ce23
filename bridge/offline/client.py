"""httpx client of the offline two-designated interfaces (digest offline.md).

Two steps per call (bridge/calls.py): `prepare_<call>` builds the envelope and the
gateway headers without I/O; `send` posts it and classifies the answer.

Classification beyond the contract's basics (bridge/calls.py; transient refusals are
told from verdicts by the one table in bridge/refusals.py):
* Connection refused / connect timeout / no pooled connection: nothing left the
  machine -> NOT_SENT: the flow may safely send it again (a fresh prepare), and must
  not start a reversal for a message the platform never saw.  Anything after the
  connection is up (write/read errors, timeouts, resets) is UNKNOWN.
* HTTP 429 (RFC 6585: refused for its rate, not processed) -> NOT_SENT.
* ``infcode`` 0 (number or string, §3) -> OK; any other infcode -> REJECTED with that
  code and `err_msg`, transient when the text says busy / rate-limited / signature;
  UNKNOWN instead when a call that changes state is answered "in progress / result
  unknown" (it may still be booked).
* Gateway wrapper ``{"code","message","data"}`` without infcode (§1.4): code 0 is
  unwrapped.  Another code is the gateway's own refusal: NOT_SENT when it is for a
  check the gateway makes before forwarding (signature, paasid, rate - refusals.py);
  otherwise REJECTED (transient) for calls with no remote effect and UNKNOWN for calls
  that change state (a gateway timeout may come after forwarding).
* A settlement answer whose money breaks a §5.8 sum rule is never OK: UNKNOWN with
  code ``SUM_MISMATCH`` when the call settles or cancels (money may have moved; the
  flow must query/reverse), REJECTED ``SUM_MISMATCH`` for a trial (2206/2303/2260
  setl_flag 0), which moved nothing.  The raw answer is kept for the journal.
* Offline answers are not signed by the platform (§1.3: cainfo is not meaningful),
  so there is no response signature to verify.
"""
from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, TypeVar, Union

import httpx

from bridge import refusals
from bridge.calls import CallResult, Outcome, PreparedCall
from bridge.offline.expcontent import ACCOUNT_FLAG_INFNOS, EXP_CONTENT_INFNOS, ExpContentTerms
from bridge.masking import mask_value
from bridge.offline import messages as m
from bridge.offline.config import OfflineConfig, Operator
from bridge.offline.envelope import (MsgIdGenerator, build_envelope, dumps, loads, tif_headers,
                                     wrap_input)
from bridge.offline.signin import SignIn
from bridge.tls import client_context

T = TypeVar("T")

# Record fields worth keeping as journal correlation keys.
KEY_FIELDS = ("psn_no", "mdtrt_id", "setl_id", "chrg_bchno", "ipt_otp_no", "omsgid", "oinfno",
              "file_qury_no")

SUM_MISMATCH = "SUM_MISMATCH"


class SignInRequired(RuntimeError):
    """prepare_* was called for an operator without a valid sign_no (call ensure first)."""


class OfflineClient:
    def __init__(self, config: OfflineConfig, *, face_pay: Optional[ExpContentTerms] = None,
                 transport: Optional[httpx.BaseTransport] = None,
                 sign_in_request: Optional[Callable[[Operator], m.SignInRequest]] = None):
        """`face_pay`: the institution's face-pay terms (bridge/facepay/expcontent.py
        FacePayTerms); when set, face-pay mode is on by default for the calls that
        carry expContent (each prepare can switch it off).
        `sign_in_request(operator)`: builds the 9001 input (mac, ip) for automatic
        sign-ins; without it sign_in() must be called explicitly."""
        self.config = config
        self.face_pay = face_pay
        self._sign_in_request = sign_in_request
        self._operators: dict[str, Operator] = {}
        self._http = httpx.Client(
            timeout=httpx.Timeout(connect=config.connect_timeout, read=config.read_timeout,
                                  write=config.write_timeout, pool=config.pool_timeout),
            limits=httpx.Limits(max_connections=config.max_connections,
                                max_keepalive_connections=config.max_connections),
            transport=transport, verify=client_context())
        self._msgids = MsgIdGenerator(config.fixmedins_code, node=config.msgid_node,
                                      lock_dir=config.msgid_lock_dir)
        self.signin = SignIn(self._auto_sign_in, max_age_seconds=config.sign_in_max_age_seconds)

    def next_msgid(self) -> str:
        """A fresh collision-free id (also used as the terminal's outBizNo)."""
        return self._msgids.next()

    def close(self) -> None:
        self._http.close()
        self._msgids.close()

    def __enter__(self) -> "OfflineClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------ building

    def operator(self, operator: Optional[Operator] = None) -> Operator:
        """The operator a call runs as: the given one, else the configured default.
        Remembered, so that the 9001 job keeps every operator in use signed in."""
        op = operator or self.config.default_operator
        if op is None:
            raise ValueError("no operator given and no default_operator configured")
        self._operators[op.opter] = op
        return op

    def forget_operator(self, opter: str) -> None:
        """The platform refused this operator's 9001: the sign-in job stops renewing it."""
        d = self.config.default_operator
        if not d or opter != d.opter:
            self._operators.pop(opter, None)

    def operators(self) -> list[Operator]:
        """Every operator that has made (or prepared) a call since start, default first."""
        d = self.config.default_operator
        return ([d] if d else []) + [o for k, o in list(self._operators.items()) if not d or k != d.opter]

    def _sign_no(self, op: Operator, infno: str) -> Optional[str]:
        if infno == "9001":
            return None
        sign_no = self.signin.current(op.opter)
        if sign_no is None and self.config.require_sign_no:
            raise SignInRequired(f"operator {op.opter} has no valid 9001 sign-in")
        return sign_no

    def _face_pay(self, infno: str, record: dict[str, Any], face_pay: Optional[bool]) -> None:
        use = (self.face_pay is not None) if face_pay is None else face_pay
        if not use or infno not in EXP_CONTENT_INFNOS:
            return
        if self.face_pay is None:
            raise ValueError("face-pay requested but no FacePayTerms configured")
        record[self.config.exp_content_field] = self.face_pay.exp_content(
            as_string=self.config.exp_content_as_string)
        if infno in ACCOUNT_FLAG_INFNOS:
            if record.get("acct_used_flag") == "0":
                # The patient chose not to use the account: that is a non-face-pay settlement.
                raise ValueError("face-pay mode needs acct_used_flag 1; switch face-pay off")
            record["acct_used_flag"] = "1"

    def prepare(self, infno: str, input: Mapping[str, Any], *,
                parse: Callable[[Any], T], operator: Optional[Operator] = None,
                insuplc_admdvs: Optional[str] = None, effect: bool = True,
                url: Optional[str] = None,
                check: Optional[Callable[[T], list[str]]] = None,
                keys_from: Optional[Mapping[str, Any]] = None) -> PreparedCall:
        """Build and sign one message.  `parse(output)` makes the typed answer (raises
        ValueError when it is malformed); `check(typed)` lists rule violations;
        `effect` says whether the call changes state at the platform."""
        op = self.operator(operator)
        sign_no = self._sign_no(op, infno)
        msgid = self._msgids.next()
        env = build_envelope(self.config, infno=infno, msgid=msgid, operator=op, sign_no=sign_no,
                             input=input, insuplc_admdvs=insuplc_admdvs)
        body = dumps(env)
        headers = tif_headers(self.config.paas_id, self.config.paas_secret)
        keys = {k: str(v) for k, v in (keys_from or {}).items() if k in KEY_FIELDS and v}
        masked = dumps(mask_value(env)).decode("utf-8")

        def decode(status: int, raw: bytes) -> CallResult[T]:
            return self._decode(infno, msgid, status, raw, parse=parse, effect=effect,
                                check=check, opter=op.opter, sign_no=sign_no)

        return PreparedCall(interface=infno, msg_id=msgid, url=url or self.config.url_for(infno),
                            body=body, headers=headers, masked_request=masked, decode=decode,
                            keys=keys)

    def _prepare_record(self, infno: str, req: m.Record, *, parse, operator, effect=True,
                        check=None, face_pay: Optional[bool] = None,
                        url: Optional[str] = None) -> PreparedCall:
        record = req.to_record()
        self._face_pay(infno, record, face_pay)
        return self.prepare(infno, wrap_input(self.config, infno, record), parse=parse,
                            operator=operator, insuplc_admdvs=req.insuplc_admdvs, effect=effect,
                            check=check, keys_from=record, url=url)

    # ------------------------------------------------------------ classifying

    def _decode(self, infno: str, msgid: str, status: int, raw: bytes, *, parse, effect: bool,
                check, opter: str, sign_no: Optional[str]) -> CallResult:
        def result(outcome: Outcome, *, code=None, message=None, data=None, body=None,
                   transient=False):
            text = None
            if body is not None:
                text = dumps(mask_value(body)).decode("utf-8")
            elif raw:
                text = mask_value(raw[:2000].decode("utf-8", "replace"))
            return CallResult(outcome=outcome, interface=infno, msg_id=msgid, data=data,
                              code=code, message=message, http_status=status,
                              response_text=text, raw=body, transient=transient)

        if status >= 500:
            return result(Outcome.UNKNOWN, message=f"HTTP {status}")
        if status == refusals.RATE_LIMITED_STATUS:
            return result(Outcome.NOT_SENT, message=f"not sent: HTTP {status} (rate limited)")
        try:
            body = loads(raw)
        except (ValueError, UnicodeDecodeError):
            return result(Outcome.UNKNOWN, message=f"unparseable answer (HTTP {status})")
        if not isinstance(body, dict):
            return result(Outcome.UNKNOWN, message="answer is not a JSON object")
        if "infcode" not in body:
            if "code" not in body:
                return result(Outcome.UNKNOWN, message="answer without infcode", body=body)
            # Gateway wrapper (§1.4)
            if str(body.get("code")) != "0":
                said = f"gateway: {body.get('message')}"
                if refusals.refused_before_forwarding(str(body.get("message") or "")):
                    # Checked before forwarding (refusals.py): the core never saw it.
                    return result(Outcome.NOT_SENT, code=str(body.get("code")),
                                  message=f"not sent: {said}", body=body)
                # Not a verdict of the core; after forwarding it may have acted.
                return result(Outcome.UNKNOWN if effect else Outcome.REJECTED,
                              code=str(body.get("code")), message=said, body=body,
                              transient=not effect)
            inner = body.get("data")
            if isinstance(inner, str):
                try:
                    inner = loads(inner)
                except ValueError:
                    inner = None
            if not isinstance(inner, dict) or "infcode" not in inner:
                return result(Outcome.UNKNOWN, message="gateway wrapper without a business answer",
                              body=body)
            body = inner
        infcode = str(body.get("infcode")).strip()
        if infcode != "0":
            message = body.get("err_msg")
            if message and any(k in str(message) for k in self.config.sign_in_invalid_markers):
                self.signin.invalidate(opter, sign_no)
            if effect and refusals.still_processing(message):
                # "being processed / result unknown": it may still be booked.
                return result(Outcome.UNKNOWN, code=infcode, message=message, body=body)
            return result(Outcome.REJECTED, code=infcode, message=message, body=body,
                          transient=refusals.is_transient(message))
        if not 200 <= status < 300:
            return result(Outcome.UNKNOWN, code="0", message=f"infcode 0 with HTTP {status}",
                          body=body)
        output = body.get("output")
        if output == "null":          # seen in practice and normalised by one bridge (§9.1)
            output = None
        try:
            data = parse(output)
        except (ValueError, TypeError, KeyError) as exc:
            return result(Outcome.UNKNOWN, code="0", message=f"malformed output: {exc}", body=body)
        problems = check(data) if check else []
        if problems:
            return result(Outcome.UNKNOWN if effect else Outcome.REJECTED, code=SUM_MISMATCH,
                          message="; ".join(problems), data=data, body=body)
        return result(Outcome.OK, code="0", message=body.get("warn_msg"), data=data, body=body)

    # ------------------------------------------------------------ sending

    def send(self, prepared: PreparedCall) -> CallResult:
        # Fresh gateway timestamp/nonce at send time: a prepared call may wait in the
        # journal, and no source states the gateway's allowed clock skew (§1.2).
        headers = dict(prepared.headers)
        if "x-tif-paasid" in headers:
            headers.update(tif_headers(self.config.paas_id, self.config.paas_secret))
        try:
            response = self._http.post(prepared.url, content=prepared.body, headers=headers)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout,
                httpx.UnsupportedProtocol) as exc:
            return CallResult(outcome=Outcome.NOT_SENT, interface=prepared.interface,
                              msg_id=prepared.msg_id,
                              message=f"not sent: {type(exc).__name__}: {exc}")
        except httpx.TimeoutException as exc:
            return CallResult(outcome=Outcome.UNKNOWN, interface=prepared.interface,
                              msg_id=prepared.msg_id, message=f"timeout: {type(exc).__name__}")
        except httpx.HTTPError as exc:
            return CallResult(outcome=Outcome.UNKNOWN, interface=prepared.interface,
                              msg_id=prepared.msg_id,
                              message=f"transport error after sending: {type(exc).__name__}: {exc}")
        return prepared.decode(response.status_code, response.content)

    def ensure_signed_in(self, operator: Optional[Operator] = None) -> Optional[CallResult]:
        """Sign the operator in (9001) unless already signed in today.  None when
        signed in (or sign-in is not required); else the failed 9001 result.  Flows
        call this before prepare_*: a prepared call carries the sign_no."""
        op = self.operator(operator)
        if not (self.config.require_sign_no or self._sign_in_request is not None):
            return None
        sign_no, failure = self.signin.ensure(op.opter)
        if sign_no is None and self.config.require_sign_no:
            return failure
        return None

    def call(self, prepare: Callable[..., PreparedCall], request: Any, *,
             operator: Optional[Operator] = None, **kw: Any) -> CallResult:
        """Sign in when needed, prepare, send; once more after a fresh sign-in if the
        platform says the sign-in is invalid (that answer is a REJECTED: nothing happened)."""
        op = self.operator(operator)
        for attempt in (1, 2):
            if self.config.require_sign_no or self._sign_in_request is not None:
                sign_no, failure = self.signin.ensure(op.opter)
                if sign_no is None and self.config.require_sign_no:
                    assert failure is not None
                    return CallResult(outcome=Outcome.NOT_SENT, interface="9001",
                                      msg_id=failure.msg_id,
                                      message=f"9001 sign-in failed ({failure.outcome.value} "
                                              f"{failure.code}: {failure.message}); call not sent")
            res = self.send(prepare(request, operator=op, **kw))
            if (attempt == 1 and res.outcome is Outcome.REJECTED and res.message
                    and any(k in res.message for k in self.config.sign_in_invalid_markers)):
                continue
            return res
        return res

    # ------------------------------------------------------------ 9001

    def prepare_sign_in(self, req: m.SignInRequest, *, operator: Optional[Operator] = None
                        ) -> PreparedCall:
        record = req.to_record()
        if self.config.gz_sign_in_userid:
            # Guangzhou variant (§4): password = MD5(currenttime + password).
            now = time.strftime("%Y%m%d%H%M%S")
            record.update(userid=self.config.gz_sign_in_userid, currenttime=now,
                          password=hashlib.md5(
                              (now + (self.config.gz_sign_in_password or "")).encode()
                          ).hexdigest())
        return self.prepare("9001", wrap_input(self.config, "9001", record),
                            parse=m.SignInResult.from_output, operator=operator, effect=False)

    def sign_in(self, req: m.SignInRequest, *, operator: Optional[Operator] = None
                ) -> CallResult[m.SignInResult]:
        """Explicit 9001; on success the sign_no is held for the operator."""
        op = self.operator(operator)
        res = self.send(self.prepare_sign_in(req, operator=op))
        if res.ok:
            self.signin.accept(op.opter, res.data.sign_no)
        return res

    def _auto_sign_in(self, opter: str) -> CallResult[m.SignInResult]:
        op = self._operators[opter]
        if self._sign_in_request is None:
            return CallResult(outcome=Outcome.NOT_SENT, interface="9001", msg_id="",
                              message="not sent: no sign_in_request configured")
        return self.send(self.prepare_sign_in(self._sign_in_request(op), operator=op))

    # ------------------------------------------------------------ 1101, 22xx

    def prepare_person_info(self, req: m.PersonInfoRequest, *, operator=None) -> PreparedCall:
        return self._prepare_record("1101", req, parse=m.PersonInfo.from_output,
                                    operator=operator, effect=False)

    def prepare_register(self, req: m.RegisterRequest, *, operator=None) -> PreparedCall:
        return self._prepare_record("2201", req, parse=m.Registration.from_output,
                                    operator=operator)

    def prepare_cancel_register(self, req: m.CancelRegisterRequest, *, operator=None
                                ) -> PreparedCall:
        return self._prepare_record("2202", req, parse=_no_output, operator=operator)

    def prepare_upload_visit(self, req: m.VisitRequest, *, operator=None) -> PreparedCall:
        record = req.to_record()
        payload = {"mdtrtinfo": record, "diseinfo": [d.to_record() for d in req.diseinfo]}
        return self.prepare("2203", payload, parse=_no_output, operator=operator,
                            insuplc_admdvs=req.insuplc_admdvs, keys_from=record)

    def _prepare_fees(self, infno: str, rows: list[m.FeeDetail], required: tuple[str, ...],
                      insuplc_admdvs: Optional[str], operator) -> PreparedCall:
        if not rows:
            raise ValueError("no fee details")
        records = [r.to_record() for r in rows]
        for rec in records:
            missing = [f for f in required if not rec.get(f)]
            if missing:
                raise ValueError(f"{infno} fee detail {rec['feedetl_sn']} lacks {missing}")
        return self.prepare(infno, {"feedetail": records},
                            parse=m.FeeDetailResult.list_from_output, operator=operator,
                            insuplc_admdvs=insuplc_admdvs, keys_from=records[0])

    def prepare_upload_fee_details(self, rows: list[m.FeeDetail], *,
                                   insuplc_admdvs: Optional[str] = None, operator=None
                                   ) -> PreparedCall:
        return self._prepare_fees("2204", rows, ("chrg_bchno", "rx_circ_flag"), insuplc_admdvs,
                                  operator)

    def prepare_revoke_fee_details(self, req: m.RevokeFeeDetailsRequest, *, operator=None
                                   ) -> PreparedCall:
        return self._prepare_record("2205", req, parse=_no_output, operator=operator)

    def prepare_pre_settle_outpatient(self, req: m.OutpatientSettleRequest, *, operator=None,
                                      face_pay: Optional[bool] = None) -> PreparedCall:
        return self._prepare_record("2206", req, parse=m.Settlement.from_output,
                                    operator=operator, effect=False, check=_settled_sums,
                                    face_pay=face_pay)

    def prepare_settle_outpatient(self, req: m.OutpatientSettleRequest, *, operator=None,
                                  face_pay: Optional[bool] = None) -> PreparedCall:
        return self._prepare_record("2207", req, parse=_settlement_with_id, operator=operator,
                                    check=_settled_sums, face_pay=face_pay)

    def prepare_cancel_outpatient_settlement(self, req: m.CancelSettlementRequest, *,
                                             operator=None, face_pay: Optional[bool] = None
                                             ) -> PreparedCall:
        return self._prepare_record("2208", req, parse=m.Settlement.from_output,
                                    operator=operator, check=_cancel_sums, face_pay=face_pay)

    # ------------------------------------------------------------ 23xx inpatient

    def prepare_upload_inpatient_fees(self, rows: list[m.FeeDetail], *,
                                      insuplc_admdvs: Optional[str] = None, operator=None
                                      ) -> PreparedCall:
        return self._prepare_fees("2301", rows, ("med_type",), insuplc_admdvs, operator)

    def prepare_revoke_inpatient_fees(self, req: m.RevokeInpatientFeesRequest, *, operator=None
                                      ) -> PreparedCall:
        return self._prepare_record("2302", req, parse=_no_output, operator=operator)

    def prepare_pre_settle_inpatient(self, req: m.InpatientSettleRequest, *, operator=None,
                                     face_pay: Optional[bool] = None) -> PreparedCall:
        return self._prepare_record("2303", req, parse=m.Settlement.from_output,
                                    operator=operator, effect=False, check=_settled_sums,
                                    face_pay=face_pay)

    def prepare_settle_inpatient(self, req: m.InpatientSettleRequest, *, operator=None,
                                 face_pay: Optional[bool] = None) -> PreparedCall:
        return self._prepare_record("2304", req, parse=_settlement_with_id, operator=operator,
                                    check=_settled_sums, face_pay=face_pay)

    def prepare_cancel_inpatient_settlement(self, req: m.CancelSettlementRequest, *,
                                            operator=None, face_pay: Optional[bool] = None
                                            ) -> PreparedCall:
        return self._prepare_record("2305", req, parse=m.Settlement.from_output,
                                    operator=operator, check=_cancel_sums, face_pay=face_pay)

    # ------------------------------------------------------------ 2260 / 2261 (Guangdong)

    def prepare_document_settle(self, req: m.DocumentSettleRequest, *, operator=None,
                                face_pay: Optional[bool] = None) -> PreparedCall:
        if req.setl_flag not in ("0", "1"):
            raise ValueError("2260 setl_flag must be 0 (trial) or 1 (settle)")
        record = req.to_record()
        self._face_pay("2260", record, face_pay)
        # diseinfo and feedetail are both {"rows": [...]} objects in the Guangdong models
        # (IBORN_HIS_ALL API.GZSI RequestGzsiModel2260.cs, Foshan copy); offline.md §5.11
        # gives the rows object only for feedetail.
        payload: dict[str, Any] = {"mdtrtinfo": record, "diseinfo": {"rows": list(req.diseinfo)},
                                   "feedetail": {"rows": list(req.feedetail_rows)}}
        if req.agnterinfo is not None:
            payload["agnterinfo"] = dict(req.agnterinfo)
        trial = req.setl_flag == "0"
        return self.prepare("2260", payload,
                            parse=m.Settlement.from_output if trial else _settlement_with_id,
                            operator=operator, insuplc_admdvs=req.insuplc_admdvs,
                            effect=not trial, check=_settled_sums, keys_from=record)

    def prepare_cancel_document_settle(self, req: m.CancelSettlementRequest, *, operator=None,
                                       face_pay: Optional[bool] = None) -> PreparedCall:
        return self._prepare_record("2261", req, parse=m.Settlement.from_output,
                                    operator=operator, check=_cancel_sums, face_pay=face_pay)

    # ------------------------------------------------------------ 2601, 3201, 3202

    def prepare_reverse(self, req: m.ReversalRequest, *, operator=None) -> PreparedCall:
        return self._prepare_record("2601", req, parse=_no_output, operator=operator)

    def prepare_reconcile_totals(self, req: m.ReconcileTotalsRequest, *, operator=None
                                 ) -> PreparedCall:
        if (req.setl_optins is None) == (req.clr_optins is None):
            raise ValueError("3201 needs exactly one of setl_optins (national) / clr_optins (GZ)")
        if req.acct_pay is None and req.cash_payamt is None:
            raise ValueError("3201 needs acct_pay (national) or cash_payamt (GZ)")
        return self._prepare_record("3201", req, parse=m.ReconcileResult.from_output,
                                    operator=operator, effect=False)

    def prepare_reconcile_details(self, req: m.ReconcileDetailsRequest, *, operator=None
                                  ) -> PreparedCall:
        return self._prepare_record("3202", req, parse=m.DetailReconcileResult.from_output,
                                    operator=operator, effect=False)

    # ------------------------------------------------------------ 2401 / 2404 admission

    def prepare_admit(self, req: m.AdmissionRequest, *, operator=None) -> PreparedCall:
        """2401 入院办理: `mdtrtinfo` + `diseinfo[]`, the same node names in every source
        (CQ Input_2401.cs, GZ RequestGzsiModel2401.cs), like 2203.  It creates a stay at the
        core: NOT safe to send twice (a lost answer is resolved with 2601, offline.md §9.2)."""
        record = req.to_record()
        payload = {"mdtrtinfo": record, "diseinfo": [d.to_record() for d in req.diseinfo]}
        return self.prepare("2401", payload, parse=m.Admission.from_output, operator=operator,
                            insuplc_admdvs=req.insuplc_admdvs, keys_from=record)

    def prepare_cancel_admission(self, req: m.CancelAdmissionRequest, *, operator=None
                                 ) -> PreparedCall:
        """2404 入院撤销 under `data` (CQ Input_2404.cs; GZ RequestGzsiModel2404.Data)."""
        return self._prepare_record("2404", req, parse=_no_output, operator=operator)

    # ------------------------------------------------------------ named conveniences

    def person_info(self, req, **kw): return self.call(self.prepare_person_info, req, **kw)
    def register(self, req, **kw): return self.call(self.prepare_register, req, **kw)
    def cancel_register(self, req, **kw): return self.call(self.prepare_cancel_register, req, **kw)
    def upload_visit(self, req, **kw): return self.call(self.prepare_upload_visit, req, **kw)
    def upload_fee_details(self, rows, **kw):
        return self.call(self.prepare_upload_fee_details, rows, **kw)
    def revoke_fee_details(self, req, **kw):
        return self.call(self.prepare_revoke_fee_details, req, **kw)
    def pre_settle_outpatient(self, req, **kw):
        return self.call(self.prepare_pre_settle_outpatient, req, **kw)
    def settle_outpatient(self, req, **kw):
        return self.call(self.prepare_settle_outpatient, req, **kw)
    def cancel_outpatient_settlement(self, req, **kw):
        return self.call(self.prepare_cancel_outpatient_settlement, req, **kw)
    def upload_inpatient_fees(self, rows, **kw):
        return self.call(self.prepare_upload_inpatient_fees, rows, **kw)
    def revoke_inpatient_fees(self, req, **kw):
        return self.call(self.prepare_revoke_inpatient_fees, req, **kw)
    def pre_settle_inpatient(self, req, **kw):
        return self.call(self.prepare_pre_settle_inpatient, req, **kw)
    def settle_inpatient(self, req, **kw):
        return self.call(self.prepare_settle_inpatient, req, **kw)
    def cancel_inpatient_settlement(self, req, **kw):
        return self.call(self.prepare_cancel_inpatient_settlement, req, **kw)
    def document_settle(self, req, **kw): return self.call(self.prepare_document_settle, req, **kw)
    def cancel_document_settle(self, req, **kw):
        return self.call(self.prepare_cancel_document_settle, req, **kw)
    def reverse(self, req, **kw): return self.call(self.prepare_reverse, req, **kw)
    def reconcile_totals(self, req, **kw):
        return self.call(self.prepare_reconcile_totals, req, **kw)
    def reconcile_details(self, req, **kw):
        return self.call(self.prepare_reconcile_details, req, **kw)
    def admit(self, req, **kw): return self.call(self.prepare_admit, req, **kw)
    def cancel_admission(self, req, **kw):
        return self.call(self.prepare_cancel_admission, req, **kw)

    # ------------------------------------------------------------ 2001 benefit check, 1901
    # (added with kiosk identification; field names and sources in messages.py)

    def prepare_benefit_check(self, req: m.BenefitCheckRequest, *, operator=None
                              ) -> PreparedCall:
        """2001 人员待遇享受检查: which fund benefits the person enjoys for this insurance and
        medical type, and why not.  Reads only."""
        if not req.insuplc_admdvs:
            # The input names a person, so the envelope needs the insured region (§2 #4).
            raise ValueError("2001 needs insuplc_admdvs (the region of the insurance checked)")
        if req.fixmedins_code is None:
            req = dataclasses.replace(req, fixmedins_code=self.config.fixmedins_code)
        return self._prepare_record("2001", req, parse=m.BenefitCheck.from_output,
                                    operator=operator, effect=False)

    def prepare_visit_query(self, req: m.VisitQueryRequest, *, operator=None) -> PreparedCall:
        """5201 就诊信息查询: the person's visits (registrations) in a time window.  Reads
        only; the kiosk registration resolves a lost 2201 answer with it."""
        if not req.insuplc_admdvs:
            # The input names a person, so the envelope needs the insured region (§2 #4).
            raise ValueError("5201 needs insuplc_admdvs (the region of the person's insurance)")
        return self._prepare_record("5201", req, parse=m.VisitList.from_output, operator=operator,
                                    effect=False)

    def prepare_dictionary(self, query: m.DictionaryQuery, *, operator=None) -> PreparedCall:
        """1901 字典表查询.  Reads only."""
        return self._prepare_record("1901", query, parse=m.DictionaryResult.from_output,
                                    operator=operator, effect=False)

    def prepare_region_dictionary(self, *, admdvs: Optional[str] = None,
                                  date: Optional[str] = None, vali_flag: Optional[str] = "1",
                                  operator=None) -> PreparedCall:
        """1901 for the configured region dictionary type (OfflineConfig.region_dictionary_type:
        no public source names the type that lists the insured regions)."""
        dict_type = self.config.region_dictionary_type
        if not dict_type:
            raise ValueError("region_dictionary_type is not configured (no public source names "
                             "the 1901 type of the insured regions)")
        return self.prepare_dictionary(m.DictionaryQuery(
            type=dict_type, admdvs=admdvs or self.config.mdtrtarea_admvs,
            date=date or time.strftime("%Y-%m-%d"), valiFlag=vali_flag), operator=operator)

    # ------------------------------------------------------------ 9101 / 9102 files (§10.2)

    def prepare_upload_file(self, content: Union[bytes, str, "os.PathLike[str]"], *,
                            filename: str, bytes_form: Optional[str] = None,
                            operator=None) -> PreparedCall:
        """9101 文件上传: `content` (bytes, or the path of the zip) travels in `fsUploadIn.in`
        as Base64 or as a JSON array of signed bytes (OfflineConfig.upload_bytes_form).
        The journal sees the file's size and SHA-256, never its rows.  Moves no money and
        a lost answer only leaves an unused file at the centre: safe to send again."""
        data = bytes(content) if isinstance(content, (bytes, bytearray)) else Path(content).read_bytes()
        if not data:
            raise ValueError("9101: empty file")
        if not filename:
            raise ValueError("9101: filename is required")
        form = bytes_form or self.config.upload_bytes_form
        digest = hashlib.sha256(data).hexdigest()
        placeholder = f"<file of {len(data)} bytes, sha256 {digest}>"
        node = {"in": placeholder, "filename": filename,
                "fixmedins_code": self.config.fixmedins_code}
        prepared = self.prepare("9101", {m.UPLOAD_NODE: node}, parse=m.UploadedFile.from_output,
                                operator=operator, effect=False)
        marker = json.dumps(placeholder).encode("utf-8")
        body = prepared.body.replace(marker, encode_upload_bytes(data, form), 1)
        if body == prepared.body:
            raise RuntimeError("9101: the file bytes could not be placed in the body")
        return dataclasses.replace(prepared, body=body,
                                   keys={"filename": filename, "file_sha256": digest})

    def prepare_download_file(self, file_qury_no: str, filename: str, *, operator=None
                              ) -> PreparedCall:
        """9102 文件下载; send it with `download`, which writes the reply (the file) to disk."""
        if not file_qury_no or not filename:
            raise ValueError("9102 needs file_qury_no and filename")
        node = {"file_qury_no": file_qury_no, "filename": filename,
                "fixmedins_code": self.config.download_fixmedins_code or self.config.fixmedins_code}
        return self.prepare("9102", {m.DOWNLOAD_NODE: node}, parse=_json_is_not_a_file,
                            operator=operator, effect=False, keys_from=node)

    def download(self, prepared: PreparedCall, dest: Union[str, "os.PathLike[str]"]
                 ) -> CallResult:
        """Send a 9102 and stream a zip reply to `dest` (written to dest + ".part", then
        renamed, so `dest` is whole or absent).  A JSON reply is the platform's error
        envelope and is classified like any other answer; a reply that is neither is
        UNKNOWN.  Nothing is changed remotely, so every failure may be retried."""
        headers = dict(prepared.headers)
        if "x-tif-paasid" in headers:
            headers.update(tif_headers(self.config.paas_id, self.config.paas_secret))
        dest = os.fspath(dest)
        part = dest + ".part"

        def failed(outcome: Outcome, message: str, code: Optional[str] = None) -> CallResult:
            return CallResult(outcome=outcome, interface=prepared.interface,
                              msg_id=prepared.msg_id, code=code, message=message)

        status, raw = 0, b""
        try:
            with self._http.stream("POST", prepared.url, content=prepared.body,
                                   headers=headers) as resp:
                status = resp.status_code
                chunks = resp.iter_bytes()
                head = b""
                for chunk in chunks:
                    head += chunk
                    if len(head) >= 4:
                        break
                if status == 200 and head[:4] in ZIP_MAGICS:
                    digest, size = hashlib.sha256(head), len(head)
                    with open(part, "wb") as fh:
                        fh.write(head)
                        for chunk in chunks:
                            fh.write(chunk)
                            digest.update(chunk)
                            size += len(chunk)
                        fh.flush()
                        os.fsync(fh.fileno())
                    os.replace(part, dest)
                    text = f"<file of {size} bytes, sha256 {digest.hexdigest()}>"
                    return CallResult(outcome=Outcome.OK, interface=prepared.interface,
                                      msg_id=prepared.msg_id, code="0", http_status=status,
                                      response_text=text,
                                      data=m.DownloadedFile(dest, size, digest.hexdigest()))
                raw = head
                for chunk in chunks:          # an error envelope is small; stop reading junk
                    raw += chunk
                    if len(raw) > MAX_ERROR_ANSWER:
                        break
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout,
                httpx.UnsupportedProtocol) as exc:
            return failed(Outcome.NOT_SENT, f"not sent: {type(exc).__name__}: {exc}")
        except httpx.TimeoutException as exc:
            return failed(Outcome.UNKNOWN, f"timeout: {type(exc).__name__}")
        except httpx.HTTPError as exc:
            return failed(Outcome.UNKNOWN, f"transport error while receiving: {type(exc).__name__}")
        except OSError as exc:
            return failed(Outcome.UNKNOWN, f"could not write {dest}: {exc}")
        finally:
            if os.path.exists(part):
                os.unlink(part)
        return prepared.decode(status, raw)

    def benefit_check(self, req, **kw): return self.call(self.prepare_benefit_check, req, **kw)
    def visit_query(self, req, **kw): return self.call(self.prepare_visit_query, req, **kw)
    def dictionary(self, query, **kw): return self.call(self.prepare_dictionary, query, **kw)
    def upload_file(self, content, **kw): return self.call(self.prepare_upload_file, content, **kw)

    def download_file(self, file_qury_no: str, filename: str,
                      dest: Union[str, "os.PathLike[str]"], *,
                      operator: Optional[Operator] = None) -> CallResult:
        failure = self.ensure_signed_in(operator)
        if failure is not None:
            return CallResult(outcome=Outcome.NOT_SENT, interface="9001", msg_id=failure.msg_id,
                              message=f"not sent: 9001 sign-in failed: {failure.message}")
        return self.download(self.prepare_download_file(file_qury_no, filename,
                                                        operator=operator), dest)


def _no_output(output: Any) -> None:
    return None


def _settlement_with_id(output: Any) -> m.Settlement:
    s = m.Settlement.from_output(output)
    if not s.setl_id:
        raise ValueError("settlement answer without setl_id")
    return s


def _settled_sums(s: m.Settlement) -> list[str]:
    return m.settlement_violations(s, cancellation=False)


def _cancel_sums(s: m.Settlement) -> list[str]:
    return m.settlement_violations(s, cancellation=True)


# 9102 replies that are the file itself start like a zip (local file header, or the end
# record of an empty zip).
ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
MAX_ERROR_ANSWER = 1 << 20
_SIGNED_BYTES = tuple(str(b if b < 128 else b - 256).encode("ascii") for b in range(256))


def encode_upload_bytes(data: bytes, form: str) -> bytes:
    """The JSON text of 9101 `in`: a Base64 string, or an array of signed bytes as a Java
    byte[] is written by a JSON library that does not Base64 it."""
    if form == "base64":
        return b'"' + base64.b64encode(data) + b'"'
    if form == "signed_array":
        return b"[" + b",".join(_SIGNED_BYTES[b] for b in data) + b"]"
    raise ValueError("bytes form must be base64 or signed_array")


def _json_is_not_a_file(output: Any) -> None:
    raise ValueError("9102 answered a JSON envelope instead of the file")
