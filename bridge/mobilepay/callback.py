"""6302 结算结果通知: the centre tells the hospital a settlement happened (digest §5.6).

The notice moves money in our books, so it is trusted only after its envelope
decrypts with our SM4 key and its SM2 signature verifies against the platform
key, exactly as for a response (§2.2).  S6d describes the notice as "opened"
(decrypted and verified) before use [L]; an unsigned plain-JSON notice (S8's
controller binds the plain DTO, maybe behind a relay) is refused as forged.

The hospital's reply is unknown (§5.6, §13).  We answer with the same signed
envelope the centre uses for its own responses - ``code`` "0" and ``message``
on success, with ``data`` = {"payOrdId"} naming what we acknowledge - and HTTP
200, which also satisfies a centre that only looks at the HTTP status (the
simulator accepts either, §5.6).  On failure we answer HTTP 500 with a non-zero
code ("-1": the relay convention of S8 RequestInsure, "code < 0 is an error"), so
that both kinds of centre see a failure and retry; meanwhile the flow keeps
polling 6301 (§7.1 step 5).

Deduplication by payOrdId and the comparison with the stored 6202 amounts are
the flow's job (§5.6); ``amounts_consistent`` checks the notice against itself.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Optional

from .config import MobilePayConfig
from .envelope import Envelope, EnvelopeError, MalformedEnvelope, compact_json, loads
from .messages import SetlType, amounts_add_up, enum_field, from_data, money, parse_money, text_field

ACK_OK_CODE = "0"
ACK_FAIL_CODE = "-1"


class NotificationRefused(Exception):
    """The body is not a settlement notice we can act on."""


class ForgedNotification(NotificationRefused):
    """Signature or encryption does not check out: not from the centre, or altered."""


class InvalidNotification(NotificationRefused):
    """Authentic, or unparseable, but not a usable notice (missing or bad fields)."""


@dataclass(kw_only=True)
class SettlementNotice:
    """The 6302 fields of §5.6 (S8 SeltSucCallbackDTO, S6d)."""

    payOrdId: str = text_field()
    callType: Optional[str] = text_field(None)        # "02" = payment success; other values unknown [U]
    medOrgOrd: Optional[str] = text_field(None)
    traceTime: Optional[str] = text_field(None)
    feeSumamt: Optional[Decimal] = money(None)
    ownPayAmt: Optional[Decimal] = money(None)   # S8 spells it ownpayAmt: both accepted (§12.8)
    psnAcctPay: Optional[Decimal] = money(None)
    fundPay: Optional[Decimal] = money(None)
    othFeeAmt: Optional[Decimal] = money(None)
    hospPartAmt: Optional[Decimal] = money(None)
    acctMulaidPay: Optional[Decimal] = money(None)
    selfAcctPay: Optional[Decimal] = money(None)
    deposit: Optional[Decimal] = money(None)
    delvFee: Optional[Decimal] = money(None)
    hiChrgTime: Optional[str] = text_field(None)
    hiDocSn: Optional[str] = text_field(None)
    hiRgstSn: Optional[str] = text_field(None)
    orgName: Optional[str] = text_field(None)
    orgCode: Optional[str] = text_field(None)
    ecCode: Optional[str] = text_field(None)
    setlType: Optional[SetlType] = enum_field(SetlType, None)
    revsToken: Optional[str] = text_field(None)      # reverses the insurance part if HIS settlement fails
    extData: Any = None                          # {setlinfo: [...], setldetail: [...]}, kept as received

    def amounts_consistent(self) -> bool:
        return amounts_add_up(self.feeSumamt, self.ownPayAmt, self.psnAcctPay, self.fundPay)


@dataclass(frozen=True)
class Acknowledgement:
    status: int
    headers: dict
    body: bytes


class SettlementCallback:
    """Opens 6302 notices and builds our signed acknowledgements."""

    def __init__(self, config: MobilePayConfig):
        self._envelope = Envelope(config)

    def parse(self, body: bytes) -> SettlementNotice:
        try:
            message = loads(body)
        except ValueError:
            raise InvalidNotification("the notice is not JSON") from None
        try:
            opened = self._envelope.open(message)
        except MalformedEnvelope as exc:
            raise InvalidNotification(str(exc)) from None
        except EnvelopeError as exc:
            raise ForgedNotification(f"settlement notice refused: {exc}") from None
        data = opened.data
        if data is None:
            raise InvalidNotification("the notice carries no encData")
        try:
            if "ownpayAmt" in data:
                if "ownPayAmt" in data and (parse_money("ownPayAmt", data["ownPayAmt"])
                                            != parse_money("ownpayAmt", data["ownpayAmt"])):
                    raise InvalidNotification("ownPayAmt and ownpayAmt disagree")
                data = {"ownPayAmt": data["ownpayAmt"], **data}
            return from_data(SettlementNotice, data)
        except (ValueError, TypeError) as exc:
            raise InvalidNotification(f"unusable settlement notice: {exc}") from None

    def acknowledge(self, pay_ord_id: Optional[str], accepted: bool = True,
                    message: Optional[str] = None) -> Acknowledgement:
        """Our answer to the centre; ``accepted=False`` asks it to send the notice again."""
        code = ACK_OK_CODE if accepted else ACK_FAIL_CODE
        text = message or ("成功" if accepted else "失败")
        data = {"payOrdId": pay_ord_id} if pay_ord_id else {}
        envelope = self._envelope.seal(data, extra_fields={"code": code, "message": text})
        return Acknowledgement(status=200 if accepted else 500,
                               headers={"Content-Type": "application/json"},
                               body=compact_json(envelope).encode("utf-8"))
