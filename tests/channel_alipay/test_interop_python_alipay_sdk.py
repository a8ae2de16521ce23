"""Interoperability with python-alipay-sdk 3.4.0 (A1), an independent implementation
(test-only dependency): it verifies what we sign, and we verify what it signs.
(This package is tests/channel_alipay, so the SDK's import name ``alipay`` is free.)"""
from __future__ import annotations

import json

import pytest

from bridge.alipay import signing

from .conftest import b64_der_public, pem_private


def _load_sdk():
    return pytest.importorskip("alipay", reason="python-alipay-sdk is not installed (pip install -e .[test])")


@pytest.fixture(scope="module")
def sdk():
    return _load_sdk()


def _public_pem(key) -> str:
    body = b64_der_public(key)
    return "-----BEGIN PUBLIC KEY-----\n" + "\n".join(body[i:i + 64] for i in range(0, len(body), 64)) + \
        "\n-----END PUBLIC KEY-----\n"


def test_our_request_signature_equals_theirs(sdk, akeys):
    from urllib.parse import unquote_plus
    theirs = sdk.AliPay(appid="2021004100000001", app_private_key_string=pem_private(akeys["app"]),
                        alipay_public_key_string=_public_pem(akeys["alipay"]))
    params = {"app_id": "2021004100000001", "method": "alipay.trade.refund", "charset": "utf-8",
              "sign_type": "RSA2", "timestamp": "2024-01-01 10:00:00", "version": "1.0",
              "biz_content": json.dumps({"out_trade_no": "OT1", "refund_amount": "10.00", "refund_reason": "退费"},
                                        ensure_ascii=False, separators=(",", ":"))}
    signed = dict(pair.split("=", 1) for pair in theirs.sign_data(dict(params)).split("&"))
    assert signing.rsa2_sign(akeys["app"], signing.sign_content(params)) == unquote_plus(signed["sign"])


def test_they_verify_a_notify_as_we_read_rsa_check_v1(sdk, akeys):
    theirs = sdk.AliPay(appid="2021004100000001", app_private_key_string=pem_private(akeys["app"]),
                        alipay_public_key_string=_public_pem(akeys["alipay"]))
    params = {"notify_id": "N1", "app_id": "2021004100000001", "trade_status": "TRADE_SUCCESS",
              "total_amount": "30.00", "sign_type": "RSA2", "subject": "门诊缴费"}
    sign = signing.rsa2_sign(akeys["alipay"], signing.notify_content(params))
    signing.verify_notify(akeys["alipay"].public_key(), {**params, "sign": sign})
    assert theirs.verify(dict(params), sign)       # their verify drops sign_type like rsaCheckV1


def test_we_verify_what_they_sign(sdk, akeys):
    theirs = sdk.AliPay(appid="2021004100000001", app_private_key_string=pem_private(akeys["alipay"]),
                        alipay_public_key_string=_public_pem(akeys["app"]))
    data = theirs.build_body("alipay.trade.query", {"out_trade_no": "OT1"})
    signed = dict(pair.split("=", 1) for pair in theirs.sign_data(dict(data)).split("&"))
    from urllib.parse import unquote_plus
    params = {k: unquote_plus(v) for k, v in signed.items()}
    signing.rsa2_verify(akeys["alipay"].public_key(), signing.sign_content(params).encode(), params["sign"])


def test_their_node_extraction_agrees_on_a_plain_answer(sdk, akeys):
    raw = '{"code":"10000","msg":"Success","trade_no":"2024T1","trade_status":"TRADE_SUCCESS"}'
    text = '{"alipay_trade_query_response":%s,"sign":"x"}' % raw
    theirs = sdk.AliPay(appid="1", app_private_key_string=pem_private(akeys["app"]),
                        alipay_public_key_string=_public_pem(akeys["alipay"]))
    assert theirs._get_string_to_be_signed(text, "alipay_trade_query_response") == \
        signing.SignedResponse(text, "alipay.trade.query").raw_node
