"""What the reconciliation takes from the channels' bills (the parsers themselves are tested in
tests/wechatpay and tests/alipay): one signed amount per row, per out_trade_no, and a bill whose
own totals do not match its rows is refused, never half read."""
from __future__ import annotations

import gzip
import zipfile
from decimal import Decimal

import pytest

from bridge.calls import CallResult, Outcome
from bridge.reconcile.channels import AlipayBills, BillUnreadable, WeChatBills, no_bill
from bridge.simulator.channel_bills import (ALIPAY_HEADER, DETAIL_BEGIN, DETAIL_END, WECHAT_HEADER, WECHAT_SUMMARY,
                                            _gbk_name)

D = Decimal


def _wechat(path, rows: list[tuple[str, str, str]], count=None) -> str:
    """rows: (state, out_trade_no, amount); a REFUND row carries the refund amount."""
    lines = [WECHAT_HEADER]
    for state, otn, amount in rows:
        pay = state == "SUCCESS"
        f = ["2024-03-01 10:00:00", "wx0000000000000000", "1900000000", "0", "", "4200000001", otn, "oX",
             "JSAPI", state, "OTHERS", "CNY", amount if pay else "0.00", "0.00", "0" if pay else "5001",
             "0" if pay else "RF1", "0.00" if pay else amount, "0.00", "" if pay else "ORIGINAL",
             "" if pay else "SUCCESS", "门诊缴费", "", "0.00000", "0.60%", amount if pay else "0.00",
             "0.00" if pay else amount, ""]
        lines.append("`" + ",`".join(f))
    lines += [WECHAT_SUMMARY, "`" + ",`".join([str(len(rows) if count is None else count), "0", "0", "0", "0", "0",
                                               "0"])]
    p = path / "wx.csv.gz"
    p.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode("utf-8")))
    return str(p)


def test_wechat_rows_are_signed_and_keep_their_ids(tmp_path):
    rows = list(WeChatBills(None).rows(_wechat(tmp_path, [("SUCCESS", "OTN1", "54.00"), ("REFUND", "OTN1", "5.00")])))
    assert [(r.row_type, r.out_trade_no, r.amount, r.out_refund_no) for r in rows] == \
        [("pay", "OTN1", D("54.00"), None), ("refund", "OTN1", D("-5.00"), "RF1")]
    assert rows[0].trade_time == "2024-03-01 10:00:00"


def test_a_wechat_bill_whose_summary_disagrees_with_its_rows_is_refused(tmp_path):
    with pytest.raises(BillUnreadable, match="summary counts 3"):
        list(WeChatBills(None).rows(_wechat(tmp_path, [("SUCCESS", "OTN1", "54.00")], count=3)))


def test_an_empty_wechat_day(tmp_path):
    assert list(WeChatBills(None).rows(_wechat(tmp_path, []))) == []


def _alipay(path, rows: list[tuple[str, str, str]], trades=None) -> str:
    body = ["#支付宝业务明细查询", DETAIL_BEGIN, ALIPAY_HEADER]
    for kind, otn, amount in rows:
        body.append(",".join(["2088001\t", otn + "\t", kind, "门诊", "2024-03-01 10:00:00", "2024-03-01 10:00:01", "",
                              "", "", "", "buyer", amount.lstrip("-"), amount, "0.00", "0.00", "0.00", "0.00", "0.00",
                              "", "0.00", "0.00", "RQ1\t" if kind == "退款" else "", "0.00", "0.00", ""]))
    pays = sum(1 for r in rows if r[0] == "交易")
    body += [DETAIL_END, f"#交易合计：{pays if trades is None else trades}笔，商家实收共0.00元，商家优惠共0.00元",
             f"#退款合计：{len(rows) - pays}笔，商家实收退款共0.00元，商家优惠退款共0.00元", "#导出时间：[2024年03月02日 10:00:00]"]
    p = path / "ali.csv.zip"
    with zipfile.ZipFile(p, "w") as z:
        z.writestr(_gbk_name("20880000000000000156_20240301_业务明细.csv"), ("\r\n".join(body) + "\r\n").encode("gbk"))
    return str(p)


def test_alipay_rows_refunds_negative_as_alipay_writes_them(tmp_path):
    rows = list(AlipayBills(None).rows(_alipay(tmp_path, [("交易", "OTN2", "60.00"), ("退款", "OTN2", "-7.00")])))
    assert [(r.row_type, r.out_trade_no, r.amount, r.out_refund_no) for r in rows] == \
        [("pay", "OTN2", D("60.00"), None), ("refund", "OTN2", D("-7.00"), "RQ1")]
    # A bill writing a refund as a positive amount is still read as money going back.
    rows = list(AlipayBills(None).rows(_alipay(tmp_path, [("退款", "OTN3", "7.00")])))
    assert rows[0].amount == D("-7.00")


def test_an_alipay_bill_whose_totals_disagree_is_refused(tmp_path):
    with pytest.raises(BillUnreadable, match="交易合计 counts 2"):
        list(AlipayBills(None).rows(_alipay(tmp_path, [("交易", "OTN2", "60.00")], trades=2)))


def test_no_bill_for_the_day_is_recognised():
    assert no_bill(CallResult(Outcome.REJECTED, "bill", "m", code="NO_STATEMENT_EXIST", message="账单文件不存在"))
    assert no_bill(CallResult(Outcome.REJECTED, "bill", "m", code="isp.bill_not_exist"))
    assert not no_bill(CallResult(Outcome.REJECTED, "bill", "m", code="SIGN_ERROR"))
    assert not no_bill(CallResult(Outcome.OK, "bill", "m"))
