"""APIv3 signing strings, signatures, response verification, AEAD callbacks and OAEP fields
(channels.md §1.2-§1.5, §1.7).  Expected strings and vectors are built here from the
spec, not from the code under test."""
from __future__ import annotations

import base64
import time

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from bridge.wechatpay import cipher, signing

from .conftest import APIV3_KEY, PLATFORM_SERIAL, platform_sign


def test_request_message_is_five_lines_with_the_exact_body():
    body = '{"a":"医保"}'.encode()
    msg = signing.request_message("post", "/v3/med-ins/orders?x=1", "1700000000", "NONCE", body)
    assert msg == b'POST\n/v3/med-ins/orders?x=1\n1700000000\nNONCE\n{"a":"\xe5\x8c\xbb\xe4\xbf\x9d"}\n'
    assert signing.request_message("GET", "/v3/x", "1", "n", b"") == b"GET\n/v3/x\n1\nn\n\n"


def test_authorization_header_signs_that_message(keys):
    key = keys["merchant"]
    header = signing.authorization(mchid="1900000109", serial="ABC", private_key=key, method="GET",
                                   path_and_query="/v3/refund/domestic/refunds/R1", body=b"",
                                   timestamp="1700000000", nonce="N1")
    items = signing.parse_authorization(header)
    assert items["mchid"] == "1900000109" and items["serial_no"] == "ABC"
    assert items["timestamp"] == "1700000000" and items["nonce_str"] == "N1"
    key.public_key().verify(base64.b64decode(items["signature"]),
                            b"GET\n/v3/refund/domestic/refunds/R1\n1700000000\nN1\n\n",
                            padding.PKCS1v15(), hashes.SHA256())


def test_pay_sign_is_four_lines_and_leaves_out_mix_trade_no(keys):
    sig = signing.pay_sign(keys["merchant"], appid="wx0123456789abcdef", timestamp="1700000000", nonce="N",
                           package="prepay_id=wx201410272009395522657a690389285100")
    keys["merchant"].public_key().verify(
        base64.b64decode(sig), b"wx0123456789abcdef\n1700000000\nN\nprepay_id=wx201410272009395522657a690389285100\n",
        padding.PKCS1v15(), hashes.SHA256())


def _verifier(keys, now=None):
    key = signing.PlatformKey(PLATFORM_SERIAL, keys["platform"].public_key())
    return signing.PlatformVerifier(key, clock=(lambda: now) if now else time.time)


def _headers(keys, body: bytes, *, ts=None, serial=PLATFORM_SERIAL, key=None, nonce="abc"):
    ts = str(int(time.time())) if ts is None else str(ts)
    return {"Wechatpay-Timestamp": ts, "Wechatpay-Nonce": nonce, "Wechatpay-Serial": serial,
            "Wechatpay-Signature": platform_sign(key or keys["platform"], ts, nonce, body)}


def test_a_good_response_signature_verifies_case_insensitively(keys):
    body = b'{"prepay_id":"wx1"}'
    headers = {k.lower(): v for k, v in _headers(keys, body).items()}
    _verifier(keys).verify(headers, body)


@pytest.mark.parametrize("fault", ["bad_signature", "other_key", "wrong_serial", "stale", "future", "missing",
                                   "altered_body", "probe", "wrong_type"])
def test_verification_refuses(keys, fault):
    body = b'{"x":1}'
    headers = _headers(keys, body)
    if fault == "bad_signature":
        headers["Wechatpay-Signature"] = base64.b64encode(b"\0" * 256).decode()
    elif fault == "other_key":
        headers = _headers(keys, body, key=keys["other"])
    elif fault == "wrong_serial":
        headers["Wechatpay-Serial"] = "PUB_KEY_ID_SOMEONE_ELSE"
    elif fault == "stale":
        headers = _headers(keys, body, ts=int(time.time()) - 301)
    elif fault == "future":
        headers = _headers(keys, body, ts=int(time.time()) + 400)
    elif fault == "missing":
        del headers["Wechatpay-Nonce"]
    elif fault == "altered_body":
        body = b'{"x":2}'
    elif fault == "probe":
        headers["Wechatpay-Signature"] = "WECHATPAY/SIGNTEST/" + headers["Wechatpay-Signature"]
    elif fault == "wrong_type":
        headers["Wechatpay-Signature-Type"] = "WECHATPAY2-SM2-WITH-SM3"
    with pytest.raises(signing.VerificationError):
        _verifier(keys).verify(headers, body)


def test_a_timestamp_just_inside_the_window_passes(keys):
    body = b"{}"
    _verifier(keys).verify(_headers(keys, body, ts=int(time.time()) - 290), body)


def test_certificate_serials_compare_as_numbers(keys):
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.x509.oid import NameOID
    import datetime as dt
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Tenpay")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(keys["platform"].public_key())
            .serial_number(0x0ABCDEF1234).not_valid_before(dt.datetime(2024, 1, 1))
            .not_valid_after(dt.datetime(2034, 1, 1)).sign(keys["platform"], hashes.SHA256()))
    pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    key = signing.load_platform_key(pem, "00abcdef1234")
    assert key.serial == "ABCDEF1234"
    body = b"{}"
    verifier = signing.PlatformVerifier(key)
    verifier.verify(_headers(keys, body, serial="0abcdef1234"), body)
    with pytest.raises(signing.KeyFormatError):
        signing.load_platform_key(pem, "ABCDEF1235")


# ---------------------------------------------------------------- §1.4 AEAD

def _encrypt(plain: bytes, nonce: str, aad: str, key: str = APIV3_KEY) -> str:
    return base64.b64encode(AESGCM(key.encode()).encrypt(nonce.encode(), plain, aad.encode())).decode()


@pytest.mark.parametrize("aad", ["transaction", ""])
def test_resource_decrypts_with_the_apiv3_key(aad):
    plain = '{"out_trade_no":"T1","trade_state":"SUCCESS"}'.encode()
    ct = _encrypt(plain, "fdasflkja484", aad)
    assert cipher.decrypt_resource(APIV3_KEY.encode(), nonce="fdasflkja484", ciphertext=ct,
                                   associated_data=aad) == plain


@pytest.mark.parametrize("fault", ["tag", "key", "aad", "nonce", "base64", "short"])
def test_resource_decryption_refuses_anything_altered(fault):
    ct = _encrypt(b'{"a":1}', "fdasflkja484", "refund")
    kwargs = dict(nonce="fdasflkja484", ciphertext=ct, associated_data="refund")
    key = APIV3_KEY.encode()
    if fault == "tag":
        raw = bytearray(base64.b64decode(ct))
        raw[-1] ^= 1
        kwargs["ciphertext"] = base64.b64encode(bytes(raw)).decode()
    elif fault == "key":
        key = b"X" * 32
    elif fault == "aad":
        kwargs["associated_data"] = "transaction"
    elif fault == "nonce":
        kwargs["nonce"] = "fdasflkja485"
    elif fault == "base64":
        kwargs["ciphertext"] = "not base64!"
    elif fault == "short":
        kwargs["ciphertext"] = base64.b64encode(b"short").decode()
    with pytest.raises(cipher.DecryptionError):
        cipher.decrypt_resource(key, **kwargs)


def test_apiv3_key_must_be_32_bytes():
    with pytest.raises(ValueError, match="32 bytes"):
        cipher.check_apiv3_key("short")


# ---------------------------------------------------------------- §1.5 OAEP and id_digest

def test_sensitive_fields_are_rsa_oaep_sha1_for_the_platform_key(keys):
    ct = cipher.encrypt_sensitive(keys["platform"].public_key(), "张三丰")
    plain = keys["platform"].decrypt(base64.b64decode(ct), padding.OAEP(
        mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None))
    assert plain.decode() == "张三丰"
    assert cipher.encrypt_sensitive(keys["platform"].public_key(), "张三丰") != ct   # randomised


def test_id_digest_follows_the_w1_example_and_upper_cases():
    assert cipher.id_digest("44030019000101123x") == "09eb26e839ff3a2e3980352ae45ef09e"
    assert cipher.id_digest("44030019000101123X") == "09eb26e839ff3a2e3980352ae45ef09e"


def test_fifteen_digit_ids_become_eighteen_first():
    # 15-digit 440300900101123 -> 44030019900101123 + GB 11643 check digit.
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    body = "44030019900101123"
    check = "10X98765432"[sum(int(c) * w for c, w in zip(body, weights)) % 11]
    assert cipher.id18("440300900101123") == body + check
    with pytest.raises(ValueError):
        cipher.id18("12345")
