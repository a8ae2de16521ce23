"""RSA2 request signing, response-node extraction and verification, notify verification
(channels.md §6.2-§6.4).  Expected strings are written here from the spec."""
from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from bridge.alipay import signing

from .conftest import pem_private, sign


def test_sign_content_sorts_drops_empty_and_sign_but_keeps_sign_type():
    params = {"method": "alipay.trade.query", "app_id": "2021", "sign_type": "RSA2", "sign": "x",
              "notify_url": "", "biz_content": '{"out_trade_no":"O&1=2"}', "charset": "utf-8", "version": None}
    assert signing.sign_content(params) == \
        'app_id=2021&biz_content={"out_trade_no":"O&1=2"}&charset=utf-8&method=alipay.trade.query&sign_type=RSA2'


def test_signature_is_sha256_pkcs1_of_the_utf8_content(akeys):
    sig = signing.rsa2_sign(akeys["app"], "a=医保&b=2")
    akeys["app"].public_key().verify(base64.b64decode(sig), "a=医保&b=2".encode(), padding.PKCS1v15(),
                                     hashes.SHA256())


def test_keys_load_from_pem_pkcs1_pkcs8_and_bare_base64(akeys):
    from cryptography.hazmat.primitives import serialization
    key = akeys["app"]
    for text in (pem_private(key), pem_private(key, serialization.PrivateFormat.TraditionalOpenSSL),
                 "".join(pem_private(key).splitlines()[1:-1])):
        assert signing.load_private_key(text).private_numbers() == key.private_numbers()
    with pytest.raises(signing.KeyFormatError):
        signing.load_private_key("not a key!")


def test_the_response_node_is_taken_raw_even_with_braces_in_strings(akeys):
    raw = '{"code":"10000","msg":"Success","sub_msg":"a } b { c","nested":{"x":[1,{"y":"}"}]},"t":"\\"}"}'
    text = '{"alipay_trade_query_response":%s,"sign":"%s"}' % (raw, sign(akeys["alipay"], raw))
    answer = signing.SignedResponse(text, "alipay.trade.query")
    assert answer.raw_node == raw and answer.node["nested"]["x"][1]["y"] == "}"
    answer.verify(akeys["alipay"].public_key())


def test_sign_before_the_node_and_whitespace_are_fine(akeys):
    raw = '{ "code" : "10000" }'
    text = '{ "sign" : "%s" ,\n "alipay_trade_refund_response" : %s }' % (sign(akeys["alipay"], raw), raw)
    signing.SignedResponse(text, "alipay.trade.refund").verify(akeys["alipay"].public_key())


def test_error_response_node_and_unsigned_answers(akeys):
    raw = '{"code":"40002","msg":"Invalid Arguments","sub_code":"isv.invalid-app-id"}'
    answer = signing.SignedResponse('{"error_response":%s}' % raw, "alipay.trade.query")
    assert answer.node_name == "error_response" and answer.sign is None
    with pytest.raises(signing.VerificationError, match="not signed"):
        answer.verify(akeys["alipay"].public_key())


@pytest.mark.parametrize("text", ['{"other_response":{}}', "[1]", '{"alipay_trade_query_response":"x"}',
                                  '{"alipay_trade_query_response":{}} trailing',
                                  '{"alipay_trade_query_response":{},"alipay_trade_query_response":{}}'])
def test_malformed_answers(text):
    with pytest.raises(ValueError):
        signing.SignedResponse(text, "alipay.trade.query")


def test_a_re_serialised_node_does_not_verify(akeys):
    raw = '{"code":"10000","msg":"Success"}'
    text = '{"alipay_trade_query_response":%s,"sign":"%s"}' % ('{"code": "10000", "msg": "Success"}',
                                                                 sign(akeys["alipay"], raw))
    with pytest.raises(signing.VerificationError):
        signing.SignedResponse(text, "alipay.trade.query").verify(akeys["alipay"].public_key())


def test_notify_content_drops_sign_and_sign_type_and_keeps_empty_values(akeys):
    params = {"trade_status": "TRADE_SUCCESS", "sign_type": "RSA2", "app_id": "2021", "body": "",
              "out_trade_no": "O1"}
    content = "app_id=2021&body=&out_trade_no=O1&trade_status=TRADE_SUCCESS"
    assert signing.notify_content(params) == content
    params["sign"] = sign(akeys["alipay"], content)
    signing.verify_notify(akeys["alipay"].public_key(), params)
    with pytest.raises(signing.VerificationError):
        signing.verify_notify(akeys["alipay"].public_key(), {**params, "total_amount": "9.99"})
    with pytest.raises(signing.VerificationError):
        signing.verify_notify(akeys["alipay"].public_key(), {**params, "sign_type": "RSA"})
