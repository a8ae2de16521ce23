"""Mobile pay: every order of the day in the order book, against the centre (6301, where no bill
exists) and against the channels' bills (the cash that moved in WeChat / Alipay that day).

1. The bills of the day are downloaded and loaded into mi_channel_bill (this run's rows).
2. The book's mobile-pay orders that moved that day, page by page: each is asked of the centre
   (6301, with the payment's payToken from mi_secret and the patient from its request), and
   its cash movement is compared with the bill rows of its out_trade_no.
3. Bill rows of orders that did not move in the book that day: the channel only.
4. Payments mibridge placed whose settlement the book does not hold are asked of the centre
   too: those that ended that day (failed, resolved, and done: a booking that failed, see
   bridge/db/orderbook.py, leaves a done payment out of the book) and those held.  Settled at
   the centre means "only at the platform" (a 单边账 for a person).

6301 moves no money and is asked again after no answer; a refusal leaves the order unchecked
(a person looks), never classed as missing.
"""
from __future__ import annotations

import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Iterable, Optional

from loguru import logger

from bridge.calls import Outcome
from bridge.engine.crashpoints import crashpoint
from bridge.reconcile.channels import BillSource, BillUnreadable, no_bill
from bridge.reconcile.context import ReconcileError, RunContext
from bridge.reconcile.days import ts_param, utc_bounds
from bridge.reconcile.hospital import dec
from bridge.reconcile.model import (BOOK_PLATFORMS, MOBILEPAY, UNCHECKED, BookOrder, CentreView, Item, centre_legs,
                                    channel_leg, q)
from bridge.reconcile.runs import page

PLATFORMS = BOOK_PLATFORMS[MOBILEPAY]
PAYMENT_KINDS = ("mobilepay.outpatient", "mobilepay.registration")
PAY_TOKEN = "payToken"


@dataclass
class MobilePayOutcome:
    bills: dict = field(default_factory=dict)
    orders: int = 0
    asked: int = 0
    candidates: int = 0

    @property
    def balanced(self) -> Optional[bool]:
        return None      # decided by the items


class MobilePayReconciler:
    platform = MOBILEPAY

    def __init__(self, client=None, bills: Iterable[BillSource] = (), *, default_id_type: str = "01",
                 wechat_cash_after_6203: str = "hospital_refunds_cash"):
        """`client`: the centre's MobilePayClient (None: the centre is not asked); `bills`: the
        channels' bill sources (bridge/reconcile/channels.py); `wechat_cash_after_6203`:
        [wechatpay]'s setting, for a WeChat payment whose request does not say who gives its
        cash back."""
        self.client = client
        self.bills = list(bills)
        self.default_id_type = default_id_type
        self.wechat_cash_after_6203 = wechat_cash_after_6203

    def run(self, ctx: RunContext) -> MobilePayOutcome:
        out = MobilePayOutcome()
        for source in self.bills:
            out.bills[source.channel] = self._load_bill(ctx, source)
        ctx.runs.note(ctx.run_id, bills=out.bills)
        crashpoint("recon_after_bills")
        ask = self.client is not None and ctx.settings.centre_query == "all"
        loaded = set(out.bills)
        ctx.step("orders")
        for orders in ctx.book.orders_of_day(ctx.day, PLATFORMS):
            views = self._ask(ctx, orders) if ask else {}
            bills = self._bill_sums(ctx, [o.out_trade_no for o in orders if o.out_trade_no])
            items: list[Item] = []
            for o in orders:
                if ask:
                    items += centre_legs(o, views[o.order_ref], o.key)
                items += self._channel_item(o, bills.get(o.out_trade_no), loaded)
            ctx.write(items)
            out.orders += len(orders)
            out.asked += len(views)
            ctx.tick("orders", out.orders)
        self._bill_only(ctx)
        if ask:
            out.candidates = self._unbooked_payments(ctx)
        return out

    # -- bills ------------------------------------------------------------------------------
    def _load_bill(self, ctx: RunContext, source: BillSource) -> dict:
        ctx.step(f"bill {source.channel}")
        path = os.path.join(ctx.work_dir, f"bill_{source.channel}_{ctx.day}")
        r = ctx.call(f"bill {source.channel}", lambda: source.download(ctx.day, path))
        if not r.ok:
            if no_bill(r) and not self._book_has_channel_cash(ctx, source.channel):
                return {"rows": 0, "said": f"no bill ({r.code}); the book has no {source.channel} cash that day"}
            raise ReconcileError(f"the {source.channel} bill of {ctx.day} could not be downloaded: {r.code} {r.message}")
        n, batch = 0, []
        try:
            for row in source.rows(path):
                batch.append(row.as_row(ctx.day))
                if len(batch) >= ctx.settings.page_size:
                    ctx.runs.add_bill_rows(ctx.run_id, batch)
                    n += len(batch)
                    batch = []
                    ctx.tick(f"bill {source.channel}", n)
            ctx.runs.add_bill_rows(ctx.run_id, batch)
            n += len(batch)
        except BillUnreadable as exc:
            raise ReconcileError(str(exc)) from exc
        finally:
            try:
                os.unlink(path)
            except OSError:
                pass
        return {"rows": n}

    def _book_has_channel_cash(self, ctx: RunContext, channel: str) -> bool:
        rows = ctx.store.query("""SELECT COUNT(*) FROM mi_order
                                   WHERE settle_day = :d AND platform = 'mobilepay' AND channel = :c""",
                               {"d": ctx.day, "c": channel})
        return int(rows[0][0]) > 0

    def _bill_sums(self, ctx: RunContext, out_trade_nos: list[str]) -> dict[str, tuple[str, object]]:
        if not out_trade_nos:
            return {}
        cond, params = ctx.book.any_of("out_trade_no", out_trade_nos, "t")
        rows = ctx.store.query(f"""SELECT out_trade_no, channel, SUM({_num(ctx, 'amount')}) FROM mi_channel_bill
                                    WHERE run_id = :r AND {cond}
                                    GROUP BY out_trade_no, channel""", dict(params, r=ctx.run_id))
        return {r[0]: (r[1], dec(r[2])) for r in rows}

    def _channel_item(self, o: BookOrder, bill, loaded: set) -> list[Item]:
        channel = o.channel if o.channel in ("wechat", "alipay") else (bill[0] if bill else None)
        if channel is None:
            return []
        hospital = o.day_net["cash"] if o.present else None
        if channel not in loaded and bill is None:
            if hospital is None or q(hospital) == 0:
                return []
            return [Item(o.key, "channel", UNCHECKED, channel, hospital_amount=q(hospital), order_ref=o.order_ref,
                         business_key=o.business_key, channel=channel, channel_ref=o.out_trade_no,
                         note=f"no {channel} bill was loaded (its client is not configured)")]
        return [channel_leg(o.key, hospital, None if bill is None else bill[1], channel=channel,
                            channel_ref=o.out_trade_no, order_ref=o.order_ref, business_key=o.business_key)]

    def _bill_only(self, ctx: RunContext) -> None:
        """Bill rows whose out_trade_no no item of this run covers: read a page of bill rows at
        a time (by id), each new out_trade_no summed over all its rows."""
        ctx.step("bill only")
        last, size = 0, ctx.settings.page_size
        while True:
            rows = ctx.store.query(page(ctx.store, """SELECT id, out_trade_no FROM mi_channel_bill
                                                       WHERE run_id = :r AND id > :last ORDER BY id""", size),
                                   {"r": ctx.run_id, "last": last})
            if not rows:
                return
            last = int(rows[-1][0])
            keys = list(dict.fromkeys(r[1] for r in rows))
            # An order of the book that moved that day had its channel item written by the
            # orders' pass; only the other keys are looked up among this run's items (a bill
            # row seen on an earlier page).  Asking the items for every key cost a scan of the
            # run's items per page (planned on the statistics of an empty table): quadratic.
            orders = ctx.book.orders_by("out_trade_no", keys, ctx.day)
            rest = [k for k in keys if not (k in orders and orders[k].present and orders[k].platform in PLATFORMS)]
            done = ctx.book.itemized(ctx.run_id, rest, column="channel_ref")
            todo = [k for k in rest if k not in done]
            sums = self._bill_sums(ctx, todo)
            items = []
            for otn in todo:
                channel, amount = sums[otn]
                o = orders.get(otn)
                if o is not None:
                    items.append(channel_leg(o.key, o.day_net["cash"] if o.present else None, amount,
                                             channel=channel, channel_ref=otn, order_ref=o.order_ref,
                                             business_key=o.business_key,
                                             note=f"the order moved in the book on {o.settle_day}, not this day"))
                else:
                    items.append(channel_leg(otn, None, amount, channel=channel, channel_ref=otn,
                                             note="no order of the book has this out_trade_no"))
            ctx.write(items)
            if len(rows) < size:
                return

    # -- the centre (6301) ------------------------------------------------------------------------
    def _ask(self, ctx: RunContext, orders: list[BookOrder]) -> dict[int, CentreView]:
        ids = [o.outbox_id for o in orders if o.outbox_id is not None]
        tokens = ctx.store.secret_values(ids, PAY_TOKEN)
        patients = self._patients(ctx, ids)
        jobs = {}
        for o in orders:
            patient = patients.get(o.outbox_id)
            o.cash_by = (patient or {}).get("cash_by") or self._cash_by(o.channel)
            jobs[o.order_ref] = (o.key, tokens.get(o.outbox_id), patient)
        return self._ask_all(ctx, jobs)

    def _cash_by(self, channel: Optional[str]) -> Optional[str]:
        """Who gives a channel payment's cash back, by the rule the flows apply when it settles
        (for a request that no longer says)."""
        from bridge.channels.refund_legs import cash_by
        return cash_by(channel if channel in ("wechat", "alipay") else None, self.wechat_cash_after_6203)

    def _patients(self, ctx: RunContext, outbox_ids: list[int]) -> dict[int, dict]:
        """The payments' requests: the patient 6301 needs, and who gives the cash back (the
        payment's own record of it, flow_data settled.cash_by, which its refunds follow)."""
        if not outbox_ids:
            return {}
        marks = ", ".join(f":o{n}" for n in range(len(outbox_ids)))
        rows = ctx.store.query(f"SELECT id, payload, flow_data FROM mi_outbox WHERE id IN ({marks})",
                               {f"o{n}": v for n, v in enumerate(outbox_ids)})
        out = {}
        for oid, payload, flow_data in rows:
            doc, data = _json(payload), _json(flow_data)
            if doc is None:
                continue
            settled = data.get("settled") if isinstance(data, dict) else None
            out[int(oid)] = {"id_no": doc.get("id_no"), "user_name": doc.get("user_name"),
                             "id_type": doc.get("id_type") or self.default_id_type,
                             "cash_by": settled.get("cash_by") if isinstance(settled, dict) else None}
        return out

    def _ask_all(self, ctx: RunContext, jobs: dict) -> dict:
        with ThreadPoolExecutor(max_workers=ctx.settings.centre_workers) as pool:
            futures = {ref: pool.submit(self._query, ctx, *job) for ref, job in jobs.items()}
            views = {}
            for n, (ref, f) in enumerate(futures.items(), 1):
                views[ref] = f.result()
                if n % 50 == 0:
                    ctx.tick("6301", n, len(futures))
        return views

    def _query(self, ctx: RunContext, pay_ord_id: str, token: Optional[str], patient: Optional[dict]) -> CentreView:
        """One 6301, repeated after no answer (it moves no money).  Runs in a worker thread:
        it touches no database connection."""
        from bridge.mobilepay.messages import QueryOrderRequest

        if not token:
            return CentreView(problem="not asked: the payment's payToken is not on record (purged?)")
        if not patient or not patient.get("id_no") or not patient.get("user_name"):
            return CentreView(problem="not asked: the payment's request (the patient) is not on record (purged?)")
        req = QueryOrderRequest(payOrdId=pay_ord_id, payToken=token, idNo=patient["id_no"],
                                userName=patient["user_name"], idType=patient["id_type"])
        r = None
        for n in range(1, ctx.settings.call_attempts + 1):
            r = self.client.send(self.client.prepare_query_order(req))
            if r.ok or (r.outcome is Outcome.REJECTED and not r.transient):
                break
            if n < ctx.settings.call_attempts:
                time.sleep(ctx.settings.call_retry_seconds)
        if not r.ok:
            return CentreView(problem=f"6301 {r.outcome.value}: {r.code or ''} {r.message or ''}".strip()[:300])
        d = r.data
        amounts = None
        if d.feeSumamt is not None:
            amounts = {"total": q(d.feeSumamt), "fund": q(d.fundPay or 0), "account": q(d.psnAcctPay or 0),
                       "cash": q(d.ownPayAmt or 0)}
        return CentreView(ord_stas=d.ordStas.value if d.ordStas is not None else None, amounts=amounts)

    def _unbooked_payments(self, ctx: RunContext) -> int:
        """Payments that ended that day (failed, resolved, done) or are held, whose order the book
        does not hold: the centre may have settled them all the same.  (A done payment is in the
        book unless its booking failed: one look-up per page, no 6301.)"""
        ctx.step("unbooked payments")
        s = ctx.store
        lo, hi = utc_bounds(ctx.day)
        lo_sql, lo_v = ts_param(s.dialect.name, "lo", lo)
        hi_sql, hi_v = ts_param(s.dialect.name, "hi", hi)
        kinds = ", ".join(f":k{n}" for n in range(len(PAYMENT_KINDS)))
        params = {f"k{n}": k for n, k in enumerate(PAYMENT_KINDS)}
        found: list = []
        total = 0
        ended = f"finished_at >= {lo_sql} AND finished_at < {hi_sql} AND state IN ('done', 'failed', 'resolved')"
        for where, extra in ((ended, {"lo": lo_v, "hi": hi_v}), ("state = 'held'", {})):
            last = 0
            while True:
                rows = s.query(page(s, f"""SELECT id, business_key, flow_data FROM mi_outbox
                                            WHERE {where} AND kind IN ({kinds}) AND id > :last ORDER BY id""",
                                    ctx.settings.page_size), dict(params, **extra, last=last))
                for oid, bkey, fd in rows:
                    try:
                        data = json.loads(fd if isinstance(fd, str) else fd.read()) if fd else {}
                    except (ValueError, AttributeError):
                        data = {}
                    if data.get("payOrdId"):
                        found.append((int(oid), bkey, str(data["payOrdId"])))
                        total += 1
                # Checked a page at a time: the book, then the centre.
                if len(found) >= ctx.settings.page_size:
                    self._check_unbooked(ctx, found)
                    found = []
                if len(rows) < ctx.settings.page_size:
                    break
                last = int(rows[-1][0])
        self._check_unbooked(ctx, found)
        return total

    def _check_unbooked(self, ctx: RunContext, found: list) -> None:
        if not found:
            return
        booked = ctx.book.orders_by("platform_order_id", [f[2] for f in found], ctx.day)
        todo = [f for f in found if f[2] not in booked]
        if not todo:
            return
        ids = [f[0] for f in todo]
        tokens = ctx.store.secret_values(ids, PAY_TOKEN)
        patients = self._patients(ctx, ids)
        views = self._ask_all(ctx, {oid: (key, tokens.get(oid), patients.get(oid)) for oid, _, key in todo})
        items = []
        done = set()
        for oid, bkey, key in todo:
            view = views[oid]
            if key in done or (view.problem is None and not view.booked):
                continue            # nothing was settled at the centre either
            done.add(key)
            if view.problem is not None:
                logger.warning("reconciliation: payment {} ({}) ended without a booked settlement and the centre "
                               "could not be asked: {}", bkey, key, view.problem)
            legs = centre_legs(None, view, key, business_key=bkey)
            for it in legs:
                it.note = it.note or "the order book has no settlement of this payment (see its request)"
            items += legs
        ctx.write(items)


def _json(text) -> Optional[dict]:
    """A JSON column as the driver gives it (an Oracle CLOB has read()); None if unreadable."""
    if text is None:
        return None
    try:
        doc = json.loads(text if isinstance(text, str) else text.read())
    except (ValueError, TypeError, AttributeError):
        return None
    return doc if isinstance(doc, dict) else None


def _num(ctx: RunContext, column: str) -> str:
    return f"CAST({column} AS NUMERIC)" if ctx.store.dialect.name == "sqlite" else column
