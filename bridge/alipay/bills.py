"""The Alipay bill zip (对账单), read as streams of typed rows (channels.md §8).

The zip (``<pid>0156_<yyyyMMdd>.csv.zip``) holds ``…_业务明细.csv`` (detail) and
``…_业务明细(汇总).csv`` (summary), GBK encoded.  Member names are GBK too, without the
zip UTF-8 flag, so they are re-decoded.  The detail file:

* comment lines starting with ``#`` before the header (``#支付宝业务明细查询``,
  ``#账号：[…]``, ``#起始日期：[…]   终止日期：[…]``, ``#-----…业务明细列表…-----``);
* the header (full-width brackets in ``订单金额（元）``; half-width is accepted too);
* rows: ``业务类型`` is 交易 or 退款, refund amounts are **negative** as Alipay writes them,
  ``退款批次号/请求号`` is the refund's out_request_no; id columns end with a TAB, stripped;
* the trailer ``#-----…结束-----``, ``#交易合计：N笔，商家实收共X元，商家优惠共Y元``, then
  ``#退款合计：…`` and ``#导出时间：[…]``, read into ``totals``.

The summary file's columns are not in the digest: its rows come as header -> value maps.
One row at a time: memory stays flat in the number of rows.
"""
from __future__ import annotations

import csv
import io
import re
import zipfile
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import BinaryIO, Iterator, Mapping, Optional, Union

from .messages import CHINA

ENCODING = "gb18030"          # a superset of GBK

_DETAIL = {
    "支付宝交易号": "trade_no", "商户订单号": "out_trade_no", "业务类型": "biz_type", "商品名称": "subject",
    "创建时间": "created", "完成时间": "finished", "门店编号": "store_no", "门店名称": "store_name",
    "操作员": "operator", "终端号": "terminal", "对方账户": "counterparty", "订单金额（元）": "order_amount",
    "商家实收（元）": "receipt_amount", "支付宝红包（元）": "alipay_red_packet", "集分宝（元）": "jifenbao",
    "支付宝优惠（元）": "alipay_discount", "商家优惠（元）": "merchant_discount",
    "券核销金额（元）": "voucher_amount", "券名称": "voucher_name",
    "商家红包消费金额（元）": "merchant_red_packet", "卡消费金额（元）": "card_amount",
    "退款批次号/请求号": "out_request_no", "服务费（元）": "service_fee", "分润（元）": "royalty", "备注": "remark",
}
_MONEY = {"order_amount", "receipt_amount", "alipay_red_packet", "jifenbao", "alipay_discount", "merchant_discount",
          "voucher_amount", "merchant_red_packet", "card_amount", "service_fee", "royalty"}
_REQUIRED = ("支付宝交易号", "商户订单号", "业务类型")
_TOTAL_RE = re.compile(r"#(?P<kind>交易|退款)合计[：:]\s*(?P<count>\d+)\s*笔[，,]\s*商家实收共\s*(?P<receipt>-?[\d.]+)\s*元"
                       r"(?:[，,]\s*商家优惠共\s*(?P<discount>-?[\d.]+)\s*元)?")


class BillFormatError(ValueError):
    pass


@dataclass(frozen=True)
class AlipayBillRow:
    line: int
    trade_no: str
    out_trade_no: str
    biz_type: str                       # 交易 or 退款
    fields: Mapping[str, str]
    subject: Optional[str] = None
    created: Optional[datetime] = None
    finished: Optional[datetime] = None
    store_no: Optional[str] = None
    store_name: Optional[str] = None
    operator: Optional[str] = None
    terminal: Optional[str] = None
    counterparty: Optional[str] = None
    order_amount: Optional[Decimal] = None
    receipt_amount: Optional[Decimal] = None      # negative on refund rows
    alipay_red_packet: Optional[Decimal] = None
    jifenbao: Optional[Decimal] = None
    alipay_discount: Optional[Decimal] = None
    merchant_discount: Optional[Decimal] = None
    voucher_amount: Optional[Decimal] = None
    voucher_name: Optional[str] = None
    merchant_red_packet: Optional[Decimal] = None
    card_amount: Optional[Decimal] = None
    out_request_no: Optional[str] = None
    service_fee: Optional[Decimal] = None
    royalty: Optional[Decimal] = None
    remark: Optional[str] = None

    @property
    def is_refund(self) -> bool:
        return self.biz_type == "退款"

    @property
    def signed_amount(self) -> Decimal:
        """What the merchant received: + for a payment, − for a refund (as in the bill)."""
        return self.receipt_amount if self.receipt_amount is not None else (self.order_amount or Decimal("0"))


@dataclass(frozen=True)
class BillTotal:
    count: int
    receipt: Decimal
    merchant_discount: Optional[Decimal] = None


@dataclass
class BillTotals:
    trades: Optional[BillTotal] = None
    refunds: Optional[BillTotal] = None


def _norm(header: str) -> str:
    return header.strip().replace("(", "（").replace(")", "）")


def _money(name: str, value: str, line: int) -> Optional[Decimal]:
    if value == "":
        return None
    try:
        amount = Decimal(value.replace(",", ""))
    except InvalidOperation:
        raise BillFormatError(f"line {line}: {name} is not an amount: {value!r}") from None
    if not amount.is_finite():
        raise BillFormatError(f"line {line}: {name} is not an amount: {value!r}")
    return amount


def _time(name: str, value: str, line: int) -> Optional[datetime]:
    if not value:
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%d %H:%M:%S").replace(tzinfo=CHINA)
    except ValueError:
        raise BillFormatError(f"line {line}: {name} {value!r} is not yyyy-MM-dd HH:mm:ss") from None


class AlipayDetailReader:
    """Rows of ``…_业务明细.csv``; ``totals`` is filled from the trailer after iterating."""

    def __init__(self, stream: BinaryIO):
        self._stream = stream
        self.totals = BillTotals()
        self.comments: list[str] = []

    def __iter__(self) -> Iterator[AlipayBillRow]:
        text = io.TextIOWrapper(self._stream, encoding=ENCODING, newline="")
        columns: Optional[list[str]] = None
        ended = False
        lines = _numbered(text)
        for line_no, raw in lines:
            stripped = raw.strip().lstrip("\ufeff")
            if not stripped:
                continue
            if stripped.startswith("#"):
                self._comment(stripped)
                if columns is not None and "结束" in stripped:
                    ended = True
                continue
            if ended:
                raise BillFormatError(f"line {line_no}: data after the end of the detail list")
            values = [v.strip() for v in next(csv.reader([raw]))]
            if columns is None:
                columns = [_norm(v) for v in values]
                missing = [c for c in _REQUIRED if c not in columns]
                if missing:
                    raise BillFormatError(f"line {line_no}: header lacks {', '.join(missing)}")
                continue
            if len(values) != len(columns):
                raise BillFormatError(f"line {line_no}: {len(values)} fields, header has {len(columns)}")
            yield _row(line_no, columns, values)

    def _comment(self, line: str) -> None:
        self.comments.append(line)
        m = _TOTAL_RE.match(line)
        if m:
            total = BillTotal(count=int(m.group("count")), receipt=Decimal(m.group("receipt")),
                              merchant_discount=Decimal(m.group("discount")) if m.group("discount") else None)
            if m.group("kind") == "交易":
                self.totals.trades = total
            else:
                self.totals.refunds = total


def _numbered(text: io.TextIOBase) -> Iterator[tuple[int, str]]:
    try:
        for i, line in enumerate(text, 1):
            yield i, line
    except UnicodeDecodeError as exc:
        raise BillFormatError(f"not GBK text: {exc}") from None


def _row(line_no: int, columns: list[str], values: list[str]) -> AlipayBillRow:
    fields = dict(zip(columns, values))
    kwargs: dict = {}
    for header, value in fields.items():
        attr = _DETAIL.get(header)
        if attr is None:
            continue
        if attr in _MONEY:
            kwargs[attr] = _money(header, value, line_no)
        elif attr in ("created", "finished"):
            kwargs[attr] = _time(header, value, line_no)
        else:
            kwargs[attr] = value or None
    for required in ("trade_no", "out_trade_no", "biz_type"):
        if not kwargs.get(required):
            raise BillFormatError(f"line {line_no}: {required} is empty")
    return AlipayBillRow(line=line_no, fields=fields, **kwargs)


def _summary_rows(stream: BinaryIO) -> Iterator[dict[str, str]]:
    text = io.TextIOWrapper(stream, encoding=ENCODING, newline="")
    columns: Optional[list[str]] = None
    for line_no, raw in _numbered(text):
        stripped = raw.strip().lstrip("\ufeff")
        if not stripped or stripped.startswith("#"):
            continue
        values = [v.strip() for v in next(csv.reader([raw]))]
        if columns is None:
            columns = [_norm(v) for v in values]
            continue
        if len(values) != len(columns):
            raise BillFormatError(f"summary line {line_no}: {len(values)} fields, header has {len(columns)}")
        yield dict(zip(columns, values))


def _member_name(info: zipfile.ZipInfo) -> str:
    if info.flag_bits & 0x800:
        return info.filename
    try:
        return info.filename.encode("cp437").decode(ENCODING)
    except (UnicodeEncodeError, UnicodeDecodeError):
        return info.filename


class AlipayBill:
    """An Alipay bill zip.  ``detail()`` and ``summary()`` stream their files."""

    def __init__(self, source: Union[str, bytes, BinaryIO]):
        if isinstance(source, bytes):
            source = io.BytesIO(source)
        try:
            self._zip = zipfile.ZipFile(source)
        except zipfile.BadZipFile as exc:
            raise BillFormatError(f"not a zip file: {exc}") from None
        self._detail: Optional[zipfile.ZipInfo] = None
        self._summary: Optional[zipfile.ZipInfo] = None
        for info in self._zip.infolist():
            name = _member_name(info)
            if name.endswith("业务明细(汇总).csv") or name.endswith("业务明细（汇总）.csv"):
                self._summary = info
            elif name.endswith("业务明细.csv"):
                self._detail = info
        if self._detail is None:
            raise BillFormatError("the zip has no 业务明细.csv")
        self.reader: Optional[AlipayDetailReader] = None

    def close(self) -> None:
        self._zip.close()

    def __enter__(self) -> "AlipayBill":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def detail(self) -> AlipayDetailReader:
        self.reader = AlipayDetailReader(self._zip.open(self._detail))
        return self.reader

    def summary(self) -> Iterator[dict[str, str]]:
        if self._summary is None:
            return iter(())
        return _summary_rows(self._zip.open(self._summary))
