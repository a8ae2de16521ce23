"""Interoperability with wechatpayv3 2.0.4 (W2), an independent, widely used implementation
(test-only dependency): each side checks what the other produced."""
from __future__ import annotations

import time

import pytest

from bridge.wechatpay import cipher, signing

from .conftest import APIV3_KEY, PLATFORM_SERIAL, pem_private, pem_public

w2 = pytest.importorskip("wechatpayv3.utils")


def test_their_request_signature_matches_our_signing_string(keys):
    key = keys["merchant"]
    body = '{"mchid":"1900000109"}'
    header = w2.build_authorization("/v3/pay/transactions/out-trade-no/OT1/close", "POST", "1900000109", "SERIAL",
                                    w2.load_private_key(pem_private(key)), data=body, nonce_str="N0NCE")
    items = signing.parse_authorization(header)
    ours = signing.authorization(mchid="1900000109", serial="SERIAL", private_key=key, method="POST",
                                 path_and_query="/v3/pay/transactions/out-trade-no/OT1/close", body=body.encode(),
                                 timestamp=items["timestamp"], nonce="N0NCE")
    assert signing.parse_authorization(ours)["signature"] == items["signature"]   # PKCS#1 v1.5 is deterministic


def test_they_verify_our_platform_style_signature_and_we_verify_theirs(keys):
    ts, nonce, body = str(int(time.time())), "abc", '{"x":"医保"}'
    theirs = w2.rsa_sign(w2.load_private_key(pem_private(keys["platform"])), f"{ts}\n{nonce}\n{body}\n")
    verifier = signing.PlatformVerifier(signing.PlatformKey(PLATFORM_SERIAL, keys["platform"].public_key()))
    verifier.verify({"Wechatpay-Timestamp": ts, "Wechatpay-Nonce": nonce, "Wechatpay-Serial": PLATFORM_SERIAL,
                     "Wechatpay-Signature": theirs}, body.encode())
    ours = signing.rsa_sign(keys["platform"], f"{ts}\n{nonce}\n{body}\n".encode())
    assert w2.rsa_verify(ts, nonce, body, ours, w2.load_public_key(pem_public(keys["platform"])))


def test_resource_and_sensitive_field_crypto_agree(keys):
    ct = cipher.encrypt_resource(APIV3_KEY.encode(), '{"a":1}'.encode(), nonce="fdasflkja484", associated_data="x")
    assert w2.aes_decrypt("fdasflkja484", ct, "x", APIV3_KEY) == '{"a":1}'
    field = cipher.encrypt_sensitive(keys["platform"].public_key(), "张三丰")
    assert w2.rsa_decrypt(field, w2.load_private_key(pem_private(keys["platform"]))) == "张三丰"
    theirs = w2.rsa_encrypt("09eb26e839ff3a2e3980352ae45ef09e", w2.load_public_key(pem_public(keys["platform"])))
    assert cipher.decrypt_sensitive(keys["platform"], theirs) == "09eb26e839ff3a2e3980352ae45ef09e"
