"""httpx client of the terminal libraries (offline.md §7), in the two-step form of bridge/calls.py.

E-credential library: the HIS calls NationECCode.dll `NationEcTrans(url, inJson, outBuf)`
(offline.md §7.1, NMG DllHelper.cs); we POST the library's JSON request wrapper
``{orgId, transType, data, extra}`` to the configured URL and read its reply wrapper
``{code, message, data: <JSON string>}`` - the wrapper shape is from newtouch-cloud/openhis
WinServiceAPI/NeiMengGuYiBaoApp/Models/Input/NationECCodeDll/InputBasePost.cs; that the URL
accepts it over plain HTTP without the DLL is our assumption.

Card reader: HeaSecReadInfo.dll `ReadCardBas(pCardInfo, pBusiCardInfo)` returns a number
(0 = read) and writes a '|'-separated line (messages.CardBasics).  It is a local library
call with no public wire form, so OUR CHOICE for reaching it over HTTP: POST ``{"orgId"}``
to `card_reader_url`, answered with ``{"code": <return value>, "message", "data": <pCardInfo>}``
- the same {code, message, data} wrapping NMG's DllHelper.CallReadCardBasAndSaveLog gives it.

No terminal call moves money: a refusal (code != 0) is REJECTED, an answer we cannot read
is UNKNOWN (the flow reads again; a face/QR/card read has no remote effect to resolve).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional

import httpx

from bridge import refusals
from bridge.calls import CallResult, Outcome, PreparedCall
from bridge.masking import mask_value
from bridge.offline.envelope import dumps, loads
from bridge.terminal import messages as t
from bridge.tls import client_context


@dataclass(frozen=True)
class TerminalConfig:
    url: str                      # the URL handed to NationEcTrans
    org_id: str                   # the institution code (fixmedins_code)
    connect_timeout: float = 5.0
    # cn.nhsa.ec.auth returns when the patient has scanned; allow for a person at a kiosk.
    read_timeout: float = 120.0
    # The card reader's local agent (see the module text); None: no card reader here.
    card_reader_url: Optional[str] = None


_JSON = {"Content-Type": "application/json;charset=utf-8"}


class TerminalClient:
    def __init__(self, config: TerminalConfig, next_id: Callable[[], str], *,
                 transport: Optional[httpx.BaseTransport] = None):
        """`next_id()`: a fresh collision-free id; the journal's msg id and the default
        outBizNo (the offline client's msgid generator serves)."""
        self.config = config
        self._next_id = next_id
        self._http = httpx.Client(
            timeout=httpx.Timeout(connect=config.connect_timeout, read=config.read_timeout,
                                  write=10.0, pool=5.0),
            limits=httpx.Limits(max_connections=4), transport=transport, verify=client_context())

    def close(self) -> None:
        self._http.close()

    # ------------------------------------------------------------ e-credential library

    def _prepare(self, trans_type: str, data: Mapping[str, Any], parse,
                 keys: Mapping[str, str]) -> PreparedCall:
        msg_id = self._next_id()
        payload = {"orgId": self.config.org_id, "transType": trans_type,
                   "data": {"orgId": self.config.org_id, **data}, "extra": ""}

        def decode(status: int, raw: bytes) -> CallResult:
            return _decode(trans_type, msg_id, status, raw, parse)

        return PreparedCall(interface=trans_type, msg_id=msg_id, url=self.config.url,
                            body=dumps(payload), headers=dict(_JSON),
                            masked_request=dumps(mask_value(payload)).decode("utf-8"),
                            decode=decode, keys=dict(keys))

    def prepare_face_authorise(self, req: t.FaceAuthRequest, *, out_biz_no: Optional[str] = None
                               ) -> PreparedCall:
        """cn.nhsa.ec.auth: start the face scan; answers authNo.  `outBizNo` must be
        unique and is reused for the check and the settlement notice (§7.2)."""
        out_biz_no = out_biz_no or self._next_id()
        data = {**req.to_data(), "outBizNo": out_biz_no}
        return self._prepare(t.FACE_AUTH, data, t.authorisation, {"outBizNo": out_biz_no})

    def prepare_check_authorisation(self, req: t.FaceAuthRequest, *, auth_no: str,
                                    out_biz_no: str) -> PreparedCall:
        """cn.nhsa.auth.check: exchange authNo for the insured identity."""
        data = {**req.to_data(), "outBizNo": out_biz_no, "authNo": auth_no}
        return self._prepare(t.AUTH_CHECK, data, t.InsuredIdentity.from_data,
                             {"outBizNo": out_biz_no})

    def prepare_read_qr(self, req: t.QrQueryRequest, *, trans_type: str = t.EC_QUERY
                        ) -> PreparedCall:
        """Read the patient's e-credential QR at the terminal: `ec.query` (kiosks pass
        deviceType SelfService) or `cn.nhsa.qrcode.get` (offline.md §7.2).  The answer's
        ecToken is 1101's mdtrt_cert_no with mdtrt_cert_type 01, insuOrg its insuplc_admdvs."""
        if trans_type not in t.QR_TRANS_TYPES:
            raise ValueError(f"QR read is one of {t.QR_TRANS_TYPES}")
        return self._prepare(trans_type, req.to_data(trans_type), t.qr_identity, {})

    def prepare_notify(self, notice: t.SettleNotice) -> PreparedCall:
        return self._prepare(t.SETTLE_NOTIFY, notice.to_data(), lambda d: d,
                             {"outBizNo": notice.outBizNo})

    # ------------------------------------------------------------ card reader

    def prepare_read_card(self) -> PreparedCall:
        """ReadCardBas on the card reader (see the module text for the wire form)."""
        if not self.config.card_reader_url:
            raise ValueError("no card_reader_url configured")
        msg_id = self._next_id()
        payload = {"orgId": self.config.org_id}

        def decode(status: int, raw: bytes) -> CallResult:
            return _decode(t.CARD_READ, msg_id, status, raw, t.CardBasics.parse,
                           data_is_json=False)

        return PreparedCall(interface=t.CARD_READ, msg_id=msg_id,
                            url=self.config.card_reader_url, body=dumps(payload),
                            headers=dict(_JSON), masked_request=dumps(payload).decode("utf-8"),
                            decode=decode)

    # ------------------------------------------------------------ sending

    def send(self, prepared: PreparedCall) -> CallResult:
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

    def face_authorise(self, req: t.FaceAuthRequest, **kw) -> CallResult[t.FaceAuthorisation]:
        return self.send(self.prepare_face_authorise(req, **kw))

    def check_authorisation(self, req: t.FaceAuthRequest, **kw) -> CallResult[t.InsuredIdentity]:
        return self.send(self.prepare_check_authorisation(req, **kw))

    def identify_by_face(self, req: t.FaceAuthRequest) -> CallResult:
        """Face authorisation -> insured identity (offline.md §7.3 steps 1-2), both under
        one outBizNo.  Returns the failed first step, or the identity result."""
        out_biz_no = self._next_id()
        auth = self.face_authorise(req, out_biz_no=out_biz_no)
        if not auth.ok:
            return auth
        return self.check_authorisation(req, auth_no=auth.data.authNo, out_biz_no=out_biz_no)

    def read_qr(self, req: t.QrQueryRequest, **kw) -> CallResult[t.InsuredIdentity]:
        return self.send(self.prepare_read_qr(req, **kw))

    def read_card(self) -> CallResult[t.CardBasics]:
        return self.send(self.prepare_read_card())

    def notify(self, notice: t.SettleNotice) -> CallResult:
        return self.send(self.prepare_notify(notice))


def _masked_body(trans_type: str, body: dict) -> str:
    if trans_type == t.CARD_READ and isinstance(body.get("data"), str):
        try:
            body = dict(body, data=t.CardBasics.parse(body["data"]).masked())
        except ValueError:
            body = dict(body, data="<unreadable card data>")
    return dumps(mask_value(body)).decode("utf-8")


def _decode(trans_type: str, msg_id: str, status: int, raw: bytes, parse, *,
            data_is_json: bool = True) -> CallResult:
    def result(outcome, *, code=None, message=None, data=None, body=None, transient=False):
        text = _masked_body(trans_type, body) if body is not None else None
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
        if data_is_json and isinstance(data, str):   # `data` is a JSON string (§7.1)
            data = loads(data) if data.strip() else {}
        typed = parse(data)
    except (ValueError, TypeError) as exc:
        return result(Outcome.UNKNOWN, code=code, message=f"malformed data: {exc}", body=body)
    return result(Outcome.OK, code=code, message=body.get("message"), data=typed,
                  body=dict(body, data=data))
