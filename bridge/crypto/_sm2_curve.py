"""The SM2 curve sm2p256v1 (GM/T 0003.5-2012): parameters, point arithmetic, Z-value.

Points are affine (x, y) tuples outside this module; internally Jacobian (X, Y, Z)
with Z == 0 as the point at infinity. Python integers are not constant-time; this code
serves the pure-Python fallback and key handling, the OpenSSL path is preferred for signing.
"""

from __future__ import annotations

from . import sm3

P = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFF
A = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFC  # = P - 3
B = 0x28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93
N = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123
GX = 0x32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7
GY = 0xBC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0
G = (GX, GY)

_INF = (1, 1, 0)


def is_on_curve(point: tuple[int, int]) -> bool:
    x, y = point
    return 0 <= x < P and 0 <= y < P and (y * y - (x * x * x + A * x + B)) % P == 0


def decompress(prefix: int, x: int) -> tuple[int, int] | None:
    """The point with abscissa x whose ordinate has the parity of prefix 02/03 (SEC 1 2.3.4).

    None when x is not the abscissa of a curve point. P = 3 (mod 4), so the square
    root of c is c^((P+1)/4) when c is a quadratic residue.
    """
    if prefix not in (2, 3) or not 0 <= x < P:
        return None
    rhs = (x * x * x + A * x + B) % P
    y = pow(rhs, (P + 1) // 4, P)
    if y * y % P != rhs:
        return None
    if y & 1 != prefix & 1:
        y = P - y
    return (x, y)


def _double(pt):
    x1, y1, z1 = pt
    if z1 == 0 or y1 == 0:
        return _INF
    # dbl-2001-b, valid because a = -3
    delta = z1 * z1 % P
    gamma = y1 * y1 % P
    beta = x1 * gamma % P
    alpha = 3 * (x1 - delta) * (x1 + delta) % P
    x3 = (alpha * alpha - 8 * beta) % P
    z3 = ((y1 + z1) ** 2 - gamma - delta) % P
    y3 = (alpha * (4 * beta - x3) - 8 * gamma * gamma) % P
    return (x3, y3, z3)


def _add_mixed(pt, q):
    """Jacobian pt + affine q (madd-2007-bl)."""
    x1, y1, z1 = pt
    if z1 == 0:
        return (q[0], q[1], 1)
    z1z1 = z1 * z1 % P
    u2 = q[0] * z1z1 % P
    s2 = q[1] * z1 * z1z1 % P
    h = (u2 - x1) % P
    r = 2 * (s2 - y1) % P
    if h == 0:
        return _double(pt) if r == 0 else _INF
    hh = h * h % P
    i = 4 * hh % P
    j = h * i % P
    v = x1 * i % P
    x3 = (r * r - j - 2 * v) % P
    y3 = (r * (v - x3) - 2 * y1 * j) % P
    z3 = ((z1 + h) ** 2 - z1z1 - hh) % P
    return (x3, y3, z3)


def _add(pt, qt):
    """Jacobian + Jacobian (add-2007-bl)."""
    x1, y1, z1 = pt
    x2, y2, z2 = qt
    if z1 == 0:
        return qt
    if z2 == 0:
        return pt
    z1z1 = z1 * z1 % P
    z2z2 = z2 * z2 % P
    u1 = x1 * z2z2 % P
    u2 = x2 * z1z1 % P
    s1 = y1 * z2 * z2z2 % P
    s2 = y2 * z1 * z1z1 % P
    h = (u2 - u1) % P
    r = 2 * (s2 - s1) % P
    if h == 0:
        return _double(pt) if r == 0 else _INF
    i = (2 * h) ** 2 % P
    j = h * i % P
    v = u1 * i % P
    x3 = (r * r - j - 2 * v) % P
    y3 = (r * (v - x3) - 2 * s1 * j) % P
    z3 = ((z1 + z2) ** 2 - z1z1 - z2z2) * h % P
    return (x3, y3, z3)


def _to_affine(pt) -> tuple[int, int] | None:
    x, y, z = pt
    if z == 0:
        return None
    zinv = pow(z, -1, P)
    zinv2 = zinv * zinv % P
    return (x * zinv2 % P, y * zinv2 * zinv % P)


_WINDOW = 4
_G_TABLE: list[list[tuple[int, int]]] | None = None


def _g_table() -> list[list[tuple[int, int]]]:
    """table[i][j-1] = j * 16**i * G in affine form, built once on first use."""
    global _G_TABLE
    if _G_TABLE is None:
        table = []
        base = (GX, GY, 1)
        for _ in range(256 // _WINDOW):
            row = []
            acc = base
            for _j in range(1, 1 << _WINDOW):
                row.append(_to_affine(acc))
                acc = _add(acc, base)
            table.append(row)
            base = acc  # 16 * base
        _G_TABLE = table  # assigned whole, so concurrent builders are harmless
    return _G_TABLE


def _mul_g_jacobian(k: int):
    table = _g_table()
    acc = _INF
    i = 0
    while k:
        digit = k & 0xF
        if digit:
            acc = _add_mixed(acc, table[i][digit - 1])
        k >>= _WINDOW
        i += 1
    return acc


def _mul_jacobian(k: int, point: tuple[int, int]):
    base = (point[0], point[1], 1)
    table = [base]
    for _ in range(14):
        table.append(_add(table[-1], base))
    acc = _INF
    for shift in range(((k.bit_length() + 3) // 4) * 4 - 4, -1, -4):
        for _ in range(4):
            acc = _double(acc)
        digit = (k >> shift) & 0xF
        if digit:
            acc = _add(acc, table[digit - 1])
    return acc


def mul_g(k: int) -> tuple[int, int] | None:
    """k * G (None for the point at infinity)."""
    return _to_affine(_mul_g_jacobian(k % N))


def mul_g_add(s: int, t: int, point: tuple[int, int]) -> tuple[int, int] | None:
    """s * G + t * point."""
    return _to_affine(_add(_mul_g_jacobian(s % N), _mul_jacobian(t % N, point)))


def encode_point(point: tuple[int, int]) -> bytes:
    """Uncompressed SEC1 encoding 04 || X || Y."""
    return b"\x04" + point[0].to_bytes(32, "big") + point[1].to_bytes(32, "big")


def z_value(uid: bytes, point: tuple[int, int]) -> bytes:
    """Z = SM3(ENTL || ID || a || b || xG || yG || xA || yA), GM/T 0003.2 section 5.5."""
    if len(uid) * 8 > 0xFFFF:
        raise ValueError("SM2 user id is limited to 8191 bytes")
    parts = [(len(uid) * 8).to_bytes(2, "big"), uid]
    parts += [v.to_bytes(32, "big") for v in (A, B, GX, GY, point[0], point[1])]
    return sm3.digest(b"".join(parts))
