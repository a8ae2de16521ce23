"""SM2 signature backend on the system OpenSSL 3 libcrypto via ctypes (the fast path).

`cryptography` has no SM2 signatures, so the EVP API is called directly, following the
SM2 example of OpenSSL's EVP_PKEY-SM2(7) man page: the user id goes in with
EVP_PKEY_CTX_set1_id on a caller-owned EVP_PKEY_CTX attached through
EVP_MD_CTX_set_pkey_ctx, then EVP_DigestSign/VerifyInit with EVP_sm3() (which makes
OpenSSL prepend the Z-value). Keys are built by DER-encoding them and calling
d2i_AutoPrivateKey / d2i_PUBKEY; OpenSSL 3 types keys on the SM2 curve as "SM2".

Memory: every EVP_MD_CTX / EVP_PKEY_CTX is freed in a finally block; each EVP_PKEY is
owned by a handle object and freed by weakref.finalize when the key is collected.
Threads: a call uses only its own contexts; the shared EVP_PKEY is only read, which
openssl-threads(7) allows concurrently. The OpenSSL error queue is thread-local and is
cleared after every failure so it cannot grow in a long-running daemon.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
import weakref

from . import _der
from ._sm2_curve import N, encode_point

NAME = "openssl-evp"

_OID_EC_PUBLIC_KEY = "1.2.840.10045.2.1"
_OID_SM2 = "1.2.156.10197.1.301"
_P = ctypes.c_void_p


def _candidate_paths() -> list[str]:
    """libcrypto paths: the one Python's ssl module already uses first, then the usual names."""
    paths = []
    try:
        import _ssl  # noqa: F401  - loads libcrypto into this process if it is shared

        with open("/proc/self/maps", encoding="ascii", errors="replace") as maps:
            for line in maps:
                path = line.rsplit(None, 1)[-1]
                if "/libcrypto" in path and path not in paths:
                    paths.append(path)
    except (ImportError, OSError):
        pass
    found = ctypes.util.find_library("crypto")
    if found:
        paths.append(found)
    if sys.platform == "darwin":
        paths.append("libcrypto.3.dylib")
    elif sys.platform == "win32":
        paths += ["libcrypto-3-x64.dll", "libcrypto-3.dll"]
    else:
        paths.append("libcrypto.so.3")
    return paths


def _load_libcrypto() -> ctypes.CDLL:
    errors = []
    for path in _candidate_paths():
        try:
            lib = ctypes.CDLL(path)
        except OSError as exc:
            errors.append(f"{path}: {exc}")
            continue
        lib.OpenSSL_version_num.restype = ctypes.c_ulong
        lib.OpenSSL_version_num.argtypes = []
        version = lib.OpenSSL_version_num()
        if version < 0x30000000:
            errors.append(f"{path}: OpenSSL {version:#x} is older than 3.0")
            continue
        return lib
    raise OSError("no usable OpenSSL 3 libcrypto: " + "; ".join(errors or ["none found"]))


def _bind(lib: ctypes.CDLL) -> None:
    signatures = {
        "ERR_clear_error": (None, []),
        "EVP_sm3": (_P, []),
        "d2i_AutoPrivateKey": (_P, [_P, ctypes.POINTER(ctypes.c_char_p), ctypes.c_long]),
        "d2i_PUBKEY": (_P, [_P, ctypes.POINTER(ctypes.c_char_p), ctypes.c_long]),
        "EVP_PKEY_free": (None, [_P]),
        "EVP_PKEY_is_a": (ctypes.c_int, [_P, ctypes.c_char_p]),
        "EVP_PKEY_get_octet_string_param": (
            ctypes.c_int, [_P, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t,
                           ctypes.POINTER(ctypes.c_size_t)]),
        "EVP_PKEY_CTX_new": (_P, [_P, _P]),
        "EVP_PKEY_CTX_free": (None, [_P]),
        "EVP_PKEY_CTX_set1_id": (ctypes.c_int, [_P, ctypes.c_char_p, ctypes.c_int]),
        "EVP_MD_CTX_new": (_P, []),
        "EVP_MD_CTX_free": (None, [_P]),
        "EVP_MD_CTX_set_pkey_ctx": (None, [_P, _P]),
        "EVP_DigestSignInit": (ctypes.c_int, [_P, _P, _P, _P, _P]),
        "EVP_DigestSign": (ctypes.c_int, [_P, ctypes.c_char_p, ctypes.POINTER(ctypes.c_size_t),
                                          ctypes.c_char_p, ctypes.c_size_t]),
        "EVP_DigestVerifyInit": (ctypes.c_int, [_P, _P, _P, _P, _P]),
        "EVP_DigestVerify": (ctypes.c_int, [_P, ctypes.c_char_p, ctypes.c_size_t,
                                            ctypes.c_char_p, ctypes.c_size_t]),
    }
    for name, (restype, argtypes) in signatures.items():
        func = getattr(lib, name)  # AttributeError: symbol missing, no fast path
        func.restype = restype
        func.argtypes = argtypes


class _PKey:
    """Owns one EVP_PKEY*; freed when this object is garbage-collected."""

    __slots__ = ("ptr", "__weakref__")

    def __init__(self, lib: ctypes.CDLL, ptr: int):
        self.ptr = ptr
        weakref.finalize(self, lib.EVP_PKEY_free, ptr)


class OpenSSLBackend:
    name = NAME

    def __init__(self):
        self._lib = lib = _load_libcrypto()
        _bind(lib)
        self._sm3 = lib.EVP_sm3()
        if not self._sm3:
            raise OSError("this libcrypto has no SM3")

    def _fail(self, what: str) -> OSError:
        self._lib.ERR_clear_error()
        return OSError(f"OpenSSL {what} failed")

    def _decode(self, func, der: bytes) -> _PKey:
        buf = ctypes.c_char_p(der)
        ptr = func(None, ctypes.byref(buf), len(der))
        if not ptr:
            raise self._fail("key decoding")
        pkey = _PKey(self._lib, ptr)
        if self._lib.EVP_PKEY_is_a(ptr, b"SM2") != 1:
            raise OSError("OpenSSL did not type the key as SM2")
        return pkey

    def load_private(self, d: int):
        """(handle, public point) for scalar d; OpenSSL derives the public point."""
        # PKCS#8 around a SEC1 ECPrivateKey without the public key (RFC 5915 allows it).
        sec1 = _der.sequence(_der.integer(1), _der.tlv(_der.OCTET_STRING, d.to_bytes(32, "big")))
        der = _der.sequence(
            _der.integer(0),
            _der.sequence(_der.oid(_OID_EC_PUBLIC_KEY), _der.oid(_OID_SM2)),
            _der.tlv(_der.OCTET_STRING, sec1),
        )
        pkey = self._decode(self._lib.d2i_AutoPrivateKey, der)
        buf = ctypes.create_string_buffer(65)
        out_len = ctypes.c_size_t(0)
        if (self._lib.EVP_PKEY_get_octet_string_param(
                pkey.ptr, b"encoded-pub-key", buf, 65, ctypes.byref(out_len)) != 1
                or out_len.value != 65 or buf.raw[0] != 4):
            raise self._fail("public key export")
        point = (int.from_bytes(buf.raw[1:33], "big"), int.from_bytes(buf.raw[33:65], "big"))
        return pkey, point

    def load_public(self, point: tuple[int, int]) -> _PKey:
        der = _der.sequence(
            _der.sequence(_der.oid(_OID_EC_PUBLIC_KEY), _der.oid(_OID_SM2)),
            _der.tlv(_der.BIT_STRING, b"\x00" + encode_point(point)),
        )
        return self._decode(self._lib.d2i_PUBKEY, der)

    def _digest_ctx(self, init, pkey: _PKey, uid: bytes):
        """(md_ctx, pkey_ctx) initialised for SM3withSM2 with uid; caller frees both."""
        lib = self._lib
        md_ctx = lib.EVP_MD_CTX_new()
        pkey_ctx = lib.EVP_PKEY_CTX_new(pkey.ptr, None)
        if (not md_ctx or not pkey_ctx
                or lib.EVP_PKEY_CTX_set1_id(pkey_ctx, uid, len(uid)) <= 0):
            lib.EVP_PKEY_CTX_free(pkey_ctx)
            lib.EVP_MD_CTX_free(md_ctx)
            raise self._fail("context setup")
        lib.EVP_MD_CTX_set_pkey_ctx(md_ctx, pkey_ctx)
        if init(md_ctx, None, self._sm3, None, pkey.ptr) != 1:
            lib.EVP_MD_CTX_free(md_ctx)
            lib.EVP_PKEY_CTX_free(pkey_ctx)
            raise self._fail("digest init")
        return md_ctx, pkey_ctx

    def sign(self, pkey: _PKey, message: bytes, uid: bytes) -> tuple[int, int]:
        lib = self._lib
        md_ctx, pkey_ctx = self._digest_ctx(lib.EVP_DigestSignInit, pkey, uid)
        try:
            sig = ctypes.create_string_buffer(80)  # DER of two 256-bit INTEGERs is at most 72
            sig_len = ctypes.c_size_t(len(sig))
            if lib.EVP_DigestSign(md_ctx, sig, ctypes.byref(sig_len), message, len(message)) != 1:
                raise self._fail("signing")
            r, s = _der.parse_signature(sig.raw[:sig_len.value])
        finally:
            # EVP_MD_CTX_set_pkey_ctx leaves the EVP_PKEY_CTX owned by the caller
            lib.EVP_MD_CTX_free(md_ctx)
            lib.EVP_PKEY_CTX_free(pkey_ctx)
        if not (1 <= r < N and 1 <= s < N):
            raise OSError("OpenSSL produced an out-of-range signature")
        return r, s

    def verify(self, pkey: _PKey, message: bytes, uid: bytes, r: int, s: int) -> bool:
        if not (1 <= r < N and 1 <= s < N):
            return False
        lib = self._lib
        der = _der.encode_signature(r, s)
        md_ctx, pkey_ctx = self._digest_ctx(lib.EVP_DigestVerifyInit, pkey, uid)
        try:
            ok = lib.EVP_DigestVerify(md_ctx, der, len(der), message, len(message)) == 1
            if not ok:
                lib.ERR_clear_error()
            return ok
        finally:
            lib.EVP_MD_CTX_free(md_ctx)
            lib.EVP_PKEY_CTX_free(pkey_ctx)
