"""The WeChat trade bill parser on real-format samples written from channels.md §3.3:
the 27-column ALL header, backtick-prefixed fields, the summary block, GBK and UTF-8,
gzip, \\r\\n, refunds as their own rows, empty days."""
from __future__ import annotations

import gzip
import io
import tracemalloc
from datetime import datetime
from decimal import Decimal

import pytest

from bridge.wechatpay.bills import BillFormatError, read_trade_bill
from bridge.wechatpay.messages import CHINA

HEADER = ("交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,"
          "应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,商户数据包,"
          "手续费,费率,订单金额,申请退款金额,费率备注")
SUMMARY_HEADER = "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额"


def row(*values: str) -> str:
    return ",".join("`" + v for v in values)


PAYMENT = row("2024-01-01 10:00:01", "wx0123456789abcdef", "1900000109", "0", "", "4200000925202401010001",
              "OT1", "o-user-1", "JSAPI", "SUCCESS", "OTHERS", "CNY", "30.00", "0.00", "0", "0", "0.00", "0.00",
              "", "", "门诊缴费, 内科", "attach", "0.18000", "0.60%", "30.00", "0.00", "")
REFUND = row("2024-01-01 15:30:00", "wx0123456789abcdef", "1900000109", "0", "", "4200000925202401010001",
             "OT1", "o-user-1", "JSAPI", "REFUND", "OTHERS", "CNY", "0.00", "0.00", "50300000012024", "RF1",
             "10.00", "0.00", "ORIGINAL", "PROCESSING", "门诊缴费, 内科", "attach", "-0.06000", "0.60%", "0.00",
             "10.00", "")
SUMMARY = row("2", "30.00", "10.00", "0.00", "0.12000", "30.00", "10.00")


def bill(*lines: str, eol: str = "\n") -> str:
    return eol.join(lines) + eol


@pytest.mark.parametrize("encoding", ["utf-8", "gbk"])
@pytest.mark.parametrize("eol", ["\n", "\r\n"])
@pytest.mark.parametrize("gz", [False, True])
def test_payment_and_refund_rows(encoding, eol, gz):
    raw = bill(HEADER, PAYMENT, REFUND, SUMMARY_HEADER, SUMMARY, eol=eol).encode(encoding)
    reader = read_trade_bill(gzip.compress(raw) if gz else raw)
    payment, refund = list(reader)
    assert reader.encoding == ("utf-8" if encoding == "utf-8" else "gb18030")
    assert payment.trade_time == datetime(2024, 1, 1, 10, 0, 1, tzinfo=CHINA)
    assert (payment.out_trade_no, payment.trade_state, payment.transaction_id) == \
        ("OT1", "SUCCESS", "4200000925202401010001")
    assert payment.settlement_amount == Decimal("30.00") and payment.signed_amount == Decimal("30.00")
    assert payment.refund_id is None and payment.out_refund_no is None        # `0 means none
    assert payment.description == "门诊缴费, 内科"                               # a comma inside a value
    assert payment.fee == Decimal("0.18000")
    assert refund.is_refund and refund.out_refund_no == "RF1" and refund.refund_amount == Decimal("10.00")
    assert refund.signed_amount == Decimal("-10.00") and refund.refund_status == "PROCESSING"
    assert reader.summary.count == 2 and reader.summary.settlement_total == Decimal("30.00")
    assert reader.summary.refund_total == Decimal("10.00") and reader.summary.fee_total == Decimal("0.12000")
    assert payment.fields["费率"] == "0.60%"


def test_old_sub_mchid_spelling_and_a_shorter_column_set():
    header = "交易时间,公众账号ID,商户号,子商户号,微信订单号,商户订单号,交易状态,应结订单金额,商品名称"
    line = row("2024-01-01 10:00:00", "wx1", "1900000109", "1900000999", "42", "OT9", "SUCCESS", "1.00", "x")
    (r,) = read_trade_bill(bill(header, line, "总交易单数,应结订单总金额", row("1", "1.00")).encode())
    assert r.sub_mchid == "1900000999" and r.refund_amount is None


def test_an_empty_day():
    reader = read_trade_bill(bill(HEADER, SUMMARY_HEADER, row("0", "0.00", "0.00", "0.00", "0.00000", "0.00",
                                                              "0.00")).encode("gbk"))
    assert list(reader) == [] and reader.summary.count == 0
    empty = read_trade_bill(b"")
    assert list(empty) == [] and empty.summary is None


@pytest.mark.parametrize("text,match", [
    (bill(HEADER, PAYMENT), "without its summary"),                               # truncated
    (bill(HEADER, PAYMENT, SUMMARY_HEADER), "summary header has no row"),
    (bill(PAYMENT), "before any header"),
    (bill("a,b,c", PAYMENT), "header lacks"),
    (bill(HEADER, row("2024-01-01 10:00:00", "x")), "fields"),
    (bill(HEADER, PAYMENT.replace("`30.00", "`3O.00", 1), SUMMARY_HEADER, SUMMARY), "not an amount"),
    (bill(HEADER, PAYMENT, "garbage", SUMMARY_HEADER, SUMMARY), "neither"),
    (bill(HEADER, PAYMENT, SUMMARY_HEADER, SUMMARY, PAYMENT), "after the summary"),
])
def test_malformed_bills_are_refused_with_the_line(text, match):
    with pytest.raises(BillFormatError, match=match):
        list(read_trade_bill(text.encode()))


def test_memory_stays_flat_in_the_number_of_rows():
    def big(n: int) -> bytes:
        out = io.BytesIO()
        with gzip.GzipFile(fileobj=out, mode="wb") as gz:
            gz.write((HEADER + "\n").encode())
            for i in range(n):
                gz.write((PAYMENT.replace("`OT1,", f"`OT{i},") + "\n").encode())
            gz.write((SUMMARY_HEADER + "\n" + row(str(n), "0", "0", "0", "0", "0", "0") + "\n").encode())
        return out.getvalue()

    def peak(data: bytes) -> int:
        tracemalloc.start()
        count = sum(1 for _ in read_trade_bill(io.BytesIO(data)))
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return count, top
    small, large = big(500), big(10_000)
    n1, p1 = peak(small)
    n2, p2 = peak(large)
    assert (n1, n2) == (500, 10_000)
    assert p2 < 2 * p1 + 200_000        # 20x the rows, about the same peak
