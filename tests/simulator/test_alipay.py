"""Alipay in the simulator, driven by the spec-written client (channels.md §6-§9)."""
from __future__ import annotations

import io
import json
import time
import uuid
import zipfile
from datetime import date, timedelta
from decimal import Decimal
from urllib.parse import urlencode

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from .channel_client import AlipayClient, query_of
from .channel_helpers import (ACCT_PSN, CASH_PSN, ORG, CentreOrder, ali, centre, channel_hospital,  # noqa: F401
                              channel_running, csim, ctl, legs, wait_for)

USER = "2088000000000001"


def arm(sim, interface, fault, **kw):
    ctl(sim, "POST", "/__sim__/faults", {"interface": interface, "fault": fault, **kw})


def ali_state(sim):
    return ctl(sim, "GET", "/__sim__/alipay/state")


def authorised_order(sim, ali, centre, psn_no=CASH_PSN, total="100.00") -> CentreOrder:
    """§7.1: the user authorises, the auth query gives pay_auth_no, the centre takes it (6201/6202)."""
    ctl(sim, "POST", "/__sim__/alipay/authorize", {"alipay_user_id": USER, "psn_no": psn_no})
    got = ali.call("alipay.commerce.medical.authinfo.auth.query",
                   {"alipay_user_id": USER, "ol_biz_type_code": "04107", "org_app_id": "APP1",
                    "org_code": ORG, "req_biz_no": uuid.uuid4().hex})
    assert got["code"] == "10000" and got["data"]["auth_stas"] == "1"
    return CentreOrder(sim, centre, psn_no, total, pay_auth_no=got["data"]["pay_auth_no"])


def create_payment(ali, order: CentreOrder, hospital, otn=None) -> dict:
    biz = {"alipay_user_id": USER, "org_no": ORG, "merchant_name": "模拟市第一人民医院",
           "med_org_ord": order.med_org_ord, "pay_order_id": order.pay_ord_id, "pay_auth_no": order.pay_auth_no,
           "out_trade_no": otn or "ALI" + uuid.uuid4().hex[:16], "payment_city_code": "440100",
           "total_amount": str(order.total), "gov_amount": str(order.fund), "account_amount": str(order.acct),
           "real_amount": str(order.cash), "gmt_out_create": time.strftime("%Y-%m-%d %H:%M:%S"),
           "call_url": hospital.base + "/ali/notify"}
    return {"biz": biz, "answer": ali.call("alipay.commerce.medical.payment.createandpay", biz)}


def paid(sim, ali, centre, hospital, psn_no=CASH_PSN, total="100.00") -> dict:
    order = authorised_order(sim, ali, centre, psn_no, total)
    made = create_payment(ali, order, hospital)
    ctl(sim, "POST", "/__sim__/alipay/pay", {"out_trade_no": made["biz"]["out_trade_no"]})
    return {"order": order, "out_trade_no": made["biz"]["out_trade_no"], "answer": made["answer"]}


def other_key() -> str:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()


def test_bad_signature_is_refused_and_nothing_recorded(csim, ali, centre):
    order = CentreOrder(csim, centre, CASH_PSN, "10.00")
    forger = AlipayClient(ali.c, private_key=other_key())
    biz = {"alipay_user_id": USER, "org_no": ORG, "med_org_ord": order.med_org_ord, "out_trade_no": "FORGED1",
           "total_amount": "10.00", "real_amount": "10.00"}
    err = ali.open(forger.post(forger.params("alipay.commerce.medical.payment.createandpay", biz)).text,
                   "alipay.commerce.medical.payment.createandpay")
    assert err["code"] == "40002" and err["sub_code"] == "isv.invalid-signature"
    p = ali.params("alipay.trade.query", {"out_trade_no": "X"})
    p["biz_content"] = p["biz_content"].replace("X", "Y")                 # changed after signing
    assert ali.open(ali.post(p).text, "alipay.trade.query")["sub_code"] == "isv.invalid-signature"
    assert ali_state(csim)["med_orders"] == {}


def test_auth_query_before_and_after_authorisation(csim, ali):
    q = {"alipay_user_id": "2088000000000009", "ol_biz_type_code": "04107", "org_app_id": "APP1", "org_code": ORG}
    before = ali.call("alipay.commerce.medical.authinfo.auth.query", q)
    assert before["data"]["auth_stas"] == "0" and before["data"]["auth_url"] and "pay_auth_no" not in before["data"]
    ctl(csim, "POST", "/__sim__/alipay/authorize", {"alipay_user_id": "2088000000000009", "psn_no": CASH_PSN})
    after = ali.call("alipay.commerce.medical.authinfo.auth.query", q, via="GET")
    assert after["data"]["auth_stas"] == "1" and after["data"]["pay_auth_no"].startswith("AUTH")
    missing = ali.call("alipay.commerce.medical.authinfo.auth.query", {**q, "org_app_id": ""})
    assert missing["code"] == "40002"


def test_medical_order_paid_notify_verified_queries_show_paid(csim, ali, centre, channel_hospital):
    h = channel_hospital
    order = authorised_order(csim, ali, centre)
    made = create_payment(ali, order, h)
    data = made["answer"]["data"]
    assert made["answer"]["code"] == "10000" and data["pay_url"] and data["chnl_ord_sn"]
    assert data["status"] == "WAIT_PAY" and data["pay_order_id"] == order.pay_ord_id
    q = ali.call("alipay.commerce.medical.payment.query", {"chnl_order_sn": data["chnl_ord_sn"]})
    assert q["result_data"]["medical_pay_status"] == "WAIT_PAY" and q["result_data"]["own_pay_status"] == "WAIT_BUYER_PAY"
    again = ali.call("alipay.commerce.medical.payment.createandpay", made["biz"])   # same request: same order
    assert again["data"]["chnl_ord_sn"] == data["chnl_ord_sn"]
    ctl(csim, "POST", "/__sim__/alipay/pay", {"chnl_ord_sn": data["chnl_ord_sn"]})
    assert wait_for(lambda: h.genuine("/ali/notify"))
    note = h.genuine("/ali/notify")[0]["resource"]
    assert note["out_trade_no"] == made["biz"]["out_trade_no"] and note["trade_status"] == "TRADE_SUCCESS"
    assert note["total_amount"] == str(order.cash) and note["pay_order_id"] == order.pay_ord_id
    q = ali.call("alipay.commerce.medical.payment.query", {"chnl_order_sn": data["chnl_ord_sn"]})["result_data"]
    assert (q["medical_pay_status"], q["own_pay_status"], q["pay_type"]) == ("PAY_SUCCESS", "TRADE_SUCCESS",
                                                                             "MIXED_PAYMENT")
    assert q["gmt_paid"] and q["trade_no"]
    t = ali.call("alipay.trade.query", {"out_trade_no": made["biz"]["out_trade_no"],
                                        "query_options": ["medical_insurance_info"]})
    assert t["trade_status"] == "TRADE_SUCCESS" and t["total_amount"] == str(order.cash)
    assert json.loads(t["medical_insurance_info"])["pay_order_id"] == order.pay_ord_id
    assert order.query(centre)["ordStas"] == "6"
    mine = legs(csim, order.pay_ord_id)
    assert mine["fund"]["charges"] == 1 and mine["cash"]["alipay"]["charges"] == 1
    ctl(csim, "POST", "/__sim__/alipay/pay", {"chnl_ord_sn": data["chnl_ord_sn"]}, status=409)
    assert legs(csim, order.pay_ord_id)["cash"]["alipay"]["charges"] == 1


def test_create_checks_the_centre_order(csim, ali, centre, channel_hospital):
    order = authorised_order(csim, ali, centre)
    base = {"alipay_user_id": USER, "org_no": ORG, "med_org_ord": order.med_org_ord, "pay_order_id": order.pay_ord_id,
            "pay_auth_no": order.pay_auth_no, "out_trade_no": "CHK" + uuid.uuid4().hex[:10],
            "total_amount": str(order.total), "gov_amount": str(order.fund), "account_amount": str(order.acct),
            "real_amount": str(order.cash), "call_url": channel_hospital.base + "/ali/notify"}
    for bad in ({"gov_amount": str(order.fund - 1), "real_amount": str(order.cash + 1)},
                {"pay_auth_no": "AUTH440100OTHER"}, {"med_org_ord": "OTHER"}, {"total_amount": "1.00"}):
        r = ali.call("alipay.commerce.medical.payment.createandpay", {**base, **bad})
        assert r["code"] == "40004" and r["sub_code"].startswith("SIM_"), (bad, r)
    assert ali_state(csim)["med_orders"] == {}


def test_trade_variant_and_the_api_setting(csim, ali, centre, channel_hospital):
    order = authorised_order(csim, ali, centre, psn_no=ACCT_PSN)
    biz = {"alipay_user_id": USER, "org_no": ORG, "med_org_ord": order.med_org_ord, "pay_order_id": order.pay_ord_id,
           "pay_auth_no": order.pay_auth_no, "out_trade_no": "TRD" + uuid.uuid4().hex[:10], "subject": "门诊缴费",
           "order_type": "MEDICAL_ORDER", "total_amount": str(order.total), "gov_amount": str(order.fund),
           "account_amount": str(order.acct), "other_amount": "0.00", "real_amount": str(order.cash),
           "result_notify_url": channel_hospital.base + "/ali/notify",
           "extend_params": {"medical_card_id": order.pay_auth_no, "medical_card_inst_id": "NATHSA"}}
    ctl(csim, "POST", "/__sim__/channels/settings", {"alipay_order_api": "payment"})
    refused = ali.call("alipay.commerce.medical.trade.createandpay", biz)
    assert refused["code"] == "40002" and refused["sub_code"] == "isv.invalid-method"
    ctl(csim, "POST", "/__sim__/channels/settings", {"alipay_order_api": "trade"})
    made = ali.call("alipay.commerce.medical.trade.createandpay", biz)
    assert made["code"] == "10000" and made["pay_url"] and made["pay_order_id"] == order.pay_ord_id
    assert "alipay_trade_no" not in made                               # no cash part: no cash trade
    ctl(csim, "POST", "/__sim__/alipay/pay", {"out_trade_no": biz["out_trade_no"]})
    q = ali.call("alipay.commerce.medical.trade.query", {"out_trade_no": biz["out_trade_no"]})
    assert q["medical_pay_status"] == "PAY_SUCCESS" and q["gmt_medical_paid"]
    assert ali.call("alipay.commerce.medical.payment.query", {"out_trade_no": biz["out_trade_no"]})[
        "sub_code"] == "isv.invalid-method"
    assert order.query(centre)["ordStas"] == "6"


def refund(ali, otn, amount, orn):
    return ali.call("alipay.trade.refund", {"out_trade_no": otn, "refund_amount": amount, "out_request_no": orn,
                                            "refund_reason": "退费"})


def test_cash_refund_idempotent_by_out_request_no(csim, ali, centre, channel_hospital):
    got = paid(csim, ali, centre, channel_hospital)
    otn, cash = got["out_trade_no"], got["order"].cash
    first = refund(ali, otn, "10.00", "RQ-1")
    assert first["code"] == "10000" and first["fund_change"] == "Y" and first["refund_fee"] == "10.00"
    again = refund(ali, otn, "10.00", "RQ-1")
    assert again["fund_change"] == "N" and again["refund_fee"] == "10.00"
    assert refund(ali, otn, "11.00", "RQ-1")["code"] == "40004"
    over = refund(ali, otn, str(cash - Decimal("9.99")), "RQ-2")
    assert over["sub_code"] == "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL"
    assert refund(ali, "NOPE", "1.00", "RQ-3")["sub_code"] == "ACQ.TRADE_NOT_EXIST"
    found = ali.call("alipay.trade.fastpay.refund.query", {"out_trade_no": otn, "out_request_no": "RQ-1"})
    assert found["refund_status"] == "REFUND_SUCCESS" and found["refund_amount"] == "10.00"
    none = ali.call("alipay.trade.fastpay.refund.query", {"out_trade_no": otn, "out_request_no": "RQ-9"})
    assert none == {"code": "10000", "msg": "Success"}
    mine = legs(csim, got["order"].pay_ord_id)["cash"]["alipay"]
    assert mine == {"charged": str(cash), "charges": 1, "refunded": "10.00", "refunds": 1}
    rest = refund(ali, otn, str(cash - Decimal("10.00")), "RQ-4")
    assert rest["fund_change"] == "Y"
    assert ali.call("alipay.trade.query", {"out_trade_no": otn})["trade_status"] == "TRADE_CLOSED"
    q = ali.call("alipay.commerce.medical.payment.query", {"out_trade_no": otn})["result_data"]
    assert q["real_refund_amount"] == str(cash) and q["medical_refund_amount"] == "0.00"
    assert wait_for(lambda: len(channel_hospital.genuine("/ali/notify")) == 3)       # pay + two refunds
    assert channel_hospital.genuine("/ali/notify")[-1]["resource"]["out_biz_no"] == "RQ-4"


def test_faults_unsigned_error_bad_answer_sign_timeout_and_tampered_notify(csim, ali, centre, channel_hospital):
    h = channel_hospital
    arm(csim, "alipay.notify", "tampered")
    got = paid(csim, ali, centre, h)
    assert wait_for(lambda: h.genuine("/ali/notify"))
    assert len(h.refused("/ali/notify")) == 1 and len(h.genuine("/ali/notify")) == 1
    otn = got["out_trade_no"]
    arm(csim, "alipay.trade.refund", "unsigned_error")
    r = ali.post(ali.params("alipay.trade.refund", {"out_trade_no": otn, "refund_amount": "1.00",
                                                    "out_request_no": "F-1"}))
    doc = r.json()
    assert "sign" not in doc and doc["error_response"]["code"] == "20000"
    assert legs(csim)["cash"]["alipay"]["refunds"] == 0
    arm(csim, "alipay.trade.refund", "bad_signature")
    text = ali.post(ali.params("alipay.trade.refund", {"out_trade_no": otn, "refund_amount": "1.00",
                                                       "out_request_no": "F-2"})).text
    with pytest.raises(AssertionError, match="does not verify"):
        ali.open(text, "alipay.trade.refund")
    assert legs(csim)["cash"]["alipay"]["refunds"] == 1                  # committed all the same
    arm(csim, "alipay.trade.refund", "timeout", delay=0.8)
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(ali.c["gateway_url"], timeout=0.2, headers={"Content-Type": "application/x-www-form-urlencoded"},
                   content=urlencode(ali.params("alipay.trade.refund", {
                       "out_trade_no": otn, "refund_amount": "2.00", "out_request_no": "F-3"})).encode())
    assert wait_for(lambda: legs(csim)["cash"]["alipay"]["refunds"] == 2)
    assert refund(ali, otn, "2.00", "F-3")["fund_change"] == "N"
    assert refund(ali, otn, "1.00", "F-2")["fund_change"] == "N"
    assert legs(csim)["cash"]["alipay"]["refunds"] == 2
    arm(csim, "alipay.trade.query", "business_error", code="ACQ.SYSTEM_ERROR", message="系统繁忙")
    busy = ali.call("alipay.trade.query", {"out_trade_no": otn})
    assert busy["code"] == "40004" and busy["sub_code"] == "ACQ.SYSTEM_ERROR"
    arm(csim, "alipay.trade.refund", "http500")
    assert ali.post(ali.params("alipay.trade.refund", {"out_trade_no": otn, "refund_amount": "1.00",
                                                       "out_request_no": "F-4"})).status_code == 500
    assert legs(csim)["cash"]["alipay"]["refunds"] == 2


def test_insurance_failed_leaves_cash_taken(csim, ali, centre, channel_hospital):
    order = authorised_order(csim, ali, centre)
    made = create_payment(ali, order, channel_hospital)
    ctl(csim, "POST", "/__sim__/alipay/pay", {"out_trade_no": made["biz"]["out_trade_no"], "outcome": "insurance_fail"})
    q = ali.call("alipay.commerce.medical.payment.query", {"out_trade_no": made["biz"]["out_trade_no"]})["result_data"]
    assert q["medical_pay_status"] == "PAY_FAIL" and q["own_pay_status"] == "TRADE_SUCCESS" and q["error_reason"]
    assert order.query(centre)["ordStas"] == "2"
    mine = legs(csim, order.pay_ord_id)
    assert mine["cash"]["alipay"]["charges"] == 1 and mine["fund"]["charges"] == 0


def test_bill_zip_in_the_real_format_with_mismatches_and_a_dying_link(csim, ali, centre, channel_hospital):
    day = (date.today() - timedelta(days=2)).isoformat()
    ctl(csim, "POST", "/__sim__/channels/date", {"date": day})
    a = paid(csim, ali, centre, channel_hospital)
    b = paid(csim, ali, centre, channel_hospital, total="50.00")
    refund(ali, a["out_trade_no"], "5.00", "BR-1")
    ctl(csim, "POST", "/__sim__/channels/date", {"date": None})
    ctl(csim, "POST", "/__sim__/bills/mismatch", {"channel": "alipay", "date": day, "kind": "drop",
                                                  "out_trade_no": b["out_trade_no"]})
    ctl(csim, "POST", "/__sim__/bills/mismatch", {"channel": "alipay", "date": day, "kind": "extra_refund",
                                                  "out_trade_no": a["out_trade_no"], "delta": "0.01"})
    url = ali.call("alipay.data.dataservice.bill.downloadurl.query", {"bill_type": "trade", "bill_date": day})[
        "bill_download_url"]
    assert query_of(url)["downloadFileName"] == f"{ali.c['pid']}0156_{day.replace('-', '')}.csv.zip"
    z = zipfile.ZipFile(io.BytesIO(httpx.get(url).content), metadata_encoding="gbk")
    names = sorted(z.namelist())
    stem = f"{ali.c['pid']}0156_{day.replace('-', '')}"
    assert names == [f"{stem}_业务明细(汇总).csv", f"{stem}_业务明细.csv"]
    detail = z.read(f"{stem}_业务明细.csv").decode("gbk").split("\r\n")
    assert detail[0] == "#支付宝业务明细查询" and detail[1] == f"#账号：[{ali.c['pid']}0156]"
    start = detail.index(next(x for x in detail if x.startswith("#---") and "业务明细列表" in x and "结束" not in x))
    end = detail.index(next(x for x in detail if "业务明细列表结束" in x))
    header, rows = detail[start + 1].split(","), [r.split(",") for r in detail[start + 2:end]]
    assert header[0] == "支付宝交易号" and header[11] == "订单金额（元）" and len(header) == 25
    kinds = [(r[1].strip("\t"), r[2], r[12], r[21].strip("\t")) for r in rows]
    cash_a = str(a["order"].cash)
    assert (a["out_trade_no"], "交易", cash_a, "") in kinds
    assert (a["out_trade_no"], "退款", "-5.00", "BR-1") in kinds
    assert any(k[0] == a["out_trade_no"] and k[1] == "退款" and k[2] == "-0.01" for k in kinds)   # injected
    assert not any(k[0] == b["out_trade_no"] for k in kinds)                                    # dropped
    assert rows[0][0].endswith("\t") and rows[0][1].endswith("\t")
    assert detail[end + 1].startswith("#交易合计：1笔") and detail[end + 3].startswith("#导出时间：")
    summary = z.read(f"{stem}_业务明细(汇总).csv").decode("gbk").split("\r\n")
    assert summary[4].split(",")[2:4] == ["交易订单总笔数", "退款订单总笔数"] and summary[6].startswith("合计,,1,2")
    # The link dies after 30 s (moved back rather than waited for).
    bills = csim.simulator.channels.bills
    with bills._lock:
        for token, (d, _) in list(bills.alipay_tokens.items()):
            bills.alipay_tokens[token] = (d, time.time() - 1)
    dead = httpx.get(url)
    assert dead.content.decode() == "下载超时，请重新下载"
    today = ali.call("alipay.data.dataservice.bill.downloadurl.query",
                     {"bill_type": "trade", "bill_date": date.today().isoformat()})
    assert today["code"] != "10000"
    ctl(csim, "POST", "/__sim__/bills/close", {"channel": "alipay", "date": date.today().isoformat()})
    assert ali.call("alipay.data.dataservice.bill.downloadurl.query",
                    {"bill_type": "trade", "bill_date": date.today().isoformat()})["code"] == "10000"


def test_template_message_is_recorded(csim, ali):
    ok = ali.call("alipay.open.app.mini.templatemessage.send", {
        "to_user_id": USER, "user_template_id": "TPL1", "page": "pages/index",
        "data": json.dumps({"keyword1": {"value": "挂号成功"}}, ensure_ascii=False)})
    assert ok["code"] == "10000"
    bad = ali.call("alipay.open.app.mini.templatemessage.send", {"to_user_id": USER, "user_template_id": "TPL1",
                                                                 "data": {"keyword1": "not a string"}})
    assert bad["code"] == "40002"
    sent = ali_state(csim)["sent_messages"]
    assert len(sent) == 1 and sent[0]["data"]["keyword1"]["value"] == "挂号成功"
