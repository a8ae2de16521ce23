"""Late channel callbacks end to end on each database: a callback that arrives after its payment
ended is matched against the payment's own record and alarms nobody when the money is matched
(bridge/channels/notice_check.py, bridge/channels/unmatched.py).  The decisions are the unit
table's (tests/flows_unit/test_channel_notice_check.py); this proves the wiring: the payment's
final row and flow_data carry what the callback endpoint reads."""
from __future__ import annotations

import pytest

from bridge.channels import keys
from tests.mobilepay_flows.harness import new_key

from .harness import pay_doc, wait_for

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
