"""bridge/channels/keys.py: the channel numbers derived from business keys are stable,
within both channels' lengths and character sets, one-to-one, and read back to the
business key (what the callback endpoint relies on to find the request)."""
from __future__ import annotations

import random
import re

import pytest

from bridge.channels import keys
from bridge.channels.keys import NumberRef, UnmappableKey

ALLOWED = re.compile(r"^[0-9A-Za-z_]+$")    # what both WeChat Pay and Alipay accept


@pytest.mark.parametrize("key, number", [
    ("INV-1001", "MBPINV_2D1001"),
    ("20240101000123", "MBP20240101000123"),
    ("A", "MBPA__0"),                       # under WeChat's 6-character minimum: the explicit attempt
    ("a_b", "MBPa_5Fb"),
    ("发票1", "MBP_E5_8F_91_E7_A5_A81"),
    ("x" * 29, "MBP" + "x" * 29),          # 32 characters: the most WeChat allows
])
def test_out_trade_no_examples(key, number):
    assert keys.out_trade_no(key) == number
    assert keys.parse(number) == NumberRef(keys.PAYMENT, key, 0)


def test_refund_numbers_attempts_and_prefixes():
    assert keys.refund_no("RF-1") == "MBRRF_2D1"
    assert keys.refund_no("RF-1", attempt=2) == "MBRRF_2D1__2"
    assert keys.reversal_no("INV-1001") == "MBFINV_2D1001"
    assert keys.parse("MBRRF_2D1__2") == NumberRef(keys.REFUND, "RF-1", 2)
    assert keys.parse(keys.reversal_no("INV-1001")) == NumberRef(keys.REVERSAL, "INV-1001", 0)
    assert keys.out_trade_no("INV-1", prefix="HOSP1") == "HOSP1PINV_2D1"
    assert keys.parse("HOSP1PINV_2D1", prefix="HOSP1") == NumberRef(keys.PAYMENT, "INV-1", 0)
    assert keys.parse("HOSP1PINV_2D1") is None                       # another prefix: not ours
    assert keys.serial_no("INV-1001") == "INV-1001"                 # the 6201 medOrgOrd
    for bad in ("", "M-B", "TOOLONGPREFIX"):
        with pytest.raises(ValueError, match="order_prefix"):
            keys.out_trade_no("INV-1", prefix=bad)
    with pytest.raises(ValueError, match="attempt"):
        keys.refund_no("RF-1", attempt=-1)


@pytest.mark.parametrize("number", [
    "MBPINV_2d1001",        # lower-case hex: not a spelling we produce
    "MBP_41",               # an escaped letter
    "MBPA",                 # too short to be ours (we write MBPA__0)
    "MBPA__01",             # a zero-padded attempt
    "MBPA__",               # no attempt number
    "MBP_E5",               # half a UTF-8 character
    "MBXINV",               # unknown tag
    "MBPINV-1",             # a character we never send
    "4200000925202101",     # a WeChat transaction id
    "", None,
])
def test_numbers_we_never_produce_are_not_ours(number):
    assert keys.parse(number) is None


def test_keys_too_long_for_the_channels_are_refused_with_a_reason():
    with pytest.raises(UnmappableKey, match=r"33 characters; the channels allow 32"):
        keys.out_trade_no("x" * 30)
    with pytest.raises(UnmappableKey, match="any other character three"):
        keys.out_trade_no("发票" * 5)
    assert len(keys.refund_no("r" * 61)) == 64
    with pytest.raises(UnmappableKey):
        keys.refund_no("r" * 62)
    with pytest.raises(UnmappableKey):
        keys.out_trade_no("")


def test_every_key_round_trips_and_no_two_keys_share_a_number():
    rng = random.Random(20260101)
    pool = "AZaz09-_/. :#@|*()发票门诊号\t\u00e9\U0001F600"
    seen: dict[str, str] = {}
    for _ in range(5000):
        key = "".join(rng.choice(pool) for _ in range(rng.randint(1, 12)))
        for make, tag, limit in ((keys.out_trade_no, keys.PAYMENT, 32), (keys.refund_no, keys.REFUND, 64),
                                 (keys.reversal_no, keys.REVERSAL, 64)):
            attempt = rng.choice((0, 0, 1, 12))
            try:
                number = make(key, attempt=attempt)
            except UnmappableKey:
                continue
            assert ALLOWED.match(number) and len(number) <= limit, number
            assert make(key, attempt=attempt) == number                     # stable
            assert keys.parse(number) == NumberRef(tag, key, attempt)      # read back
            assert seen.setdefault(number, key) == key                     # one key per number
            if tag == keys.PAYMENT:
                assert len(number) >= 6
