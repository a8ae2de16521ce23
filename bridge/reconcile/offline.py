"""Day-end reconciliation of the offline settlements (face pay, kiosks), offline.md §10:

1. 3201 per group (insurance region, insurance type, clearing type) over the day's net
   settlements, from the order book;
2. for every (region, clearing type) with a group that does not balance: the 3202 detail file
   (TAB-separated, zipped: bridge/offline/reconfile.py), uploaded by 9101, then 3202, then the
   result file downloaded by 9102 and read row by row;
3. one item per settlement and leg (total, fund, account): from the result rows where 3202 ran,
   balanced where 3201 balanced, unchecked where the book cannot say which group a settlement
   is in.

A run killed at any point is started again from the beginning: every call here is a query or
a file transfer, repeated harmlessly (a second 9101 leaves an unused file at the centre).
"""
from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from typing import Iterator, Optional

from loguru import logger

from bridge.calls import CallResult
from bridge.db.orderbook import intp, money_sql, num
from bridge.engine.crashpoints import crashpoint
from bridge.offline import messages as m
from bridge.offline.client import OfflineClient
from bridge.offline.reconfile import DetailRow, ReconFileError, read_result_file, write_detail_file
from bridge.reconcile.context import ReconcileError, RunContext
from bridge.reconcile.hospital import Group
from bridge.reconcile.model import (BOOK_PLATFORMS, OFFLINE, OFFLINE_LEGS, UNCHECKED, ZERO, Item,
                                    offline_legs, q)

PLATFORMS = BOOK_PLATFORMS[OFFLINE]


@dataclass
class OfflineOutcome:
    groups: dict          # key -> {"balanced": bool | None, "said": text}
    detailed: list        # the (setl_optins, clr_type) pairs 3202 ran for

    @property
    def balanced(self) -> Optional[bool]:
        said = [g["balanced"] for g in self.groups.values()]
        return all(b is True for b in said)


class OfflineReconciler:
    platform = OFFLINE

    def __init__(self, client: OfflineClient):
        self.client = client

    # -- the run ------------------------------------------------------------------------------
    def run(self, ctx: RunContext) -> OfflineOutcome:
        book = ctx.book
        ctx.step("totals")
        groups = book.groups(ctx.day, PLATFORMS)
        for g in ctx.settings.extra_groups:
            optins, insutype, clr = g.split(":")
            groups.setdefault(g, Group(optins, insutype, clr))
        said: dict[str, dict] = {}
        known = [g for g in groups.values() if g.known]
        for n, g in enumerate(sorted(known, key=lambda x: x.key), 1):
            said[g.key] = self._totals(ctx, g)
            ctx.tick("3201", n, len(known))
        if "unknown" in groups:
            said["unknown"] = {"balanced": None, "said": "settlements without insutype, clr_type or region in the "
                                                         "book: not asked"}
        ctx.runs.note(ctx.run_id, groups=said)

        pairs = sorted({(g.setl_optins, g.clr_type) for g in known if said[g.key]["balanced"] is not True})
        for optins, clr in pairs:
            self._details(ctx, optins, clr)
        # Groups 3201 found balanced, outside the pairs 3202 listed: every order balanced.
        for g in known:
            if said[g.key]["balanced"] is True and (g.setl_optins, g.clr_type) not in pairs:
                self._balanced_group(ctx, g)
        self._unchecked_rest(ctx)
        return OfflineOutcome(said, [list(p) for p in pairs])

    # -- 3201 ---------------------------------------------------------------------------------
    def _totals(self, ctx: RunContext, g: Group) -> dict:
        gz = ctx.settings.offline_api == "guangzhou"
        req = m.ReconcileTotalsRequest(
            insutype=g.insutype, clr_type=g.clr_type, stmt_begndate=ctx.day, stmt_enddate=ctx.day,
            medfee_sumamt=q(g.medfee_sumamt), fund_pay_sumamt=q(g.fund_pay_sumamt),
            fixmedins_setl_cnt=g.count(ctx.settings.count_mode),
            setl_optins=None if gz else g.setl_optins, clr_optins=g.setl_optins if gz else None,
            acct_pay=None if gz else q(g.acct_pay), cash_payamt=q(g.cash_payamt) if gz else None)
        r = ctx.call(f"3201 {g.key}", lambda: self.client.call(self.client.prepare_reconcile_totals, req))
        if r.ok:
            return {"balanced": r.data.balanced, "said": f"{r.data.stmt_rslt} {r.data.stmt_rslt_dscr or ''}".strip(),
                    "totals": {"medfee_sumamt": str(q(g.medfee_sumamt)), "fund_pay_sumamt": str(q(g.fund_pay_sumamt)),
                               "acct_pay": str(q(g.acct_pay)), "cash_payamt": str(q(g.cash_payamt)),
                               "count": g.count(ctx.settings.count_mode)}}
        if r.outcome.value == "rejected" and not r.transient:
            # A verdict against the request itself: the details (3202) will say what differs.
            logger.warning("3201 for {} refused: {} {}; going to the details", g.key, r.code, r.message)
            return {"balanced": False, "said": f"3201 refused: {r.code} {r.message}"}
        raise ReconcileError(f"3201 for {g.key} did not answer after {ctx.settings.call_attempts} tries: "
                             f"{r.outcome.value} {r.message}")

    # -- 9101 / 3202 / 9102 -------------------------------------------------------------------------
    def _detail_rows(self, ctx: RunContext, optins: str, clr: str, tally: dict) -> Iterator[DetailRow]:
        if ctx.settings.detail_rows == "net":
            for orders in ctx.book.orders_of_day(ctx.day, PLATFORMS, filters={"setl_optins": optins,
                                                                              "clr_type": clr}):
                for o in orders:
                    net = o.day_net
                    refund = net["total"] < ZERO
                    tally["rows"] += 1
                    tally["cancellations" if refund else "settlements"] += 1
                    tally["cash"] += net["cash"]
                    yield DetailRow(o.key, None, None, q(net["total"]), q(net["fund"]), q(net["account"]),
                                    m.REFD_SETL_REFUND if refund else m.REFD_SETL_NORMAL)
            return
        for mv in ctx.book.movements(ctx.day, PLATFORMS, optins, clr):
            tally["rows"] += 1
            tally["cancellations" if mv.refund else "settlements"] += 1
            tally["cash"] += mv.cash
            yield DetailRow(mv.setl_id, mv.mdtrt_id or "", mv.psn_no or "", q(mv.total), q(mv.fund), q(mv.account),
                            m.REFD_SETL_REFUND if mv.refund else m.REFD_SETL_NORMAL)

    def _write_file(self, ctx: RunContext, optins: str, clr: str, path: str) -> tuple:
        tally = {"rows": 0, "settlements": 0, "cancellations": 0, "cash": ZERO}
        encoding = self.client.config.recon_file_encoding
        try:
            summary = write_detail_file(self._detail_rows(ctx, optins, clr, tally), path, encoding=encoding)
            totals = (summary.medfee_sumamt, summary.fund_pay_sumamt)
        except ReconFileError:
            if tally["rows"]:
                raise
            # Nothing on our side, yet the centre's totals differ: send an empty file, so that
            # 3202 lists what only the centre has.
            with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
                z.writestr("detail.txt", b"")
            totals = (ZERO, ZERO)
        count = (tally["settlements"] - tally["cancellations"] if ctx.settings.count_mode == "net"
                 else tally["rows"])
        return totals, q(tally["cash"]), count, tally["rows"]

    def _details(self, ctx: RunContext, optins: str, clr: str) -> None:
        label = f"{optins}:{clr}"
        ctx.step(f"3202 file {label}")
        path = os.path.join(ctx.work_dir, f"detail_{ctx.day}_{optins}_{clr}.zip")
        (medfee, fund), cash, count, rows = self._write_file(ctx, optins, clr, path)
        filename = f"{self.client.config.fixmedins_code}_{ctx.day.replace('-', '')}_{optins}_{clr}.zip"
        ctx.step(f"9101 {label}")
        up = ctx.call(f"9101 {label}", lambda: self.client.upload_file(path, filename=filename))
        if not up.ok:
            raise ReconcileError(f"9101 upload of the detail file for {label} failed: {up.code} {up.message}")
        crashpoint("recon_after_9101")
        ctx.runs.note(ctx.run_id, **{f"file {label}": {"rows": rows, "file_qury_no": up.data.file_qury_no}})
        req = m.ReconcileDetailsRequest(setl_optins=optins, file_qury_no=up.data.file_qury_no, stmt_begndate=ctx.day,
                                        stmt_enddate=ctx.day, medfee_sumamt=q(medfee), fund_pay_sumamt=q(fund),
                                        cash_payamt=cash, fixmedins_setl_cnt=count, clr_type=clr)
        result_path = os.path.join(ctx.work_dir, f"result_{ctx.day}_{optins}_{clr}.zip")
        for round_ in (1, 2):
            ctx.step(f"3202 {label}")
            r = ctx.call(f"3202 {label}", lambda: self.client.call(self.client.prepare_reconcile_details, req))
            if not r.ok:
                raise ReconcileError(f"3202 for {label} failed: {r.code} {r.message}")
            crashpoint("recon_after_3202")
            got = self._download(ctx, label, r.data, result_path)
            if got is not None:
                break
            if round_ == 2:
                raise ReconcileError(f"9102 of the 3202 result for {label} was refused after 3202 was asked twice")
            logger.warning("reconciliation run {}: 9102 refused for {}; asking 3202 again", ctx.run_id, label)
        self._read_result(ctx, optins, clr, result_path)
        for p in (path, result_path):
            try:
                os.unlink(p)
            except OSError:
                pass

    def _download(self, ctx: RunContext, label: str, info: m.DetailReconcileResult, dest: str) -> Optional[str]:
        filename = info.filename or "result.zip"
        for n in range(1, ctx.settings.download_attempts + 1):
            ctx.step(f"9102 {label}")
            r: CallResult = ctx.call(f"9102 {label}",
                                     lambda: self.client.download_file(info.file_qury_no, filename, dest))
            if r.ok:
                return dest
            # Refused (a verdict): the result may not be written yet; ask again a little later.
            logger.warning("reconciliation run {}: 9102 for {} refused ({} {}), try {} of {}", ctx.run_id, label,
                           r.code, r.message, n, ctx.settings.download_attempts)
            if n < ctx.settings.download_attempts:
                ctx.sleep(ctx.settings.call_retry_seconds)
        return None

    def _read_result(self, ctx: RunContext, optins: str, clr: str, path: str) -> None:
        encoding = self.client.config.recon_file_encoding
        codes = ctx.settings.result_codes
        batch: list = []
        done = 0
        matched = 0         # result rows of orders the book moved that day

        def flush():
            nonlocal batch, done, matched
            merged: dict[str, dict] = {}
            for row in batch:          # rows of one setl_id are summed (a + and a - row)
                c = merged.setdefault(row.setl_id, {"row": row, "total": ZERO, "fund": ZERO, "account": ZERO})
                c["total"] += row.medfee_sumamt or ZERO
                c["fund"] += row.fund_pay_sumamt or ZERO
                c["account"] += row.acct_pay or ZERO
            orders = ctx.book.orders_by("platform_order_id", list(merged), ctx.day)
            items: list[Item] = []
            for key, c in merged.items():
                row, o = c["row"], orders.get(key)
                hospital = o.day_net if o is not None and o.present else None
                if hospital is not None and o.group == (optins, clr) and o.platform in PLATFORMS:
                    matched += 1
                verdict = codes.get(row.stmt_rslt or "")
                note = None if verdict is not None else f"unknown stmt_rslt {row.stmt_rslt!r}: the amounts decide"
                items += offline_legs(key, hospital, {"total": c["total"], "fund": c["fund"], "account": c["account"]},
                                      verdict, row.stmt_rslt, order_ref=None if o is None else o.order_ref,
                                      business_key=None if o is None else o.business_key, note=note)
            try:
                ctx.write(items)
            except Exception as exc:
                if ctx.store.is_disconnect(exc):
                    raise
                raise ReconcileError(f"the 3202 result for {optins}:{clr} could not be stored ({type(exc).__name__}: "
                                     f"{str(exc).splitlines()[0][:200]}); does it list a settlement twice?") from exc
            done += len(batch)
            ctx.tick(f"3202 result {optins}:{clr}", done)
            batch = []

        try:
            for row in read_result_file(path, encoding=encoding):
                if not row.setl_id:
                    raise ReconcileError(f"the 3202 result for {optins}:{clr} has a row without setl_id")
                if batch and len(batch) >= ctx.settings.page_size and row.setl_id != batch[-1].setl_id:
                    flush()
                batch.append(row)
            if batch:
                flush()
        except ReconFileError as exc:
            raise ReconcileError(f"the 3202 result file for {optins}:{clr} is unreadable: {exc}") from exc
        crashpoint("recon_after_items")
        # What the book moved in that pair and the centre did not list.  When every order the
        # book moved in the pair was in the file, there is nothing to look for.
        if matched == ctx.book.moved_count(ctx.day, PLATFORMS, {"setl_optins": optins, "clr_type": clr}):
            return
        for orders in ctx.book.orders_of_day(ctx.day, PLATFORMS, filters={"setl_optins": optins, "clr_type": clr},
                                             not_in_run=ctx.run_id):
            items = []
            for o in orders:
                items += offline_legs(o.key, o.day_net, None, None, None, order_ref=o.order_ref,
                                      business_key=o.business_key, note="not in the centre's 3202 result")
            ctx.write(items)

    # -- balanced groups, and what no group covers ----------------------------------------------------
    def _balanced_group(self, ctx: RunContext, g: Group) -> None:
        """3201 balanced the group: every order of it gets a balanced item per leg, both sides
        holding the book's net of the day.  Written by the database itself (INSERT ... SELECT):
        no row travels through the reconciliation; the groups are disjoint and this one's pair
        had no 3202, so none of its orders has an item yet."""
        ctx.step(f"3201 balanced {g.key}")
        s = ctx.store
        marks = ", ".join(f":p{n}" for n in range(len(PLATFORMS)))
        params = dict({f"p{n}": p for n, p in enumerate(PLATFORMS)}, run=ctx.run_id, d=ctx.day, d2=ctx.day,
                      optins=g.setl_optins, insutype=g.insutype, clr=g.clr_type)
        group = "o.platform IN ({m}) AND o.setl_optins = :optins AND o.insutype = :insutype AND o.clr_type = :clr"
        for leg, column in (("total", "total_amount"), ("fund", "fund_amount"), ("account", "account_amount")):
            refunds = (f"COALESCE((SELECT SUM({num(s, 'r.' + column)}) FROM mi_order_refund r "
                       f"WHERE r.order_ref = o.id AND r.refund_day = :d2), 0)")
            for where, amount in (
                    (f"o.settle_day = :d AND {group}", f"{num(s, 'o.' + column)} - {refunds}"),
                    (f"""o.id IN (SELECT x.order_ref FROM mi_order_refund x WHERE x.refund_day = :d
                                   AND x.platform IN ({{m}}))
                         AND o.settle_day <> :d AND {group}""", f"0 - {refunds}")):
                net = money_sql(s, amount)
                s.execute(f"""
                    INSERT INTO mi_recon_item (run_id, order_key, leg, diff_class, order_ref, business_key,
                                               hospital_amount, platform_amount, source, platform_state)
                    SELECT {intp(s, 'run')}, o.platform_order_id, '{leg}', 'balanced', o.id, o.business_key,
                           {net}, {net}, '3201', '3201 balanced'
                      FROM mi_order o WHERE {where.format(m=marks)}""", params)
            ctx.tick(f"3201 balanced {g.key}", 0)

    def _unchecked_rest(self, ctx: RunContext) -> None:
        ctx.step("unchecked")
        for orders in ctx.book.orders_of_day(ctx.day, PLATFORMS, ungrouped=True):
            items = []
            for o in orders:
                for leg in OFFLINE_LEGS:
                    items.append(Item(o.key, leg, UNCHECKED, "book", hospital_amount=q(o.day_net[leg]),
                                      order_ref=o.order_ref, business_key=o.business_key,
                                      note="the book does not say which 3201 group it is in (insutype, clr_type or "
                                           "region missing)"))
            ctx.write(items)
        seen: set = set()
        for r in ctx.book.unmatched_refunds(ctx.day, PLATFORMS):
            if r["key"] in seen or ctx.book.itemized(ctx.run_id, [r["key"]]):
                continue
            seen.add(r["key"])
            ctx.write([Item(r["key"], leg, UNCHECKED, "book", hospital_amount=q(r[leg]), business_key=r["business_key"],
                            note="a cancellation of a settlement the order book does not hold") for leg in OFFLINE_LEGS])

