"""Envelope rules of mobilepay.md §2-§4, checked against strings worked out by hand."""
from __future__ import annotations

import base64
import json
from decimal import Decimal

import pytest
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from bridge.crypto import sm2
from bridge.mobilepay.config import MobilePayConfig
from bridge.mobilepay.envelope import (
    DecryptionFailed, Envelope, MalformedEnvelope, SignatureInvalid, canonical_json,
    UnsignableData, decrypt_data, derive_sm4_key, encrypt_data, loads, remove_empty, signing_string,
)

APP_ID = "A1B2C3D4E5F60718293A4B5C6D7E8F90"
APP_SECRET = "S3cr3tS3cr3tS3cr3tS3cr3tS3cr3t01"

NESTED = {
    "payOrdId": "ORD1",
    "medfeeSumamt": Decimal("12.50"),
    "medType": "11",
    "empty": "",
    "none": None,
    "list0": [],
    "zero": 0,
    "zeroStr": "0",
    "acctUsedFlag": True,
    "userName": "张三",
    "feedetailList": [
        {"feedetlSn": "2", "detItemFeeSumamt": Decimal("10.00"), "cnt": 2, "memo": ""},
        {"feedetlSn": "1", "detItemFeeSumamt": Decimal("2.5"), "pric": Decimal("2.5")},
    ],
    "extData": {"b": {"y": 1, "x": None}, "a": []},
}
# Worked out by hand from §3.2: ordinal order puts "medType" before "medfeeSumamt"
# ('T' 0x54 < 'f' 0x66); "", null and [] vanish at every depth; 0 and "0" stay;
# every leaf is a string; "12.50" keeps its scale; the array keeps its order; 张三 is raw.
NESTED_CANONICAL = (
    '{"acctUsedFlag":"true","extData":{"b":{"y":"1"}},'
    '"feedetailList":[{"cnt":"2","detItemFeeSumamt":"10.00","feedetlSn":"2"},'
    '{"detItemFeeSumamt":"2.5","feedetlSn":"1","pric":"2.5"}],'
    '"medType":"11","medfeeSumamt":"12.50","payOrdId":"ORD1","userName":"张三",'
    '"zero":"0","zeroStr":"0"}'
)


def test_canonical_json_of_nested_data():
    assert canonical_json(NESTED) == NESTED_CANONICAL


def test_signing_string_of_a_request():
    fields = {"version": "2.0.1", "timestamp": 1700000000000, "signType": "SM2", "encType": "SM4",
              "data": NESTED, "appId": APP_ID, "signData": "x", "encData": "y", "extra": "z"}
    assert signing_string(fields, APP_SECRET) == (
        f"appId={APP_ID}&data={NESTED_CANONICAL}&encType=SM4&signType=SM2"
        f"&timestamp=1700000000000&version=2.0.1&key={APP_SECRET}")


def test_top_level_is_case_insensitive_but_nested_is_ordinal():
    fields = {"Zeta": "1", "alpha": {"Zeta": 1, "alpha": 2}, "empty": ""}
    assert signing_string(fields, "K") == 'alpha={"Zeta":"1","alpha":"2"}&Zeta=1&key=K'


def test_decimal_text_is_kept_through_json_parsing():
    parsed = loads('{"a": 12.50, "b": 12.5, "c": 0, "d": [1.10, "", null, {"e": false}]}')
    assert canonical_json(parsed) == '{"a":"12.50","b":"12.5","c":"0","d":["1.10",{"e":"false"}]}'


def test_empty_objects_stay_and_floats_are_refused():
    # an empty array as an array element stays (§3.2 removes empty arrays only as key values)
    assert remove_empty({"a": {"b": None}, "c": [[], ""], "d": [""]}) == {"a": {}, "c": [[]]}
    with pytest.raises(TypeError):
        canonical_json({"a": 1.5})


def _reference_sm4_ecb(key: bytes, data: bytes) -> bytes:
    padder = padding.PKCS7(128).padder()
    enc = Cipher(algorithms.SM4(key), modes.ECB()).encryptor()
    return enc.update(padder.update(data) + padder.finalize()) + enc.finalize()


def test_sm4_key_derivation_follows_section_4():
    tmp = _reference_sm4_ecb(APP_ID[:16].encode(), APP_SECRET.encode())
    assert len(tmp) == 48                      # a 32-character secret pads to 3 blocks
    expected = tmp[:8].hex().upper().encode()  # first 8 bytes as 16 upper-case hex chars
    key = derive_sm4_key(APP_ID, APP_SECRET)
    assert key == expected and len(key) == 16
    assert derive_sm4_key(APP_ID[:16] + "different tail..", APP_SECRET) == key
    assert derive_sm4_key(APP_ID, "X" + APP_SECRET[1:]) != key
    # ECB and an 8-byte cut: only the first block of the secret reaches the key.
    assert derive_sm4_key(APP_ID, APP_SECRET[:-1] + "2") == key


@pytest.mark.parametrize("hex_case", ["upper", "lower"])
def test_encrypt_decrypt_round_trip(hex_case):
    key = derive_sm4_key(APP_ID, APP_SECRET)
    text = '{"medfeeSumamt":12.50,"userName":"张三"}'
    enc = encrypt_data(key, text, hex_case)
    assert enc == (enc.upper() if hex_case == "upper" else enc.lower())
    assert bytes.fromhex(enc) == _reference_sm4_ecb(key, text.encode())
    assert decrypt_data(key, enc) == text
    assert decrypt_data(key, enc.swapcase()) == text     # decoders accept either case


def test_decrypt_rejects_garbage():
    key = derive_sm4_key(APP_ID, APP_SECRET)
    with pytest.raises(DecryptionFailed):
        decrypt_data(key, "not hex")
    with pytest.raises(DecryptionFailed):
        decrypt_data(key, "00" * 16)     # wrong padding


# ---------------------------------------------------------------- sealing and opening

@pytest.fixture(scope="module")
def keys():
    org, platform = sm2.generate_private_key(), sm2.generate_private_key()
    return org, platform


def _config(private, public, **kw):
    return MobilePayConfig(base_url="http://127.0.0.1:1", app_id=APP_ID, app_secret=APP_SECRET,
                           org_private_key=private.to_base64(), platform_public_key=public.to_base64(),
                           org_codg="H00000000001", **kw)


def hospital(keys, **kw):
    org, platform = keys
    return Envelope(_config(org, platform.public_key(), **kw))


def platform_side(keys, **kw):
    org, platform = keys
    return Envelope(_config(platform, org.public_key(), **kw))


def test_seal_builds_the_wire_request(keys):
    org, _ = keys
    env = hospital(keys).seal(NESTED)
    assert set(env) == {"appId", "encType", "signType", "timestamp", "version", "encData", "signData"}
    assert env["encType"] == "SM4" and env["signType"] == "SM2" and env["version"] == "2.0.1"
    assert env["timestamp"].isdigit() and len(env["timestamp"]) == 13      # ms epoch, as a string
    assert env["encData"] == env["encData"].upper()
    key = derive_sm4_key(APP_ID, APP_SECRET)
    plain = loads(decrypt_data(key, env["encData"]))
    assert plain["medfeeSumamt"] == Decimal("12.50") and plain["empty"] == ""   # original data is encrypted
    text = (f"appId={APP_ID}&data={NESTED_CANONICAL}&encType=SM4&signType=SM2"
            f"&timestamp={env['timestamp']}&version=2.0.1&key={APP_SECRET}")
    sig = base64.b64decode(env["signData"])
    assert len(sig) == 64
    assert org.public_key().verify(text.encode(), sig, uid=sm2.DEFAULT_UID)


def test_seal_options(keys):
    org, _ = keys
    env = hospital(keys, timestamp_style="yyyyMMddHHmmss", hex_case="lower", sm2_uid_mode="appSecret").seal({"a": "1"})
    assert len(env["timestamp"]) == 14 and env["timestamp"].startswith("20")
    assert env["encData"] == env["encData"].lower()
    text = f'appId={APP_ID}&data={{"a":"1"}}&encType=SM4&signType=SM2&timestamp={env["timestamp"]}&version=2.0.1&key={APP_SECRET}'
    sig = base64.b64decode(env["signData"])
    assert org.public_key().verify(text.encode(), sig, uid=APP_SECRET.encode())
    assert not org.public_key().verify(text.encode(), sig, uid=sm2.DEFAULT_UID)


def _response(keys, data, **kw):
    return platform_side(keys, **kw).seal(data, extra_fields={"code": 0, "message": "成功"})


def test_open_a_valid_response(keys):
    opened = hospital(keys).open(json.loads(json.dumps(_response(keys, {"payOrdId": "ORD1", "x": ""}))))
    assert opened.code == "0" and opened.message == "成功"
    assert opened.data == {"payOrdId": "ORD1", "x": ""}


def test_open_accepts_the_app_secret_user_id(keys):
    opened = hospital(keys).open(_response(keys, {"payOrdId": "ORD1"}, sm2_uid_mode="appSecret"))
    assert opened.data == {"payOrdId": "ORD1"}


@pytest.mark.parametrize("field,value", [
    ("code", "1"), ("message", "失败"), ("timestamp", "1700000000001"), ("appId", "B" * 32),
    ("version", "2.0.2"), ("encType", "sm4"), ("signType", "sm2"), ("newField", "x"),
])
def test_any_tampered_top_level_field_fails(keys, field, value):
    env = _response(keys, {"payOrdId": "ORD1"})
    env[field] = value
    with pytest.raises(SignatureInvalid):
        hospital(keys).open(env)


@pytest.mark.parametrize("changed", [
    '{"payOrdId":"ORD2","feeSumamt":"12.50"}',
    '{"payOrdId":"ORD1","feeSumamt":"12.5"}',        # same number, different text: still tampered
    '{"payOrdId":"ORD1","feeSumamt":"12.50","ordStas":"6"}',
])
def test_tampered_business_data_fails(keys, changed):
    env = _response(keys, loads('{"payOrdId":"ORD1","feeSumamt":"12.50"}'))
    env["encData"] = encrypt_data(derive_sm4_key(APP_ID, APP_SECRET), changed)
    with pytest.raises(SignatureInvalid):
        hospital(keys).open(env)


def test_bad_or_missing_signatures_fail(keys):
    env = _response(keys, {"payOrdId": "ORD1"})
    sig = bytearray(base64.b64decode(env["signData"]))
    sig[10] ^= 1
    for bad in (base64.b64encode(bytes(sig)).decode(), "!!notbase64!!", base64.b64encode(b"short").decode(), ""):
        with pytest.raises(SignatureInvalid):
            hospital(keys).open({**env, "signData": bad})
    org, platform = keys
    stranger = Envelope(_config(sm2.generate_private_key(), org.public_key()))
    with pytest.raises(SignatureInvalid):
        hospital(keys).open(stranger.seal({"payOrdId": "ORD1"}, extra_fields={"code": "0"}))


def test_malformed_envelopes(keys):
    env = _response(keys, {"payOrdId": "ORD1"})
    with pytest.raises(MalformedEnvelope):
        hospital(keys).open(["not", "an", "object"])
    with pytest.raises(DecryptionFailed):
        hospital(keys).open({**env, "encData": "ZZ"})
    with pytest.raises(MalformedEnvelope):
        hospital(keys).open({**env, "data": {"payOrdId": "ORD1"}})


def test_compact_json_writes_decimals_exactly():
    from bridge.mobilepay.envelope import compact_json
    text = compact_json({"a": Decimal("12.50"), "b": [Decimal("0.10"), "张", True, None, 3]})
    assert text == '{"a":12.50,"b":[0.10,"张",true,null,3]}'
    assert loads(text)["a"] == Decimal("12.50")
    for bad in ({"a": 0.1}, {1: "x"}, {"a": [object()]}, {"a": (1.5,)}):
        with pytest.raises(TypeError):
            compact_json(bad)
    with pytest.raises(ValueError):
        compact_json({"a": Decimal("NaN")})


@pytest.mark.parametrize("value", [
    {"a": Decimal("1E+3"), "b": Decimal("-0.00"), "c": "\ue0000\ue000", "\ue000": Decimal("2.50")},
    {"text": "\ue0001\ue000", "n": [Decimal("0.1"), {"m": Decimal("7")}]},
    {"plain": ["x", 1, True, None, {"y": "张三"}], "t": ("a", "b")},
    {"d": Decimal("3.00"), "s": '"quoted" \\ back\nslash'},
])
def test_compact_json_agrees_with_the_exact_writer(value):
    from bridge.mobilepay import envelope
    assert envelope.compact_json(value) == envelope._write_exact(value)


# ---------------------------------------------------------------- the SDK's own rules (issue 10 #12)
# Worked out by hand from the decompiled SDK (digest S3): SignUtil.getSignText keeps a
# top-level value only if StringUtil.isEmpty(String) is false for its text (trimmed as
# String.trim() does: every char <= U+0020), and BigDecimal has no negative zero.

HEAD = {"appId": APP_ID, "encType": "SM4", "signType": "SM2", "timestamp": "1700000000000", "version": "2.0.1"}
HEAD_TEXT = f"appId={APP_ID}&encType=SM4&signType=SM2&timestamp=1700000000000&version=2.0.1"


def _expected(*items: str) -> str:
    """The HEAD items plus items, sorted as the SDK sorts them (all ASCII here)."""
    return "".join(f"{item}&" for item in sorted(HEAD_TEXT.split("&") + list(items), key=lambda i: (i + "&").lower())
                   ) + f"key={APP_SECRET}"


@pytest.mark.parametrize("extra,items", [
    ({"code": "0", "message": " "}, ["code=0"]),                 # blank message: not signed
    ({"code": "0", "message": "\t \r\n"}, ["code=0"]),
    ({"code": "0", "message": "null"}, ["code=0"]),
    ({"code": "0", "message": " null "}, ["code=0"]),
    ({"code": "0", "message": "NULL"}, ["code=0", "message=NULL"]),        # only lower-case null
    ({"code": "0", "message": "\u3000"}, ["code=0", "message=\u3000"]),    # trim() keeps U+3000
    ({"code": "0", "message": " ok "}, ["code=0", "message= ok "]),        # kept untrimmed
    ({"code": 0, "success": True}, ["code=0", "success=true"]),
    ({"amount": Decimal("-0.00")}, ["amount=0.00"]),
    ({"amount": Decimal("-0")}, ["amount=0"]),
    ({"amount": "-0.00"}, ["amount=-0.00"]),                               # a string is a string
    ({"data": {}}, ["data={}"]),
    ({"data": {"a": " ", "b": "null", "c": None, "d": ""}}, ['data={"a":" ","b":"null"}']),
    ({"data": {"fee": Decimal("-0.00"), "lines": [{"amt": Decimal("-0.0")}]}},
     ['data={"fee":"0.00","lines":[{"amt":"0.0"}]}']),
    ({"data": {"list": []}}, ["data={}"]),
    ({"list": []}, []),
])
@pytest.mark.parametrize("side", ["client", "simulator"])
def test_signing_string_follows_the_sdk(extra, items, side):
    from bridge.simulator import mpc_envelope
    build = signing_string if side == "client" else mpc_envelope.signing_string
    assert build({**HEAD, **extra}, APP_SECRET) == _expected(*items)


def _sdk_signed_response(keys, data: dict, top: dict) -> dict:
    """A response signed the way the SDK signs it: the string built by hand, not by our code."""
    _, platform = keys
    key = derive_sm4_key(APP_ID, APP_SECRET)
    items = [f"{k}={v}" for k, v in top.items() if str(v).strip() not in ("", "null")]
    text = _expected(*items, "data=" + json.dumps(data, ensure_ascii=False, separators=(",", ":"), sort_keys=True))
    return {**HEAD, **top, "encData": encrypt_data(key, json.dumps(data, ensure_ascii=False)),
            "signData": base64.b64encode(platform.sign(text.encode())).decode()}


@pytest.mark.parametrize("message", [" ", "null", "  ", "成功"])
def test_a_platform_answer_with_a_blank_message_verifies(keys, message):
    env = _sdk_signed_response(keys, {"payOrdId": "ORD1", "ordStas": "1"}, {"code": "0", "message": message})
    opened = hospital(keys).open(json.loads(json.dumps(env)))
    assert opened.code == "0" and opened.message == message and opened.data["payOrdId"] == "ORD1"


def test_a_negative_zero_amount_verifies(keys):
    _, platform = keys
    key = derive_sm4_key(APP_ID, APP_SECRET)
    text = _expected("code=0", 'data={"fee":"0.00","payOrdId":"ORD1"}')
    env = {**HEAD, "code": "0", "encData": encrypt_data(key, '{"payOrdId":"ORD1","fee":-0.00}'),
           "signData": base64.b64encode(platform.sign(text.encode())).decode()}
    assert hospital(keys).open(env).data["fee"] == Decimal("-0.00")


@pytest.mark.parametrize("data,where", [
    ({"codes": ["a", "b"]}, r"data\.codes\[0\] is str 'a'"),
    ({"codes": [None]}, r"data\.codes\[0\] is null"),
    ({"codes": [""]}, r"data\.codes\[0\] is str ''"),
    ({"codes": [[{"a": "1"}]]}, r"data\.codes\[0\] is list"),
    ({"codes": [1]}, r"data\.codes\[0\] is int 1"),
    ({"codes": [Decimal("1.0")]}, r"data\.codes\[0\] is Decimal"),
    ({"feedetailList": [{"x": "1"}, {"memo": ["a"]}]}, r"data\.feedetailList\[1\]\.memo\[0\] is str"),
    ({"extData": {"setlinfo": [{"ids": [True]}]}}, r"data\.extData\.setlinfo\[0\]\.ids\[0\] is bool"),
])
def test_data_the_sdk_cannot_sign_is_refused(keys, data, where):
    with pytest.raises(UnsignableData, match=where + ".*arrays of objects only"):
        hospital(keys).seal(data)


def test_arrays_of_objects_and_empty_arrays_still_seal(keys):
    env = hospital(keys).seal({"feedetailList": [{"a": "1"}, {}], "empty": []})
    assert loads(decrypt_data(derive_sm4_key(APP_ID, APP_SECRET), env["encData"])) == \
        {"feedetailList": [{"a": "1"}, {}], "empty": []}


@pytest.mark.parametrize("fields", [
    {**HEAD, "code": "0", "message": " "},
    {**HEAD, "code": 0, "message": "null", "data": {"fee": Decimal("-0.00"), "x": [{"y": Decimal("-0")}]}},
    {**HEAD, "data": {}},
    {**HEAD, "data": {"a": {"b": None}, "c": [{"d": ""}], "e": []}},
    {**HEAD, "success": False, "data": NESTED},
])
def test_the_simulator_signs_the_same_string(fields):
    """bridge/simulator/mpc_envelope.py is written from the spec, not from this module."""
    from bridge.simulator import mpc_envelope
    assert mpc_envelope.signing_string(fields, APP_SECRET) == signing_string(fields, APP_SECRET)


def test_top_level_sort_with_prefix_names_is_javas():
    # "a=" against "a1=": '=' (0x3D) sorts after '1' (0x31), so a1 comes first in Java.
    assert signing_string({"a": "x", "a1": "y", "B": "z"}, "K") == "a1=y&a=x&B=z&key=K"
    # names that fold alike are ordered by what follows
    assert signing_string({"Ab": "2", "aB": "1"}, "K") == "aB=1&Ab=2&key=K"


# ---------------------------------------------------------------- work per message (issue 11 §2)

def _request_like(data):
    """NESTED as the client builds requests: amounts as strings (messages.to_data)."""
    if isinstance(data, dict):
        return {k: _request_like(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_request_like(v) for v in data]
    return str(data) if isinstance(data, Decimal) else data


def test_sealing_serialises_twice_and_sorts_on_names_only(keys, monkeypatch):
    """One JSON text for the signature, one for encData; the case-insensitive sort of the
    k=v& items looks at the names, not at every character of data's JSON."""
    import bridge.mobilepay.envelope as envelope
    dumps, folded = [], []
    real_encode, real_fold = json.JSONEncoder.encode, envelope._java_fold
    monkeypatch.setattr(json.JSONEncoder, "encode", lambda *a, **kw: dumps.append(1) or real_encode(*a, **kw))
    monkeypatch.setattr(envelope, "_java_fold", lambda text: folded.append(text) or real_fold(text))
    data = _request_like(NESTED)
    env = hospital(keys).seal(data)
    assert len(dumps) == 2
    assert max(map(len, folded)) <= len("timestamp")
    assert loads(decrypt_data(derive_sm4_key(APP_ID, APP_SECRET), env["encData"])) == data


def test_isinstance_checks_use_the_abc_not_typing():
    import collections.abc

    import bridge.mobilepay.envelope as envelope
    assert envelope.Mapping is collections.abc.Mapping     # typing.Mapping's isinstance is slow
