"""The WeChat Pay trade bill (交易账单), read as a stream of typed rows (channels.md §3.3).

Layout: a detail header, detail rows, the summary header (总交易单数,…) and one summary
row.  In detail and summary rows every field starts with a backtick; header lines have
none.  Comma-separated, ``\\n`` or ``\\r\\n``; the file may be gzipped (tar_type=GZIP);
UTF-8 (v3) or GBK (older files), told apart on the header line.  Columns are found by
header name, so the ALL / SUCCESS / REFUND variants (whose exact column sets are not in
the digest) all parse; the old ``子商户号`` spelling maps to ``特约商户号``.

Row semantics (§3.3): a payment appears on its success day with 交易状态 SUCCESS; a refund
is its own row on its acceptance day with 交易状态 REFUND and the refund columns filled.
Amounts are positive yuan in the bill; ``signed_amount`` gives + for a payment and − for
a refund.  Memory stays flat in the number of rows: one line at a time.
"""
from __future__ import annotations

import gzip
import io
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import BinaryIO, Iterator, Mapping, Optional, Union

from .messages import CHINA

SUMMARY_FIRST = "总交易单数"

# header name -> attribute
_DETAIL = {
    "交易时间": "trade_time", "公众账号ID": "appid", "商户号": "mchid", "特约商户号": "sub_mchid",
    "子商户号": "sub_mchid", "设备号": "device_info", "微信订单号": "transaction_id",
    "商户订单号": "out_trade_no", "用户标识": "openid", "交易类型": "trade_type", "交易状态": "trade_state",
    "付款银行": "bank", "货币种类": "currency", "应结订单金额": "settlement_amount",
    "代金券金额": "coupon_amount", "微信退款单号": "refund_id", "商户退款单号": "out_refund_no",
    "退款金额": "refund_amount", "充值券退款金额": "coupon_refund_amount", "退款类型": "refund_type",
    "退款状态": "refund_status", "商品名称": "description", "商户数据包": "attach", "手续费": "fee",
    "费率": "rate", "订单金额": "order_amount", "申请退款金额": "refund_request_amount", "费率备注": "rate_note",
}
_MONEY = {"settlement_amount", "coupon_amount", "refund_amount", "coupon_refund_amount", "fee", "order_amount",
          "refund_request_amount"}
_REQUIRED = ("交易时间", "商户订单号", "交易状态")
_SUMMARY = {
    "总交易单数": "count", "应结订单总金额": "settlement_total", "退款总金额": "refund_total",
    "充值券退款总金额": "coupon_refund_total", "手续费总金额": "fee_total", "订单总金额": "order_total",
    "申请退款总金额": "refund_request_total",
}


class BillFormatError(ValueError):
    """The file is not a trade bill as §3.3 describes; the message names the line."""


@dataclass(frozen=True)
class TradeBillRow:
    line: int
    trade_time: datetime
    out_trade_no: str
    trade_state: str                       # SUCCESS, REFUND, ... as the bill says
    fields: Mapping[str, str]              # every column by its header name, backtick removed
    appid: Optional[str] = None
    mchid: Optional[str] = None
    sub_mchid: Optional[str] = None
    device_info: Optional[str] = None
    transaction_id: Optional[str] = None
    openid: Optional[str] = None
    trade_type: Optional[str] = None
    bank: Optional[str] = None
    currency: Optional[str] = None
    settlement_amount: Optional[Decimal] = None
    coupon_amount: Optional[Decimal] = None
    refund_id: Optional[str] = None        # None where the bill shows `0 (no refund)
    out_refund_no: Optional[str] = None
    refund_amount: Optional[Decimal] = None
    coupon_refund_amount: Optional[Decimal] = None
    refund_type: Optional[str] = None
    refund_status: Optional[str] = None    # a snapshot at bill time, never updated (§3.3)
    description: Optional[str] = None
    attach: Optional[str] = None
    fee: Optional[Decimal] = None          # five decimals
    rate: Optional[str] = None
    order_amount: Optional[Decimal] = None
    refund_request_amount: Optional[Decimal] = None
    rate_note: Optional[str] = None

    @property
    def is_refund(self) -> bool:
        return self.trade_state == "REFUND"

    @property
    def signed_amount(self) -> Decimal:
        """+ the settled amount of a payment, − the refunded amount of a refund row."""
        if self.is_refund:
            return -(self.refund_amount or Decimal("0"))
        return self.settlement_amount or Decimal("0")


@dataclass(frozen=True)
class TradeBillSummary:
    count: int
    settlement_total: Optional[Decimal] = None
    refund_total: Optional[Decimal] = None
    coupon_refund_total: Optional[Decimal] = None
    fee_total: Optional[Decimal] = None
    order_total: Optional[Decimal] = None
    refund_request_total: Optional[Decimal] = None


Source = Union[str, bytes, BinaryIO]


class TradeBillReader:
    """Iterate once over the rows; ``summary`` is set when the iteration has finished
    (None for a file with no summary block, e.g. a completely empty file)."""

    def __init__(self, source: Source, *, encoding: Optional[str] = None):
        self._source = source
        self._encoding = encoding
        self.summary: Optional[TradeBillSummary] = None
        self.encoding: Optional[str] = encoding
        self.rows_read = 0

    def __iter__(self) -> Iterator[TradeBillRow]:
        stream, closers = _open(self._source)
        try:
            yield from self._parse(stream)
        finally:
            for c in closers:
                c.close()

    def _decode(self, raw: bytes, line_no: int) -> str:
        if self.encoding is None:
            self.encoding = _guess(raw)
        try:
            text = raw.decode(self.encoding)
        except UnicodeDecodeError:
            raise BillFormatError(f"line {line_no}: not valid {self.encoding}") from None
        return text.lstrip("\ufeff").rstrip("\r\n")

    def _parse(self, stream: BinaryIO) -> Iterator[TradeBillRow]:
        columns: Optional[list[str]] = None
        summary_columns: Optional[list[str]] = None
        state = "start"
        for line_no, raw in enumerate(stream, 1):
            text = self._decode(raw, line_no)
            if not text.strip():
                continue
            if state == "start":
                if text.startswith("`"):
                    raise BillFormatError(f"line {line_no}: a data row before any header")
                if text.startswith(SUMMARY_FIRST):
                    summary_columns, state = _split_header(text), "summary"
                    continue
                columns = _split_header(text)
                missing = [c for c in _REQUIRED if c not in columns]
                if missing:
                    raise BillFormatError(f"line {line_no}: header lacks {', '.join(missing)}")
                state = "rows"
            elif state == "rows":
                if text.startswith("`"):
                    values = _split_row(text)
                    if len(values) != len(columns):
                        raise BillFormatError(f"line {line_no}: {len(values)} fields, header has {len(columns)}")
                    self.rows_read += 1
                    yield _row(line_no, columns, values)
                elif text.startswith(SUMMARY_FIRST):
                    summary_columns, state = _split_header(text), "summary"
                else:
                    raise BillFormatError(f"line {line_no}: neither a backtick row nor the summary header")
            elif state == "summary":
                if not text.startswith("`"):
                    raise BillFormatError(f"line {line_no}: the summary header is not followed by its row")
                values = _split_row(text)
                if len(values) != len(summary_columns):
                    raise BillFormatError(f"line {line_no}: summary has {len(values)} fields, "
                                          f"header {len(summary_columns)}")
                self.summary = _summary(line_no, summary_columns, values)
                state = "done"
            else:
                raise BillFormatError(f"line {line_no}: text after the summary row")
        if state == "summary":
            raise BillFormatError("the summary header has no row")
        if state == "rows" and self.summary is None:
            raise BillFormatError("the bill ends without its summary (truncated?)")


def read_trade_bill(source: Source, *, encoding: Optional[str] = None) -> TradeBillReader:
    """``source``: a path, the file's bytes, or a binary stream; gzip is detected."""
    return TradeBillReader(source, encoding=encoding)


def _open(source: Source) -> tuple[BinaryIO, list]:
    """The byte stream to read (gunzipped when the file starts with the gzip magic) and
    what to close afterwards (never a stream the caller passed in)."""
    closers: list = []
    if isinstance(source, bytes):
        stream: BinaryIO = io.BytesIO(source)
    elif isinstance(source, str):
        stream = open(source, "rb")
        closers.append(stream)
    else:
        stream = source
    if hasattr(stream, "peek"):
        head = stream.peek(2)[:2]
    else:
        pos = stream.tell()
        head = stream.read(2)
        stream.seek(pos)
    if head == b"\x1f\x8b":
        stream = gzip.GzipFile(fileobj=stream, mode="rb")
        closers.insert(0, stream)
    return stream, closers


def _guess(raw: bytes) -> str:
    try:
        raw.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError:
        return "gb18030"          # a superset of GBK: every GBK file decodes the same


def _split_header(text: str) -> list[str]:
    return [c.strip() for c in text.split(",")]


def _split_row(text: str) -> list[str]:
    # Every field starts with a backtick, so ",`" separates fields even when a value
    # (商品名称, 商户数据包) contains a plain comma.
    return [v.strip() for v in text[1:].split(",`")]


def _money(header: str, value: str, line_no: int) -> Optional[Decimal]:
    if value == "":
        return None
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise BillFormatError(f"line {line_no}: {header} is not an amount: {value!r}") from None
    if not amount.is_finite():
        raise BillFormatError(f"line {line_no}: {header} is not an amount: {value!r}")
    return amount


def _time(text: str) -> datetime:
    # Slicing is several times faster than strptime, and this runs once per row.
    if len(text) != 19 or text[4] != "-" or text[7] != "-" or text[10] != " " or text[13] != ":" or text[16] != ":":
        raise ValueError(text)
    return datetime(int(text[0:4]), int(text[5:7]), int(text[8:10]), int(text[11:13]), int(text[14:16]),
                    int(text[17:19]), tzinfo=CHINA)


def _row(line_no: int, columns: list[str], values: list[str]) -> TradeBillRow:
    fields = dict(zip(columns, values))
    kwargs: dict = {}
    for header, value in fields.items():
        attr = _DETAIL.get(header)
        if attr is None or attr in kwargs and header == "子商户号":
            continue
        if attr in _MONEY:
            kwargs[attr] = _money(header, value, line_no)
        else:
            kwargs[attr] = value or None
    if kwargs.get("refund_id") == "0":
        kwargs["refund_id"] = None
    if kwargs.get("out_refund_no") == "0":
        kwargs["out_refund_no"] = None
    try:
        kwargs["trade_time"] = _time(kwargs.get("trade_time") or "")
    except ValueError:
        raise BillFormatError(f"line {line_no}: 交易时间 {fields.get('交易时间')!r} is not yyyy-MM-dd HH:mm:ss") \
            from None
    if not kwargs.get("out_trade_no") or not kwargs.get("trade_state"):
        raise BillFormatError(f"line {line_no}: 商户订单号 and 交易状态 are required")
    return TradeBillRow(line=line_no, fields=fields, **kwargs)


def _summary(line_no: int, columns: list[str], values: list[str]) -> TradeBillSummary:
    kwargs: dict = {}
    for header, value in zip(columns, values):
        attr = _SUMMARY.get(header)
        if attr == "count":
            if not value.isdigit():
                raise BillFormatError(f"line {line_no}: 总交易单数 {value!r} is not a count")
            kwargs["count"] = int(value)
        elif attr:
            kwargs[attr] = _money(header, value, line_no)
    if "count" not in kwargs:
        raise BillFormatError(f"line {line_no}: summary without 总交易单数")
    return TradeBillSummary(**kwargs)
