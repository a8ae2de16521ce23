"""The Alipay client over real HTTP against canned answers: the signed form on the wire, and
one test per answer shape (code / sub_code / result_code cases of channels.md §6.3, §7)."""
from __future__ import annotations

import json
from decimal import Decimal

import pytest

from bridge.alipay import outcomes as oc
from bridge.alipay.client import AlipayClient
from bridge.alipay.config import AlipayTemplate
from bridge.alipay.messages import (AuthQueryRequest, MedicalOrderRequest, MedicalQueryRequest, RefundRequest,
                                    TemplateMessageRequest, TradeStatus)
from bridge.calls import Outcome
from tests.channel_wechatpay.loopback import Canned, closed_port

from .conftest import APP_ID, verify_request


def order_request(**kw) -> MedicalOrderRequest:
    fields = dict(med_org_ord="MO1", pay_order_id="ORD1", pay_auth_no="AUTHSECRET1", out_trade_no="OT1",
                  total_amount=Decimal("100.00"), gov_amount=Decimal("50.00"), account_amount=Decimal("20.00"),
                  real_amount=Decimal("30.00"), alipay_user_id="2088000000000001")
    fields.update(kw)
    return MedicalOrderRequest(**fields)


@pytest.fixture
def client(server, make_config):
    c = AlipayClient(make_config(f"{server.url}/gateway.do"))
    yield c
    c.close()


def biz(seen) -> dict:
    return json.loads(verify_request(pytest.akeys, seen)["biz_content"])


@pytest.fixture(autouse=True)
def _keys(akeys):
    pytest.akeys = akeys


def test_auth_query_signs_the_form_and_returns_pay_auth_no(server, client, ali, akeys):
    server.answer = ali.answer(oc.AUTH_QUERY, {"code": "10000", "msg": "Success", "result_code": "SUCCESS",
                                               "data": {"auth_stas": "1", "pay_auth_no": "AUTH5301", "auth_no": "A1",
                                                        "rels_pay_flag": "0"}})
    prepared = client.prepare_auth_query(AuthQueryRequest(alipay_user_id="2088000000000001", req_biz_no="R1"))
    assert server.seen == []
    result = client.send(prepared)
    assert result.ok and result.data.authorised and result.data.pay_auth_no == "AUTH5301"
    seen, = server.seen
    assert seen.method == "POST" and seen.path == "/gateway.do"
    params = verify_request(akeys, seen)
    assert (params["app_id"], params["method"], params["sign_type"], params["charset"], params["version"]) == \
        (APP_ID, oc.AUTH_QUERY, "RSA2", "utf-8", "1.0")
    assert json.loads(params["biz_content"]) == {
        "alipay_user_id": "2088000000000001", "org_code": "H53010000001", "org_app_id": "ORGAPP1",
        "org_chnl_crtf_code": "crtf/+code", "ol_biz_type_code": "04107", "req_biz_no": "R1"}
    assert "crtf/+code" not in prepared.masked_request
    assert "AUTH5301" not in (result.response_text or "")


def test_auth_query_not_yet_authorised(server, client, ali):
    server.answer = ali.answer(oc.AUTH_QUERY, {"code": "10000", "msg": "Success",
                                               "data": {"auth_stas": "0", "auth_url": "https://auth.example/x"}})
    result = client.auth_query(AuthQueryRequest(open_id="074a1CcTG1LelxKe4xQC0zgNdId0nxi95b5lsNpazWYoCo"))
    assert result.ok and not result.data.authorised and result.data.auth_url == "https://auth.example/x"


def test_medical_order_create(server, client, ali, akeys):
    server.answer = ali.answer(oc.MEDICAL_CREATE, {"code": "10000", "msg": "Success", "data": {
        "pay_url": "https://render.alipay.com/p/x", "chnl_ord_sn": "CH1", "med_org_ord": "MO1",
        "out_trade_no": "OT1", "pay_order_id": "ORD1", "status": "INIT"}})
    prepared = client.prepare_medical_order(order_request())
    result = client.send(prepared)
    assert result.ok and result.data.pay_url == "https://render.alipay.com/p/x" and result.data.chnl_ord_sn == "CH1"
    body = biz(server.seen[0])
    assert body["total_amount"] == "100.00" and body["real_amount"] == "30.00" and body["org_no"] == "H53010000001"
    assert body["pay_auth_no"] == "AUTHSECRET1" and body["call_url"] == "https://hospital.example/alipay/medical"
    assert "AUTHSECRET1" not in prepared.masked_request


def test_the_trade_variant_is_chosen_by_config(server, make_config, ali):
    with AlipayClient(make_config(f"{server.url}/gateway.do", order_api="trade",
                                  sys_service_provider_id="2088111")) as c:
        server.answer = ali.answer(oc.MEDICAL_TRADE_CREATE, {"code": "10000", "msg": "Success",
                                                             "pay_url": "https://x/pay", "trade_no": "2024T1",
                                                             "out_trade_no": "OT1"})
        result = c.medical_order(order_request())
        assert result.ok and result.data.trade_no == "2024T1"
        params = verify_request(pytest.akeys, server.seen[0])
        assert params["method"] == oc.MEDICAL_TRADE_CREATE
        assert json.loads(params["biz_content"])["extend_params"] == {
            "medical_card_id": "AUTHSECRET1", "medical_card_inst_id": "NATHSA", "sys_service_provider_id": "2088111"}


def test_order_amounts_are_checked_before_any_call(client):
    with pytest.raises(ValueError, match="total_amount"):
        client.prepare_medical_order(order_request(real_amount=Decimal("29.99")))
    with pytest.raises(ValueError, match="two decimals"):
        client.prepare_medical_order(order_request(real_amount=Decimal("30.001"), total_amount=Decimal("100.001")))


def test_medical_query_reads_result_data(server, client, ali):
    server.answer = ali.answer(oc.MEDICAL_QUERY, {"code": "10000", "msg": "Success", "result_data": {
        "med_org_ord": "MO1", "medical_pay_status": "PAID", "own_pay_status": "PAID", "real_amount": "30.00",
        "gov_amount": "50.00", "trade_no": "2024T1", "pay_type": "MIXED_PAYMENT"}})
    result = client.medical_query(MedicalQueryRequest(med_org_ord="MO1"))
    assert result.ok and result.data.real_amount == Decimal("30.00") and result.data.trade_no == "2024T1"
    assert biz(server.seen[0]) == {"med_org_ord": "MO1", "org_no": "H53010000001"}


def test_trade_query(server, client, ali):
    server.answer = ali.answer(oc.TRADE_QUERY, {"code": "10000", "msg": "Success", "trade_no": "2024T1",
                                                "out_trade_no": "OT1", "trade_status": "TRADE_SUCCESS",
                                                "total_amount": "30.00", "industry_sepc_detail_gov": '{"a":1}'})
    result = client.trade_query(out_trade_no="OT1")
    assert result.ok and result.data.trade_status is TradeStatus.TRADE_SUCCESS
    assert biz(server.seen[0])["query_options"] == ["medical_insurance_info"]


def _node(code, msg="x", sub_code=None, **kw):
    node = {"code": code, "msg": msg, **kw}
    if sub_code:
        node["sub_code"], node["sub_msg"] = sub_code, "说明"
    return node


REFUND_OK = {"code": "10000", "msg": "Success", "trade_no": "2024T1", "out_trade_no": "OT1", "fund_change": "Y",
             "refund_fee": "10.00"}

# name: (method the answer is for, node, preparer, outcome, code, transient, answer kwargs)
CASES = {
    "refund_ok": (oc.REFUND, REFUND_OK, "refund", Outcome.OK, "10000", False, {}),
    "refund_fund_change_n": (oc.REFUND, {**REFUND_OK, "fund_change": "N"}, "refund", Outcome.UNKNOWN,
                             oc.REFUND_UNCONFIRMED, False, {}),
    "refund_system_error": (oc.REFUND, _node("40004", sub_code="ACQ.SYSTEM_ERROR"), "refund", Outcome.UNKNOWN,
                            "ACQ.SYSTEM_ERROR", True, {}),
    "refund_discordant": (oc.REFUND, _node("40004", sub_code="ACQ.DISCORDANT_REPEAT_REQUEST", refund_fee="0.00"),
                          "refund", Outcome.UNKNOWN, "ACQ.DISCORDANT_REPEAT_REQUEST", False, {}),
    "refund_balance": (oc.REFUND, _node("40004", sub_code="ACQ.SELLER_BALANCE_NOT_ENOUGH"), "refund",
                       Outcome.REJECTED, "ACQ.SELLER_BALANCE_NOT_ENOUGH", False, {}),
    "refund_other_business": (oc.REFUND, _node("40004", sub_code="ACQ.TRADE_HAS_FINISHED"), "refund",
                              Outcome.REJECTED, "ACQ.TRADE_HAS_FINISHED", False, {}),
    "busy_20000": (oc.REFUND, _node("20000", "Service Currently Unavailable", sub_code="isp.unknow-error"),
                   "refund", Outcome.UNKNOWN, "isp.unknow-error", True, {}),
    # A 20000 with a sub_code the table does not know (the simulator's isp.unknown-error) is still
    # "service unavailable": classified by its gateway code, not refused as a business verdict.
    "busy_20000_unknown_sub_code": (None, _node("20000", "Service Currently Unavailable",
                                                sub_code="isp.unknown-error"), "refund", Outcome.UNKNOWN,
                                    "isp.unknown-error", True, {"signed": False, "node_name": "error_response"}),
    # 20001 (an invalid or expired auth token): a refusal by the gateway, nothing happened - its own
    # rule, never 20000's "service unavailable, outcome unknown".
    "auth_token_20001": (oc.REFUND, _node("20001", "Insufficient Token Permissions", sub_code="aop.invalid-auth-token"),
                         "refund", Outcome.REJECTED, "aop.invalid-auth-token", False, {}),
    "auth_token_20001_error_response": (None, _node("20001", "Insufficient Token Permissions",
                                                    sub_code="aop.auth-token-time-out"), "trade_query",
                                        Outcome.REJECTED, "aop.auth-token-time-out", False,
                                        {"node_name": "error_response"}),
    "trade_not_exist": (oc.TRADE_QUERY, _node("40004", sub_code="ACQ.TRADE_NOT_EXIST"), "trade_query",
                        Outcome.REJECTED, "ACQ.TRADE_NOT_EXIST", False, {}),
    "refund_query_empty": (oc.REFUND_QUERY, _node("10000", "Success"), "refund_query", Outcome.REJECTED,
                           oc.REFUND_NOT_FOUND, False, {}),
    "refund_query_done": (oc.REFUND_QUERY, _node("10000", "Success", out_request_no="RQ1", refund_amount="10.00",
                                                 refund_status="REFUND_SUCCESS"), "refund_query", Outcome.OK,
                          "10000", False, {}),
    "medical_result_code_only": (oc.MEDICAL_CREATE, _node("10000", "Success", result_code="AUTH_EXPIRED",
                                                          error_message="授权已过期"), "medical", Outcome.REJECTED,
                                 "AUTH_EXPIRED", False, {}),
    "medical_nothing": (oc.MEDICAL_CREATE, _node("10000", "Success"), "medical", Outcome.UNKNOWN,
                        oc.BAD_RESPONSE, False, {}),
    "medical_echo_mismatch": (oc.MEDICAL_CREATE, _node("10000", "Success", data={"pay_url": "https://x",
                                                                                   "med_org_ord": "MO2"}),
                              "medical", Outcome.UNKNOWN, oc.BAD_RESPONSE, False, {}),
    "signature_refused": (None, _node("40002", "Invalid Arguments", sub_code="isv.invalid-signature"),
                          "refund", Outcome.REJECTED, "isv.invalid-signature", True, {"node_name": "error_response"}),
    "unsigned_error_response": (None, _node("40002", "Invalid Arguments", sub_code="isv.invalid-app-id"),
                                "trade_query", Outcome.REJECTED, "isv.invalid-app-id", False,
                                {"signed": False, "node_name": "error_response"}),
    "unsigned_success": (oc.TRADE_QUERY, {"code": "10000", "msg": "Success", "trade_no": "T",
                                          "trade_status": "TRADE_SUCCESS"}, "trade_query", Outcome.UNKNOWN,
                         oc.BAD_SIGNATURE, False, {"signed": False}),
    "signed_by_someone_else": (oc.REFUND, REFUND_OK, "refund", Outcome.UNKNOWN, oc.BAD_SIGNATURE, False,
                               {"key": "other"}),
    "signed_error_bad_signature": (oc.REFUND, _node("40004", sub_code="ACQ.TRADE_NOT_EXIST"), "refund",
                                   Outcome.UNKNOWN, oc.BAD_SIGNATURE, False, {"key": "other"}),
    "http_502": (oc.REFUND, REFUND_OK, "refund", Outcome.UNKNOWN, oc.HTTP_ERROR, True, {"status": 502}),
    "bill_not_exist": (oc.BILL_URL, _node("40004", sub_code="isp.bill_not_exist"), "bill", Outcome.REJECTED,
                       "isp.bill_not_exist", False, {}),
}


def _prepare(client, which):
    return {
        "refund": lambda: client.prepare_refund(RefundRequest(out_request_no="RQ1", refund_amount=Decimal("10.00"),
                                                              out_trade_no="OT1")),
        "trade_query": lambda: client.prepare_trade_query(out_trade_no="OT1"),
        "refund_query": lambda: client.prepare_refund_query(out_request_no="RQ1", out_trade_no="OT1"),
        "medical": lambda: client.prepare_medical_order(order_request()),
        "bill": lambda: client.prepare_bill_url("2024-01-01"),
    }[which]()


@pytest.mark.parametrize("case", sorted(CASES))
def test_classification(server, client, ali, akeys, case):
    method, node, which, outcome, code, transient, kw = CASES[case]
    if kw.get("key") == "other":
        kw = {**kw, "key": akeys["other"]}
    prepared = _prepare(client, which)
    server.answer = ali.answer(method or prepared.interface, node, **kw)
    result = client.send(prepared)
    assert (result.outcome, result.code) == (outcome, code), result.message
    assert result.transient is (outcome is Outcome.REJECTED and transient)
    assert oc.classify(result.code, result.http_status, node.get("code")).transient is transient


def test_not_found_helper(server, client, ali):
    server.answer = ali.answer(oc.REFUND_QUERY, _node("10000", "Success"))
    assert oc.is_not_found(client.refund_query(out_request_no="RQ1", out_trade_no="OT1"))
    server.answer = ali.answer(oc.TRADE_QUERY, _node("40004", sub_code="ACQ.TRADE_NOT_EXIST"))
    assert oc.is_not_found(client.trade_query(out_trade_no="OT1"))


def test_unsigned_errors_can_be_made_unknown(server, make_config, ali):
    with AlipayClient(make_config(f"{server.url}/gateway.do", unsigned_errors="unknown")) as c:
        server.answer = ali.answer(None, _node("40002", sub_code="isv.invalid-app-id"), signed=False,
                                   node_name="error_response")
        result = c.trade_query(out_trade_no="OT1")
        assert result.outcome is Outcome.UNKNOWN and result.code == oc.BAD_SIGNATURE


def test_garbage_timeout_and_refused(server, make_config):
    with AlipayClient(make_config(f"{server.url}/gateway.do", timeout_seconds=0.2)) as c:
        server.answer = Canned(200, {}, b"<html>oops</html>")
        result = c.send(_prepare(c, "refund"))
        assert (result.outcome, result.code) == (Outcome.UNKNOWN, oc.BAD_RESPONSE)
        server.answer = Canned(200, delay=0.6)
        result = c.send(_prepare(c, "refund"))
        assert (result.outcome, result.code) == (Outcome.UNKNOWN, oc.TIMEOUT)
    with AlipayClient(make_config(f"http://127.0.0.1:{closed_port()}/gateway.do")) as c:
        result = c.send(_prepare(c, "refund"))
        assert result.outcome is Outcome.NOT_SENT and result.code == oc.NOT_SENT and result.try_again


def test_bill_url_then_download(server, client, ali, tmp_path):
    def answer(seen):
        if seen.path == "/gateway.do":
            return ali.answer(oc.BILL_URL, _node("10000", "Success",
                                                 bill_download_url=f"{server.url}/dl?token=abc&e=30"))
        return Canned(200, {"Content-Type": "application/zip"}, b"PK\x03\x04zipbytes")
    server.answer = answer
    dest = tmp_path / "bill.zip"
    result = client.fetch_bill("2024-01-01", str(dest))
    assert result.ok and dest.read_bytes() == b"PK\x03\x04zipbytes"
    assert biz(server.seen[0]) == {"bill_type": "trade", "bill_date": "2024-01-01"}
    server.answer = lambda seen: Canned(404, {}, b"expired") if seen.path.startswith("/dl") else answer(seen)
    assert client.fetch_bill("2024-01-01", str(tmp_path / "b2.zip")).outcome is Outcome.REJECTED


def test_template_message(server, make_config, ali):
    templates = {"refund_done": AlipayTemplate(template_id="TPL1", page="pages/refund",
                                               fields={"keyword1": "patient_name", "keyword2": "amount"})}
    with AlipayClient(make_config(f"{server.url}/gateway.do", templates=templates)) as c:
        server.answer = ali.answer(oc.TEMPLATE_MESSAGE, _node("10000", "Success"))
        prepared = c.prepare_template_message(TemplateMessageRequest(
            event="refund_done", to_user="2088000000000001", values={"patient_name": "张三丰", "amount": "10.00元"}))
        assert "张三丰" not in prepared.masked_request
        assert c.send(prepared).ok
        body = biz(server.seen[0])
        assert body["to_user_id"] == "2088000000000001" and body["user_template_id"] == "TPL1"
        assert json.loads(body["data"]) == {"keyword1": {"value": "张三丰"}, "keyword2": {"value": "10.00元"}}
