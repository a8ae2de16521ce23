"""SM2 signatures (SM3withSM2, GM/T 0003/0009) with the user-id Z-value.

Two interchangeable backends compute signatures:
  * "openssl-evp": the system OpenSSL 3 libcrypto through ctypes; constant-time signing
    and ~5x faster verification (OpenSSL 3.0 signs SM2 no faster than the fallback's
    table-driven code, see bench/crypto.py);
  * "pure-python": a portable GM/T 0003 implementation (Python integers, so not
    constant-time), used when OpenSSL is missing, fails its import-time self-test, or
    MIBRIDGE_SM2_BACKEND=pure is set.
MIBRIDGE_SM2_BACKEND=openssl makes a missing fast path an error instead of a fallback.

Key text formats (load_private_key / load_public_key), decided by content:
  * PEM if it contains "-----BEGIN": PKCS#8 "PRIVATE KEY", SEC1 "EC PRIVATE KEY" (or
    "SM2 PRIVATE KEY"), SubjectPublicKeyInfo "PUBLIC KEY";
  * otherwise, with whitespace removed, hex if it is only hex digits AND has a hex length
    (private: 56 to 66 digits; public: 130 for 04||X||Y, 128 for X||Y, 66 for a
    compressed 02/03||X);
  * otherwise strict Base64 (private: 28 to 33 bytes; public: 65, 64 or 33 bytes).
  Private scalars come shorter than 32 bytes from Java: BigInteger.toString(16) drops
  leading zero digits (63 digits one key in 16, 62 one in 256) and
  BigInteger.toByteArray() leading zero bytes (31 bytes one key in 512); both are
  left-padded. Below 56 digits / 28 bytes (fewer than one key in 2^32) the text is
  taken for a truncated key and refused. BigInteger.toByteArray() also adds a 0x00
  when the top bit is set (33 bytes). Compressed public keys (what sm-crypto's
  compressPublicKeyHex and `openssl ec -conv_form compressed` write) are decompressed
  on the curve. The hex and Base64 lengths never coincide (Base64 of 28 to 33 bytes is 40
  or 44 characters, of 64/65 bytes 88), so the choice is unambiguous.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import secrets
import threading

from loguru import logger

from . import _der
from ._sm2_curve import N, decompress, encode_point, is_on_curve
from ._sm2_pure import PureBackend

DEFAULT_UID = b"1234567812345678"

_OID_EC_PUBLIC_KEY = "1.2.840.10045.2.1"
_OID_SM2 = "1.2.156.10197.1.301"  # sm2p256v1 curve; also used by some tools as the algorithm


class SM2Error(ValueError):
    """Unusable SM2 key material or backend."""


# ---------------------------------------------------------------- backends

_PURE = PureBackend()
_BACKENDS: dict[str, object] = {_PURE.name: _PURE}


# GB/T 32918.2/.5 (GM/T 0003) example on sm2p256v1, ID 1234567812345678, message
# "message digest"; the same vector is in OpenSSL's test/sm2_internal_test.c.
KAT_PRIVATE = 0x3945208F7B2144B13F36E38AC6D39F95889393692860B51A42FB81EF4DF7C5B8
KAT_PUBLIC = (0x09F9DF311E5421A150DD7D161E4BC5C672179FAD1833FC076BB08FF356F35020,
              0xCCEA490CE26775A52DC6EA718CC1AA600AED05FBF35E084A6632F6072DA9AD13)
KAT_MESSAGE = b"message digest"
KAT_NONCE = 0x59276E27D506861A16680F3AD9C02DCCEF3CC1FA3CDBE4CE6D54B80DEAC1BC21
KAT_SIGNATURE = (0xF5A03B0648D2C4630EEAC513E1BB81A15944DA3827D5B74143AC7EACEEE720B3,
                 0xB1B6AA29DF212FD8763182BC0D421CA1BB9038FD1F7F42D4840B69C485BBC1AA)


def _self_test(fast) -> None:
    """Check the fast backend on the published vector and against the pure one; raise on failure."""
    fast_handle, point = fast.load_private(KAT_PRIVATE)
    if point != KAT_PUBLIC:
        raise SM2Error("public key derivation disagrees with the published example")
    pub = fast.load_public(point)
    if not fast.verify(pub, KAT_MESSAGE, DEFAULT_UID, *KAT_SIGNATURE):
        raise SM2Error("the published example signature does not verify")
    if fast.verify(pub, KAT_MESSAGE + b"!", DEFAULT_UID, *KAT_SIGNATURE):
        raise SM2Error("a tampered message verified")
    r, s = fast.sign(fast_handle, KAT_MESSAGE, b"ALICE123@YAHOO.COM")
    if not _PURE.verify(point, KAT_MESSAGE, b"ALICE123@YAHOO.COM", r, s):
        raise SM2Error("pure-python cannot verify an OpenSSL signature")


def _init_backends() -> object:
    choice = os.environ.get("MIBRIDGE_SM2_BACKEND", "auto").strip().lower() or "auto"
    if choice not in ("auto", "pure", "openssl"):
        raise SM2Error(f"MIBRIDGE_SM2_BACKEND must be auto, pure or openssl, not {choice!r}")
    try:
        from ._sm2_openssl import OpenSSLBackend

        fast = OpenSSLBackend()
        _self_test(fast)
        _BACKENDS[fast.name] = fast
    except Exception as exc:  # any failure of the optional fast path means: fall back
        if choice == "openssl":
            raise SM2Error(f"OpenSSL SM2 backend required but unavailable: {exc}") from exc
        logger.warning("SM2 OpenSSL fast path unavailable, using pure Python: {}", exc)
        return _PURE
    return _PURE if choice == "pure" else fast


_DEFAULT = _init_backends()


def backend_name() -> str:
    """"openssl-evp" when the fast path is the default, else "pure-python"."""
    return _DEFAULT.name


def backends() -> dict[str, object]:
    """Every working backend by name (whatever the default is), e.g. for tests."""
    return dict(_BACKENDS)


def _backend(backend) -> object:
    if backend is None:
        return _DEFAULT
    if isinstance(backend, str):
        try:
            return _BACKENDS[backend]
        except KeyError:
            raise SM2Error(f"SM2 backend {backend!r} is not available") from None
    return backend


# ---------------------------------------------------------------- keys

def _bytes(value, what: str) -> bytes:
    """value as bytes; a str or int here is a caller bug, so it raises instead of guessing."""
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise TypeError(f"SM2 {what} must be bytes, not {type(value).__name__}")
    return bytes(value)


class PublicKey:
    """An SM2 public key (a point on sm2p256v1)."""

    def __init__(self, point: tuple[int, int], backend=None):
        if not is_on_curve(point):
            raise SM2Error("public key point is not on the SM2 curve")
        self._point = point
        self._backend = _backend(backend)
        self._handle = None
        self._lock = threading.Lock()

    def _get_handle(self):
        if self._handle is None:
            with self._lock:
                if self._handle is None:
                    self._handle = self._backend.load_public(self._point)
        return self._handle

    @property
    def point(self) -> tuple[int, int]:
        return self._point

    def verify(self, message: bytes, signature: bytes, uid: bytes = DEFAULT_UID) -> bool:
        """True iff signature (64-byte raw r||s or DER) is valid.

        Any malformed signature bytes give False. A signature, message or uid that is
        not bytes is a programming error and raises TypeError: a Base64 or hex str
        passed undecoded would otherwise read as "forged" and hide the bug.
        """
        message, uid = _bytes(message, "message"), _bytes(uid, "uid")
        signature = _bytes(signature, "signature")
        if len(uid) * 8 > 0xFFFF:
            raise SM2Error("SM2 user id is limited to 8191 bytes")
        candidates = _signature_candidates(signature)
        handle = self._get_handle()
        return any(self._backend.verify(handle, message, uid, r, s) for r, s in candidates)

    def to_bytes(self, uncompressed_prefix: bool = True) -> bytes:
        raw = encode_point(self._point)
        return raw if uncompressed_prefix else raw[1:]

    def to_hex(self, uncompressed_prefix: bool = True) -> str:
        return self.to_bytes(uncompressed_prefix).hex()

    def to_base64(self, uncompressed_prefix: bool = True) -> str:
        return base64.b64encode(self.to_bytes(uncompressed_prefix)).decode("ascii")

    def to_der(self) -> bytes:
        return _der.sequence(
            _der.sequence(_der.oid(_OID_EC_PUBLIC_KEY), _der.oid(_OID_SM2)),
            _der.tlv(_der.BIT_STRING, b"\x00" + encode_point(self._point)),
        )

    def to_pem(self) -> str:
        return _pem("PUBLIC KEY", self.to_der())

    def __eq__(self, other) -> bool:
        return isinstance(other, PublicKey) and other._point == self._point

    def __hash__(self) -> int:
        return hash(self._point)

    def __repr__(self) -> str:
        return f"<sm2.PublicKey {self.to_hex()[:18]}...>"


class PrivateKey:
    """An SM2 private key (scalar d, 1 <= d <= n-2)."""

    def __init__(self, d: int, backend=None):
        if not 1 <= d <= N - 2:
            raise SM2Error("SM2 private scalar out of range [1, n-2]")
        self._d = d
        self._backend = _backend(backend)
        self._handle, point = self._backend.load_private(d)
        self._public = PublicKey(point, self._backend)

    def public_key(self) -> PublicKey:
        return self._public

    def sign(self, message: bytes, uid: bytes = DEFAULT_UID) -> bytes:
        """SM3withSM2 signature as 64-byte raw r||s, each left-padded to 32 bytes."""
        message, uid = _bytes(message, "message"), _bytes(uid, "uid")
        if len(uid) * 8 > 0xFFFF:
            raise SM2Error("SM2 user id is limited to 8191 bytes")
        r, s = self._backend.sign(self._handle, message, uid)
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    def to_bytes(self) -> bytes:
        return self._d.to_bytes(32, "big")

    def to_hex(self) -> str:
        return self.to_bytes().hex()

    def to_base64(self) -> str:
        return base64.b64encode(self.to_bytes()).decode("ascii")

    def to_der(self) -> bytes:
        """PKCS#8 PrivateKeyInfo wrapping a SEC1 ECPrivateKey (with the public key)."""
        sec1 = _der.sequence(
            _der.integer(1),
            _der.tlv(_der.OCTET_STRING, self.to_bytes()),
            _der.tlv(0xA1, _der.tlv(_der.BIT_STRING, b"\x00" + self._public.to_bytes())),
        )
        return _der.sequence(
            _der.integer(0),
            _der.sequence(_der.oid(_OID_EC_PUBLIC_KEY), _der.oid(_OID_SM2)),
            _der.tlv(_der.OCTET_STRING, sec1),
        )

    def to_pem(self) -> str:
        return _pem("PRIVATE KEY", self.to_der())

    def __repr__(self) -> str:
        return "<sm2.PrivateKey (secret)>"  # never show the scalar


def generate_private_key(backend=None) -> PrivateKey:
    return PrivateKey(secrets.randbelow(N - 2) + 1, backend)


# ---------------------------------------------------------------- parsing

_HEX = re.compile(r"[0-9A-Fa-f]+")


def _text(text: str | bytes) -> str:
    if isinstance(text, (bytes, bytearray, memoryview)):
        try:
            text = bytes(text).decode("ascii")
        except UnicodeDecodeError:
            raise SM2Error("key text must be ASCII (hex, Base64 or PEM)") from None
    if not isinstance(text, str):
        raise SM2Error(f"key text must be str or bytes, not {type(text).__name__}")
    return text


def _raw_bytes(text: str, hex_lengths: tuple[int, ...], kind: str, hex_range: str) -> bytes:
    """Bytes of hex (an odd digit count is left-padded with 0) or strict Base64 text."""
    compact = "".join(text.split())
    if _HEX.fullmatch(compact) and len(compact) in hex_lengths:
        return bytes.fromhex(compact.rjust(len(compact) + len(compact) % 2, "0"))
    try:
        return base64.b64decode(compact, validate=True)
    except binascii.Error:
        raise SM2Error(
            f"{kind} ({len(compact)} characters) is neither hex of {hex_range} digits nor valid Base64"
        ) from None


# Shortest scalar text taken for a whole key (see the module docstring).
_MIN_SCALAR_BYTES = 28
_PRIVATE_HEX_LENGTHS = tuple(range(2 * _MIN_SCALAR_BYTES, 67))
_PUBLIC_HEX_LENGTHS = (66, 128, 130)


def _pem(label: str, der: bytes) -> str:
    body = base64.b64encode(der).decode("ascii")
    lines = [body[i:i + 64] for i in range(0, len(body), 64)]
    return f"-----BEGIN {label}-----\n" + "\n".join(lines) + f"\n-----END {label}-----\n"


def _pem_body(text: str, labels: tuple[str, ...]) -> tuple[str, bytes]:
    """(label, DER) of the first PEM block whose label is one of labels.

    Other blocks, such as the "EC PARAMETERS" block `openssl ecparam -genkey` writes first,
    are skipped.
    """
    found = []
    for match in re.finditer(r"-----BEGIN ([A-Z0-9 ]+)-----(.*?)-----END \1-----", text, re.S):
        label, body = match.group(1), match.group(2)
        if label == "ENCRYPTED PRIVATE KEY" or "Proc-Type" in body:
            raise SM2Error("encrypted PEM keys are not supported; decrypt the key first")
        if label not in labels:
            found.append(label)
            continue
        try:
            return label, base64.b64decode("".join(body.split()), validate=True)
        except binascii.Error:
            raise SM2Error("malformed PEM body (not Base64)") from None
    raise SM2Error(f"no PEM block labelled {' / '.join(labels)} (found: {', '.join(found) or 'none'})")


def _check_sm2_algorithm(algid: bytes) -> None:
    items = _der.read_all(algid)
    if not items or items[0][0] != _der.OID:
        raise SM2Error("bad AlgorithmIdentifier")
    alg = _der.parse_oid(items[0][1])
    params = [_der.parse_oid(v) for tag, v in items[1:] if tag == _der.OID]
    if alg == _OID_SM2 or (alg == _OID_EC_PUBLIC_KEY and params == [_OID_SM2]):
        return
    raise SM2Error(f"not an SM2 key (algorithm {alg}, parameters {params or 'none'})")


def _point_from_bytes(raw: bytes) -> tuple[int, int]:
    if len(raw) == 33:
        if raw[0] not in (2, 3):
            raise SM2Error(f"a 33-byte public key is a compressed point and starts with 02 or 03, "
                           f"not {raw[0]:02x}")
        point = decompress(raw[0], int.from_bytes(raw[1:], "big"))
        if point is None:
            raise SM2Error("compressed public key: X is not the abscissa of a point on the SM2 curve")
        return point
    if len(raw) == 65 and raw[0] == 4:
        raw = raw[1:]
    elif len(raw) != 64:
        raise SM2Error(
            f"public key must be 65 bytes 04||X||Y, 64 bytes X||Y or 33 bytes 02/03||X (compressed), "
            f"got {len(raw)} bytes")
    point = (int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    if not is_on_curve(point):
        raise SM2Error("public key point is not on the SM2 curve")
    return point


def _scalar_from_bytes(raw: bytes) -> int:
    """d from big-endian bytes, 32 as written by most tools, 28 to 33 as Java writes them."""
    if len(raw) == 33 and raw[0] == 0:
        raw = raw[1:]
    if len(raw) > 32:
        raise SM2Error(
            f"private key must be a 32-byte scalar (33 only with a leading 0x00), got {len(raw)} bytes")
    if len(raw) < _MIN_SCALAR_BYTES:
        raise SM2Error(
            f"private key of {len(raw)} bytes is too short for an SM2 scalar (32 bytes; Java may drop "
            f"leading zero bytes, but not down to {_MIN_SCALAR_BYTES - 1}): is it truncated?")
    d = int.from_bytes(raw, "big")
    if not 1 <= d <= N - 2:
        raise SM2Error("private scalar out of range [1, n-2]")
    return d


def _parse_sec1(der: bytes) -> tuple[int, bytes | None]:
    items = _der.read_all(_der.read_single(der, _der.SEQUENCE))
    if len(items) < 2 or items[0] != (_der.INTEGER, b"\x01") or items[1][0] != _der.OCTET_STRING:
        raise SM2Error("malformed SEC1 ECPrivateKey")
    d_raw = items[1][1]
    if not 1 <= len(d_raw) <= 33:  # some encoders strip leading zero bytes
        raise SM2Error("malformed SEC1 private scalar")
    d = _scalar_from_bytes(d_raw.rjust(32, b"\x00"))
    public = None
    for tag, value in items[2:]:
        if tag == 0xA0:
            _check_sm2_algorithm(_der.oid(_OID_EC_PUBLIC_KEY) + value)
        elif tag == 0xA1:
            public = _der.parse_bit_string(_der.read_single(value, _der.BIT_STRING))
    return d, public


def _parse_pkcs8(der: bytes) -> tuple[int, bytes | None]:
    items = _der.read_all(_der.read_single(der, _der.SEQUENCE))
    if (len(items) < 3 or items[0][0] != _der.INTEGER or items[1][0] != _der.SEQUENCE
            or items[2][0] != _der.OCTET_STRING):
        raise SM2Error("malformed PKCS#8 PrivateKeyInfo")
    _check_sm2_algorithm(items[1][1])
    return _parse_sec1(items[2][1])


def _parse_spki(der: bytes) -> bytes:
    items = _der.read_all(_der.read_single(der, _der.SEQUENCE))
    if len(items) != 2 or items[0][0] != _der.SEQUENCE or items[1][0] != _der.BIT_STRING:
        raise SM2Error("malformed SubjectPublicKeyInfo")
    _check_sm2_algorithm(items[0][1])
    return _der.parse_bit_string(items[1][1])


def load_private_key(text: str | bytes, backend=None) -> PrivateKey:
    """Private key from hex, Base64 or PEM text (see the module docstring)."""
    text = _text(text)
    if "-----BEGIN" not in text:
        raw = _raw_bytes(text, _PRIVATE_HEX_LENGTHS, "private key", "56 to 66")
        return PrivateKey(_scalar_from_bytes(raw), backend)
    # OpenSSL 3 `openssl ec` labels SEC1 SM2 keys "SM2 PRIVATE KEY"
    label, der = _pem_body(text, ("PRIVATE KEY", "EC PRIVATE KEY", "SM2 PRIVATE KEY"))
    try:
        if label == "PRIVATE KEY":
            d, embedded_public = _parse_pkcs8(der)
        else:
            d, embedded_public = _parse_sec1(der)
    except _der.DERError as exc:
        raise SM2Error(f"malformed private key DER: {exc}") from None
    key = PrivateKey(d, backend)
    if embedded_public is not None and _point_from_bytes(embedded_public) != key.public_key().point:
        raise SM2Error("PEM private key embeds a public key that does not match the scalar")
    return key


def load_public_key(text: str | bytes, backend=None) -> PublicKey:
    """Public key from hex, Base64 or PEM text (see the module docstring)."""
    text = _text(text)
    if "-----BEGIN" not in text:
        raw = _raw_bytes(text, _PUBLIC_HEX_LENGTHS, "public key", "66, 128 or 130")
        return PublicKey(_point_from_bytes(raw), backend)
    _, der = _pem_body(text, ("PUBLIC KEY",))
    try:
        return PublicKey(_point_from_bytes(_parse_spki(der)), backend)
    except _der.DERError as exc:
        raise SM2Error(f"malformed public key DER: {exc}") from None


def _signature_candidates(signature: bytes) -> list[tuple[int, int]]:
    """(r, s) readings of a signature: raw 64-byte r||s and/or DER."""
    candidates = []
    if len(signature) == 64:
        candidates.append((int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")))
    if signature[:1] == b"\x30":
        try:
            candidates.append(_der.parse_signature(signature))
        except _der.DERError:
            pass
    return [(r, s) for r, s in candidates if 1 <= r < N and 1 <= s < N]
