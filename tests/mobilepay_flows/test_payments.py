"""Mobile pay through the tables, on each database, with a real daemon process and
the simulator over HTTP: the happy paths, refunds, revokes, bad input, the
6302 notice endpoint, 单边账 repair, and one lost answer per kind (6202, 6203).

Every decision of the flows (each answer of each call, each resolver verdict inside
and past the settle window) is a unit case in tests/flows_unit/; these prove the
wiring on each database."""
from __future__ import annotations

from datetime import datetime

from decimal import Decimal

import httpx
import pytest

from bridge.mobilepay.flows import KIND_OUTPATIENT, KIND_REFUND, KIND_REGISTRATION, KIND_REVOKE

from .harness import (DEADLINE, HIS_WINDOW, NOTICE_PATH, assert_paid_once, assert_refunds_within_paid,
                      new_key, payment, wait_for)

D = Decimal


def _settlement(bridge, key):
    rows = [r for r in bridge.inbox(key) if r["type"] == "settlement"]
    assert len(rows) == 1, bridge.inbox(key)
    return rows[0]


def test_happy_paths_outpatient_and_registration_with_every_split(bridge, sim):
    """Mixed fund + account, fund + cash, all cash (zero fund), all fund, and the
    personal account switched off: each paid once, the split in the inbox equals
    what the centre charged, and the identity is written back."""
    cases = {
        new_key(): (KIND_OUTPATIENT, sim.person("310", "real", "5000.00"), {}),                   # fund + account
        new_key("REG"): (KIND_REGISTRATION, sim.person("390", "none"), {}),                      # fund + cash
        new_key(): (KIND_OUTPATIENT, sim.person("399", "none"), {}),                             # zero fund: all cash
        new_key(): (KIND_OUTPATIENT, sim.person("510", "real", "10.00"), {}),                    # all fund
        new_key(): (KIND_OUTPATIENT, sim.person("310", "real", "5000.00"), {"use_personal_account": False}),
    }
    for key, (kind, person, extra) in cases.items():
        bridge.enqueue(kind, key, payment(sim, person, **extra))
    rows = bridge.wait_final(*cases)
    st = sim.state()
    splits = {}
    for key, (kind, person, extra) in cases.items():
        assert rows[key]["state"] == "done", (rows[key], bridge.inbox(key))
        order = assert_paid_once(sim, key, st)
        s = _settlement(bridge, key)
        assert (s["total"], s["fund"], s["account"], s["cash"]) == (
            D(order["feeSumamt"]), D(order["fundPay"]), D(order["psnAcctPay"]), D(order["ownPayAmt"]))
        assert s["total"] == D("120.00") and s["fund"] + s["account"] + s["cash"] == s["total"]
        assert s["order_id"] == order["payOrdId"] and s["outcome"] == "ok"
        splits[key] = (s["fund"], s["account"], s["cash"])
        # the order row came first, with what the mini-program needs
        first = bridge.inbox(key)[0]
        assert first["type"] == "order" and first["result"]["payOrdId"] == order["payOrdId"]
        assert first["result"]["wechat"]["total_fee"] == 12000
        ident = bridge.q("SELECT psn_no, insutype, insuplc_admdvs FROM mi_identity WHERE his_patient_id = :p",
                                   {"p": f"P{person['psn_no'][-6:]}"})
        assert ident == [(person["psn_no"], person["insutype"], "440100")]
    k = list(cases)
    assert splits[k[0]] == (D("84.00"), D("36.00"), D("0.00"))
    assert splits[k[1]] == (D("66.00"), D("0.00"), D("54.00"))
    assert splits[k[2]] == (D("0.00"), D("0.00"), D("120.00"))
    assert splits[k[3]] == (D("120.00"), D("0.00"), D("0.00"))
    assert splits[k[4]] == (D("84.00"), D("0.00"), D("36.00"))
    # every payment got a verified 6302 notice, recorded once
    for key in cases:
        n = bridge.q("SELECT received_count FROM mi_notice WHERE business_key = :k", {"k": key})
        assert n == [(1,)]


def test_partial_then_full_refund_never_exceeds_what_was_paid(bridge, sim):
    key = new_key()
    bridge.enqueue(KIND_OUTPATIENT, key, payment(sim, sim.person("390", "none")))   # 66.00 fund + 54.00 cash
    # Enqueued together with the payment: the refunds wait for it (serial key).
    r1, r2, r3, r4 = new_key("RF"), new_key("RF"), new_key("RF"), new_key("RF")
    bridge.enqueue(KIND_REFUND, r1, {"payment_key": key, "amount": "10.00"}, serial_key=key)
    bridge.enqueue(KIND_REFUND, r2, {"payment_key": key, "amount": "999.00"}, serial_key=key)
    bridge.enqueue(KIND_REFUND, r3, {"payment_key": key}, serial_key=key)
    bridge.enqueue(KIND_REFUND, r4, {"payment_key": key}, serial_key=key)
    rows = bridge.wait_final(key, r1, r2, r3, r4)
    assert rows[key]["state"] == "done"
    assert rows[r1]["state"] == "done"
    refund1 = bridge.inbox(r1)[-1]
    assert (refund1["type"], refund1["fund"], refund1["account"], refund1["cash"]) == (
        "refund", D("0.00"), D("0.00"), D("10.00"))
    assert refund1["result"]["refdType"] == "CASH"
    assert (rows[r2]["state"], rows[r2]["code"]) == ("failed", "REFUND_EXCEEDS_PAID")
    assert rows[r3]["state"] == "done"
    refund3 = bridge.inbox(r3)[-1]
    assert (refund3["fund"], refund3["account"], refund3["cash"], refund3["result"]["refdType"]) == (
        D("66.00"), D("0.00"), D("44.00"), "ALL")
    assert (rows[r4]["state"], rows[r4]["code"]) == ("failed", "NOTHING_LEFT")
    st = sim.state()
    order = assert_paid_once(sim, key, st)
    assert order["ordStas"] == "7" and order["refunded"] == {"fund": "66.00", "acct": "0.00", "cash": "54.00"}
    assert len(sim.events("mobilepay.refund", order["payOrdId"], st)) == 2
    assert_refunds_within_paid(sim, st)
    # nothing was sent for the refused refunds
    assert bridge.calls(r2) == [] and bridge.calls(r4) == []


def test_revoke_before_payment_and_unpaid_order_expires(bridge, sim):
    cancelled, abandoned = new_key(), new_key()
    bridge.his.unpaid |= {cancelled, abandoned}
    bridge.enqueue(KIND_OUTPATIENT, cancelled, payment(sim, sim.person()))
    bridge.enqueue(KIND_OUTPATIENT, abandoned, payment(sim, sim.person()))
    wait_for(lambda: [r for r in bridge.inbox(cancelled) if r["type"] == "order"], 15, "order row")
    rv = new_key("RV")
    bridge.enqueue(KIND_REVOKE, rv, {"payment_key": cancelled})
    rows = bridge.wait_final(cancelled, abandoned, rv, timeout=DEADLINE + 20)
    assert rows[rv]["state"] == "done" and bridge.inbox(rv)[-1]["type"] == "revoke"
    # The payment's own deadline 6401 races the revoke's (bridge/mobilepay/revoke.py):
    # the HIS's revoke wins when its 6401 leaves before the deadline; on a loaded machine
    # it may leave after it, and then EXPIRED is the right ending (the money checks
    # below hold either way).
    def started(key, interface):
        (t,), = bridge.q("""SELECT MIN(j.started_at) FROM mi_journal j JOIN mi_outbox o ON o.id = j.outbox_id
                             WHERE o.business_key = :k AND j.interface = :i""", {"k": key, "i": interface})
        t = t if isinstance(t, datetime) else datetime.fromisoformat(str(t))
        return t.replace(tzinfo=None)
    late = (started(rv, "6401") - started(cancelled, "6202")).total_seconds() > DEADLINE
    expected = ("REVOKED", "EXPIRED") if late else ("REVOKED",)
    assert rows[cancelled]["state"] == "failed" and rows[cancelled]["code"] in expected, (rows, late)
    assert (rows[abandoned]["state"], rows[abandoned]["code"]) == ("failed", "EXPIRED")
    st = sim.state()
    for key in (cancelled, abandoned):
        (order,) = sim.orders_for(key, st)
        assert order["ordStas"] == "12"
        assert assert_paid_once(sim, key, st) == {}
        assert bridge.inbox(key)[-1]["outcome"] == "failed"
    # a revoke of a paid payment is refused: refund it instead
    paid = new_key()
    bridge.enqueue(KIND_OUTPATIENT, paid, payment(sim, sim.person()))
    bridge.wait_final(paid)
    rv2 = new_key("RV")
    bridge.enqueue(KIND_REVOKE, rv2, {"payment_key": paid})
    assert bridge.wait_final(rv2)[rv2]["code"] == "ALREADY_PAID"


# Every payload rule is a unit case (tests/flows_unit/test_payloads.py); here, once per
# database, the runner turns BadInput into a failed row with nothing sent.
@pytest.mark.parametrize("change, message", [
    (lambda p: p.update(total_amount="121.00"), "sum to 120.00"),
], ids=["lines-vs-total"])
def test_bad_input_is_refused_with_a_clear_error_and_nothing_is_sent(bridge, sim, change, message):
    key = new_key()
    doc = payment(sim, sim.person())
    change(doc)
    bridge.enqueue(KIND_OUTPATIENT, key, doc)
    row = bridge.wait_final(key)[key]
    assert (row["state"], row["code"]) == ("failed", "BAD_INPUT"), row
    assert message in row["message"]
    assert bridge.inbox(key)[-1]["outcome"] == "failed"
    assert bridge.calls(key) == [] and sim.orders_for(key) == []


def test_a_business_key_is_paid_once(bridge, sim):
    key = new_key()
    doc = payment(sim, sim.person())
    first = bridge.enqueue_as_his(KIND_OUTPATIENT, key, doc)
    assert bridge.enqueue_as_his(KIND_OUTPATIENT, key, doc) == first          # the same request again: no-op
    with pytest.raises(Exception, match="different payload"):
        bridge.enqueue_as_his(KIND_OUTPATIENT, key, {**doc, "total_amount": "99.00"})
    bridge.wait_final(key)
    assert_paid_once(sim, key)
    assert len(sim.orders_for(key)) == 1


def test_notice_endpoint_verifies_records_once_and_refuses_forgeries(bridge, sim):
    key = new_key()
    bridge.enqueue(KIND_OUTPATIENT, key, payment(sim, sim.person("390", "none")))
    bridge.wait_final(key)
    order = assert_paid_once(sim, key)
    notice = {"callType": "02", "payOrdId": order["payOrdId"], "medOrgOrd": key, "traceTime": "20261123101010",
              "feeSumamt": order["feeSumamt"], "fundPay": order["fundPay"], "psnAcctPay": order["psnAcctPay"],
              "ownPayAmt": order["ownPayAmt"], "setlType": "ALL"}
    url = f"http://127.0.0.1:{sim.port}{NOTICE_PATH}"
    count = lambda: bridge.q("SELECT received_count FROM mi_notice WHERE notice_key = :k",  # noqa: E731
                                       {"k": order["payOrdId"]})
    assert count() == [(1,)]
    # duplicated: acknowledged, counted, nothing else changes
    r = httpx.post(url, content=sim.platform_signed_notice(notice))
    assert r.status_code == 200 and r.json()["code"] in (0, "0")
    assert count() == [(2,)]
    # forged (signed by another key): refused, nothing written
    forged = {**notice, "payOrdId": "ORD-FORGED-1", "medOrgOrd": key}
    r = httpx.post(url, content=sim.forged_notice(forged))
    assert r.status_code == 400
    assert bridge.q("SELECT COUNT(*) FROM mi_notice WHERE notice_key = 'ORD-FORGED-1'") == [(0,)]
    # not even JSON
    assert httpx.post(url, content=b"hello").status_code == 400
    assert len([x for x in bridge.inbox(key) if x["type"] == "settlement"]) == 1
    assert bridge.row(key)["state"] == "done"


def test_his_rejects_a_settled_payment_and_it_is_refunded_in_full(bridge, sim):
    rejected, untaken = new_key(), new_key()
    bridge.his.rejects.add(rejected)
    bridge.his.ignores.add(untaken)
    bridge.enqueue(KIND_OUTPATIENT, rejected, payment(sim, sim.person("390", "none")))
    bridge.enqueue(KIND_OUTPATIENT, untaken, payment(sim, sim.person("310", "real")))
    rows = bridge.wait_final(rejected, untaken, timeout=HIS_WINDOW + 20)
    st = sim.state()
    for key in (rejected, untaken):
        assert (rows[key]["state"], rows[key]["code"]) == ("failed", "REVERSED"), rows[key]
        order = assert_paid_once(sim, key, st)
        assert order["ordStas"] == "7"
        assert len(sim.events("mobilepay.refund", order["payOrdId"], st)) == 1
        rev = bridge.inbox(key)[-1]
        assert rev["type"] == "reversal" and rev["total"] == D("120.00")
        assert ("6203", "ok") in bridge.calls(key)
    assert "did not take" in rows[untaken]["message"] and "rejected" in rows[rejected]["message"]
    # the untaken settlement row was withdrawn: the HIS can no longer accept it
    s = _settlement(bridge, untaken)
    taken = bridge.q("SELECT his_ack FROM mi_inbox WHERE business_key = :k AND result_type = 'settlement'",
                               {"k": untaken})
    assert taken == [("rejected",)] and s["outcome"] == "ok"
    assert_refunds_within_paid(sim, st)


@pytest.mark.parametrize("interface, fault", [("6202", "lost_after_commit"), ("6203", "timeout")])
def test_lost_answers_are_resolved_by_query_on_every_database(bridge, sim, interface, fault):
    """The full fault matrix runs on SQLite (test_faults.py); the two lost answers
    that could charge or refund twice run on every database."""
    key, rf = new_key(), new_key("RF")
    if interface == "6202":
        sim.arm("6202", fault)
    bridge.enqueue(KIND_OUTPATIENT, key, payment(sim, sim.person("390", "none")))
    assert bridge.wait_final(key, timeout=30)[key]["state"] == "done"
    if interface == "6203":
        sim.arm("6203", fault)
    bridge.enqueue(KIND_REFUND, rf, {"payment_key": key}, serial_key=key)
    assert bridge.wait_final(rf, timeout=30)[rf]["state"] == "done"
    st = sim.state()
    order = assert_paid_once(sim, key, st)
    assert len(sim.events("mobilepay.refund", order["payOrdId"], st)) == 1
    assert (interface, "unknown") in bridge.calls(rf if interface == "6203" else key)
    assert_refunds_within_paid(sim, st)


