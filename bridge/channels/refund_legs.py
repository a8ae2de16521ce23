"""How one refund of a channel payment is split into its legs, each refunded once.

A channel payment has an insurance leg (fund + personal account, settled by the centre) and
a cash leg (paid in WeChat Pay or Alipay).  Who gives the cash back after the centre's 6203
is the digest's open question (channels.md §2.7, §10.4 item 4), answered per payment when it
settles and kept with it (``cash_by``), so all its refunds follow one reading:

    cash_by "channel"   (WeChat with [wechatpay] cash_after_6203 = "hospital_refunds_cash",
                        the default; Alipay always, §7.5: "the insurance refund goes through the
                        centre (6203)", the cash by alipay.trade.refund)
                        6203 carries the insurance part only (refdType HI), and only when there
                        is one; the cash goes back by the channel's refund.  The centre is never
                        asked to move cash, so a wrong reading cannot pay the cash twice: at
                        worst (the centre does return cash after HI, which no source says) the
                        channel refuses the second refund as more than is left.
    cash_by "centre"    (WeChat with cash_after_6203 = "centre_returns_cash")
                        6203 as the HIS asked (ALL / CASH / HI, cash included); no channel
                        refund: the centre has WeChat give the cash back.  If that reading is
                        wrong the cash is never returned: the simulator's per-leg ledger shows
                        it, and the reconciliation of the channel bill would.

Then, for WeChat, the insurance refund is told to WeChat (§2.7) with the cash refund's
out_refund_no (or, without a cash refund, the refund's own number).
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Optional

from .payer import ALIPAY, WECHAT

CHANNEL, CENTRE = "channel", "centre"
ZERO = Decimal("0.00")


def cash_by(channel: Optional[str], cash_after_6203: str = "hospital_refunds_cash") -> Optional[str]:
    """Who gives a channel payment's cash back; None for a payment without a channel (the
    centre's 6203 as before)."""
    if channel == WECHAT:
        return CENTRE if cash_after_6203 == "centre_returns_cash" else CHANNEL
    if channel == ALIPAY:
        return CHANNEL
    return None


@dataclass(frozen=True)
class Legs:
    centre_type: Optional[str]      # refdType of the 6203 to send ("ALL" / "CASH" / "HI"), None: no 6203
    centre_fund: Decimal
    centre_account: Decimal
    centre_cash: Decimal            # cash named in the 6203 (only when the centre returns it)
    channel_cash: Decimal           # cash to refund through the channel
    notify: bool                    # WeChat: tell it about the insurance refund (§2.7)

    @property
    def centre_total(self) -> Decimal:
        return self.centre_fund + self.centre_account + self.centre_cash


def split(channel: Optional[str], by: Optional[str], refd_type: str, fund: Decimal, account: Decimal,
          cash: Decimal) -> Legs:
    """The legs of a refund of (fund, account, cash) that the centre's rules allow as
    ``refd_type`` (bridge/mobilepay/refund.py decides that part, as for any payment)."""
    insurance = fund + account
    if by == CHANNEL:
        return Legs("HI" if insurance > 0 else None, fund, account, ZERO, cash,
                    notify=channel == WECHAT and insurance > 0)
    return Legs(refd_type if insurance + cash > 0 else None, fund, account, cash, ZERO,
                notify=channel == WECHAT and insurance > 0)
