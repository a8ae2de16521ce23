"""The HIS side of a day: the order book's movements (mi_order, mi_order_refund).

A payment moves on its settle_day (+ its amounts) and on each refund_day of its refunds,
reversals and cancellations (- theirs): "the day's net settlements (settlements minus
cancellations)" of offline.md §10.1.  Everything is read in keyset pages, so memory stays
flat in the number of rows.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Iterator, Optional

from bridge.db.orderbook import num
from bridge.db.store import Store
from bridge.reconcile.model import CENT, CENTRE_LEGS, ZERO, BookOrder
from bridge.reconcile.runs import page

ORDER_COLUMNS = ("id", "platform_order_id", "business_key", "platform", "channel", "out_trade_no", "status",
                 "settle_day", "total_amount", "fund_amount", "account_amount", "cash_amount", "refunded_total",
                 "refunded_fund", "refunded_account", "refunded_cash", "outbox_id", "setl_optins", "clr_type")
LEG_COLUMNS = {"total": "total_amount", "fund": "fund_amount", "account": "account_amount", "cash": "cash_amount"}


def dec(v) -> Decimal:
    """An amount or a SUM as the driver gives it (SQLite: text, or a float sum) -> Decimal."""
    if v is None:
        return ZERO
    if type(v) is Decimal:
        return v.quantize(CENT)
    if isinstance(v, float):
        v = round(v, 2)
    return Decimal(str(v)).quantize(CENT)


@dataclass
class Group:
    """One 3201 group: settlements of the day minus cancellations, per insurance region,
    insurance type and clearing type."""
    setl_optins: Optional[str]
    insutype: Optional[str]
    clr_type: Optional[str]
    medfee_sumamt: Decimal = ZERO
    fund_pay_sumamt: Decimal = ZERO
    acct_pay: Decimal = ZERO
    cash_payamt: Decimal = ZERO
    settlements: int = 0
    cancellations: int = 0

    @property
    def known(self) -> bool:
        return bool(self.setl_optins and self.insutype and self.clr_type)

    @property
    def key(self) -> str:
        return f"{self.setl_optins}:{self.insutype}:{self.clr_type}"

    def count(self, mode: str) -> int:
        return self.settlements - self.cancellations if mode == "net" else self.settlements + self.cancellations


@dataclass
class Movement:
    """One row of the 3202 detail file: a settlement (+) or a cancellation (-)."""
    setl_id: str
    mdtrt_id: Optional[str]
    psn_no: Optional[str]
    total: Decimal
    fund: Decimal
    account: Decimal
    cash: Decimal
    refund: bool


class Book:
    def __init__(self, store: Store, page_size: int = 1000):
        self.store = store
        self.page_size = page_size

    def any_of(self, column: str, values, prefix: str) -> tuple[str, dict]:
        """`column` is one of `values` (a page of keys): one array parameter on PostgreSQL
        (a thousand separate ones cost more to send and to plan than the query itself),
        an IN list elsewhere."""
        values = list(values)
        if self.store.dialect.name == "postgresql":
            return f"{column} = ANY(:{prefix})", {prefix: values}
        marks, params = self._in(values, prefix)
        return f"{column} IN ({marks})", params

    def _in(self, values, prefix: str) -> tuple[str, dict]:
        values = list(values)
        return ", ".join(f":{prefix}{n}" for n in range(len(values))), {f"{prefix}{n}": v for n, v in enumerate(values)}

    # -- 3201 groups ------------------------------------------------------------------------
    def groups(self, day: str, platforms: tuple[str, ...]) -> dict[str, Group]:
        s = self.store
        marks, params = self._in(platforms, "p")
        sums = ", ".join(f"SUM({num(s, c)})" for c in LEG_COLUMNS.values())
        out: dict[str, Group] = {}

        def group(optins, insutype, clr_type) -> Group:
            g = Group(optins or None, insutype or None, clr_type or None)
            return out.setdefault(g.key if g.known else "unknown", g if g.known else Group(None, None, None))

        for optins, insutype, clr, n, total, fund, acct, cash in s.query(f"""
                SELECT setl_optins, insutype, clr_type, COUNT(*), {sums} FROM mi_order
                 WHERE settle_day = :d AND platform IN ({marks})
                 GROUP BY setl_optins, insutype, clr_type""", dict(params, d=day)):
            g = group(optins, insutype, clr)
            g.settlements += int(n)
            g.medfee_sumamt += dec(total)
            g.fund_pay_sumamt += dec(fund)
            g.acct_pay += dec(acct)
            g.cash_payamt += dec(cash)
        rsums = ", ".join(f"SUM({num(s, 'r.' + c)})" for c in LEG_COLUMNS.values())
        for optins, insutype, clr, n, total, fund, acct, cash in s.query(f"""
                SELECT o.setl_optins, o.insutype, o.clr_type, COUNT(*), {rsums}
                  FROM mi_order_refund r LEFT JOIN mi_order o ON o.id = r.order_ref
                 WHERE r.refund_day = :d AND r.platform IN ({marks})
                 GROUP BY o.setl_optins, o.insutype, o.clr_type""", dict(params, d=day)):
            g = group(optins, insutype, clr)
            g.cancellations += int(n)
            g.medfee_sumamt -= dec(total)
            g.fund_pay_sumamt -= dec(fund)
            g.acct_pay -= dec(acct)
            g.cash_payamt -= dec(cash)
        return out

    # -- the 3202 detail file's rows --------------------------------------------------------------
    def movements(self, day: str, platforms: tuple[str, ...], setl_optins: str, clr_type: str) -> Iterator[Movement]:
        s = self.store
        marks, params = self._in(platforms, "p")
        params.update(d=day, optins=setl_optins, clr=clr_type)
        last = 0
        while True:
            rows = s.query(page(s, f"""
                SELECT id, platform_order_id, mdtrt_id, psn_no, total_amount, fund_amount, account_amount, cash_amount
                  FROM mi_order
                 WHERE settle_day = :d AND platform IN ({marks}) AND setl_optins = :optins AND clr_type = :clr
                   AND id > :last ORDER BY id""", self.page_size), dict(params, last=last))
            for r in rows:
                yield Movement(r[1], r[2], r[3], dec(r[4]), dec(r[5]), dec(r[6]), dec(r[7]), False)
            if len(rows) < self.page_size:
                break
            last = int(rows[-1][0])
        last = 0
        while True:
            rows = s.query(page(s, f"""
                SELECT r.id, o.platform_order_id, o.mdtrt_id, o.psn_no, r.total_amount, r.fund_amount,
                       r.account_amount, r.cash_amount
                  FROM mi_order_refund r JOIN mi_order o ON o.id = r.order_ref
                 WHERE r.refund_day = :d AND r.platform IN ({marks}) AND o.setl_optins = :optins
                   AND o.clr_type = :clr AND r.id > :last ORDER BY r.id""", self.page_size), dict(params, last=last))
            for r in rows:
                yield Movement(r[1], r[2], r[3], -dec(r[4]), -dec(r[5]), -dec(r[6]), -dec(r[7]), True)
            if len(rows) < self.page_size:
                break
            last = int(rows[-1][0])

    # -- orders that moved on a day ---------------------------------------------------------------
    def _order(self, r, day: str) -> BookOrder:
        d = dict(zip(ORDER_COLUMNS, r))
        settled = {leg: dec(d[c]) for leg, c in LEG_COLUMNS.items()}
        refunded = {"total": dec(d["refunded_total"]), "fund": dec(d["refunded_fund"]),
                    "account": dec(d["refunded_account"]), "cash": dec(d["refunded_cash"])}
        paid_today = d["settle_day"] == day
        return BookOrder(order_ref=int(d["id"]), key=d["platform_order_id"], business_key=d["business_key"],
                         platform=d["platform"], channel=d["channel"], out_trade_no=d["out_trade_no"],
                         status=d["status"], settle_day=d["settle_day"], settled=settled, refunded=refunded,
                         day_net={leg: settled[leg] if paid_today else ZERO for leg in CENTRE_LEGS},
                         present=paid_today, outbox_id=None if d["outbox_id"] is None else int(d["outbox_id"]),
                         group=(d["setl_optins"], d["clr_type"]))

    def _with_refunds_of_day(self, orders: list[BookOrder], day: str) -> list[BookOrder]:
        if not orders:
            return orders
        s = self.store
        cond, params = self.any_of("order_ref", [o.order_ref for o in orders], "o")
        rsums = ", ".join(f"SUM({num(s, c)})" for c in LEG_COLUMNS.values())
        by_ref = {o.order_ref: o for o in orders}
        for ref, total, fund, acct, cash in s.query(f"""
                SELECT order_ref, {rsums} FROM mi_order_refund
                 WHERE {cond} AND refund_day = :d GROUP BY order_ref""", dict(params, d=day)):
            o = by_ref[int(ref)]
            for leg, v in zip(CENTRE_LEGS, (total, fund, acct, cash)):
                o.day_net[leg] -= dec(v)
            o.present = True
        return orders

    def orders_of_day(self, day: str, platforms: tuple[str, ...], *, filters: Optional[dict] = None,
                      ungrouped: bool = False, not_in_run: Optional[int] = None) -> Iterator[list[BookOrder]]:
        """Pages of the orders that moved on the day: paid that day, or refunded that day.
        `filters`: column = value (setl_optins, insutype, clr_type); `ungrouped`: only those
        the book cannot put in a 3201 group; `not_in_run`: skip the orders that run already
        has items for (checked a page at a time through the items' unique key: an anti-join
        would be planned on the items table's statistics from before the run)."""
        s = self.store
        marks, params = self._in(platforms, "p")
        params["d"] = day
        extra = ""
        for n, (col, value) in enumerate((filters or {}).items()):
            extra += f" AND o.{col} = :f{n}"
            params[f"f{n}"] = value
        if ungrouped:
            extra += " AND (o.setl_optins IS NULL OR o.insutype IS NULL OR o.clr_type IS NULL)"
        cols = ", ".join("o." + c for c in ORDER_COLUMNS)
        for where in (f"o.settle_day = :d AND o.platform IN ({marks})",
                      f"""o.id IN (SELECT r.order_ref FROM mi_order_refund r
                                    WHERE r.refund_day = :d AND r.platform IN ({marks}))
                          AND o.settle_day <> :d AND o.platform IN ({marks})"""):
            last = 0
            while True:
                rows = s.query(page(s, f"SELECT {cols} FROM mi_order o WHERE {where}{extra} AND o.id > :last "
                                       f"ORDER BY o.id", self.page_size), dict(params, last=last))
                orders = [self._order(r, day) for r in rows]
                if orders and not_in_run is not None:
                    done = self.itemized(not_in_run, [o.key for o in orders])
                    orders = [o for o in orders if o.key not in done]
                if orders:
                    yield self._with_refunds_of_day(orders, day)
                if len(rows) < self.page_size:
                    break
                last = int(rows[-1][0])

    def moved_count(self, day: str, platforms: tuple[str, ...], filters: dict) -> int:
        """How many orders moved on the day (paid, or refunded having been paid another day)."""
        s = self.store
        marks, params = self._in(platforms, "p")
        params["d"] = day
        extra = ""
        for n, (col, value) in enumerate(filters.items()):
            extra += f" AND o.{col} = :f{n}"
            params[f"f{n}"] = value
        paid = s.query(f"SELECT COUNT(*) FROM mi_order o WHERE o.settle_day = :d AND o.platform IN ({marks}){extra}",
                       params)[0][0]
        refunded = s.query(f"""SELECT COUNT(*) FROM mi_order o
                                WHERE o.id IN (SELECT r.order_ref FROM mi_order_refund r
                                                WHERE r.refund_day = :d AND r.platform IN ({marks}))
                                  AND o.settle_day <> :d AND o.platform IN ({marks}){extra}""", params)[0][0]
        return int(paid) + int(refunded)

    def itemized(self, run_id: int, keys: list[str], column: str = "order_key") -> set[str]:
        """Which of `keys` the run already has items for (by order key, or by channel_ref)."""
        if not keys:
            return set()
        assert column in ("order_key", "channel_ref")
        cond, params = self.any_of(column, keys, "k")
        rows = self.store.query(f"SELECT DISTINCT {column} FROM mi_recon_item WHERE run_id = :r AND {cond}",
                                dict(params, r=run_id))
        return {r[0] for r in rows}

    def unmatched_refunds(self, day: str, platforms: tuple[str, ...]) -> Iterator[dict]:
        """Refunds of the day whose payment the book does not hold (booked 'unmatched')."""
        s = self.store
        marks, params = self._in(platforms, "p")
        last = 0
        while True:
            rows = s.query(page(s, f"""
                SELECT id, platform_order_id, business_key, total_amount, fund_amount, account_amount, cash_amount
                  FROM mi_order_refund
                 WHERE refund_day = :d AND platform IN ({marks}) AND order_ref IS NULL AND id > :last
                 ORDER BY id""", self.page_size), dict(params, d=day, last=last))
            for r in rows:
                yield {"key": r[1], "business_key": r[2], "total": -dec(r[3]), "fund": -dec(r[4]),
                       "account": -dec(r[5]), "cash": -dec(r[6])}
            if len(rows) < self.page_size:
                return
            last = int(rows[-1][0])

    def orders_by(self, column: str, values: list[str], day: str) -> dict[str, BookOrder]:
        """The orders whose `column` (platform_order_id, out_trade_no) is one of `values`, with
        the day's movement."""
        if not values:
            return {}
        assert column in ("platform_order_id", "out_trade_no")
        cond, params = self.any_of(f"o.{column}", values, "k")
        cols = ", ".join("o." + c for c in ORDER_COLUMNS)
        rows = self.store.query(f"SELECT {cols} FROM mi_order o WHERE {cond} ORDER BY o.id", params)
        orders = self._with_refunds_of_day([self._order(r, day) for r in rows], day)
        out: dict[str, BookOrder] = {}
        for o in orders:
            k = o.key if column == "platform_order_id" else o.out_trade_no
            out.setdefault(k, o)
        return out
