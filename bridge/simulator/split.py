"""How a bill divides into pooled fund, personal account and cash (Decimal, exact to the fen).

fund = total x fund ratio (per insutype, config), rounded half-up to the fen; the personal
account pays as much of the rest as the caller allows; cash is what remains. The three parts
always add up to the total exactly (mobilepay.md §5.2 invariant; offline.md §5.8 identities).
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from .wire import fen

ZERO = Decimal("0.00")


@dataclass(frozen=True)
class Split:
    total: Decimal
    fund: Decimal
    acct: Decimal
    cash: Decimal
    fund_ratio: Decimal

    def __post_init__(self) -> None:
        assert self.fund + self.acct + self.cash == self.total, "split must add up"


def split_bill(total: Decimal, fund_ratio: Decimal, acct_available: Decimal) -> Split:
    """acct_available: how much the personal account may pay (0 when unused or absent)."""
    if total < 0:
        raise ValueError("negative bill")
    fund = min(total, max(ZERO, fen(total * fund_ratio)))
    rest = total - fund
    acct = min(rest, max(ZERO, acct_available))
    return Split(total, fund, acct, rest - acct, fund_ratio)
