"""The client over real HTTP against the local stub: one test per CallResult classification."""
from __future__ import annotations

import json
import socket
from decimal import Decimal

import pytest

from bridge.calls import Outcome
from bridge.crypto import sm2
from bridge.mobilepay.client import MobilePayClient
from bridge.mobilepay.envelope import loads
from bridge.mobilepay.messages import (
    FeeDetail, OrdStas, PayOrderRequest, QueryOrderRequest, RefStatus, RefundRequest,
    RevokeOrderRequest, SetlType, UploadFeeRequest,
)

from .platform_stub import APP_SECRET

ID_NO = "530102199001011234"


def upload_request(**kw):
    fields = dict(
        psnNo="53000000000000000001", insutype="310", medOrgOrd="MO20240101001", begntime="2024-01-01 09:00:00",
        idNo=ID_NO, userName="张三丰", idType="01", insuCode="530100", iptOtpNo="MZ001", deptCode="D01",
        deptName="内科", caty="A03", medType="11", feeType="01", medfeeSumamt=Decimal("12.50"),
        psnSetlway="01", chrgBchno="CB001", pubHospRfomFlag="0", payAuthNo="AUTH530100202204022006310000034",
        feedetailList=[FeeDetail(feedetlSn="1", detItemFeeSumamt=Decimal("10"), cnt=Decimal("2"), pric=Decimal("5.000")),
                       FeeDetail(feedetlSn="2", detItemFeeSumamt=Decimal("2.50"), memo="")],
    )
    fields.update(kw)
    return UploadFeeRequest(**fields)


def pay_request(**kw):
    fields = dict(payAuthNo="AUTH1", payOrdId="ORD1", payToken="TOKEN-SECRET", orgBizSer="BIZ1700000000000",
                  mdtrtId="MD1", chrgBchno="CB001", feeType="01", acctUsedFlag="1")
    fields.update(kw)
    return PayOrderRequest(**fields)


@pytest.fixture
def client(platform, make_config):
    c = MobilePayClient(make_config(platform.base_url, timeout_seconds=0.5))
    yield c
    c.close()


def test_6201_ok_and_what_went_on_the_wire(platform, client):
    platform.respond = lambda req: (200, platform.answer({"payOrdId": "ORD1", "payToken": "PT1"}))
    prepared = client.prepare_upload_fee(upload_request())
    assert platform.requests == []                              # prepare does no I/O
    result = client.send(prepared)
    assert result.outcome is Outcome.OK and result.code == "0"
    assert result.data.payOrdId == "ORD1" and result.data.payToken == "PT1"
    req, = platform.requests
    assert req["verified"] and req["path"] == "/org/local/api/hos/uldFeeInfo"
    assert req["content_type"] == "application/json"
    assert set(req["envelope"]) == {"appId", "encType", "signType", "timestamp", "version", "encData", "signData"}
    data = req["data"]
    assert data["orgCodg"] == "H53010000001" and "orgId" not in data
    assert data["medfeeSumamt"] == "12.50"
    assert data["feedetailList"][0] == {"feedetlSn": "1", "detItemFeeSumamt": "10.00", "cnt": "2", "pric": "5.000"}
    # The journal copy: personal data masked, tokens and secrets absent.
    assert prepared.msg_id.startswith("6201-") and prepared.keys["medOrgOrd"] == "MO20240101001"
    for secret in (ID_NO, "张三丰", "AUTH530100202204022006310000034", APP_SECRET):
        assert secret not in prepared.masked_request
        assert secret.encode() not in prepared.body
    assert json.loads(prepared.masked_request)["userName"] == "张*丰"


def test_6202_ok_with_numeric_code_and_lower_hex(platform, client):
    answer = {"payOrdId": "ORD1", "ordStas": "2", "feeSumamt": "12.50", "ownPayAmt": 2.50,
              "psnAcctPay": "0.00", "fundPay": 10, "extData": {"preSetl": {"hifp_pay": 10}}}
    platform.respond = lambda req: (200, platform.answer(loads(json.dumps(answer)), code=0, lower_hex=True))
    prepared = client.prepare_pay_order(pay_request())
    assert prepared.msg_id == "BIZ1700000000000"
    assert "TOKEN-SECRET" not in prepared.masked_request and "AUTH1" not in prepared.masked_request
    result = client.send(prepared)
    assert result.outcome is Outcome.OK, result.message
    r = result.data
    assert r.ordStas is OrdStas.AWAITING_PAYMENT and r.ordStas.is_processing
    assert (r.feeSumamt, r.ownPayAmt, r.psnAcctPay, r.fundPay) == (Decimal("12.50"), Decimal("2.50"), Decimal("0"), Decimal("10"))
    assert isinstance(r.ownPayAmt, Decimal) and r.extData == {"preSetl": {"hifp_pay": 10}}
    assert platform.requests[0]["path"] == "/org/local/api/hos/pay_order"


def test_6202_contradicting_answers_are_unknown(platform, client):
    platform.respond = lambda req: (200, platform.answer({"payOrdId": "ORD2", "ordStas": "2"}))
    result = client.pay_order(pay_request())
    assert result.outcome is Outcome.UNKNOWN and "ORD2" in result.message
    platform.respond = lambda req: (200, platform.answer(
        {"payOrdId": "ORD1", "ordStas": "2", "feeSumamt": "12.50", "ownPayAmt": "2.50", "fundPay": "9.00"}))
    result = client.pay_order(pay_request(orgBizSer="BIZ2"))
    assert result.outcome is Outcome.UNKNOWN and "add up" in result.message


def test_business_error_is_rejected_with_code_and_message(platform, client):
    platform.respond = lambda req: (200, platform.answer(None, code="-1", message="payToken 已失效"))
    result = client.pay_order(pay_request())
    assert result.outcome is Outcome.REJECTED
    assert (result.code, result.message, result.http_status) == ("-1", "payToken 已失效", 200)


@pytest.mark.parametrize("message,transient", [
    ("payToken 已失效", False),            # a verdict on this request
    ("系统繁忙，请稍后再试", True),        # busy: says nothing about the request
    ("请求过于频繁", True),                # rate-limited
    ("验签失败", True),                    # the centre could not check our signature
])
def test_transient_refusals_are_told_from_verdicts(platform, client, message, transient):
    platform.respond = lambda req: (200, platform.answer(None, code="-1", message=message))
    result = client.pay_order(pay_request())
    assert result.outcome is Outcome.REJECTED and result.transient is transient
    assert result.refused is not transient and result.try_again is transient


def test_in_progress_answer_to_a_money_call_is_unknown(platform, client):
    platform.respond = lambda req: (200, platform.answer(None, code="-1", message="交易处理中，请稍后查询"))
    assert client.pay_order(pay_request()).outcome is Outcome.UNKNOWN
    assert client.query_order(QueryOrderRequest(payOrdId="ORD1", payToken="PT", idNo=ID_NO, userName="张三",
                                                idType="01")).outcome is Outcome.REJECTED


def test_rate_limited_status_is_not_sent(platform, client):
    # RFC 6585: 429 = refused for its rate, not processed.
    platform.respond = lambda req: (429, b"Too Many Requests")
    result = client.pay_order(pay_request())
    assert result.outcome is Outcome.NOT_SENT and result.try_again


@pytest.mark.parametrize("status,payload,reason", [
    (500, b'{"code":0}', "HTTP 500"),
    (502, b"<html>bad gateway</html>", "HTTP 502"),
    (200, b"<html>not json</html>", "not JSON"),
    (200, b'{"code":"0","encData":"ZZZZ","signData":"AAAA"}', "encData"),
    (404, b'{"code":"404","message":"no route"}', "no signData"),
])
def test_broken_answers_are_unknown(platform, client, status, payload, reason):
    platform.respond = lambda req: (status, payload)
    result = client.query_order(QueryOrderRequest(payOrdId="ORD1", payToken="PT", idNo=ID_NO,
                                                  userName="张三", idType="01"))
    assert result.outcome is Outcome.UNKNOWN and reason in result.message
    assert result.http_status == status


def test_bad_signature_is_unknown_even_with_code_0(platform, client):
    stranger = sm2.generate_private_key()
    platform.respond = lambda req: (200, platform.answer({"payOrdId": "ORD1", "ordStas": "6"}, key=stranger))
    result = client.query_order(QueryOrderRequest(payOrdId="ORD1", payToken="PT", idNo=ID_NO,
                                                  userName="张三", idType="01"))
    assert result.outcome is Outcome.UNKNOWN and "signature" in result.message and result.data is None


def test_unsigned_business_error_is_unknown_and_keeps_the_claim(platform, client):
    platform.respond = lambda req: (200, json.dumps({"code": "1001", "message": "订单不存在"}).encode())
    result = client.pay_order(pay_request())
    assert result.outcome is Outcome.UNKNOWN and "unverified code=1001" in result.message


def test_timeout_is_unknown(platform, client):
    platform.respond = lambda req: ("delay", 1.0)       # client read timeout is 0.5 s
    result = client.pay_order(pay_request())
    assert result.outcome is Outcome.UNKNOWN and "timeout" in result.message
    assert len(platform.requests) == 1                  # it did arrive


def test_reset_is_unknown(platform, client):
    platform.respond = lambda req: ("reset", None)
    result = client.pay_order(pay_request())
    assert result.outcome is Outcome.UNKNOWN and "may have been sent" in result.message


def test_connection_refused_is_not_sent(make_config):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with MobilePayClient(make_config(f"http://127.0.0.1:{port}")) as client:
        result = client.pay_order(pay_request())
    assert result.outcome is Outcome.NOT_SENT and result.try_again and result.http_status is None


@pytest.mark.parametrize("status,outcome", [("SUCC", Outcome.OK), ("FAIL", Outcome.REJECTED),
                                            ("EXP", Outcome.UNKNOWN)])
def test_6203_refund_status_decides_the_outcome(platform, client, status, outcome):
    platform.respond = lambda req: (200, platform.answer({"refdSn": "R1", "refStatus": status}))
    result = client.refund(RefundRequest(
        payOrdId="ORD1", appRefdSn="RF1", appRefdTime="20240101101010", totlRefdAmt=Decimal("2.50"),
        cashRefdAmt=Decimal("2.50"), refdType=SetlType.CASH, payAuthNo="AUTH1"))
    assert result.outcome is outcome and result.data.refStatus is RefStatus(status)
    assert result.code == ("0" if status == "SUCC" else status)


def test_6203_refund_accepts_the_hifefdsn_spelling(platform, client):
    platform.respond = lambda req: (200, platform.answer(
        {"refdSn": "R1", "hiFefdSn": "HI1", "hiTrnsDate": "20240101", "hiTrnsTime": "101010", "refStatus": "EXP"}))
    prepared = client.prepare_refund(RefundRequest(
        payOrdId="ORD1", appRefdSn="RF1", appRefdTime="20240101101010", totlRefdAmt=Decimal("12.50"),
        cashRefdAmt=Decimal("2.50"), psnAcctRefdAmt=Decimal("0"), fundRefdAmt=Decimal("10"),
        refdType=SetlType.ALL, payAuthNo="AUTH1"))
    assert prepared.keys == {"payOrdId": "ORD1", "appRefdSn": "RF1"} and prepared.msg_id != "RF1"
    result = client.send(prepared)
    # EXP = refund outcome unknown (digest §7.2): UNKNOWN, the typed answer kept
    assert result.outcome is Outcome.UNKNOWN and result.code == "EXP"
    assert result.data.hiRefdSn == "HI1" and result.data.refStatus is RefStatus.EXP
    req = platform.requests[0]
    assert req["path"] == "/org/local/api/hos/refund_Order"
    assert req["data"]["refdType"] == "ALL" and req["data"]["fundRefdAmt"] == "10.00"


def test_6301_settled_and_unknown_status(platform, client):
    query = QueryOrderRequest(payOrdId="ORD1", payToken="PT", idNo=ID_NO, userName="张三", idType="01")
    platform.respond = lambda req: (200, platform.answer(
        {"payOrdId": "ORD1", "ordStas": 6, "feeSumamt": "12.50", "ownPayAmt": "2.50", "psnAcctPay": "0",
         "fundPay": "10.00", "setlType": "ALL", "callType": "02", "traceTime": "20240101101010", "revsToken": "RV"}))
    result = client.query_order(query)
    assert result.outcome is Outcome.OK
    assert result.data.ordStas is OrdStas.SETTLED and result.data.ordStas.is_settled
    assert result.data.setlType is SetlType.ALL and "RV" not in result.response_text
    assert platform.requests[0]["data"]["orgCodg"] == "H53010000001"
    platform.respond = lambda req: (200, platform.answer({"payOrdId": "ORD1", "ordStas": "99"}))
    result = client.query_order(query)
    assert result.outcome is Outcome.UNKNOWN and "ordStas" in result.message


def test_relay_wrapped_business_data_is_unwrapped(platform, client):
    platform.respond = lambda req: (200, platform.answer({"output": {"payOrdId": "ORD9", "payToken": "PT9"}}))
    result = client.upload_fee(upload_request())
    assert result.outcome is Outcome.OK and result.data.payOrdId == "ORD9"


def test_6401_success_flag(platform, client):
    revoke = RevokeOrderRequest(payOrdId="ORD1", payToken="PT", idNo=ID_NO, userName="张三", idType="01")
    platform.respond = lambda req: (200, platform.answer(None, success=True, message="撤销成功"))
    result = client.revoke_order(revoke)
    assert result.outcome is Outcome.OK and result.data.success and result.data.message == "撤销成功"
    assert platform.requests[0]["path"] == "/org/local/api/hos/revoke_order"
    platform.respond = lambda req: (200, platform.answer({"success": False}, message="订单已支付"))
    result = client.revoke_order(revoke)
    assert result.outcome is Outcome.REJECTED and result.message == "订单已支付"


def test_platform_signing_with_app_secret_uid_is_accepted(platform, client):
    platform.respond = lambda req: (200, platform.answer({"payOrdId": "ORD1", "payToken": "PT1"}, uid=APP_SECRET.encode()))
    assert client.upload_fee(upload_request()).outcome is Outcome.OK


def test_path_override_and_options(platform, make_config):
    config = make_config(platform.base_url, paths={"6201": "/relay/6201"}, org_id="ORGID1",
                         hex_case="lower", timestamp_style="yyyyMMddHHmmss", sm2_uid_mode="appSecret")
    platform.respond = lambda req: (200, platform.answer({"payOrdId": "ORD1", "payToken": "PT1"}))
    with MobilePayClient(config) as client:
        assert client.upload_fee(upload_request(extData={"fee": Decimal("1.10")})).outcome is Outcome.OK
    req = platform.requests[0]
    assert req["path"] == "/relay/6201" and req["data"]["orgId"] == "ORGID1"
    assert req["data"]["extData"] == {"fee": "1.10"}
    assert req["envelope"]["encData"] == req["envelope"]["encData"].lower()
    assert len(req["envelope"]["timestamp"]) == 14
    assert not req["verified"]          # the stub verifies with the default user id only


def test_invalid_requests_fail_in_prepare(client):
    with pytest.raises(ValueError, match="sum"):
        client.prepare_upload_fee(upload_request(medfeeSumamt=Decimal("12.49")))
    with pytest.raises(ValueError, match="ecToken or payAuthNo"):
        client.prepare_upload_fee(upload_request(payAuthNo=None))
    with pytest.raises(ValueError, match="two decimals"):
        client.prepare_upload_fee(upload_request(
            medfeeSumamt=Decimal("12.505"),
            feedetailList=[FeeDetail(feedetlSn="1", detItemFeeSumamt=Decimal("12.505"))]))
    base = dict(payOrdId="ORD1", appRefdSn="RF1", appRefdTime="20240101101010", payAuthNo="AUTH1")
    with pytest.raises(ValueError, match="totlRefdAmt"):
        client.prepare_refund(RefundRequest(**base, totlRefdAmt=Decimal("5"), cashRefdAmt=Decimal("2"),
                                            refdType=SetlType.CASH))
    with pytest.raises(ValueError, match="CASH"):
        client.prepare_refund(RefundRequest(**base, totlRefdAmt=Decimal("5"), cashRefdAmt=Decimal("2"),
                                            fundRefdAmt=Decimal("3"), refdType=SetlType.CASH))
    with pytest.raises(ValueError, match="HI"):
        client.prepare_refund(RefundRequest(**base, totlRefdAmt=Decimal("5"), cashRefdAmt=Decimal("2"),
                                            fundRefdAmt=Decimal("3"), refdType=SetlType.HI))
    with pytest.raises(ValueError, match="exactly one"):
        client.prepare_refund(RefundRequest(**{**base, "ecToken": "EC"}, totlRefdAmt=Decimal("5"),
                                            cashRefdAmt=Decimal("5"), refdType=SetlType.CASH))
