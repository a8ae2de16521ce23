"""The money legs of a mobile payment, each counted on its own (GET /__sim__/legs).

A mobile payment has three legs: the pooled fund and the personal account, which the centre
moves (mobilepay.py: the patient's payment settles them, 6203 gives them back), and the cash,
which the patient pays in a channel (WeChat Pay, Alipay) and which only that channel gives back
(`POST /v3/refund/domestic/refunds`, `alipay.trade.refund`). A 6203 that names cash is the
centre's bookkeeping; no cash reaches the patient through it, except under the
"centre_returns_cash" reading of channels.md §2.7 / §10.4 (item 4), where the simulator makes
the WeChat side return the cash of a mixed order itself (wechatpay.py, `centre_cash_return`).

So a test can assert "cash charged once, cash refunded once" as well as "insurance charged once":

    legs = GET /__sim__/legs
    legs["by_order"][payOrdId]["cash"]["wechat"] == {"charged": "20.00", "charges": 1,
                                                    "refunded": "20.00", "refunds": 1}

Orders are keyed by the centre's payOrdId when there is one, else by the channel's out_trade_no
(cash-only orders). "external" is the cash of a legacy /__sim__/mobilepay/pay, paid in a
channel the simulator does not model.
"""
from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Optional

from .ledger import Ledger
from .split import ZERO

CHANNELS = ("wechat", "alipay", "external")


def _blank() -> dict:
    return {"charged": ZERO, "charges": 0, "refunded": ZERO, "refunds": 0}


class Legs:
    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    # --- recording -----------------------------------------------------------------------
    def insurance_charge(self, pay_ord_id: str, fund: Decimal, acct: Decimal) -> None:
        if fund or acct:
            self.ledger.record("insurance.charge", pay_ord_id, fund + acct, fund=str(fund), acct=str(acct))

    def insurance_refund(self, pay_ord_id: str, fund: Decimal, acct: Decimal, key: str) -> None:
        if fund or acct:
            self.ledger.record("insurance.refund", pay_ord_id, fund + acct, fund=str(fund), acct=str(acct),
                               key=key)

    def cash_charge(self, channel: str, ref: str, amount: Decimal, key: str,
                    out_trade_no: Optional[str] = None) -> None:
        assert channel in CHANNELS, channel
        if amount:
            self.ledger.record("cash.charge", ref, amount, channel=channel, key=key,
                               out_trade_no=out_trade_no or ref)

    def cash_refund(self, channel: str, ref: str, amount: Decimal, key: str, by: str,
                    out_trade_no: Optional[str] = None) -> None:
        """by: who made the channel move the cash ("hospital" or, under the centre reading, "centre")."""
        assert channel in CHANNELS, channel
        if amount:
            self.ledger.record("cash.refund", ref, amount, channel=channel, key=key, by=by,
                               out_trade_no=out_trade_no or ref)

    # --- reading -------------------------------------------------------------------------
    def summary(self) -> dict:
        """{"total": legs, "by_order": {ref: legs}} with legs = {"fund", "acct", "cash": {channel}}."""
        total = self._new()
        by_order: dict[str, dict] = defaultdict(self._new)
        for e in self.ledger.events():
            kind = e["kind"]
            if not kind.startswith(("insurance.", "cash.")):
                continue
            for target in (total, by_order[e["ref"]]):
                self._add(target, e)
        return {"total": self._public(total), "by_order": {k: self._public(v) for k, v in by_order.items()}}

    @staticmethod
    def _new() -> dict:
        return {"fund": _blank(), "acct": _blank(), "cash": {c: _blank() for c in CHANNELS}}

    @staticmethod
    def _add(target: dict, e: dict) -> None:
        side, what = e["kind"].split(".")
        money, count = ("charged", "charges") if what == "charge" else ("refunded", "refunds")
        if side == "insurance":
            for leg in ("fund", "acct"):
                amount = Decimal(e[leg])
                if amount:
                    target[leg][money] += amount
                    target[leg][count] += 1
        else:
            slot = target["cash"][e["channel"]]
            slot[money] += Decimal(e["amount"])
            slot[count] += 1

    @staticmethod
    def _public(legs: dict) -> dict:
        def one(d: dict) -> dict:
            return {"charged": str(d["charged"]), "charges": d["charges"],
                    "refunded": str(d["refunded"]), "refunds": d["refunds"]}
        return {"fund": one(legs["fund"]), "acct": one(legs["acct"]),
                "cash": {c: one(v) for c, v in legs["cash"].items()}}
