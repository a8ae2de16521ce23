"""SM2 API behaviour on both backends: known answer, key formats, tampering, malformed input."""

import base64
import threading

import pytest

from bridge.crypto import _der, _sm2_curve, _sm2_pure, sm2, sm3

from .conftest import edge_scalars


def test_both_backends_available_here():
    # This project's target machines have OpenSSL 3; losing the fast path must be noticed.
    assert set(sm2.backends()) == {"openssl-evp", "pure-python"}
    assert sm2.backend_name() in sm2.backends()


def test_published_example_fixed_nonce():
    e = int.from_bytes(
        sm3.digest(_sm2_curve.z_value(sm2.DEFAULT_UID, sm2.KAT_PUBLIC) + sm2.KAT_MESSAGE), "big")
    assert _sm2_pure.sign_with_nonce(sm2.KAT_PRIVATE, e, sm2.KAT_NONCE) == sm2.KAT_SIGNATURE


def test_published_example(backend):
    key = sm2.PrivateKey(sm2.KAT_PRIVATE, backend)
    assert key.public_key().point == sm2.KAT_PUBLIC
    raw = b"".join(v.to_bytes(32, "big") for v in sm2.KAT_SIGNATURE)
    assert key.public_key().verify(sm2.KAT_MESSAGE, raw)
    assert key.public_key().verify(sm2.KAT_MESSAGE, _der.encode_signature(*sm2.KAT_SIGNATURE))
    assert not key.public_key().verify(sm2.KAT_MESSAGE, raw, uid=b"1234567812345679")


def test_sign_verify_and_tampering(backend):
    key = sm2.generate_private_key(backend)
    pub = key.public_key()
    msg = b"appId=x&data={}&key=secret"
    sig = key.sign(msg)
    assert len(sig) == 64
    assert pub.verify(msg, sig)
    assert not pub.verify(msg + b" ", sig)
    for i in (0, 31, 32, 63):
        tampered = bytearray(sig)
        tampered[i] ^= 0x01
        assert not pub.verify(msg, bytes(tampered))
    assert not sm2.generate_private_key(backend).public_key().verify(msg, sig)


def test_non_default_uid(backend):
    key = sm2.generate_private_key(backend)
    sig = key.sign(b"m", uid=b"appSecret-0123456789abcdef012345")
    assert key.public_key().verify(b"m", sig, uid=b"appSecret-0123456789abcdef012345")
    assert not key.public_key().verify(b"m", sig)
    assert key.public_key().verify(b"m", key.sign(b"m", uid=b""), uid=b"")


def test_cross_backend(backend):
    other = "pure-python" if backend == "openssl-evp" else "openssl-evp"
    key = sm2.generate_private_key(backend)
    twin = sm2.load_private_key(key.to_hex(), backend=other)
    assert twin.public_key() == key.public_key()
    assert twin.public_key().verify(b"x", key.sign(b"x"))
    assert key.public_key().verify(b"x", twin.sign(b"x"))


def test_signatures_are_randomised(backend):
    key = sm2.generate_private_key(backend)
    assert len({key.sign(b"same message") for _ in range(5)}) == 5


def test_der_signature_accepted(backend):
    key = sm2.generate_private_key(backend)
    raw = key.sign(b"m")
    der = _der.encode_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    assert key.public_key().verify(b"m", der)
    assert not key.public_key().verify(b"n", der)
    assert not key.public_key().verify(b"m", der + b"\x00")  # trailing garbage


@pytest.mark.parametrize("bad", [
    b"", b"\x00" * 64, b"\xff" * 64, b"\x01" * 63, b"\x01" * 65, b"\x30\x00", b"\x30\x06\x02\x01\x01\x02\x01",
    b"\x30\x06\x02\x01\x00\x02\x01\x01", b"\x30\x08\x02\x02\x00\x01\x02\x02\x00\x01",  # zero r, non-minimal
    bytearray(64), memoryview(b"\x01" * 64),
])
def test_malformed_signature_is_false_not_exception(backend, bad):
    pub = sm2.generate_private_key(backend).public_key()
    assert pub.verify(b"m", bad) is False


def test_signature_that_is_not_bytes_is_a_programming_error(backend):
    # A Base64 or hex str passed undecoded must not read as "forged" (issue 10 #13).
    key = sm2.generate_private_key(backend)
    sig = key.sign(b"m")
    for bad in (base64.b64encode(sig).decode(), sig.hex(), None, 12345):
        with pytest.raises(TypeError, match="signature must be bytes"):
            key.public_key().verify(b"m", bad)


def test_non_bytes_message_is_a_programming_error(backend):
    key = sm2.generate_private_key(backend)
    for bad in ("text", 5):
        with pytest.raises(TypeError):
            key.sign(bad)
        with pytest.raises(TypeError):
            key.public_key().verify(bad, key.sign(b"m"))
    with pytest.raises(sm2.SM2Error):
        key.sign(b"m", uid=b"u" * 8192)


def test_signature_with_r_or_s_equal_to_n_rejected(backend):
    key = sm2.generate_private_key(backend)
    sig = key.sign(b"m")
    n = _sm2_curve.N.to_bytes(32, "big")
    assert not key.public_key().verify(b"m", n + sig[32:])
    assert not key.public_key().verify(b"m", sig[:32] + n)


@pytest.mark.parametrize("label,d", edge_scalars())
def test_key_text_round_trips(backend, label, d):
    key = sm2.PrivateKey(d, backend)
    pub = key.public_key()
    assert len(key.to_hex()) == 64 and len(base64.b64decode(key.to_base64())) == 32
    for text in (key.to_hex(), key.to_hex().upper(), key.to_base64(), key.to_pem(),
                 "00" + key.to_hex(), base64.b64encode(b"\x00" + key.to_bytes()).decode(),
                 key.to_pem().encode(), key.to_hex().encode()):
        assert sm2.load_private_key(text, backend=backend).to_bytes() == key.to_bytes(), (label, text)
    for text in (pub.to_hex(), pub.to_hex(False), pub.to_base64(), pub.to_base64(False), pub.to_pem(),
                 pub.to_base64()[:40] + "\n" + pub.to_base64()[40:]):
        assert sm2.load_public_key(text, backend=backend) == pub, (label, text)


def test_sec1_pem_with_parameters_block():
    key = sm2.generate_private_key()
    sec1 = _der.sequence(
        _der.integer(1), _der.tlv(_der.OCTET_STRING, key.to_bytes()),
        _der.tlv(0xA0, _der.oid("1.2.156.10197.1.301")),
        _der.tlv(0xA1, _der.tlv(_der.BIT_STRING, b"\x00" + key.public_key().to_bytes())),
    )
    pem = sm2._pem("SM2 PARAMETERS", _der.oid("1.2.156.10197.1.301")) + sm2._pem("EC PRIVATE KEY", sec1)
    assert sm2.load_private_key(pem).to_bytes() == key.to_bytes()


@pytest.mark.parametrize("text,fragment", [
    ("zz", "neither hex"),
    ("0" * 54 + "1", "55 characters.*56 to 66 digits"),  # shorter than any real key: truncated
    (base64.b64encode(bytes(26) + b"\x01").decode(), "27 bytes is too short.*truncated"),
    ("00" * 31, "out of range"),     # 62 digits are padded, and zero is not a key
    ("01" + "00" * 32, "32-byte scalar"),  # 33 bytes without the leading zero
    ("00" * 32, "out of range"),
    (_sm2_curve.N.to_bytes(32, "big").hex(), "out of range"),
    ((_sm2_curve.N - 1).to_bytes(32, "big").hex(), "out of range"),
    ("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----", "no PEM block"),
    ("-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----", "encrypted"),
    ("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----", "malformed"),
    (b"\xff\xfe", "ASCII"),
])
def test_bad_private_key_text(text, fragment):
    with pytest.raises(sm2.SM2Error, match=fragment):
        sm2.load_private_key(text)


def test_bad_public_keys():
    pub = sm2.generate_private_key().public_key()
    raw = bytearray(pub.to_bytes())
    raw[-1] ^= 1
    with pytest.raises(sm2.SM2Error, match="not on the SM2 curve"):
        sm2.load_public_key(bytes(raw).hex())
    with pytest.raises(sm2.SM2Error, match="65 bytes"):
        sm2.load_public_key(base64.b64encode(pub.to_bytes()[:34]).decode())
    with pytest.raises(sm2.SM2Error, match="starts with 02 or 03, not 04"):
        sm2.load_public_key(base64.b64encode(pub.to_bytes()[:33]).decode())
    with pytest.raises(sm2.SM2Error, match="SM2 key"):  # a P-256 key is not an SM2 key
        spki = _der.sequence(
            _der.sequence(_der.oid("1.2.840.10045.2.1"), _der.oid("1.2.840.10045.3.1.7")),
            _der.tlv(_der.BIT_STRING, b"\x00" + pub.to_bytes()))
        sm2.load_public_key(sm2._pem("PUBLIC KEY", spki))


def test_pem_with_mismatched_embedded_public_key():
    key, other = sm2.generate_private_key(), sm2.generate_private_key()
    sec1 = _der.sequence(
        _der.integer(1), _der.tlv(_der.OCTET_STRING, key.to_bytes()),
        _der.tlv(0xA1, _der.tlv(_der.BIT_STRING, b"\x00" + other.public_key().to_bytes())))
    with pytest.raises(sm2.SM2Error, match="does not match"):
        sm2.load_private_key(sm2._pem("EC PRIVATE KEY", sec1))


def test_repr_hides_the_secret():
    key = sm2.generate_private_key()
    assert key.to_hex() not in repr(key) and key.to_hex()[:8] not in repr(key)


def test_concurrent_use_of_one_key(backend):
    key = sm2.generate_private_key(backend)
    pub = key.public_key()
    failures = []

    def worker(i: int) -> None:
        for j in range(40):
            msg = f"{i}-{j}".encode()
            if not pub.verify(msg, key.sign(msg)) or pub.verify(msg + b"x", key.sign(msg)):
                failures.append(msg)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []


# ---------------------------------------------------------------- key text from other tools

def _java_to_string_16(d: int) -> str:
    return format(d, "x")               # BigInteger.toString(16): no leading zeros


def _java_to_byte_array(d: int) -> bytes:
    return d.to_bytes(d.bit_length() // 8 + 1, "big")   # minimal two's complement, as Java


# d=1 is 1 digit in Java: refused as truncated (below), as every key under 2^224 is.
JAVA_SCALARS = [(label, d) for label, d in edge_scalars() if d.bit_length() > 224]


@pytest.mark.parametrize("label,d", JAVA_SCALARS)
def test_private_keys_written_by_java_biginteger_load(backend, label, d):
    """Java drops leading zero digits and bytes; such keys are padded (issue 10 #13)."""
    for text in (_java_to_string_16(d), _java_to_string_16(d).upper(),
                 base64.b64encode(_java_to_byte_array(d)).decode()):
        assert sm2.load_private_key(text, backend=backend).to_bytes() == d.to_bytes(32, "big"), (label, text)


def test_the_java_edge_cases_are_really_exercised():
    lengths = {len(_java_to_string_16(d)) for _, d in JAVA_SCALARS}
    sizes = {len(_java_to_byte_array(d)) for _, d in JAVA_SCALARS}
    assert {63, 62} <= lengths and {31, 33} <= sizes
    with pytest.raises(sm2.SM2Error, match="truncated"):
        sm2.load_private_key(base64.b64encode(_java_to_byte_array(1)).decode())


@pytest.mark.parametrize("label,d", edge_scalars())
def test_compressed_public_keys_load(backend, label, d):
    """02/03||X, as sm-crypto's compressPublicKeyHex writes it, in hex and Base64 (issue 10 #13)."""
    pub = sm2.PrivateKey(d, backend).public_key()
    x, y = pub.point
    compressed = bytes([2 + (y & 1)]) + x.to_bytes(32, "big")
    for text in (compressed.hex(), compressed.hex().upper(), base64.b64encode(compressed).decode()):
        assert sm2.load_public_key(text, backend=backend) == pub, (label, text)
    other = bytes([5 - compressed[0]]) + compressed[1:]      # the other parity: the negated point
    assert sm2.load_public_key(other.hex(), backend=backend).point == (x, _sm2_curve.P - y)


def test_compressed_x_off_the_curve_is_refused():
    x = next(x for x in range(1, 100) if _sm2_curve.decompress(2, x) is None)
    with pytest.raises(sm2.SM2Error, match="not the abscissa of a point"):
        sm2.load_public_key("02" + x.to_bytes(32, "big").hex())
