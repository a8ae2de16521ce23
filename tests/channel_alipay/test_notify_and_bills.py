"""Alipay async notifies (§6.4) and the bill zip (§8), on samples written from the spec."""
from __future__ import annotations

import io
import zipfile
from datetime import datetime
from decimal import Decimal
from urllib.parse import urlencode

import pytest

from bridge.alipay.bills import AlipayBill, BillFormatError
from bridge.alipay.messages import CHINA, TradeStatus
from bridge.alipay.notify import ACK_OK, ForgedNotify, InvalidNotify, parse_notify

from .conftest import APP_ID, sign


def notify_body(akeys, *, key=None, tamper: dict = None, charset="utf-8", **fields) -> bytes:
    params = {"notify_id": "2024010100222000000000001", "notify_type": "trade_status_sync", "notify_time":
              "2024-01-01 10:00:02", "app_id": APP_ID, "charset": charset, "version": "1.0", "sign_type": "RSA2",
              "trade_no": "2024T1", "out_trade_no": "OT1", "trade_status": "TRADE_SUCCESS", "total_amount": "30.00",
              "receipt_amount": "30.00", "subject": "门诊缴费", "body": "", "gmt_payment": "2024-01-01 10:00:01"}
    params.update(fields)
    content = "&".join(f"{k}={v}" for k, v in sorted(params.items()) if k not in ("sign", "sign_type"))
    params["sign"] = sign(key or akeys["alipay"], content)
    params.update(tamper or {})
    return urlencode(params, encoding=charset).encode("ascii")


def test_a_verified_trade_notify(akeys, make_config):
    notice = parse_notify(make_config(), notify_body(akeys))
    assert notice.trade_status is TradeStatus.TRADE_SUCCESS and notice.total_amount == Decimal("30.00")
    assert notice.out_trade_no == "OT1" and not notice.is_refund
    assert ACK_OK[2] == b"success"


def test_a_refund_notify_and_a_gbk_one(akeys, make_config):
    refund = parse_notify(make_config(), notify_body(akeys, out_biz_no="RQ1", refund_fee="10.00",
                                                     gmt_refund="2024-01-02 10:00:00.123"))
    assert refund.is_refund and refund.out_biz_no == "RQ1" and refund.refund_fee == Decimal("10.00")
    gbk = parse_notify(make_config(), notify_body(akeys, charset="gbk"))
    assert gbk.params["subject"] == "门诊缴费"


SELLER = "2088000000000001"


@pytest.mark.parametrize("fault", ["amount", "other_key", "no_sign", "other_app", "other_seller"])
def test_forged_notifies(akeys, make_config, fault):
    kw = {"amount": {"tamper": {"total_amount": "0.01"}}, "other_key": {"key": akeys["other"]},
          "no_sign": {"tamper": {"sign": ""}}, "other_app": {"app_id": "2021009999999999"},
          "other_seller": {"seller_id": "2088000000000002"}}[fault]
    with pytest.raises(ForgedNotify):
        parse_notify(make_config(seller_id=SELLER), notify_body(akeys, **kw))


def test_the_seller_is_checked_only_when_configured(akeys, make_config):
    assert parse_notify(make_config(seller_id=SELLER), notify_body(akeys, seller_id=SELLER)).out_trade_no == "OT1"
    assert parse_notify(make_config(), notify_body(akeys, seller_id="2088000000000002")).out_trade_no == "OT1"
    with pytest.raises(ValueError, match="seller_id"):
        make_config(seller_id="12345")


def test_unparseable_notify(make_config):
    with pytest.raises(InvalidNotify):
        parse_notify(make_config(), "a=1&a=2".encode())


# ---------------------------------------------------------------- bills

HEADER = ("支付宝交易号,商户订单号,业务类型,商品名称,创建时间,完成时间,门店编号,门店名称,操作员,终端号,对方账户,订单金额（元）,"
          "商家实收（元）,支付宝红包（元）,集分宝（元）,支付宝优惠（元）,商家优惠（元）,券核销金额（元）,券名称,"
          "商家红包消费金额（元）,卡消费金额（元）,退款批次号/请求号,服务费（元）,分润（元）,备注")
PAY = ("2024010122001400001\t,OT1\t,交易,门诊缴费,2024-01-01 10:00:00,2024-01-01 10:00:01,,,,,张**(a***@x.com),"
       "30.00,30.00,0.00,0.00,0.00,0.00,0.00,,0.00,0.00,,-0.18,0.00,")
REF = ("2024010122001400001\t,OT1\t,退款,门诊缴费,2024-01-01 10:00:00,2024-01-01 15:00:00,,,,,张**(a***@x.com),"
       "-10.00,-10.00,0.00,0.00,0.00,0.00,0.00,,0.00,0.00,RQ1\t,0.06,0.00,")


def detail_csv(*rows: str, trailer: bool = True) -> bytes:
    lines = ["#支付宝业务明细查询", "#账号：[20880000000000010156]", "#起始日期：[2024年01月01日 00:00:00]   终止日期：[2024年01月02日 00:00:00]",
             "#-----------------------------------------业务明细列表----------------------------------------", HEADER,
             *rows]
    if trailer:
        lines += ["#-----------------------------------------业务明细列表结束------------------------------------",
                  "#交易合计：1笔，商家实收共30.00元，商家优惠共0.00元", "#退款合计：1笔，商家实收共-10.00元，商家优惠共0.00元",
                  "#导出时间：[2024年01月02日 10:12:13]"]
    return ("\r\n".join(lines) + "\r\n").encode("gbk")


class GbkName(zipfile.ZipInfo):
    """What Alipay's zips look like: GBK name bytes without the UTF-8 flag."""

    __slots__ = ()

    def _encodeFilenameFlags(self):
        return self.filename.encode("gbk"), self.flag_bits & ~0x800


def bill_zip(detail: bytes, summary: bytes = None, utf8_names: bool = False) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for name, data in (("20880000000000010156_20240101_业务明细.csv", detail),
                           ("20880000000000010156_20240101_业务明细(汇总).csv", summary)):
            if data is None:
                continue
            z.writestr(zipfile.ZipInfo(name) if utf8_names else GbkName(name), data)
    return out.getvalue()


SUMMARY = ("#支付宝业务汇总查询\r\n门店编号,门店名称,交易订单总笔数,退款订单总笔数,订单金额（元）,商家实收（元）\r\n"
           ",,1,1,20.00,20.00\r\n合计,,1,1,20.00,20.00\r\n").encode("gbk")


@pytest.mark.parametrize("utf8_names", [False, True])
def test_detail_rows_totals_and_summary(utf8_names):
    data = bill_zip(detail_csv(PAY, REF), SUMMARY, utf8_names)
    assert bool(zipfile.ZipFile(io.BytesIO(data)).infolist()[0].flag_bits & 0x800) is utf8_names
    with AlipayBill(data) as bill:
        reader = bill.detail()
        pay, ref = list(reader)
        summary = list(bill.summary())
    assert (pay.trade_no, pay.out_trade_no, pay.biz_type) == ("2024010122001400001", "OT1", "交易")   # TAB stripped
    assert pay.receipt_amount == Decimal("30.00") and pay.service_fee == Decimal("-0.18")
    assert pay.finished == datetime(2024, 1, 1, 10, 0, 1, tzinfo=CHINA) and pay.counterparty == "张**(a***@x.com)"
    assert ref.is_refund and ref.out_request_no == "RQ1" and ref.signed_amount == Decimal("-10.00")
    assert reader.totals.trades.count == 1 and reader.totals.trades.receipt == Decimal("30.00")
    assert reader.totals.refunds.receipt == Decimal("-10.00")
    assert summary[0]["交易订单总笔数"] == "1" and summary[-1]["门店编号"] == "合计"


def test_an_empty_day_and_a_bill_without_summary_file():
    with AlipayBill(bill_zip(detail_csv())) as bill:
        assert list(bill.detail()) == [] and list(bill.summary()) == []


@pytest.mark.parametrize("detail,match", ids=["amount", "fields", "header", "after_end"], argvalues=[
    (detail_csv(PAY.replace("30.00,30.00", "3O.00,30.00", 1)), "not an amount"),
    (detail_csv(PAY + ",extra"), "fields"),
    ("#x\r\na,b\r\n1,2\r\n".encode("gbk"), "header lacks"),
    (detail_csv(PAY) + "2024010122001400002,OT2,交易\r\n".encode("gbk"), "after the end"),
])
def test_malformed_detail(detail, match):
    with AlipayBill(bill_zip(detail)) as bill:
        with pytest.raises(BillFormatError, match=match):
            list(bill.detail())


def test_not_a_zip_or_no_detail():
    with pytest.raises(BillFormatError):
        AlipayBill(b"not a zip")
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("other.csv", b"x")
    with pytest.raises(BillFormatError, match="业务明细"):
        AlipayBill(out.getvalue())
