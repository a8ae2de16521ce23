"""The order book: one row per payment (mi_order) and one per refund, 单边账 reversal or
cancellation (mi_order_refund), kept from the inbox rows the flows write, in the same
transaction (Store._write_results).  Purge never deletes them, so a refund of a purged
payment still finds the payment's totals, and the daily reconciliation reads the HIS side
from here (docs/reconciliation.md).

The contract is about result types, not flow kinds: any flow that writes one of these inbox
rows books it.

    result_type          outcome          books
    settlement           ok               a payment, keyed by order_id (payOrdId) or settlement_id (setl_id)
    refund               ok               a refund of the payment named by order_id / settlement_id
    reversal             ok, failed       a full refund (the 单边账 repair: the payment request fails REVERSED)
    cancellation         ok               a cancellation (face pay 2208/2305/2261)
    settlement_reversed  ok               a reversal (2601), when the row names a booked settlement

A payment's platform is its kind's first part (mobilepay., facepay., kiosk.) unless the row's
`result` says `platform`; rows of other kinds book nothing.  What the book reads from a row's
`result` JSON when present (the flows add these; see RESULT_KEYS):

    channel                      wechat | alipay | none (mobile pay without it: unknown)
    mix_trade_no / chnl_ord_sn   the channel's medical order (WeChat's mixed order, Alipay's
                                 medical order number: both in the column mix_trade_no)
    out_trade_no                 the cash trade (mibridge's number for it, the bills' key)
    trade_no / transaction_id    the channel's own trade number (Alipay trade_no, WeChat
                                 transaction_id)
    out_refund_no                a refund's channel refund number
    refNo, termSeqNo             face pay: fpy001's UnionPay reference and terminal serial
    psn_no, mdtrt_id, insutype,  offline settlements: what 3201/3202 group and list by
    clr_type, clr_optins (or setl_optins, insuplc_admdvs)
    setl_time / traceTime        the platform's time of the settlement: its day
    cancel_time / refund_time    the platform's time of a refund or cancellation: its day
    platform                     mobilepay | facepay | kiosk, overriding the kind

Until the face-pay flows put the offline keys into `result`, they are taken from the settling
call's own answer in mi_journal (2207/2304/2260 setlinfo, 2208/2305/2261 for a cancellation's
time): the journal is written before the transition that books, so it is there.

Days are yyyy-MM-dd in China time (UTC+8, no DST), the day the platforms' statements use: the
platform's time when the row has one, else the database clock.

A failure to book never loses the inbox row: the booking runs under a savepoint, and on an
error other than a lost connection it is rolled back and logged (the reconciliation then shows
the payment as known to the platform only, for a person to look at).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Optional

from loguru import logger

if TYPE_CHECKING:       # the Store imports this module
    from bridge.db.rows import ClaimedRow, InboxRow
    from bridge.db.store import Store

PAYMENT, REFUND, REVERSAL, CANCELLATION = "payment", "refund", "reversal", "cancellation"


@dataclass(frozen=True)
class Booking:
    what: str                       # payment | refund | reversal | cancellation
    outcomes: tuple[str, ...]


BOOKINGS: dict[str, Booking] = {
    "settlement": Booking(PAYMENT, ("ok",)),
    "refund": Booking(REFUND, ("ok",)),
    "reversal": Booking(REVERSAL, ("ok", "failed")),
    "cancellation": Booking(CANCELLATION, ("ok",)),
    "settlement_reversed": Booking(REVERSAL, ("ok",)),
}
PLATFORMS = {"mobilepay": "mobilepay", "facepay": "facepay", "kiosk": "kiosk"}
OFFLINE_PLATFORMS = ("facepay", "kiosk")
CHANNELS = ("wechat", "alipay", "none")
# Result keys the book reads (several spellings of one fact: the first present wins).
RESULT_KEYS = {
    "channel": ("channel",), "mix_trade_no": ("mix_trade_no", "chnl_ord_sn"), "out_trade_no": ("out_trade_no",),
    "trade_no": ("trade_no", "transaction_id"), "out_refund_no": ("out_refund_no", "out_request_no"),
    "ref_no": ("refNo", "ref_no"), "term_seq_no": ("termSeqNo", "term_seq_no"),
    "psn_no": ("psn_no", "psnNo"), "mdtrt_id": ("mdtrt_id", "mdtrtId"), "insutype": ("insutype",),
    "clr_type": ("clr_type", "clrType"), "setl_optins": ("setl_optins", "clr_optins", "insuplc_admdvs"),
    "setl_time": ("setl_time", "setlTime", "traceTime"), "refund_time": ("cancel_time", "refund_time"),
}
# The offline calls whose answers carry what an offline row may lack.
SETTLE_CALLS = ("2207", "2304", "2260")
CANCEL_CALLS = ("2208", "2305", "2261")
OFFLINE_FACTS = ("psn_no", "mdtrt_id", "insutype", "clr_type", "setl_optins", "setl_time")

# "Today" in China time, from the database's clock, for a row without a platform time.
DAY_NOW = {
    "postgresql": "to_char(now() AT TIME ZONE 'Asia/Shanghai', 'YYYY-MM-DD')",
    "mysql": "DATE_FORMAT(DATE_ADD(UTC_TIMESTAMP(), INTERVAL 8 HOUR), '%Y-%m-%d')",
    "sqlite": "strftime('%Y-%m-%d', 'now', '+8 hours')",
    "oracle": "TO_CHAR(SYSTIMESTAMP AT TIME ZONE '+08:00', 'YYYY-MM-DD')",
    "sqlserver": "CONVERT(NVARCHAR(10), DATEADD(HOUR, 8, SYSUTCDATETIME()), 23)",
}
SAVEPOINT = {"sqlserver": ("SAVE TRANSACTION mi_book", "ROLLBACK TRANSACTION mi_book")}
_DEFAULT_SAVEPOINT = ("SAVEPOINT mi_book", "ROLLBACK TO SAVEPOINT mi_book")
_DAY = re.compile(r"^(\d{4})-?(\d{2})-?(\d{2})")
ZERO = Decimal("0.00")
CENT = Decimal("0.01")


def platform_of(kind: str, result: dict) -> Optional[str]:
    given = result.get("platform")
    if given in PLATFORMS.values():
        return given
    return PLATFORMS.get(kind.split(".", 1)[0])


def day_of(text: Any) -> Optional[str]:
    """'2024-03-01 09:30:00' or '20240301093000' -> '2024-03-01'; anything else -> None."""
    m = _DAY.match(str(text or ""))
    if not m:
        return None
    y, mo, d = m.groups()
    if not ("01" <= mo <= "12" and "01" <= d <= "31"):
        return None
    return f"{y}-{mo}-{d}"


def _fact(result: dict, name: str) -> Optional[str]:
    for key in RESULT_KEYS[name]:
        v = result.get(key)
        if v not in (None, ""):
            return str(v)[:64]
    return None


def _amount(v: Optional[Decimal]) -> Decimal:
    return ZERO if v is None else abs(Decimal(v)).quantize(CENT)


def money_param(store: "Store", v: Decimal):
    """sqlite3 cannot bind a Decimal (and SQLite money is text); the other drivers take it
    as an exact number."""
    return str(v.quantize(CENT)) if store.dialect.name == "sqlite" else v.quantize(CENT)


def num(store: "Store", column: str) -> str:
    """A money column as a number in SQL (SQLite keeps money as text)."""
    return f"CAST({column} AS NUMERIC)" if store.dialect.name == "sqlite" else column


def money_sql(store: "Store", expr: str) -> str:
    """A computed amount as the column stores it (SQLite: '12.50' text)."""
    return f"printf('%.2f', {expr})" if store.dialect.name == "sqlite" else f"ROUND({expr}, 2)"


def intp(store: "Store", name: str) -> str:
    """An integer parameter that may be NULL in an INSERT ... SELECT: PostgreSQL types a bare
    NULL parameter there as text, which a BIGINT column refuses."""
    return f"CAST(:{name} AS BIGINT)" if store.dialect.name == "postgresql" else f":{name}"


def books(row: "ClaimedRow", ib: "InboxRow") -> bool:
    """Whether book() would book this inbox row (a cheap check, no I/O)."""
    rule = BOOKINGS.get(ib.result_type)
    return rule is not None and ib.outcome in rule.outcomes and \
        platform_of(row.kind, ib.result or {}) is not None and bool(ib.order_id or ib.settlement_id)


def book(store: "Store", cur, row: "ClaimedRow", ib: "InboxRow") -> None:
    """Book one inbox row just inserted by _write_results, in its transaction."""
    rule = BOOKINGS.get(ib.result_type)
    if rule is None or ib.outcome not in rule.outcomes:
        return
    result = ib.result or {}
    platform = platform_of(row.kind, result)
    key = ib.order_id or ib.settlement_id
    if platform is None or not key:
        if platform is not None:
            logger.warning("order book: {} row of request {} names no order; not booked", ib.result_type, row.id)
        return
    begin, undo = SAVEPOINT.get(store.dialect.name, _DEFAULT_SAVEPOINT)
    store._exec(cur, begin)
    try:
        if rule.what == PAYMENT:
            _book_payment(store, cur, row, ib, platform, key, result)
        else:
            _book_refund(store, cur, row, ib, rule.what, platform, key, result)
    except Exception as exc:
        if store.is_disconnect(exc):
            raise
        store._exec(cur, undo)
        logger.opt(exception=exc).error(
            "order book: the {} row of request {} ({} {}) could not be booked ({}: {}); the inbox row is kept, "
            "the reconciliation will show the difference", ib.result_type, row.id, row.kind, row.business_key,
            type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "")


def _inbox_id(store: "Store", cur, row: "ClaimedRow", ib: "InboxRow") -> Optional[int]:
    store._exec(cur, """SELECT id FROM mi_inbox WHERE outbox_id = :o AND result_type = :t ORDER BY id DESC""",
                {"o": row.id, "t": ib.result_type})
    got = cur.fetchall()
    return int(got[0][0]) if got else None


def _journal_facts(store: "Store", cur, outbox_id: int, key: str, calls: tuple[str, ...]) -> dict:
    """What the settling (or cancelling) call's answer said about settlement `key`."""
    marks = ", ".join(f":c{n}" for n in range(len(calls)))
    store._exec(cur, f"""SELECT response_masked FROM mi_journal
                          WHERE outbox_id = :o AND outcome = 'ok' AND interface IN ({marks})
                          ORDER BY id DESC""", dict({f"c{n}": c for n, c in enumerate(calls)}, o=outbox_id))
    for (text,) in cur.fetchall():
        info = _setlinfo(text)
        if info and str(info.get("setl_id") or "") == key:
            return {name: _fact(info, name) for name in RESULT_KEYS}
    return {}


def _setlinfo(text: Any) -> Optional[dict]:
    if text is None:
        return None
    try:
        doc = json.loads(text if isinstance(text, str) else text.read())
    except (ValueError, TypeError, AttributeError):
        return None
    if not isinstance(doc, dict):
        return None
    out = doc.get("output", doc)
    if isinstance(out, dict):
        info = out.get("setlinfo") or out.get("setlInfo")
        if isinstance(info, list):
            info = info[0] if info else None
        return info if isinstance(info, dict) else None
    return None


def _book_payment(store: "Store", cur, row, ib, platform: str, key: str, result: dict) -> None:
    facts = {name: _fact(result, name) for name in RESULT_KEYS}
    if platform in OFFLINE_PLATFORMS and any(facts[n] is None for n in OFFLINE_FACTS):
        for name, value in _journal_facts(store, cur, row.id, key, SETTLE_CALLS).items():
            facts[name] = facts[name] or value
    channel = facts["channel"] if facts["channel"] in CHANNELS else (
        "none" if platform in OFFLINE_PLATFORMS else "unknown")
    store._exec(cur, f"""
        INSERT INTO mi_order (platform, channel, kind, business_key, outbox_id, inbox_id, platform_order_id,
                              settlement_id, mix_trade_no, out_trade_no, trade_no, psn_no, mdtrt_id, insutype,
                              clr_type, setl_optins, ref_no, term_seq_no, total_amount, fund_amount,
                              account_amount, cash_amount, settle_day)
        SELECT :platform, :channel, :kind, :bkey, :oid, {intp(store, 'iid')}, :pkey, :setl_id, :mix, :otn, :tno, :psn, :mdtrt,
               :insutype, :clr_type, :optins, :ref_no, :term_seq_no, :total, :fund, :acct, :cash,
               COALESCE(:day, {DAY_NOW[store.dialect.name]})
          FROM mi_outbox WHERE id = :oid
           AND NOT EXISTS (SELECT 1 FROM mi_order WHERE platform_order_id = :k2 AND platform = :p2)""",
                # (the repeated values get names of their own: PostgreSQL types a parameter once,
                # and a select-list value is text where the comparison wants varchar)
                dict(platform=platform, p2=platform, k2=key, channel=channel, kind=row.kind, bkey=row.business_key, oid=row.id,
                     iid=_inbox_id(store, cur, row, ib), pkey=key, setl_id=ib.settlement_id,
                     mix=facts["mix_trade_no"], otn=facts["out_trade_no"], tno=facts["trade_no"],
                     psn=facts["psn_no"], mdtrt=facts["mdtrt_id"], insutype=facts["insutype"],
                     clr_type=facts["clr_type"], optins=facts["setl_optins"], ref_no=facts["ref_no"],
                     term_seq_no=facts["term_seq_no"],
                     total=money_param(store, _amount(ib.total_amount)),
                     fund=money_param(store, _amount(ib.fund_amount)),
                     acct=money_param(store, _amount(ib.account_amount)),
                     cash=money_param(store, _amount(ib.cash_amount)), day=day_of(facts["setl_time"])))


def _book_refund(store: "Store", cur, row, ib, what: str, platform: str, key: str, result: dict) -> None:
    store._exec(cur, "SELECT id, platform FROM mi_order WHERE platform_order_id = :k ORDER BY id", {"k": key})
    found = cur.fetchall()
    order_ref = int(found[0][0]) if found else None
    if found:
        platform = found[0][1]
    if what == REVERSAL and ib.result_type == "settlement_reversed" and order_ref is None:
        return      # 2601 of a settlement that never reached the book: nothing to undo here
    when = day_of(_fact(result, "refund_time"))
    if when is None and platform in OFFLINE_PLATFORMS and what == CANCELLATION:
        when = day_of(_journal_facts(store, cur, row.id, key, CANCEL_CALLS).get("setl_time"))
    amounts = {n: _amount(v) for n, v in (("total", ib.total_amount), ("fund", ib.fund_amount),
                                          ("acct", ib.account_amount), ("cash", ib.cash_amount))}
    if amounts["total"] == ZERO and any(amounts[n] for n in ("fund", "acct", "cash")):
        amounts["total"] = amounts["fund"] + amounts["acct"] + amounts["cash"]
    store._exec(cur, f"""
        INSERT INTO mi_order_refund (order_ref, platform, platform_order_id, refund_type, kind, business_key,
                                     outbox_id, inbox_id, refund_ref, out_refund_no, state, total_amount,
                                     fund_amount, account_amount, cash_amount, refund_day)
        SELECT {intp(store, 'oref')}, :platform, :pkey, :rtype, :kind, :bkey, :oid, {intp(store, 'iid')}, :rref, :orn, :state, :total, :fund,
               :acct, :cash, COALESCE(:day, {DAY_NOW[store.dialect.name]})
          FROM mi_outbox WHERE id = :oid
           AND NOT EXISTS (SELECT 1 FROM mi_order_refund
                            WHERE refund_type = :t2 AND platform_order_id = :k2
                              AND (outbox_id = :oid2 OR :t3 IN ('cancellation', 'reversal')))""",
                # A payment is cancelled or reversed once, whichever request says so; partial
                # refunds are one per refund request.
                dict(t2=what, t3=what, k2=key, oid2=row.id, oref=order_ref, platform=platform, pkey=key, rtype=what, kind=row.kind, bkey=row.business_key,
                     oid=row.id, iid=_inbox_id(store, cur, row, ib), rref=ib.settlement_id,
                     orn=_fact(result, "out_refund_no"), state="booked" if order_ref else "unmatched",
                     total=money_param(store, amounts["total"]), fund=money_param(store, amounts["fund"]),
                     acct=money_param(store, amounts["acct"]), cash=money_param(store, amounts["cash"]), day=when))
    if cur.rowcount != 1 or order_ref is None:
        if order_ref is None:
            logger.warning("order book: {} of {} {} names order {}, which the book does not hold; kept unmatched",
                           what, row.kind, row.business_key, key)
        return
    total = num(store, "refunded_total") + " + :total"
    status = {REVERSAL: "'reversed'", CANCELLATION: "'cancelled'"}.get(what)
    if status is None:
        status = (f"CASE WHEN status IN ('reversed', 'cancelled') THEN status "
                  f"WHEN {total} >= {num(store, 'total_amount')} THEN 'refunded' ELSE 'partly_refunded' END")
    d = store.dialect
    store._exec(cur, f"""
        UPDATE mi_order
           SET status = {status},
               refunded_total = {money_sql(store, total)},
               refunded_fund = {money_sql(store, num(store, 'refunded_fund') + ' + :fund')},
               refunded_account = {money_sql(store, num(store, 'refunded_account') + ' + :acct')},
               refunded_cash = {money_sql(store, num(store, 'refunded_cash') + ' + :cash')},
               refund_count = refund_count + 1, last_refund_at = {d.now}, updated_at = {d.now}
         WHERE id = :id""",
                dict(id=order_ref, total=money_param(store, amounts["total"]), fund=money_param(store, amounts["fund"]),
                     acct=money_param(store, amounts["acct"]), cash=money_param(store, amounts["cash"])))
