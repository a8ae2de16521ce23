"""JSON and money on the simulator's wire: Decimal in, Decimal out, never float.

Amounts are parsed with parse_float=Decimal so that "12.50" keeps its literal text
(the mobile-pay signature covers that text, mobilepay.md §3.2), and they are written
back as JSON numbers with exactly the digits of the Decimal.
"""
from __future__ import annotations

import json
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

FEN = Decimal("0.01")


class MoneyError(ValueError):
    pass


def loads(text: bytes | str) -> Any:
    return json.loads(text, parse_float=Decimal)


def dumps(obj: Any) -> str:
    """Compact JSON, non-ASCII raw, Decimal written as its own digits (no exponent)."""
    if isinstance(obj, dict):
        return "{" + ",".join(
            json.dumps(str(k), ensure_ascii=False) + ":" + dumps(v) for k, v in obj.items()) + "}"
    if isinstance(obj, (list, tuple)):
        return "[" + ",".join(dumps(v) for v in obj) + "]"
    if isinstance(obj, Decimal):
        return format(obj, "f")
    if isinstance(obj, float):
        raise TypeError("floats never go on the wire; use Decimal")
    return json.dumps(obj, ensure_ascii=False)


def yuan(value: Any, field: str = "amount") -> Decimal:
    """Parse an amount in yuan sent as a JSON number or string; at most 2 decimals."""
    if isinstance(value, bool) or value is None or isinstance(value, float):
        raise MoneyError(f"{field}: not an amount")
    try:
        d = Decimal(str(value).strip()) if not isinstance(value, Decimal) else value
    except InvalidOperation:
        raise MoneyError(f"{field}: not an amount") from None
    if not d.is_finite() or d != d.quantize(FEN):
        raise MoneyError(f"{field}: more than 2 decimals")
    return d.quantize(FEN)


def fen(d: Decimal) -> Decimal:
    """Round to the fen, half up (the usual rounding for yuan amounts)."""
    return d.quantize(FEN, rounding=ROUND_HALF_UP)
