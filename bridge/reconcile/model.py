"""What a reconciliation result is, and the decisions that class it.

An item is one order (a setl_id, a payOrdId, or a channel's out_trade_no) and one leg:

    total, fund, account   the platform's view of the insurance settlement (offline 3202 rows,
                           mobile pay 6301), against the order book
    cash                   the patient's own part as the centre states it (mobile pay)
    channel                the cash that moved in WeChat / Alipay that day, against the book

Each side's amount is what that side holds for the order, or None when it holds nothing.
Classes (mi_recon_item.diff_class):

    balanced        every side that should hold it holds the same amount
    hospital_only   the hospital holds it, the platform (or the channel) does not
    platform_only   the platform holds it, the hospital does not
    channel_only    the channel holds it, the hospital does not
    amount_differs  both hold it with different amounts (or refund states)
    unchecked       it could not be compared (the platform was not asked, or could not answer)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Optional

BALANCED = "balanced"
HOSPITAL_ONLY = "hospital_only"
PLATFORM_ONLY = "platform_only"
CHANNEL_ONLY = "channel_only"
AMOUNT_DIFFERS = "amount_differs"
UNCHECKED = "unchecked"
CLASSES = (BALANCED, HOSPITAL_ONLY, PLATFORM_ONLY, CHANNEL_ONLY, AMOUNT_DIFFERS, UNCHECKED)
DIFFERENCES = tuple(c for c in CLASSES if c != BALANCED)

LEGS = ("total", "fund", "account", "cash", "channel")
OFFLINE_LEGS = ("total", "fund", "account")
CENTRE_LEGS = ("total", "fund", "account", "cash")

OFFLINE, MOBILEPAY = "offline", "mobilepay"
PLATFORMS = (OFFLINE, MOBILEPAY)
# Which order-book platforms each reconciliation covers.
BOOK_PLATFORMS = {OFFLINE: ("facepay", "kiosk"), MOBILEPAY: ("mobilepay",)}

ZERO = Decimal("0.00")
CENT = Decimal("0.01")


def q(v) -> Optional[Decimal]:
    if v is None:
        return None
    if type(v) is Decimal:          # the common case, a hundred thousand times a run
        return v.quantize(CENT)
    return Decimal(str(v)).quantize(CENT)


@dataclass
class Item:
    order_key: str
    leg: str
    diff_class: str
    source: str                            # 3201, 3202, 6301, wechat, alipay, book
    hospital_amount: Optional[Decimal] = None
    platform_amount: Optional[Decimal] = None
    channel_amount: Optional[Decimal] = None
    order_ref: Optional[int] = None
    business_key: Optional[str] = None
    channel: Optional[str] = None
    channel_ref: Optional[str] = None
    hospital_state: Optional[str] = None
    platform_state: Optional[str] = None
    note: Optional[str] = None


def compare(hospital: Optional[Decimal], other: Optional[Decimal], *, other_only: str) -> str:
    """Two sides of one leg: None means that side holds nothing, and a net of 0.00 against
    nothing is nothing on both sides (settled and cancelled on the same day)."""
    if hospital is None and other is None:
        return BALANCED
    if other is None:
        return BALANCED if q(hospital) == ZERO else HOSPITAL_ONLY
    if hospital is None:
        return BALANCED if q(other) == ZERO else other_only
    return BALANCED if q(hospital) == q(other) else AMOUNT_DIFFERS


# 3202 result rows: the centre's own verdict per setl_id.  Its codes are not public
# (offline.md §13 #4); these are the simulator's, configurable (ReconcileSettings.result_codes).
DEFAULT_RESULT_CODES = {"0": BALANCED, "1": HOSPITAL_ONLY, "2": PLATFORM_ONLY, "3": AMOUNT_DIFFERS}


def offline_legs(key: str, hospital: Optional[dict], centre: Optional[dict], verdict: Optional[str],
                 code: Optional[str], *, source: str = "3202", order_ref: Optional[int] = None,
                 business_key: Optional[str] = None, note: Optional[str] = None) -> list[Item]:
    """One settlement's legs from the hospital's net amounts of the day and a 3202 result row.

    `verdict` is the centre's code mapped to a class (None: unknown code).  The amounts decide
    where they can: a row the centre calls balanced but whose amounts differ from the book is
    amount_differs; a row the centre calls "the institution only" carries the institution's
    amounts, not the centre's, so the centre side is empty."""
    items = []
    centre_side = None if verdict == HOSPITAL_ONLY else centre
    for leg in OFFLINE_LEGS:
        h = None if hospital is None else hospital.get(leg)
        p = None if centre_side is None else centre_side.get(leg)
        items.append(Item(key, leg, compare(h, p, other_only=PLATFORM_ONLY), source, hospital_amount=q(h),
                          platform_amount=q(p), order_ref=order_ref, business_key=business_key,
                          platform_state=None if code is None else f"stmt_rslt {code}", note=note))
    if verdict not in (None, BALANCED) and all(i.diff_class == BALANCED for i in items):
        # The centre reports a difference the amounts do not show (its count, a leg it
        # does not list): a person looks, the amounts are in the row.
        items[0].diff_class = verdict if verdict in (HOSPITAL_ONLY, PLATFORM_ONLY) else AMOUNT_DIFFERS
        items[0].note = (note + "; " if note else "") + "the centre reports a difference the amounts do not show"
    return items


# --- mobile pay: the centre's order status (6301 ordStas) against the book ---------------------

# What each ordStas says about the refunds (mobilepay.md §6.1): insurance legs refunded in
# full or not at all (a HI refund cancels the insurance settlement whole), the cash leg none,
# partly or fully.
ORDSTAS_REFUNDS = {
    "3": ("none", "none"), "4": ("none", "none"), "5": ("none", "none"), "6": ("none", "none"),
    "7": ("full", "full"), "8": ("full", "none"), "9": ("none", "full"), "10": ("none", "partly"),
    "11": ("full", "partly"),
}


def refund_state(refunded: Decimal, amount: Decimal) -> str:
    if refunded <= ZERO:
        return "none"
    return "full" if refunded >= amount else "partly"


@dataclass
class CentreView:
    """What 6301 said about one order: `ord_stas`, the settled amounts (once settled), or why
    it could not be asked."""
    ord_stas: Optional[str] = None
    amounts: Optional[dict] = None          # total, fund, account, cash as settled
    problem: Optional[str] = None

    @property
    def booked(self) -> bool:
        return self.ord_stas in ORDSTAS_REFUNDS


@dataclass
class BookOrder:
    """An order of the book as one day's reconciliation sees it."""
    order_ref: int
    key: str
    business_key: str
    platform: str
    channel: str
    out_trade_no: Optional[str]
    status: str
    settle_day: str
    settled: dict                             # total, fund, account, cash as paid
    refunded: dict                            # the same legs, refunded so far
    day_net: dict = field(default_factory=dict)   # the day's movement per leg (+ paid, - refunded)
    present: bool = True                      # it moved on the day
    outbox_id: Optional[int] = None
    group: tuple = (None, None)               # offline: (setl_optins, clr_type), the 3202 pair
    # Mobile pay through a channel: who gives the cash back ("channel" or "centre"; None: a
    # payment without a channel, whose refunds all go through the centre).
    cash_by: Optional[str] = None

    def net(self) -> dict:
        return {leg: self.settled[leg] - self.refunded[leg] for leg in CENTRE_LEGS}

    @property
    def cash_at_channel(self) -> bool:
        return self.cash_by == "channel"

    def centre_net(self) -> dict:
        """What the centre should hold of each leg now.  A payment whose cash goes back through
        its channel never has the centre move cash (bridge/channels/refund_legs.py): there the
        cash stays as paid, and its refunds are checked against the channel's bill instead."""
        net = self.net()
        if self.cash_at_channel:
            net["cash"] = self.settled["cash"]
            net["total"] = net["fund"] + net["account"] + net["cash"]
        return net


def centre_legs(order: Optional[BookOrder], view: CentreView, key: str, *,
                business_key: Optional[str] = None) -> list[Item]:
    """The four centre legs of a mobile-pay order: what is left paid of each leg now, in the
    book and at the centre (settled minus refunded, the centre's refunds read from ordStas).
    The book's side is what the centre should hold (BookOrder.centre_net): the cash a channel
    gave back is not the centre's to know."""
    h_state = None if order is None else order.status
    p_state = None if view.ord_stas is None else f"ordStas {view.ord_stas}"
    ref = None if order is None else order.order_ref
    bkey = business_key or (None if order is None else order.business_key)
    if view.problem is not None:
        return [Item(key, leg, UNCHECKED, "6301",
                     hospital_amount=None if order is None else q(order.centre_net()[leg]),
                     order_ref=ref, business_key=bkey, hospital_state=h_state, platform_state=p_state,
                     note=view.problem) for leg in CENTRE_LEGS]
    hospital = None if order is None else order.centre_net()
    centre, note = None, None
    if order is not None and order.cash_at_channel and order.refunded["cash"] > ZERO:
        note = (f"{q(order.refunded['cash'])} of the cash went back through {order.channel}: the centre keeps "
                f"the cash as paid, the channel leg checks the refunds")
    if view.booked and view.amounts is not None:
        ins, cash = ORDSTAS_REFUNDS[view.ord_stas]
        a = view.amounts
        centre = {"fund": ZERO if ins == "full" else a["fund"], "account": ZERO if ins == "full" else a["account"]}
        if cash == "partly":
            booked_cash = None if order is None else refund_state(
                order.settled["cash"] - hospital["cash"], order.settled["cash"])
            if booked_cash == "partly":
                centre["cash"] = hospital["cash"]      # 6301 gives no refunded amount: the states agree
                note = "the centre says the cash is partly refunded (6301 gives no amount)"
            else:
                centre["cash"] = None
                note = "the centre says the cash is partly refunded; the book does not"
        else:
            centre["cash"] = ZERO if cash == "full" else a["cash"]
        centre["total"] = None if centre["cash"] is None else centre["fund"] + centre["account"] + centre["cash"]
    items = []
    for leg in CENTRE_LEGS:
        h = None if hospital is None else hospital[leg]
        if centre is not None and centre[leg] is None:
            cls, p = AMOUNT_DIFFERS, None
        else:
            p = None if centre is None else centre[leg]
            cls = compare(h, p, other_only=PLATFORM_ONLY)
        items.append(Item(key, leg, cls, "6301", hospital_amount=q(h), platform_amount=q(p), order_ref=ref,
                          business_key=bkey, hospital_state=h_state, platform_state=p_state, note=note))
    return items


def channel_leg(key: str, hospital: Optional[Decimal], channel_amount: Optional[Decimal], *, channel: Optional[str],
                channel_ref: Optional[str], order_ref: Optional[int] = None, business_key: Optional[str] = None,
                note: Optional[str] = None) -> Item:
    """The cash that moved in the channel on the day against the book's movement of the day.
    A zero movement on a side that has no bill row counts as holding nothing."""
    h = None if hospital is None or (q(hospital) == ZERO and channel_amount is None) else hospital
    return Item(key, "channel", compare(h, channel_amount, other_only=CHANNEL_ONLY), channel or "channel",
                hospital_amount=q(h), channel_amount=q(channel_amount), order_ref=order_ref,
                business_key=business_key, channel=channel, channel_ref=channel_ref, note=note)
