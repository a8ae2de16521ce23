"""Pure-Python SM2 signature backend (GM/T 0003.2-2012 section 6/7), the portable fallback."""

from __future__ import annotations

import secrets

from . import sm3
from ._sm2_curve import N, mul_g, mul_g_add, z_value

NAME = "pure-python"


class PureBackend:
    name = NAME

    def load_private(self, d: int):
        """(handle, public point) for scalar d."""
        point = mul_g(d)
        return (d, point), point

    def load_public(self, point: tuple[int, int]):
        return point

    def sign(self, handle, message: bytes, uid: bytes) -> tuple[int, int]:
        d, point = handle
        e = int.from_bytes(sm3.digest(z_value(uid, point) + message), "big")
        while True:
            k = secrets.randbelow(N - 1) + 1  # k in [1, n-1] from the OS CSPRNG
            signature = sign_with_nonce(d, e, k)
            if signature is not None:
                return signature

    def verify(self, handle, message: bytes, uid: bytes, r: int, s: int) -> bool:
        point = handle
        if not (1 <= r < N and 1 <= s < N):
            return False
        t = (r + s) % N
        if t == 0:
            return False
        e = int.from_bytes(sm3.digest(z_value(uid, point) + message), "big")
        sum_point = mul_g_add(s, t, point)
        return sum_point is not None and (e + sum_point[0]) % N == r


def sign_with_nonce(d: int, e: int, k: int) -> tuple[int, int] | None:
    """GM/T 0003.2 steps A4-A6 for digest e and nonce k; None when k must be redrawn.

    Separate from sign() only so the published fixed-nonce example can be checked.
    """
    r = (e + mul_g(k)[0]) % N
    if r == 0 or r + k == N:
        return None
    s = pow(1 + d, -1, N) * (k - r * d) % N
    return (r, s) if s else None
