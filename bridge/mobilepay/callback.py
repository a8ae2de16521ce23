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

Only a real settlement notice is accepted (issue 10 #1: an order's own 6202
answer, posted here, is platform-signed too):
  * the envelope's ``appId`` must be ours;
  * ``callType`` must be one of the configured call types (§5.6/§6.2: "02" =
    payment success, S6d "spec requires 02"; other values are unknown [U]);
  * every field a settlement notice needs must be there (REQUIRED below);
  * its amounts must add up (``amounts_consistent``).
A notice whose envelope ``timestamp`` lies outside the freshness window is still
parsed, but marked ``stale``: it is recorded for a person and never acted on.
Deduplication by payOrdId and the comparison with the stored 6202 amounts are
the flow's job (§5.6).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Iterable, Optional

from .config import MobilePayConfig
from .envelope import Envelope, EnvelopeError, MalformedEnvelope, compact_json, loads
from .messages import SetlType, amounts_add_up, enum_field, from_data, money, parse_money, text_field

ACK_OK_CODE = "0"
ACK_FAIL_CODE = "-1"

# The fields a settlement notice must carry.  §5.6 marks none as optional except
# the V2.2.5 extension amounts; these are the ones the sources act on: the
# Hainan controller (S8 HaiNanDZPZPayCallBackController) dereferences payOrdId,
# medOrgOrd and the four amounts, S6d requires callType, and §5.6/§8 give
# traceTime (14 digits) as the transaction time.  A 6202 or 6301 answer for an
# unpaid order lacks callType/traceTime and is refused on these alone.
REQUIRED = ("callType", "payOrdId", "medOrgOrd", "traceTime", "feeSumamt", "ownPayAmt", "psnAcctPay", "fundPay")
DEFAULT_CALL_TYPES = ("02",)
_CST = timezone(timedelta(hours=8))


class NotificationRefused(Exception):
    """The body is not a settlement notice we can act on."""


class ForgedNotification(NotificationRefused):
    """Signature or encryption does not check out: not from the centre, or altered."""


class InvalidNotification(NotificationRefused):
    """Authentic, or unparseable, but not a usable notice (missing or bad fields)."""


class NotASettlementNotice(InvalidNotification):
    """Signed by the centre, but not a settlement notice for us (another appId, a
    callType we do not act on, a 6202/6301 answer posted here)."""


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
    # Not from the notice's data: the envelope's timestamp, and why the notice is
    # stale (None: fresh).  A stale notice is recorded, never acted on.
    sent_at: Optional[str] = field(default=None, metadata={"kind": "local"})
    stale: Optional[str] = field(default=None, metadata={"kind": "local"})

    def amounts_consistent(self) -> bool:
        return amounts_add_up(self.feeSumamt, self.ownPayAmt, self.psnAcctPay, self.fundPay)


@dataclass(frozen=True)
class Acknowledgement:
    status: int
    headers: dict
    body: bytes


class SettlementCallback:
    """Opens 6302 notices and builds our signed acknowledgements."""

    def __init__(self, config: MobilePayConfig, call_types: Iterable[str] = DEFAULT_CALL_TYPES,
                 max_age_seconds: float = 600.0):
        """``call_types``: the callType values accepted as a settlement notice.
        ``max_age_seconds``: how far the envelope timestamp may be from our clock
        (either way) before the notice counts as stale; 0 switches the check off."""
        self._envelope = Envelope(config)
        self._app_id = config.app_id
        self.call_types = frozenset(call_types)
        self.max_age_seconds = max_age_seconds

    def parse(self, body: bytes, now: Optional[float] = None) -> SettlementNotice:
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
        app_id = opened.fields.get("appId")
        if app_id != self._app_id:
            raise NotASettlementNotice(f"the notice's appId {str(app_id)[:40]!r} is not ours")
        data = opened.data
        if data is None:
            raise InvalidNotification("the notice carries no encData")
        try:
            if "ownpayAmt" in data:
                if "ownPayAmt" in data and (parse_money("ownPayAmt", data["ownPayAmt"])
                                            != parse_money("ownpayAmt", data["ownpayAmt"])):
                    raise InvalidNotification("ownPayAmt and ownpayAmt disagree")
                data = {"ownPayAmt": data["ownpayAmt"], **data}
            data = {k: v for k, v in data.items() if k not in ("sent_at", "stale")}
            notice = from_data(SettlementNotice, data)
        except (ValueError, TypeError) as exc:
            raise InvalidNotification(f"unusable settlement notice: {exc}") from None
        if notice.callType not in self.call_types:
            raise NotASettlementNotice(f"callType {str(notice.callType)[:10]!r} is not a settlement notice "
                                       f"(accepted: {', '.join(sorted(self.call_types))})")
        missing = [name for name in REQUIRED if getattr(notice, name) in (None, "")]
        if missing:
            raise NotASettlementNotice(f"not a settlement notice: {', '.join(missing)} missing")
        notice.sent_at = None if opened.fields.get("timestamp") is None else str(opened.fields["timestamp"])
        notice.stale = self._staleness(notice.sent_at, time.time() if now is None else now)
        return notice

    def _staleness(self, stamp: Optional[str], now: float) -> Optional[str]:
        """Why the envelope timestamp is outside the window, or None.  §2.3: epoch
        milliseconds (SDK code) or yyyyMMddHHmmss in China time (a spec excerpt)."""
        if not self.max_age_seconds:
            return None
        sent = _epoch(stamp)
        if sent is None:
            return f"timestamp {str(stamp)[:20]!r} is not epoch milliseconds or yyyyMMddHHmmss"
        age = now - sent
        if abs(age) > self.max_age_seconds:
            return (f"sent {age:.0f} s ago" if age > 0 else f"dated {-age:.0f} s ahead") + \
                f" (the window is {self.max_age_seconds:.0f} s)"
        return None

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


def _epoch(stamp: Optional[str]) -> Optional[float]:
    if stamp is None or not stamp.isdigit():
        return None
    if len(stamp) == 13:
        return int(stamp) / 1000.0
    if len(stamp) == 14:
        try:
            return datetime.strptime(stamp, "%Y%m%d%H%M%S").replace(tzinfo=_CST).timestamp()
        except ValueError:
            return None
    return None
