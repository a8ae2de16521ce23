"""Alipay asynchronous notifies (trade and refund status), verified before use (§6.4).

``parse_notify(config, body)`` is a pure function for the daemon's HTTP endpoint: it
parses the form, verifies the RSA2 signature over the sorted parameters without
``sign`` / ``sign_type`` (rsaCheckV1) with the Alipay public key, checks that the
notify is for our app id, and returns a TradeNotice, or raises:

* ForgedNotify  - no or bad signature, or another app's or seller's notify (``seller_id``
  checked when configured): answer 4xx, write nothing;
* InvalidNotify - authentic (or unparseable) but unusable.

Answer ``ACK_OK`` (the plain text ``success``) once recorded; anything else makes Alipay
send it again [§6.4, general knowledge].  The format of the medical order's ``call_url``
callback is not known (§10.4.10): such posts are not parsed here.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Mapping, Optional, Union
from urllib.parse import parse_qsl

from .config import AlipayConfig
from .messages import TradeStatus, money
from .signing import VerificationError, verify_notify

ACK_OK = (200, {"Content-Type": "text/plain;charset=utf-8"}, b"success")
ACK_FAIL = (500, {"Content-Type": "text/plain;charset=utf-8"}, b"fail")


class NotifyRefused(Exception):
    pass


class ForgedNotify(NotifyRefused):
    pass


class InvalidNotify(NotifyRefused):
    pass


@dataclass(frozen=True)
class TradeNotice:
    notify_id: str
    notify_type: Optional[str]
    out_trade_no: Optional[str]
    trade_no: Optional[str]
    trade_status: Optional[TradeStatus]
    total_amount: Optional[Decimal] = None
    receipt_amount: Optional[Decimal] = None
    refund_fee: Optional[Decimal] = None          # cumulative refunded, in refund notifies
    out_biz_no: Optional[str] = None              # the refund's out_request_no, in refund notifies
    gmt_payment: Optional[str] = None
    gmt_refund: Optional[str] = None
    params: Mapping[str, str] = field(default_factory=dict, repr=False)

    @property
    def is_refund(self) -> bool:
        return self.out_biz_no is not None or self.refund_fee is not None

    @property
    def dedupe_key(self) -> str:
        return f"alipay:{self.notify_id}"


def parse_form(body: Union[bytes, str]) -> dict[str, str]:
    text = body.decode("ascii") if isinstance(body, bytes) else body
    # The charset parameter says how the percent-encoded bytes decode (utf-8 unless told).
    probe = dict(parse_qsl(text, keep_blank_values=True, encoding="latin-1"))
    charset = probe.get("charset") or "utf-8"
    pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text), encoding=charset, errors="strict")
    params: dict[str, str] = {}
    for key, value in pairs:
        if key in params:
            raise ValueError(f"parameter {key!r} appears twice")
        params[key] = value
    return params


def parse_notify(config: AlipayConfig, body: Union[bytes, str, Mapping[str, str]]) -> TradeNotice:
    try:
        params = dict(body) if isinstance(body, Mapping) else parse_form(body)
    except (ValueError, UnicodeError, LookupError) as exc:
        raise InvalidNotify(f"the notify is not a form: {exc}") from None
    try:
        verify_notify(config.public_key, params)
    except VerificationError as exc:
        raise ForgedNotify(f"notify refused: {exc}") from None
    if params.get("app_id") != config.app_id:
        raise ForgedNotify(f"notify for app_id {params.get('app_id')!r}, not ours")
    if config.seller_id and params.get("seller_id") not in (None, "", config.seller_id):
        raise ForgedNotify(f"notify for seller_id {params.get('seller_id')!r}, not ours")
    if not params.get("notify_id"):
        raise InvalidNotify("the notify has no notify_id")
    try:
        status = params.get("trade_status") or None
        return TradeNotice(
            notify_id=params["notify_id"], notify_type=params.get("notify_type") or None,
            out_trade_no=params.get("out_trade_no") or None, trade_no=params.get("trade_no") or None,
            trade_status=TradeStatus(status) if status else None,
            total_amount=money("total_amount", params.get("total_amount")),
            receipt_amount=money("receipt_amount", params.get("receipt_amount")),
            refund_fee=money("refund_fee", params.get("refund_fee")),
            out_biz_no=params.get("out_biz_no") or None, gmt_payment=params.get("gmt_payment") or None,
            gmt_refund=params.get("gmt_refund") or None, params=params)
    except ValueError as exc:
        raise InvalidNotify(f"unusable notify: {exc}") from None
