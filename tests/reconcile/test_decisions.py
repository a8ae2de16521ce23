"""The decisions, on their own: which class an order's leg is in, what the centre's order status
says about refunds, what the HIS is told, and the settings a site can get wrong."""
from __future__ import annotations

from decimal import Decimal

import pytest

from bridge.reconcile import report
from bridge.reconcile.days import utc_bounds
from bridge.reconcile.model import (AMOUNT_DIFFERS, BALANCED, CHANNEL_ONLY, HOSPITAL_ONLY, PLATFORM_ONLY, UNCHECKED,
                                    BookOrder, CentreView, centre_legs, channel_leg, compare, offline_legs)
from bridge.reconcile.settings import ReconcileSettings

D = Decimal


def test_compare_two_sides_of_a_leg():
    assert compare(D("1.00"), D("1.00"), other_only=PLATFORM_ONLY) == BALANCED
    assert compare(D("1.00"), D("1.01"), other_only=PLATFORM_ONLY) == AMOUNT_DIFFERS
    assert compare(D("1.00"), None, other_only=PLATFORM_ONLY) == HOSPITAL_ONLY
    assert compare(None, D("1.00"), other_only=PLATFORM_ONLY) == PLATFORM_ONLY
    assert compare(None, D("1.00"), other_only=CHANNEL_ONLY) == CHANNEL_ONLY
    # Settled and cancelled the same day: 0.00 against nothing is nothing on both sides.
    assert compare(D("0.00"), None, other_only=PLATFORM_ONLY) == BALANCED
    assert compare(None, D("0.00"), other_only=PLATFORM_ONLY) == BALANCED
    assert compare(None, None, other_only=PLATFORM_ONLY) == BALANCED


def _legs(items):
    return {i.leg: (i.diff_class, i.hospital_amount, i.platform_amount) for i in items}


H = {"total": D("100.00"), "fund": D("70.00"), "account": D("30.00")}


def test_offline_result_rows_amounts_decide_and_the_centres_verdict_is_kept():
    same = offline_legs("S1", H, dict(H), BALANCED, "0")
    assert {k: v[0] for k, v in _legs(same).items()} == {"total": BALANCED, "fund": BALANCED, "account": BALANCED}
    # "The institution only": the file carries OUR amounts, so the centre side is empty.
    only_us = offline_legs("S1", H, dict(H), HOSPITAL_ONLY, "1")
    assert _legs(only_us)["fund"] == (HOSPITAL_ONLY, D("70.00"), None)
    only_them = offline_legs("S2", None, dict(H), PLATFORM_ONLY, "2")
    assert _legs(only_them)["total"] == (PLATFORM_ONLY, None, D("100.00"))
    off = offline_legs("S3", H, dict(H, fund=D("70.01")), AMOUNT_DIFFERS, "3")
    assert {k: v[0] for k, v in _legs(off).items()} == {"total": BALANCED, "fund": AMOUNT_DIFFERS, "account": BALANCED}
    # The centre says balanced, the amounts do not: the amounts win.
    assert _legs(offline_legs("S4", H, dict(H, total=D("99.99")), BALANCED, "0"))["total"][0] == AMOUNT_DIFFERS
    # The centre reports a difference its amounts do not show: never silently balanced.
    quiet = offline_legs("S5", H, dict(H), AMOUNT_DIFFERS, "3")
    assert quiet[0].diff_class == AMOUNT_DIFFERS and "do not show" in quiet[0].note
    assert all(i.platform_state == "stmt_rslt 3" for i in quiet)


def _order(**refunded) -> BookOrder:
    settled = {"total": D("120.00"), "fund": D("66.00"), "account": D("0.00"), "cash": D("54.00")}
    ref = {"total": D("0.00"), "fund": D("0.00"), "account": D("0.00"), "cash": D("0.00")}
    ref.update({k: D(v) for k, v in refunded.items()})
    ref["total"] = ref["fund"] + ref["account"] + ref["cash"]
    return BookOrder(1, "PO1", "INV-1", "mobilepay", "wechat", "OTN1", "paid", "2024-03-01", settled, ref)


AMOUNTS = {"total": D("120.00"), "fund": D("66.00"), "account": D("0.00"), "cash": D("54.00")}


@pytest.mark.parametrize("stas, refunded, expected", [
    ("6", {}, {}),                                                     # settled, nothing refunded
    ("10", {"cash": "10.00"}, {}),                                     # cash partly refunded on both sides
    ("7", {"fund": "66.00", "cash": "54.00"}, {}),                     # everything refunded on both sides
    ("8", {"fund": "66.00"}, {}),                                      # insurance refunded, cash not
    ("9", {}, {"cash": AMOUNT_DIFFERS, "total": AMOUNT_DIFFERS}),      # the centre refunded cash we did not
    ("6", {"cash": "10.00"}, {"cash": AMOUNT_DIFFERS, "total": AMOUNT_DIFFERS}),   # we refunded, the centre did not
    ("10", {}, {"cash": AMOUNT_DIFFERS, "total": AMOUNT_DIFFERS}),     # partly at the centre, not in the book
    ("12", {}, {"total": HOSPITAL_ONLY, "fund": HOSPITAL_ONLY, "cash": HOSPITAL_ONLY}),   # revoked: never paid
])
def test_the_centres_order_status_against_the_book(stas, refunded, expected):
    view = CentreView(stas, dict(AMOUNTS) if stas != "12" else None)
    got = {i.leg: i.diff_class for i in centre_legs(_order(**refunded), view, "PO1")}
    assert {k: v for k, v in got.items() if v != BALANCED} == expected


@pytest.mark.parametrize("stas, refunded, expected", [
    ("6", {"cash": "10.00"}, {}),                      # cash partly given back by the channel: the centre's 6
    ("6", {"cash": "54.00"}, {}),                      # all of it
    ("8", {"fund": "66.00", "cash": "54.00"}, {}),     # a full refund: 6203 HI, the cash by the channel
    ("10", {"cash": "10.00"}, {"cash": AMOUNT_DIFFERS, "total": AMOUNT_DIFFERS}),   # the centre moved cash too
    ("9", {}, {"cash": AMOUNT_DIFFERS, "total": AMOUNT_DIFFERS}),
    ("8", {}, {"fund": AMOUNT_DIFFERS, "total": AMOUNT_DIFFERS}),                  # an insurance refund we never asked
])
def test_a_channel_payment_whose_cash_goes_back_through_the_channel(stas, refunded, expected):
    """cash_by "channel" (Alipay; WeChat by default): the centre never moves the cash
    (bridge/channels/refund_legs.py), so it keeps it as paid; the channel leg checks its refunds."""
    order = _order(**refunded)
    order.cash_by = "channel"
    items = {i.leg: i for i in centre_legs(order, CentreView(stas, dict(AMOUNTS)), "PO1")}
    assert {k: i.diff_class for k, i in items.items() if i.diff_class != BALANCED} == expected
    if not expected:
        assert items["cash"].hospital_amount == items["cash"].platform_amount == D("54.00")
    if refunded.get("cash") and not expected:
        assert "went back through wechat" in items["cash"].note


def test_a_centre_that_could_not_be_asked_leaves_the_order_unchecked_never_missing():
    items = centre_legs(_order(), CentreView(problem="6301 unknown: timeout"), "PO1")
    assert {i.diff_class for i in items} == {UNCHECKED} and items[0].note == "6301 unknown: timeout"
    only_centre = centre_legs(None, CentreView("6", dict(AMOUNTS)), "PO9", business_key="INV-9")
    assert {i.leg: i.diff_class for i in only_centre} == {"total": PLATFORM_ONLY, "fund": PLATFORM_ONLY,
                                                          "account": BALANCED, "cash": PLATFORM_ONLY}


def test_the_channel_leg():
    leg = channel_leg("PO1", D("54.00"), D("54.00"), channel="wechat", channel_ref="OTN1")
    assert (leg.diff_class, leg.channel) == (BALANCED, "wechat")
    assert channel_leg("PO1", D("54.00"), None, channel="wechat", channel_ref="OTN1").diff_class == HOSPITAL_ONLY
    assert channel_leg("OTN9", None, D("9.00"), channel="alipay", channel_ref="OTN9").diff_class == CHANNEL_ONLY
    assert channel_leg("PO1", D("54.00"), D("53.99"), channel="wechat", channel_ref="OTN1").diff_class == \
        AMOUNT_DIFFERS
    # An insurance-only order moves no cash: no bill row is expected.
    assert channel_leg("PO2", D("0.00"), None, channel="wechat", channel_ref="OTN2").diff_class == BALANCED


def test_the_report_for_the_his():
    counts = {"balanced": 10, "hospital_only": 1, "platform_only": 0, "channel_only": 0, "amount_differs": 1,
              "unchecked": 0}
    diffs = [{"order_key": f"S{n}", "leg": "fund", "diff_class": "amount_differs", "business_key": f"K{n}",
              "channel": None, "channel_ref": None, "hospital_amount": D("1.00"), "platform_amount": D("1.01"),
              "channel_amount": None, "hospital_state": None, "platform_state": None, "source": "3202",
              "note": None} for n in range(5)]
    key, payload, rows = report.build("2024-03-01", "offline", 7, counts, False, iter(diffs), max_rows=3)
    assert key == "RECON-2024-03-01-offline-7" and payload == {"day": "2024-03-01", "platform": "offline", "run_id": 7}
    assert [r.error_code for r in rows] == ["RECON_DIFFERENCES"] + ["RECON_AMOUNT_DIFFERS"] * 3
    assert rows[0].result["differences"] == 2 and rows[0].result["differences_sent"] == 2
    assert rows[1].order_id == "S0" and rows[1].result["payment_key"] == "K0" and rows[1].result["platform_amount"] == "1.01"
    assert "hospital 1.00, platform 1.01" in rows[1].error_message
    _, _, balanced = report.build("2024-03-01", "offline", 8, {"balanced": 3}, True, iter(()), max_rows=3)
    assert [(r.error_code, r.result["balanced"]) for r in balanced] == [(None, True)]


@pytest.mark.parametrize("bad", [dict(offline_api="shanghai"), dict(count_mode="all"),
                                 dict(result_codes={"0": "fine"}), dict(extra_groups=("440100:310",)),
                                 dict(channels=("unionpay",)), dict(centre_workers=0), dict(centre_query="some")])
def test_settings_refuse_what_cannot_work(bad):
    with pytest.raises(ValueError):
        ReconcileSettings(**bad)


def test_a_china_day_in_utc():
    lo, hi = utc_bounds("2024-03-01")
    assert (lo.isoformat(), hi.isoformat()) == ("2024-02-29T16:00:00+00:00", "2024-03-01T16:00:00+00:00")
