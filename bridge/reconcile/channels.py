"""The channels' daily bills (channels.md §3, §8), downloaded with the channel clients and read
as uniform rows: + the cash a payment took, - the cash a refund gave back, per out_trade_no.

A source is anything with `channel`, `download(day, dest)` and `rows(path)`: the WeChat and
Alipay ones are here, built on the clients the daemon wires as the services "wechatpay" and
"alipay" (daemon/wiring_channels.py, daemon/reconcile_job.py).

Only the cash part is in these bills: the insurance part is reconciled against the centre
(channels.md §3.3, §8).
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Iterator, Optional, Protocol

from bridge.calls import CallResult

# "No bill for that day" (channels.md §3.1, §8): before 10:00 on D+1, or a day without trades.
NO_BILL_CODES = ("NO_STATEMENT_EXIST", "isp.bill_not_exist", "STATEMENT_CREATING")


class BillUnreadable(ValueError):
    """The file is not the bill the channel describes, or its totals do not add up."""


@dataclass
class BillRow:
    channel: str
    line_no: int
    row_type: str                   # pay | refund
    out_trade_no: str
    amount: Decimal                 # + paid, - refunded (yuan)
    trade_no: Optional[str] = None
    out_refund_no: Optional[str] = None
    refund_id: Optional[str] = None
    trade_state: Optional[str] = None
    trade_time: Optional[str] = None

    def as_row(self, day: str) -> dict:
        return {"channel": self.channel, "bill_day": day, "line_no": self.line_no, "row_type": self.row_type,
                "out_trade_no": self.out_trade_no, "trade_no": self.trade_no, "out_refund_no": self.out_refund_no,
                "refund_id": self.refund_id, "amount": self.amount, "trade_state": self.trade_state,
                "trade_time": self.trade_time}


class BillSource(Protocol):
    channel: str

    def download(self, day: str, dest: str) -> CallResult: ...

    def rows(self, path: str) -> Iterator[BillRow]: ...


def no_bill(r: CallResult) -> bool:
    text = f"{r.code or ''} {r.message or ''}"
    return not r.ok and any(c in text for c in NO_BILL_CODES)


class WeChatBills:
    """The trade bill (ALL), gzipped, SHA1-checked by the client (bridge/wechatpay/client.py)."""

    channel = "wechat"

    def __init__(self, client):
        self.client = client

    def download(self, day: str, dest: str) -> CallResult:
        from bridge.wechatpay.messages import BillType
        return self.client.download_bill(day, dest, BillType.ALL)

    def rows(self, path: str) -> Iterator[BillRow]:
        from bridge.wechatpay.bills import BillFormatError, read_trade_bill
        reader = read_trade_bill(path)
        n = 0
        try:
            for r in reader:
                n += 1
                yield BillRow(self.channel, r.line, "refund" if r.is_refund else "pay", r.out_trade_no,
                              r.signed_amount, trade_no=r.transaction_id, out_refund_no=r.out_refund_no,
                              refund_id=r.refund_id, trade_state=r.trade_state,
                              trade_time=r.trade_time.strftime("%Y-%m-%d %H:%M:%S"))
        except BillFormatError as exc:
            raise BillUnreadable(f"WeChat bill: {exc}") from exc
        if reader.summary is None:
            if n:
                raise BillUnreadable("WeChat bill without its summary")
        elif reader.summary.count != n:
            raise BillUnreadable(f"WeChat bill: the summary counts {reader.summary.count} rows, {n} were read")


class AlipayBills:
    """The trade bill zip (业务明细), GBK, refunds negative as Alipay writes them."""

    channel = "alipay"

    def __init__(self, client):
        self.client = client

    def download(self, day: str, dest: str) -> CallResult:
        return self.client.fetch_bill(day, dest, "trade")

    def rows(self, path: str) -> Iterator[BillRow]:
        from bridge.alipay.bills import AlipayBill, BillFormatError
        try:
            with AlipayBill(path) as bill:
                reader = bill.detail()
                counts = {"pay": 0, "refund": 0}
                for r in reader:
                    kind = "refund" if r.is_refund else "pay"
                    counts[kind] += 1
                    amount = r.signed_amount
                    if kind == "refund" and amount > 0:      # a bill writing refunds positive
                        amount = -amount
                    yield BillRow(self.channel, r.line, kind, r.out_trade_no, amount, trade_no=r.trade_no,
                                  out_refund_no=r.out_request_no if kind == "refund" else None,
                                  trade_state=r.biz_type,
                                  trade_time=r.finished.strftime("%Y-%m-%d %H:%M:%S") if r.finished else None)
                t = reader.totals
                if t.trades is not None and t.trades.count != counts["pay"]:
                    raise BillUnreadable(f"Alipay bill: 交易合计 counts {t.trades.count}, {counts['pay']} rows read")
                if t.refunds is not None and t.refunds.count != counts["refund"]:
                    raise BillUnreadable(f"Alipay bill: 退款合计 counts {t.refunds.count}, {counts['refund']} read")
        except BillFormatError as exc:
            raise BillUnreadable(f"Alipay bill: {exc}") from exc


def sources(services: dict, channels: tuple[str, ...]) -> list[BillSource]:
    """The bill sources whose clients are wired ("wechatpay", "alipay" services)."""
    out: list[BillSource] = []
    if "wechat" in channels and services.get("wechatpay") is not None:
        out.append(WeChatBills(services["wechatpay"]))
    if "alipay" in channels and services.get("alipay") is not None:
        out.append(AlipayBills(services["alipay"]))
    return out
