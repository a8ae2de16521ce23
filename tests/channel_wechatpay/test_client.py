"""The WeChat Pay client over real HTTP against canned answers: what goes on the wire, and
one test per classification shape of channels.md §1.6 / §2.9."""
from __future__ import annotations

import base64
import gzip
import hashlib
import json
from datetime import datetime
from decimal import Decimal

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from bridge.calls import Outcome
from bridge.wechatpay import outcomes as oc
from bridge.wechatpay.client import WechatPayClient
from bridge.wechatpay.messages import (CHINA, CashAdjustment, JsapiPrepayRequest, MedInsOrderRequest,
                                       MedInsRefundNotifyRequest, MixPayStatus, MixPayType, OrderType, Person,
                                       RefundRequest, RefundStatus)

from .conftest import APPID, MCHID, MERCHANT_SERIAL, PLATFORM_SERIAL, verify_request
from .loopback import Canned, closed_port

ID_NO = "530102199001011234"
NAME = "张三丰"


def medins_request(**kw) -> MedInsOrderRequest:
    fields = dict(mix_pay_type=MixPayType.CASH_AND_INSURANCE, order_type=OrderType.DIAG_PAY, openid="o-user-1",
                  payer=Person(name=NAME, id_number=ID_NO), out_trade_no="OT20240101001", serial_no="MO20240101001",
                  pay_order_id="ORD530100202401010001", pay_auth_no="AUTH530100SECRET", geo_location="102.7,25.0",
                  med_ins_order_create_time=datetime(2024, 1, 1, 9, 0, tzinfo=CHINA),
                  total_fee=Decimal("100.00"), med_ins_gov_fee=Decimal("50.00"), med_ins_self_fee=Decimal("20.00"),
                  med_ins_other_fee=Decimal("0"), med_ins_cash_fee=Decimal("30.00"),
                  wechat_pay_cash_fee=Decimal("30.00"), prepay_id="wx20240101prepay",
                  passthrough_request_content=json.dumps({"payAuthNo": "AUTH530100SECRET", "payOrdId": "ORD1",
                                                          "setlLatlnt": "102.7,25.0"}))
    fields.update(kw)
    return MedInsOrderRequest(**fields)


def order_answer(**kw) -> dict:
    body = {"mix_trade_no": "MIX001", "mix_pay_status": "MIX_PAY_CREATED", "self_pay_status": "SELF_PAY_CREATED",
            "med_ins_pay_status": "MED_INS_PAY_CREATED", "out_trade_no": "OT20240101001", "total_fee": 10000,
            "wechat_pay_cash_fee": 3000, "serial_no": "MO20240101001"}
    body.update(kw)
    return body


@pytest.fixture
def client(server, make_config):
    c = WechatPayClient(make_config(server.url))
    yield c
    c.close()


def test_prepay_signs_the_exact_request_and_parses_prepay_id(server, client, wx, keys):
    server.answer = wx.answer(200, {"prepay_id": "wx201410272009395522657a690389285100"})
    prepared = client.prepare_jsapi_prepay(JsapiPrepayRequest(out_trade_no="OT1", description="门诊缴费",
                                                              amount=Decimal("30.00"), openid="o-user-1"))
    assert server.seen == []                                   # prepare does no I/O
    result = client.send(prepared)
    assert result.outcome is Outcome.OK and result.data.prepay_id == "wx201410272009395522657a690389285100"
    seen, = server.seen
    assert seen.method == "POST" and seen.path == "/v3/pay/transactions/jsapi"
    items = verify_request(keys, seen)
    assert items["mchid"] == MCHID and items["serial_no"] == MERCHANT_SERIAL
    body = json.loads(seen.body)
    assert body == {"appid": APPID, "mchid": MCHID, "description": "门诊缴费", "out_trade_no": "OT1",
                    "notify_url": "https://hospital.example/wx/pay", "amount": {"total": 3000, "currency": "CNY"},
                    "payer": {"openid": "o-user-1"}}
    assert seen.body == prepared.body                          # the bytes signed are the bytes sent


def test_mixed_order_encrypts_payer_and_names_the_key(server, client, wx, keys):
    server.answer = wx.answer(200, order_answer())
    prepared = client.prepare_medins_order(medins_request())
    result = client.send(prepared)
    assert result.ok and result.data.mix_trade_no == "MIX001"
    assert result.data.mix_pay_status is MixPayStatus.CREATED
    seen, = server.seen
    verify_request(keys, seen)
    assert seen.headers["Wechatpay-Serial"] == PLATFORM_SERIAL
    body = json.loads(seen.body)
    oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None)
    decrypt = lambda v: keys["platform"].decrypt(base64.b64decode(v), oaep).decode()  # noqa: E731
    assert decrypt(body["payer"]["name"]) == NAME
    assert decrypt(body["payer"]["id_digest"]) == hashlib.md5(ID_NO.encode()).hexdigest()
    assert body["total_fee"] == 10000 and body["wechat_pay_cash_fee"] == 3000 and body["med_ins_gov_fee"] == 5000
    assert body["med_ins_test_env"] is False and body["callback_url"] == "https://hospital.example/wx/medins"
    assert body["med_ins_order_create_time"] == "2024-01-01T09:00:00+08:00"
    # The journal sees no secret and no readable personal data.
    journal = prepared.masked_request
    assert "AUTH530100SECRET" not in journal and NAME not in journal and ID_NO not in journal
    assert body["payer"]["name"] not in journal


def test_mixed_order_rules_are_checked_before_any_call(client):
    with pytest.raises(ValueError, match="268529477"):
        client.prepare_medins_order(medins_request(wechat_pay_cash_fee=Decimal("29.99")))
    with pytest.raises(ValueError, match="CASH_ONLY"):
        client.prepare_medins_order(medins_request(mix_pay_type=MixPayType.CASH_ONLY))
    with pytest.raises(ValueError, match="INSURANCE_ONLY"):
        client.prepare_medins_order(medins_request(mix_pay_type=MixPayType.INSURANCE_ONLY))
    with pytest.raises(ValueError, match="more than two decimals"):
        client.prepare_medins_order(medins_request(total_fee=Decimal("100.001")))
    ok = medins_request(total_fee=Decimal("103.00"), wechat_pay_cash_fee=Decimal("31.00"),
                        cash_add_detail=[CashAdjustment(fee=Decimal("3.00"), type="FREIGHT")],
                        cash_reduce_detail=[CashAdjustment(fee=Decimal("2.00"), type="HOSPITAL_REDUCE")])
    client.prepare_medins_order(ok)


def test_cashier_params_sign_prepay_and_omit_cash_for_insurance_only(client, keys):
    params = client.cashier_params(mix_trade_no="MIX001", prepay_id="wx123")
    assert params["mixTradeNo"] == "MIX001" and params["package"] == "prepay_id=wx123"
    assert params["signType"] == "RSA"
    message = f"{APPID}\n{params['timeStamp']}\n{params['nonceStr']}\nprepay_id=wx123\n".encode()
    keys["merchant"].public_key().verify(base64.b64decode(params["paySign"]), message, padding.PKCS1v15(),
                                         hashes.SHA256())
    assert client.cashier_params(mix_trade_no="MIX001", prepay_id=None) == {"mixTradeNo": "MIX001"}


def test_queries_put_the_key_in_the_signed_path(server, client, wx, keys):
    server.answer = wx.answer(200, order_answer(mix_pay_status="MIX_PAY_SUCCESS", self_pay_status="SELF_PAY_SUCCESS",
                                                med_ins_pay_status="MED_INS_PAY_SUCCESS",
                                                paid_time="20240101091500"))
    result = client.query_medins_order(out_trade_no="OT20240101001")
    assert result.ok and result.data.paid_time == datetime(2024, 1, 1, 9, 15, tzinfo=CHINA)
    server.answer = wx.answer(200, {"out_trade_no": "OT 1/x", "trade_state": "SUCCESS", "transaction_id": "4200",
                                    "amount": {"total": 3000, "payer_total": 3000}})
    result = client.query_transaction("OT 1/x")
    assert result.ok and result.data.total == Decimal("30.00")
    seen = server.seen[-1]
    assert seen.path == f"/v3/pay/transactions/out-trade-no/OT%201%2Fx?mchid={MCHID}" and seen.method == "GET"
    verify_request(keys, seen)


def test_refund_ok_and_echo_mismatch_is_unknown(server, client, wx):
    request = RefundRequest(out_refund_no="RF1", refund=Decimal("10.00"), total=Decimal("30.00"),
                            out_trade_no="OT1", reason="退费")
    refund = {"refund_id": "50000", "out_refund_no": "RF1", "out_trade_no": "OT1", "status": "PROCESSING",
              "amount": {"refund": 1000, "total": 3000, "payer_refund": 1000}}
    server.answer = wx.answer(200, refund)
    result = client.refund(request)
    assert result.ok and result.data.status is RefundStatus.PROCESSING and result.data.refund == Decimal("10.00")
    assert json.loads(server.seen[-1].body)["amount"] == {"refund": 1000, "total": 3000, "currency": "CNY"}
    server.answer = wx.answer(200, {**refund, "amount": {"refund": 2000, "total": 3000}})
    result = client.refund(request)
    assert result.outcome is Outcome.UNKNOWN and result.code == oc.BAD_RESPONSE
    server.answer = wx.answer(200, {**refund, "out_refund_no": "RF2"})
    assert client.refund(request).outcome is Outcome.UNKNOWN


def test_no_body_answers_are_ok_when_signed(server, client, wx):
    server.answer = wx.answer(204)
    result = client.medins_refund_notify(MedInsRefundNotifyRequest(
        mix_trade_no="MIX001", out_refund_no="RF1", med_refund_total_fee=Decimal("70.00"),
        med_refund_gov_fee=Decimal("50.00"), med_refund_self_fee=Decimal("20.00"),
        med_refund_other_fee=Decimal("0"), refund_time=datetime(2024, 1, 2, 10, 0, tzinfo=CHINA)))
    assert result.outcome is Outcome.OK
    seen = server.seen[-1]
    assert seen.path == "/v3/med-ins/refunds/notify?mix_trade_no=MIX001"
    assert json.loads(seen.body)["refund_time"] == "2024-01-02T10:00:00+08:00"
    assert client.send(client.prepare_close_transaction("OT1")).ok
    server.answer = wx.answer(204, signed=False)
    assert client.send(client.prepare_close_transaction("OT1")).outcome is Outcome.UNKNOWN


def _err(code, message="x"):
    return {"code": code, "message": message}


# (answer builder, interface preparer, expected outcome, expected code, transient)
CASES = {
    "param_error_signed": (lambda wx: wx.answer(400, _err("PARAM_ERROR")), "prepay", Outcome.REJECTED,
                           "PARAM_ERROR", False),
    "sign_error_401": (lambda wx: wx.answer(401, _err("SIGN_ERROR")), "prepay", Outcome.REJECTED, "SIGN_ERROR",
                       True),
    "unsigned_4xx_accepted": (lambda wx: wx.answer(400, _err("PARAM_ERROR"), signed=False), "prepay",
                              Outcome.REJECTED, "PARAM_ERROR", False),
    "4xx_bad_signature": (lambda wx: wx.answer(400, _err("PARAM_ERROR"), signature="AAAA"), "prepay",
                          Outcome.UNKNOWN, oc.BAD_SIGNATURE, False),
    "not_found_404": (lambda wx: wx.answer(404, _err("ORDER_NOT_EXIST")), "query_tx", Outcome.REJECTED,
                      "ORDER_NOT_EXIST", False),
    "rate_limited_429": (lambda wx: wx.answer(429, _err("FREQUENCY_LIMITED")), "query_refund", Outcome.REJECTED,
                         "FREQUENCY_LIMITED", True),
    "system_error_500": (lambda wx: wx.answer(500, _err("SYSTEM_ERROR")), "refund", Outcome.UNKNOWN,
                         "SYSTEM_ERROR", True),
    "html_502": (lambda wx: Canned(502, {"Content-Type": "text/html"}, b"<html>bad gateway</html>"), "refund",
                 Outcome.UNKNOWN, oc.HTTP_ERROR, True),
    "accepted_202": (lambda wx: wx.answer(202, {}), "refund", Outcome.UNKNOWN, oc.ACCEPTED, True),
    "unsigned_200": (lambda wx: wx.answer(200, {"prepay_id": "x"}, signed=False), "prepay", Outcome.UNKNOWN,
                     oc.BAD_SIGNATURE, False),
    "wrong_serial_200": (lambda wx: wx.answer(200, {"prepay_id": "x"}, serial="PUB_KEY_ID_OTHER"), "prepay",
                         Outcome.UNKNOWN, oc.BAD_SIGNATURE, False),
    "stale_200": (lambda wx: wx.answer(200, {"prepay_id": "x"}, timestamp=1), "prepay", Outcome.UNKNOWN,
                  oc.BAD_SIGNATURE, False),
    "garbage_200": (lambda wx: wx.answer(200, b"not json"), "prepay", Outcome.UNKNOWN, oc.BAD_RESPONSE, False),
    "missing_field_200": (lambda wx: wx.answer(200, {"other": 1}), "prepay", Outcome.UNKNOWN, oc.BAD_RESPONSE,
                          False),
    "unknown_status_200": (lambda wx: wx.answer(200, order_answer(mix_pay_status="MIX_PAY_WHATEVER")), "medins",
                           Outcome.UNKNOWN, oc.BAD_RESPONSE, False),
    "medins_exists": (lambda wx: wx.answer(400, _err("ALREADY_EXISTS"), request_id="0A-B-268512536"), "medins",
                      Outcome.UNKNOWN, "268512536", False),
    "medins_pay_auth_no": (lambda wx: wx.answer(400, _err("PARAM_ERROR"), request_id="0AB-268547120"), "medins",
                           Outcome.REJECTED, "268547120", False),
    "medins_amount": (lambda wx: wx.answer(400, _err("RULE_LIMIT"), request_id="X-268529477"), "medins",
                      Outcome.REJECTED, "268529477", False),
    "medins_query_not_found": (lambda wx: wx.answer(404, _err("NOT_FOUND"), request_id="X-268529515"),
                               "medins_query", Outcome.REJECTED, "268529515", False),
    # A rate limit or a refused signature on /v3/med-ins/* says nothing about the request, whatever
    # reason number its Request-ID carries (§1.6): by its code, never a verdict by the number (a
    # mixed order "refused", or worse "not found" = never booked).
    "medins_rate_limited_with_number": (lambda wx: wx.answer(403, _err("FREQUENCY_LIMITED", "请求过于频繁"),
                                                             request_id="08F78BB5AF0610-268500001"), "medins",
                                        Outcome.REJECTED, "FREQUENCY_LIMITED", True),
    "medins_sign_error_with_number": (lambda wx: wx.answer(401, _err("SIGN_ERROR"), request_id="X-268529477"),
                                      "medins", Outcome.REJECTED, "SIGN_ERROR", True),
    "medins_429_with_not_found_number": (lambda wx: wx.answer(429, {}, request_id="X-268529515"), "medins_query",
                                         Outcome.REJECTED, "HTTP_429", True),
    "refund_param_error": (lambda wx: wx.answer(400, _err("PARAM_ERROR")), "refund", Outcome.UNKNOWN,
                           "PARAM_ERROR", False),
    "refund_not_enough": (lambda wx: wx.answer(403, _err("NOT_ENOUGH")), "refund", Outcome.REJECTED, "NOT_ENOUGH",
                          False),
    "bill_not_ready": (lambda wx: wx.answer(400, _err("STATEMENT_CREATING")), "bill", Outcome.REJECTED,
                       "STATEMENT_CREATING", True),
    "bill_empty_day": (lambda wx: wx.answer(400, _err("NO_STATEMENT_EXIST")), "bill", Outcome.REJECTED,
                       "NO_STATEMENT_EXIST", False),
}


def _prepare(client, which):
    return {
        "prepay": lambda: client.prepare_jsapi_prepay(JsapiPrepayRequest(
            out_trade_no="OT1", description="d", amount=Decimal("1.00"), openid="o")),
        "query_tx": lambda: client.prepare_query_transaction("OT1"),
        "query_refund": lambda: client.prepare_query_refund("RF1"),
        "refund": lambda: client.prepare_refund(RefundRequest(out_refund_no="RF1", refund=Decimal("1.00"),
                                                              total=Decimal("1.00"), out_trade_no="OT1")),
        "medins": lambda: client.prepare_medins_order(medins_request()),
        "medins_query": lambda: client.prepare_query_medins_order(mix_trade_no="MIX001"),
        "bill": lambda: client.prepare_trade_bill("2024-01-01"),
    }[which]()


@pytest.mark.parametrize("case", sorted(CASES))
def test_classification(server, client, wx, case):
    build, which, outcome, code, transient = CASES[case]
    server.answer = build(wx)
    result = client.send(_prepare(client, which))
    assert (result.outcome, result.code) == (outcome, code), result.message
    assert result.transient is (outcome is Outcome.REJECTED and transient)
    assert oc.classify(result.interface, result.code, result.http_status).transient is transient
    if outcome is Outcome.REJECTED and result.http_status and result.http_status < 500:
        assert result.data.http_status == result.http_status


def test_a_transient_medins_refusal_keeps_its_reason_number_in_the_message(server, client, wx):
    server.answer = wx.answer(403, _err("FREQUENCY_LIMITED", "请求过于频繁"), request_id="08F78BB5AF0610-268500001")
    result = client.send(_prepare(client, "medins_query"))
    assert result.transient and not oc.is_not_found(result)
    assert "268500001" in result.message and result.data.reason_number == "268500001"


def test_not_found_helper(server, client, wx):
    server.answer = wx.answer(404, _err("RESOURCE_NOT_EXISTS"))
    assert oc.is_not_found(client.query_refund("RF1"))
    server.answer = wx.answer(400, _err("PARAM_ERROR"))
    assert not oc.is_not_found(client.query_refund("RF1"))


def test_unsigned_errors_can_be_made_unknown(server, make_config, wx):
    with WechatPayClient(make_config(server.url, unsigned_errors="unknown")) as c:
        server.answer = wx.answer(400, _err("PARAM_ERROR"), signed=False)
        result = c.send(_prepare(c, "prepay"))
        assert result.outcome is Outcome.UNKNOWN and result.code == oc.BAD_SIGNATURE


def test_timeout_after_sending_is_unknown(server, make_config, wx):
    with WechatPayClient(make_config(server.url, timeout_seconds=0.2)) as c:
        server.answer = Canned(200, delay=0.6)
        result = c.send(_prepare(c, "refund"))
        assert result.outcome is Outcome.UNKNOWN and result.code == oc.TIMEOUT and not result.try_again
        assert len(server.seen) == 1


def test_reset_after_sending_is_unknown(server, client):
    server.answer = Canned(reset=True)
    result = client.send(_prepare(client, "refund"))
    assert result.outcome is Outcome.UNKNOWN and result.code in (oc.TRANSPORT_ERROR, oc.TIMEOUT)


def test_connection_refused_is_not_sent(make_config):
    with WechatPayClient(make_config(f"http://127.0.0.1:{closed_port()}")) as c:
        result = c.send(_prepare(c, "refund"))
    assert result.outcome is Outcome.NOT_SENT and result.code == oc.NOT_SENT and result.try_again


def test_decode_without_headers_never_trusts_a_2xx(client, wx):
    prepared = _prepare(client, "prepay")
    assert prepared.decode(200, b'{"prepay_id":"x"}').outcome is Outcome.UNKNOWN


# ---------------------------------------------------------------- §3 bill download

BILL = ("交易时间,公众账号ID,商户号,商户订单号,交易状态,应结订单金额\n"
        "`2024-01-01 10:00:00,`wx0123456789abcdef,`1900000109,`OT1,`SUCCESS,`30.00\n"
        "总交易单数,应结订单总金额\n`1,`30.00\n").encode()


@pytest.mark.parametrize("gz", [True, False])
def test_bill_download_checks_the_sha1_of_the_plain_file(server, client, wx, keys, tmp_path, gz):
    sha1 = hashlib.sha1(BILL).hexdigest()
    file_body = gzip.compress(BILL) if gz else BILL

    def answer(seen):
        if seen.path.startswith("/v3/bill/tradebill"):
            return wx.answer(200, {"hash_type": "SHA1", "hash_value": sha1,
                                   "download_url": f"{server.url}/v3/billdownload/file?token=T%2B1"})
        return Canned(200, {"Content-Type": "application/octet-stream"}, file_body)
    server.answer = answer
    dest = str(tmp_path / "bill")
    result = client.download_bill("2024-01-01", dest)
    assert result.ok, result.message
    assert result.data.gzipped is gz and open(dest, "rb").read() == file_body
    apply, download = server.seen
    assert apply.path == "/v3/bill/tradebill?bill_date=2024-01-01&bill_type=ALL&tar_type=GZIP"
    assert download.path == "/v3/billdownload/file?token=T%2B1"
    verify_request(keys, download)                   # the download is signed like any GET


def test_bill_download_hash_mismatch_is_unknown_and_leaves_no_file(server, client, wx, tmp_path):
    def answer(seen):
        if seen.path.startswith("/v3/bill/tradebill"):
            return wx.answer(200, {"hash_type": "SHA1", "hash_value": "0" * 40,
                                   "download_url": f"{server.url}/v3/billdownload/file?token=T"})
        return Canned(200, {}, BILL)
    server.answer = answer
    dest = tmp_path / "bill"
    result = client.download_bill("2024-01-01", str(dest))
    assert result.outcome is Outcome.UNKNOWN and result.code == oc.HASH_MISMATCH
    assert not dest.exists() and not (tmp_path / "bill.part").exists()


def test_the_official_example_amounts_pass_and_go_out_in_fen(server, client, wx):
    # W1 CreateMedInsOrder.java: 202000 = 100000+45000+5000+42000+10000 = 150000+50000+2000.
    request = medins_request(total_fee=Decimal("2020.00"), med_ins_gov_fee=Decimal("1000.00"),
                             med_ins_self_fee=Decimal("450.00"), med_ins_other_fee=Decimal("50.00"),
                             med_ins_cash_fee=Decimal("500.00"), wechat_pay_cash_fee=Decimal("420.00"),
                             cash_add_detail=[CashAdjustment(fee=Decimal("20.00"), type="FREIGHT")],
                             cash_reduce_detail=[CashAdjustment(fee=Decimal("100.00"), type="DEFAULT_REDUCE_TYPE")])
    server.answer = wx.answer(200, order_answer(total_fee=202000, wechat_pay_cash_fee=42000))
    assert client.medins_order(request).ok
    body = json.loads(server.seen[-1].body)
    assert (body["total_fee"], body["med_ins_cash_fee"], body["wechat_pay_cash_fee"]) == (202000, 50000, 42000)
    assert body["cash_add_detail"] == [{"cash_add_fee": 2000, "cash_add_type": "FREIGHT"}]
    assert body["cash_reduce_detail"] == [{"cash_reduce_fee": 10000, "cash_reduce_type": "DEFAULT_REDUCE_TYPE"}]


def test_cash_only_sends_no_insurance_field(server, client, wx):
    request = medins_request(mix_pay_type=MixPayType.CASH_ONLY, pay_order_id=None, pay_auth_no=None,
                             geo_location=None, med_ins_order_create_time=None, passthrough_request_content=None,
                             med_ins_gov_fee=Decimal("0"), med_ins_self_fee=Decimal("0"),
                             med_ins_cash_fee=Decimal("0"), total_fee=Decimal("30.00"),
                             wechat_pay_cash_fee=Decimal("30.00"),
                             cash_add_detail=[CashAdjustment(fee=Decimal("30.00"), type="DEFAULT_ADD_TYPE")])
    server.answer = wx.answer(200, order_answer(total_fee=3000))
    assert client.medins_order(request).ok
    body = json.loads(server.seen[-1].body)
    assert not [k for k in body if k.startswith("med_ins_") and k != "med_ins_test_env"]
    assert not {"pay_order_id", "pay_auth_no", "geo_location"} & set(body)


@pytest.mark.parametrize("mode,expected", [("omit", None), ("zero", 0)])
def test_insurance_only_cash_fee_is_omitted_or_zero_by_config(server, make_config, wx, mode, expected):
    request = medins_request(mix_pay_type=MixPayType.INSURANCE_ONLY, prepay_id=None, total_fee=Decimal("70.00"),
                             med_ins_cash_fee=Decimal("0"), wechat_pay_cash_fee=Decimal("0"))
    with WechatPayClient(make_config(server.url, insurance_only_cash_fee=mode)) as c:
        server.answer = wx.answer(200, order_answer(total_fee=7000, wechat_pay_cash_fee=0))
        assert c.medins_order(request).ok
        body = json.loads(server.seen[-1].body)
        assert body.get("wechat_pay_cash_fee") == expected and "prepay_id" not in body
