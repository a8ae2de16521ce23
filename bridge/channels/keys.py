"""The order and refund numbers mibridge sends to WeChat Pay and Alipay, derived from the
HIS's business keys: one rule, here, used by the flows that send them and by the callback
endpoint that must find the request a callback is about.

    out_trade_no            <prefix>P<key>[__<attempt>]    the payment (WeChat JSAPI prepay and
                                                           mixed order, Alipay medical order and
                                                           its cash trade): key = the payment's
                                                           business key
    out_refund_no /         <prefix>R<key>[__<attempt>]    a refund the HIS asked for: key = the
    out_request_no                                         refund request's business key
                            <prefix>F<key>[__<attempt>]    the full reversal of a payment that
                                                           mibridge makes itself (单边账 repair,
                                                           a settlement the HIS rejected or did not
                                                           take): key = the payment's business key

* ``<prefix>`` is the section's ``order_prefix`` (default ``MB``; 1-8 letters or digits), so
  that numbers of other systems on the same merchant account cannot collide with ours.
* ``<key>`` is the business key with every letter and digit kept and every other character
  written as ``_`` and two upper-case hex digits per UTF-8 byte (``INV-1001`` -> ``INV_2D1001``,
  ``_`` -> ``_5F``).  The result uses only ``[0-9A-Za-z_]``: the characters both channels
  allow (WeChat out_trade_no: digits, letters, ``_-|*``; out_refund_no: also ``@``;
  Alipay out_trade_no: letters, digits, ``_``).  The encoding is one-to-one, so a callback's
  number gives back the business key without a lookup table.
* ``__<attempt>`` (never produced by the key encoding, in which every ``_`` is followed by two
  hex digits) numbers a second order or refund for the same request: attempt 0 has no
  suffix.  A flow needs it when the channel requires a new number (a WeChat refund that
  ended CLOSED, channels.md §2.6; a mixed order that must be placed again, §2.2
  268512536).  A number that would be shorter than WeChat's 6-character minimum for
  out_trade_no carries ``__0``.
* Lengths: out_trade_no at most 32 (WeChat's limit, §2.1; Alipay allows 64: one rule for
  both), refund numbers at most 64 (WeChat out_refund_no, Alipay out_request_no).  A key
  too long for them is refused with UnmappableKey: the flow fails the request BAD_INPUT.
* The mixed order's ``serial_no`` is the 6201 medOrgOrd, which the mobile-pay flows set to
  the payment's business key (mobilepay.md §10): ``serial_no(key)``.

Stable: the same key and attempt give the same number in every process and after every
restart, which is what makes a resend after a lost answer idempotent at the channel.
"""
from __future__ import annotations

import re
import string
from dataclasses import dataclass
from typing import Optional

DEFAULT_PREFIX = "MB"
PREFIX_RE = re.compile(r"^[A-Za-z0-9]{1,8}$")
OUT_TRADE_NO_MIN = 6          # WeChat out_trade_no: 6-32 characters (§2.1)
OUT_TRADE_NO_MAX = 32
REFUND_NO_MAX = 64            # WeChat out_refund_no 1-64 (§2.6), Alipay out_request_no 64 (§7.5)
SEPARATOR = "__"

PAYMENT = "P"                 # the tags after the prefix
REFUND = "R"
REVERSAL = "F"

_LITERAL = frozenset(string.ascii_letters + string.digits)
_HEX = frozenset("0123456789ABCDEF")


class UnmappableKey(ValueError):
    """A business key that cannot become a channel number (too long once encoded)."""


@dataclass(frozen=True)
class NumberRef:
    """What one of our numbers stands for."""

    tag: str                  # PAYMENT, REFUND or REVERSAL
    business_key: str         # the payment's key (PAYMENT, REVERSAL) or the refund's (REFUND)
    attempt: int


def check_prefix(prefix: str) -> str:
    if not PREFIX_RE.match(prefix or ""):
        raise ValueError(f"order_prefix must be 1-8 letters or digits, not {prefix!r}")
    return prefix


def encode_key(key: str) -> str:
    """Letters and digits as they are; every other character as _XX per UTF-8 byte."""
    if not key:
        raise UnmappableKey("an empty business key")
    out = []
    for ch in key:
        if ch in _LITERAL:
            out.append(ch)
        else:
            out.extend(f"_{b:02X}" for b in ch.encode("utf-8"))
    return "".join(out)


def decode_key(text: str) -> Optional[str]:
    """The inverse of encode_key, or None when ``text`` is not an encoding it produces
    (so that one number stands for one key only)."""
    if not text:
        return None
    raw = bytearray()
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch in _LITERAL:
            raw.append(ord(ch))
            i += 1
        elif ch == "_" and i + 2 < n and text[i + 1] in _HEX and text[i + 2] in _HEX:
            byte = int(text[i + 1:i + 3], 16)
            if chr(byte) in _LITERAL:          # a letter or digit is never escaped
                return None
            raw.append(byte)
            i += 3
        else:
            return None
    try:
        key = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return key if encode_key(key) == text else None


def _number(prefix: str, tag: str, key: str, attempt: int, limit: int, what: str,
            minimum: int = 1) -> str:
    check_prefix(prefix)
    if not isinstance(attempt, int) or attempt < 0:
        raise ValueError(f"attempt must be a non-negative integer, not {attempt!r}")
    text = prefix + tag + encode_key(key)
    if attempt or len(text) < minimum:
        text += f"{SEPARATOR}{attempt}"
    if len(text) > limit:
        raise UnmappableKey(
            f"business key {key!r} gives the {what} {text!r}, {len(text)} characters; the channels allow {limit} "
            f"(a letter or digit counts one, any other character three): use a shorter business key")
    return text


def out_trade_no(payment_key: str, prefix: str = DEFAULT_PREFIX, attempt: int = 0) -> str:
    """The payment's out_trade_no (WeChat prepay + mixed order, Alipay order + cash trade)."""
    return _number(prefix, PAYMENT, payment_key, attempt, OUT_TRADE_NO_MAX, "out_trade_no", OUT_TRADE_NO_MIN)


def refund_no(refund_key: str, prefix: str = DEFAULT_PREFIX, attempt: int = 0) -> str:
    """out_refund_no (WeChat) / out_request_no (Alipay) of the HIS refund ``refund_key``; also
    the out_refund_no of the WeChat insurance refund notify for that refund (§2.7)."""
    return _number(prefix, REFUND, refund_key, attempt, REFUND_NO_MAX, "refund number")


def reversal_no(payment_key: str, prefix: str = DEFAULT_PREFIX, attempt: int = 0) -> str:
    """The refund number of the full reversal of payment ``payment_key`` (at most one per
    payment: after it nothing is left to refund)."""
    return _number(prefix, REVERSAL, payment_key, attempt, REFUND_NO_MAX, "refund number")


def serial_no(payment_key: str) -> str:
    """The mixed order's serial_no: the 6201 medOrgOrd, i.e. the payment's business key."""
    return payment_key


def parse(number: Optional[str], prefix: str = DEFAULT_PREFIX) -> Optional[NumberRef]:
    """What one of our numbers stands for, or None when it is not one of ours (another
    prefix, another system's number, not an encoding we produce)."""
    if not number or not number.startswith(prefix) or len(number) < len(prefix) + 2:
        return None
    tag, rest = number[len(prefix)], number[len(prefix) + 1:]
    if tag not in (PAYMENT, REFUND, REVERSAL):
        return None
    attempt = 0
    if SEPARATOR in rest:
        rest, _, count = rest.rpartition(SEPARATOR)
        if not count.isdigit() or (len(count) > 1 and count[0] == "0"):
            return None
        attempt = int(count)
    key = decode_key(rest)
    if key is None:
        return None
    ref = NumberRef(tag, key, attempt)
    try:
        again = {PAYMENT: out_trade_no, REFUND: refund_no, REVERSAL: reversal_no}[tag](key, prefix, attempt)
    except UnmappableKey:
        return None
    return ref if again == number else None      # only the spelling we produce is ours
