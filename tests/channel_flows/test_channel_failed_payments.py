"""Channel payments that do not stand, end to end on each database: mibridge gives the cash back
itself and ends the payment failed with the refund named, and what comes late about that cash
alarms nobody (bridge/mobilepay/payment.py, bridge/channels/notice_check.py,
bridge/channels/unmatched.py); a payment under a business key the other payment kind has is
refused before any call (bridge/mobilepay/channel_payment.py).  The decisions are the unit
tables' (tests/flows_unit/test_channel_payment.py, test_channel_notice_check.py); these prove
the wiring: the final rows and flow_data carry what the callback endpoint and the refunds read."""
from __future__ import annotations

import pytest

from bridge.channels import keys
from bridge.db.store import Store
from tests.conftest import DIALECTS
from tests.mobilepay_flows.harness import new_key

from .conftest import start_bridge
from .harness import cash_of, legs_of, pay_doc, wait_for

# The settle window of this module's daemon: long enough for the HIS's revoke to land while a
# payment whose cash was taken waits it out (the other modules' 1.8 s is not).
SETTLE = 6.0


@pytest.fixture(scope="module", params=DIALECTS)
def bridge(request, ch_sim, tmp_path_factory):
    b, stop = start_bridge(request.param, tmp_path_factory.mktemp(f"chl-{request.param}"), ch_sim,
                           payment_deadline_seconds=20, settle_seconds=SETTLE)
    yield b
    ch_sim.clear_faults()
    stop()

# The refund callback is held back this long by the simulator, so that it arrives after the
# payment ended (revoke and close take well under a second after the refund succeeded).
LATE = 5.0
REFUND_CALLBACK = {"wechat": "wechat.notify.refund", "alipay": "alipay.notify"}
REFUND_NOTICE = {"wechat": "wechat.refund", "alipay": "alipay.refund"}


@pytest.mark.parametrize("channel", ["wechat", "alipay"])
def test_the_late_refund_callback_of_a_failed_payments_own_cash_refund_alarms_nobody(bridge, sim, channel):
    """The insurance part fails after the cash was taken: mibridge refunds the cash under the
    payment's F number, revokes the centre's order and ends PAYMENT_FAILED - a failed row that
    names the refund, no `reversal` row (nothing was settled).  The channel's refund callback
    comes after that end: it is the payment's own refund, so no check is held for a person
    (one held here would tell staff to look at money that is already back)."""
    key = new_key("IF")
    rev = keys.reversal_no(key)
    bridge.his.outcomes[key] = "insurance_fail"
    bridge.enqueue("mobilepay.outpatient", key, pay_doc(sim, sim.person(account="none"), channel=channel))
    wait_for(lambda: key in bridge.his.paid, 20, "paid in the cashier")
    sim.arm(REFUND_CALLBACK[channel], "out_of_order", delay=LATE)
    row = bridge.wait_final(key)[key]
    assert (row["state"], row["code"]) == ("failed", "PAYMENT_FAILED"), row
    inbox = bridge.inbox(key)
    assert not [r for r in inbox if r["type"] == "reversal"]
    [failed] = [r for r in inbox if r["type"] == "error"]
    assert (failed["result"]["out_refund_no"], failed["result"]["channel"]) == (rev, channel), failed
    assert rev in failed["message"]

    def recorded_after_the_end():
        return bridge.q(
            "SELECT COUNT(*) FROM mi_notice n, mi_outbox o WHERE o.kind = 'mobilepay.outpatient' "
            "AND o.business_key = :k AND n.interface = :i AND n.notice_key LIKE :n "
            "AND n.first_received_at > o.updated_at", {"k": key, "i": REFUND_NOTICE[channel], "n": f"%{rev}%"})[0][0]
    wait_for(recorded_after_the_end, 30, "the refund callback, recorded after the payment ended")
    wait_for(lambda: sim.callbacks()["idle"], 20, "callbacks delivered")
    checks = bridge.q("SELECT business_key, state, last_error_code, last_error_message FROM mi_outbox "
                      "WHERE kind = 'channel.notice_check' AND business_key LIKE :n", {"n": f"%{rev}%"})
    # The endpoint matched it at once (the payment names its refund): no check at all.
    assert checks == [], f"a matched refund was checked or held for a person: {checks}"


@pytest.mark.parametrize("channel", ["wechat", "alipay"])
def test_the_cash_paid_before_the_his_revoke_landed_is_refunded_not_held(bridge, sim, channel):
    """The patient pays the cash and the insurance part fails; the HIS revokes (6401) while the
    payment waits out the settle window; WeChat's cash order cannot be closed any more (paid).
    The centre says revoked, the channel says cash paid: the payment refunds the cash itself
    (no second 6401) and ends REVOKED naming the refund - no row held for a person."""
    key = new_key("RC")
    bridge.his.outcomes[key] = "insurance_fail"
    bridge.enqueue("mobilepay.outpatient", key, pay_doc(sim, sim.person(account="none"), channel=channel))
    wait_for(lambda: key in bridge.his.paid, 20, "paid in the cashier")
    his = Store(bridge.url)
    try:
        his.enqueue("mobilepay.revoke", "RV-" + key, {"payment_key": key})
    finally:
        his.close()
    rows = bridge.wait_final(key, "RV-" + key, timeout=60)
    assert (rows["RV-" + key]["state"], rows[key]["state"], rows[key]["code"]) == ("done", "failed", "REVOKED"), \
        (rows, bridge.daemon.tail(40))
    [failed] = [r for r in bridge.inbox(key) if r["type"] == "error"]
    assert (failed["result"]["out_refund_no"], failed["result"]["cash_refunded"]) == (keys.reversal_no(key),
                                                                                      "36.00"), failed
    assert [c for c in bridge.calls(key) if c[0] == "6401"] == []           # the HIS's 6401 was the only one
    order = next(r for r in bridge.inbox(key) if r["type"] == "order")
    legs = legs_of(sim, order["order_id"])
    assert cash_of(legs, channel) == (order["cash"], 1, order["cash"], 1)
    assert not legs.get("fund") or legs["fund"]["charges"] == 0
    assert bridge.q("SELECT COUNT(*) FROM mi_outbox WHERE state = 'held'") == [(0,)]


def test_a_registration_under_an_outpatient_bills_key_is_refused_and_the_bill_refunds(bridge, sim):
    """One business key is one medOrgOrd at the centre and one out_trade_no at the channel: the
    registration enqueued under the outpatient bill's key is refused before any call, and the
    bill's refund still finds its payment (the refused registration names nothing)."""
    key = new_key("DK")
    bridge.enqueue("mobilepay.outpatient", key, pay_doc(sim, sim.person(account="none"), channel="wechat"))
    bridge.enqueue("mobilepay.registration", key, pay_doc(sim, sim.person(account="none"), ("12.00",),
                                                          channel="wechat"))
    final = ("done", "failed", "resolved", "held")
    reg = wait_for(lambda: (r := bridge.row(key, "mobilepay.registration"))["state"] in final and r, 60,
                   "the registration final")
    assert (reg["state"], reg["code"]) == ("failed", "BAD_INPUT") and "mobilepay.outpatient" in reg["message"], reg
    assert bridge.row(key, "mobilepay.outpatient")["state"] == "done"
    assert bridge.q("SELECT COUNT(*) FROM mi_journal j JOIN mi_outbox o ON o.id = j.outbox_id "
                    "WHERE o.kind = 'mobilepay.registration' AND o.business_key = :k", {"k": key}) == [(0,)]
    assert len(sim.orders_for(key)) == 1
    bridge.enqueue("mobilepay.refund", "R" + key, {"payment_key": key}, serial_key=key)
    rows = bridge.wait_final("R" + key)
    assert rows["R" + key]["state"] == "done", rows
