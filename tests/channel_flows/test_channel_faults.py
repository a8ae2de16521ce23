"""Every fault of channels.md §10.3 the simulator injects, on every new call of the channel legs,
at once (SQLite; the unit tables hold each decision): transport faults with and without the
effect committed, bad and stale answer signatures, unsigned and transient refusals, refunds
that stay PROCESSING or end CLOSED, and a refund that ends ABNORMAL, which is held for a
person with the reason.  Every other request ends done with each leg charged once and
refunded once."""
from __future__ import annotations

import pytest

from bridge.channels import keys
from tests.mobilepay_flows.harness import new_key

from .conftest import start_bridge
from .harness import OPENID, cash_of, pay_doc

TRANSPORT = ("timeout", "lost_after_commit", "http500", "reset", "garbled", "bad_signature")
# Each unsafe call takes all six transport faults; the calls around them the rest.  No more faults
# per interface than calls the payments below are sure to make, so every one fires (asserted).
WECHAT = {
    "wechat.jsapi": TRANSPORT + ("wrong_serial",),
    "wechat.medins_order": TRANSPORT,
    "wechat.medins_query": ("http500", "garbled", "skew"),
    "wechat.transaction_query": ("reset", "probe"),
    "wechat.close": (),
    "wechat.refund": TRANSPORT + ("refund_processing", "refund_closed"),
    "wechat.refund_query": ("http500", "wrong_serial"),
    "wechat.medins_refund_notify": ("timeout", "http500", "bad_signature"),
    # the auth code exchange (a read, asked again): faults that lose the request before it is
    # served.  One served and lost consumes the single-use code: that payment fails
    # AUTH_REJECTED before any money moves (the unit table, test_channel_payment.py).
    "wechat.auth_query": ("http500", "reset"),
}
ALIPAY = {
    "alipay.commerce.medical.authinfo.auth.query": ("http500", "unsigned_error", "bad_signature"),
    "alipay.commerce.medical.payment.createandpay": TRANSPORT,
    "alipay.commerce.medical.payment.query": ("http500", "garbled", "unsigned_error"),
    "alipay.trade.refund": TRANSPORT + ("unsigned_error",),
    "alipay.trade.fastpay.refund.query": ("reset", "bad_signature"),
}
BUSY = [("wechat.refund", "FREQUENCY_LIMITED"), ("alipay.trade.refund", "isp.unknow-error"),
        ("wechat.medins_order", "SYSTEM_ERROR")]
PER_CHANNEL = 6


@pytest.fixture(scope="module")
def storm(ch_sim, tmp_path_factory):
    # Every payment here is paid: the deadline (4 s by default in these tests) is not under
    # test, and a storm of retried faults on a loaded machine outlasted it (a row revoked).
    b, stop = start_bridge("sqlite", tmp_path_factory.mktemp("storm"), ch_sim, name="storm",
                           payment_deadline_seconds=20)
    yield b
    ch_sim.clear_faults()
    stop()


def test_every_fault_on_every_new_call(storm, sim):
    b = storm
    for table in (WECHAT, ALIPAY):
        for interface, faults in table.items():
            for fault in faults:
                sim.arm(interface, fault)
    for interface, code in BUSY:
        sim.arm(interface, "business_error", code=code)
    # The flow takes WeChat's transaction_id from a verified TRANSACTION.SUCCESS callback and
    # asks transaction_query only without one: two such callbacks are lost (3 attempts each),
    # so those payments ask, and the query's faults fire whatever the timing.
    sim.arm("wechat.notify.transaction", "drop", times=6)
    pays = {}
    for channel in ("wechat", "alipay"):
        for i in range(PER_CHANNEL + (1 if channel == "wechat" else 0)):
            key = new_key("FS")
            person = sim.person(account="none")
            exchange = i < 3        # mibridge asks the channel for the payAuthNo
            if channel == "alipay" and exchange:
                doc = pay_doc(sim, person, channel=channel, pay_auth_no=None,
                              alipay_user_id=f"2088{person['psn_no'][-12:]}")
                sim.control("POST", "/__sim__/alipay/authorize", {"alipay_user_id": doc["alipay_user_id"],
                                                                   "psn_no": person["psn_no"]})
            elif exchange:
                doc = pay_doc(sim, person, channel=channel, pay_auth_no=None,
                              auth_code=sim.wechat_auth_code(OPENID, person["psn_no"]))
            else:
                doc = pay_doc(sim, person, channel=channel)
            b.enqueue("mobilepay.outpatient", key, doc)
            pays[key] = channel
    rows = b.wait_final(*pays, timeout=90)
    assert {k: r["state"] for k, r in rows.items()} == {k: "done" for k in rows}, rows
    last = next(k for k in reversed(list(pays)) if pays[k] == "wechat")      # refunded after the storm
    for key in pays:
        if key != last:
            b.enqueue("mobilepay.refund", "R" + key, {"payment_key": key}, serial_key=key)
    rows = b.wait_final(*["R" + k for k in pays if k != last], timeout=90)
    assert {k: r["state"] for k, r in rows.items()} == {k: "done" for k in rows}, rows
    left = sim.control("GET", "/__sim__/faults")["armed"]
    assert left == [], f"faults that never fired: {left}"

    # A refund that ends ABNORMAL is held for a person, with what to do and what already happened.
    sim.arm("wechat.refund", "refund_abnormal")
    b.enqueue("mobilepay.refund", "R" + last, {"payment_key": last}, serial_key=last)
    row = b.wait_final("R" + last)["R" + last]
    assert (row["state"], row["code"]) == ("held", "CASH_REFUND_ABNORMAL"), row
    assert "apply for the abnormal refund" in row["message"] and "6203" in row["message"]

    legs_all = sim.legs()["by_order"]
    for key, channel in pays.items():
        [s] = [r for r in b.inbox(key) if r["type"] == "settlement"]
        legs = legs_all[s["order_id"]]
        assert legs["fund"]["charges"] == 1 and legs["fund"]["refunds"] == 1, (key, legs)
        assert cash_of(legs, channel)[:2] == (s["cash"], 1), (key, legs)
        assert cash_of(legs, channel)[2:] == ((s["cash"], 1) if key != last else (0, 0)), (key, legs)
    wx = sim.control("GET", "/__sim__/wechat/state")
    for key, channel in pays.items():
        if channel == "wechat":
            mine = [r for r in wx["refunds"].values() if r["out_trade_no"] == keys.out_trade_no(key)]
            assert sum(1 for r in mine if r["status"] == "SUCCESS") == (0 if key == last else 1), mine
