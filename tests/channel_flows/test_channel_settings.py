"""The channel settings where channels.md is uncertain, end to end (SQLite: the setting, not the
database, is under test): a daemon with [wechatpay] cash_after_6203 = "centre_returns_cash"
and [alipay] order_api = "trade" (the §7.3 variant).

* The Alipay trade variant pays and refunds, every leg once.
* Who returns the cash after a 6203 on a WeChat mixed order (§2.7, §10.4 item 4): with the
  setting that matches the simulator's reading the cash comes back once, by the centre; with
  the wrong one it does not come back at all, which the per-leg ledger shows - never twice.
  (The default setting under the other reading: test_channel_payments.py.)"""
from __future__ import annotations

import pytest

from tests.mobilepay_flows.harness import new_key

from .conftest import start_bridge
from .harness import cash_of, legs_of, pay_doc


@pytest.fixture(scope="module")
def other(ch_sim, tmp_path_factory):
    b, stop = start_bridge("sqlite", tmp_path_factory.mktemp("chset"), ch_sim, name="chset",
                           wechat={"cash_after_6203": "centre_returns_cash"}, alipay={"order_api": "trade"})
    yield b
    ch_sim.clear_faults()
    ch_sim.settings(wechat_cash_after_6203="hospital_refunds_cash")
    stop()


def _pay_and_refund(b, sim, channel: str) -> tuple[dict, dict]:
    key = new_key("ST")
    b.enqueue("mobilepay.outpatient", key, pay_doc(sim, sim.person(account="none"), channel=channel))
    assert b.wait_final(key)[key]["state"] == "done", b.row(key)
    b.enqueue("mobilepay.refund", "R" + key, {"payment_key": key}, serial_key=key)
    assert b.wait_final("R" + key)["R" + key]["state"] == "done", b.row("R" + key)
    [s] = [r for r in b.inbox(key) if r["type"] == "settlement"]
    [rf] = [r for r in b.inbox("R" + key) if r["type"] == "refund"]
    return s, rf


def test_the_alipay_trade_variant_pays_and_refunds_each_leg_once(other, sim):
    s, rf = _pay_and_refund(other, sim, "alipay")
    key = s["result"]["medOrgOrd"]
    calls = [i for i, _ in other.calls(key)]
    assert "alipay.medical.trade.create" in calls and "alipay.medical.payment.create" not in calls, calls
    assert "alipay.commerce.medical.trade.query" in calls, calls
    legs = legs_of(sim, s["order_id"])
    assert (legs["fund"]["charges"], legs["fund"]["refunds"]) == (1, 1), legs
    assert cash_of(legs, "alipay") == (s["cash"], 1, s["cash"], 1), legs
    assert rf["result"]["cash_refunded_by"] == "alipay"


@pytest.mark.parametrize("reading, cash_back", [("centre_returns_cash", 1), ("hospital_refunds_cash", 0)])
def test_who_returns_the_cash_after_6203(other, sim, reading, cash_back):
    sim.settings(wechat_cash_after_6203=reading)
    try:
        s, rf = _pay_and_refund(other, sim, "wechat")
    finally:
        sim.settings(wechat_cash_after_6203="hospital_refunds_cash")
    legs = legs_of(sim, s["order_id"])
    assert (legs["fund"]["charges"], legs["fund"]["refunds"]) == (1, 1), legs
    # mibridge asked the centre for the cash too (6203 ALL) and sent no refund to WeChat itself
    assert rf["result"]["cash_refunded_by"] == "6203" and "wechat.refund.create" not in [
        i for i, _ in other.calls(rf["result"]["appRefdSn"])], rf
    charged, charges, refunded, refunds = cash_of(legs, "wechat")
    assert (charged, charges) == (s["cash"], 1)
    # never twice; with the wrong setting not at all, which is what the ledger (and the
    # reconciliation of WeChat's bill) shows
    assert (refunded, refunds) == ((s["cash"], 1) if cash_back else (0, 0)), legs
