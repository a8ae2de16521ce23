"""Shared fixtures: both SM2 backends, and keys chosen to hit leading-zero edge cases."""

from __future__ import annotations

import random

import pytest

from bridge.crypto import _sm2_curve, sm2

# Fixed seed: the key set is reproducible, so an interop failure can be replayed.
_SEED = 20240517


@pytest.fixture(params=sorted(sm2.backends()))
def backend(request) -> str:
    return request.param


def _search(rng: random.Random, predicate) -> int:
    """First scalar from rng whose public point satisfies predicate(x_bytes, y_bytes)."""
    while True:
        d = rng.randrange(1, _sm2_curve.N - 1)
        x, y = _sm2_curve.mul_g(d)
        if predicate(x.to_bytes(32, "big"), y.to_bytes(32, "big")):
            return d


def edge_scalars() -> list[tuple[str, int]]:
    """Scalars whose encodings start with zero bytes, plus range extremes."""
    rng = random.Random(_SEED)
    return [
        ("d=1", 1),
        ("d=n-2", _sm2_curve.N - 2),
        ("d leading 0x00", rng.randrange(1, 1 << 248)),
        ("d leading 0x0000", rng.randrange(1, 1 << 240)),
        ("d leading 0x00 then 0x04", (0x04 << 240) | rng.randrange(1 << 240)),
        ("X leading 0x00", _search(rng, lambda x, y: x[0] == 0)),
        ("Y leading 0x00", _search(rng, lambda x, y: y[0] == 0)),
        ("X leading 0x04", _search(rng, lambda x, y: x[0] == 0x04)),
        ("X leading 0x4?", _search(rng, lambda x, y: x[0] >> 4 == 4)),
        ("X leading 0x0?", _search(rng, lambda x, y: x[0] >> 4 == 0)),
        # Java's BigInteger writes these shorter: 63 hex digits; 31 bytes from toByteArray()
        ("d leading 0x0?", (rng.randrange(1, 16) << 248) | rng.randrange(1 << 248)),
        ("d 31 bytes in Java", rng.randrange(1 << 239, 1 << 247)),
    ]


def scalars(count: int) -> list[tuple[str, int]]:
    """count random scalars followed by the edge cases."""
    rng = random.Random(_SEED + count)
    return [(f"random {i}", rng.randrange(1, _sm2_curve.N - 1)) for i in range(count)] + edge_scalars()
