"""WeChat Pay callbacks: MEDICAL_INSURANCE.SUCCESS, TRANSACTION.SUCCESS and REFUND.*.

``parse_callback(config, headers, body)`` is a pure function for the daemon's HTTP
endpoint: it verifies the Wechatpay-* signature against the configured platform keys
within the timestamp window (§1.3), decrypts the resource with the APIv3 key (§1.4)
and returns a typed event, or raises:

* ForgedCallback  - signature, serial, timestamp or decryption do not check out (also
  the WECHATPAY/SIGNTEST/ probe): answer 4xx and write nothing;
* InvalidCallback - authentic (or not even JSON) but unusable: answer 4xx/5xx.

Deduplication (by mix_trade_no, out_trade_no or out_refund_no plus event_type, §1.4,
§2.5) is the caller's job; ``event.dedupe_key`` gives the key.  Answers: ``ACK_OK`` (HTTP
204, no body, §1.4) or ``ack_failure`` (HTTP 500 with {"code":"FAIL","message":…}, so
that WeChat retries).
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Mapping, Optional, Union

from .cipher import AEAD_ALGORITHM, DecryptionError, decrypt_resource
from .config import WechatPayConfig
from .messages import MedInsOrder, Refund, Transaction, parse_time
from .signing import PlatformVerifier, VerificationError

MEDICAL_INSURANCE_SUCCESS = "MEDICAL_INSURANCE.SUCCESS"
TRANSACTION_SUCCESS = "TRANSACTION.SUCCESS"
REFUND_EVENTS = ("REFUND.SUCCESS", "REFUND.ABNORMAL", "REFUND.CLOSED")


class CallbackRefused(Exception):
    """The request is not a callback we can act on."""


class ForgedCallback(CallbackRefused):
    """Not from WeChat, replayed, or altered."""


class InvalidCallback(CallbackRefused):
    """Authentic (or unparseable) but not usable."""


@dataclass(frozen=True)
class Envelope:
    event_id: str
    event_type: str
    create_time: Optional[datetime]
    summary: Optional[str]


@dataclass(frozen=True)
class MedInsPaid:
    """MEDICAL_INSURANCE.SUCCESS: the mixed order reached MIX_PAY_SUCCESS (§2.5)."""

    envelope: Envelope
    order: MedInsOrder

    @property
    def dedupe_key(self) -> str:
        return f"{self.envelope.event_type}:{self.order.mix_trade_no}"


@dataclass(frozen=True)
class CashPaid:
    """TRANSACTION.SUCCESS for the cash part, to the JSAPI notify_url (§2.1)."""

    envelope: Envelope
    transaction: Transaction

    @property
    def dedupe_key(self) -> str:
        return f"{self.envelope.event_type}:{self.transaction.out_trade_no}"


@dataclass(frozen=True)
class RefundChanged:
    """REFUND.SUCCESS / ABNORMAL / CLOSED for a cash refund (§2.6)."""

    envelope: Envelope
    refund: Refund

    @property
    def dedupe_key(self) -> str:
        return f"{self.envelope.event_type}:{self.refund.out_refund_no}"


@dataclass(frozen=True)
class OtherEvent:
    """A verified event of a type we do not act on: acknowledge it (the endpoint keeps a
    record of it, bridge/channels/notices.py)."""

    envelope: Envelope
    resource: dict

    @property
    def dedupe_key(self) -> str:
        return f"{self.envelope.event_type}:{self.envelope.event_id}"


Event = Union[MedInsPaid, CashPaid, RefundChanged, OtherEvent]

ACK_OK = (204, {}, b"")


def ack_failure(message: str = "失败") -> tuple[int, dict, bytes]:
    body = json.dumps({"code": "FAIL", "message": message}, ensure_ascii=False).encode("utf-8")
    return 500, {"Content-Type": "application/json"}, body


def parse_callback(config: WechatPayConfig, headers: Mapping[str, str], body: bytes, *,
                   now: Optional[float] = None, verifier: Optional[PlatformVerifier] = None) -> Event:
    """Verify, decrypt and type one callback.  ``now`` (epoch seconds) is for tests."""
    verifier = verifier or PlatformVerifier(config.platform_keys, window_seconds=config.timestamp_window_seconds,
                                            clock=(lambda: now) if now is not None else time.time)
    try:
        verifier.verify(headers, body)
    except VerificationError as exc:
        raise ForgedCallback(f"callback refused: {exc}") from None
    try:
        message = json.loads(body)
    except ValueError:
        raise InvalidCallback("the callback is not JSON") from None
    if not isinstance(message, dict):
        raise InvalidCallback("the callback is not a JSON object")
    resource = message.get("resource")
    event_type = message.get("event_type")
    if not isinstance(resource, dict) or not isinstance(event_type, str) or not message.get("id"):
        raise InvalidCallback("the callback lacks id, event_type or resource")
    if resource.get("algorithm") != AEAD_ALGORITHM:
        raise InvalidCallback(f"unsupported resource algorithm {resource.get('algorithm')!r}")
    try:
        plain = decrypt_resource(config.apiv3_key_bytes, nonce=str(resource.get("nonce") or ""),
                                 ciphertext=str(resource.get("ciphertext") or ""),
                                 associated_data=str(resource.get("associated_data") or ""))
    except DecryptionError as exc:
        raise ForgedCallback(f"callback resource refused: {exc}") from None
    try:
        data = json.loads(plain)
        if not isinstance(data, dict):
            raise ValueError("not an object")
        for name, ours in (("mchid", config.mchid), ("appid", config.appid)):
            if data.get(name) not in (None, "", ours):
                raise ValueError(f"{name} {data.get(name)!r} is not ours")
        envelope = Envelope(event_id=str(message["id"]), event_type=event_type,
                            create_time=parse_time("create_time", message.get("create_time")),
                            summary=message.get("summary"))
        if event_type == MEDICAL_INSURANCE_SUCCESS:
            return MedInsPaid(envelope, MedInsOrder.from_json(data))
        if event_type == TRANSACTION_SUCCESS:
            return CashPaid(envelope, Transaction.from_json(data))
        if event_type in REFUND_EVENTS:
            return RefundChanged(envelope, Refund.from_json(data))
        return OtherEvent(envelope, data)
    except (ValueError, TypeError) as exc:
        raise InvalidCallback(f"unusable {event_type} resource: {exc}") from None
