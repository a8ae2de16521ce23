"""Mobile pay: waiting is not failing, a busy centre is not a verdict, and no token or
patient identity in the rows the HIS reads (issue 10 items 3, 3b, 7).

Daemon rounds run in this process (tests/dbclock.py) so that the shipped settle window
(MobilePaySettings.settle_seconds) can pass on the database clock without sleeping; the
centre is the simulator over HTTP; the database is real (SQLite, PostgreSQL, MariaDB).
"""
from __future__ import annotations

import json
from decimal import Decimal

import pytest

from bridge.mobilepay.flows import KIND_OUTPATIENT, KIND_REFUND, MobilePaySettings
from tests.conftest import DIALECTS, make_database
from tests.dbclock import Rounds

from .harness import assert_paid_once, new_key, payment

pytestmark = pytest.mark.slow
SHIPPED = MobilePaySettings()


@pytest.fixture
def rounds(request, sim, tmp_path, monkeypatch):
    url, drop = make_database(request.param, tmp_path)
    toml, env = sim.daemon_toml(settle_seconds=SHIPPED.settle_seconds)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    r = Rounds(tmp_path, url, toml)
    try:
        yield r
    finally:
        r.close()
        drop()


def _row_id(r: Rounds, kind: str, key: str) -> int:
    return int(r.store.query("SELECT id FROM mi_outbox WHERE kind = :k AND business_key = :b",
                             {"k": kind, "b": key})[0][0])


def _inbox(r: Rounds, key: str) -> list[dict]:
    rows = r.store.query("""SELECT id, result_type, outcome, order_id, consumed_at, result_json FROM mi_inbox
                             WHERE business_key = :k ORDER BY id""", {"k": key})
    return [dict(zip(("id", "type", "outcome", "order_id", "consumed", "result"), x)) for x in rows]


def _his_round(r: Rounds, sim, key: str) -> None:
    """The HIS: the patient pays each order, the HIS takes each settlement."""
    for row in _inbox(r, key):
        if row["consumed"] is not None:
            continue
        if row["type"] == "order":
            sim.pay(row["order_id"])
        r.store.execute("UPDATE mi_inbox SET consumed_at = CURRENT_TIMESTAMP, his_ack = 'accepted' "
                        "WHERE id = :i AND consumed_at IS NULL", {"i": row["id"]})


def _paid(r: Rounds, sim, key: str, doc: dict, kind: str = KIND_OUTPATIENT) -> int:
    r.store.enqueue(kind, key, doc)
    rid = _row_id(r, kind, key)

    def done():
        _his_round(r, sim, key)
        return r.row(rid)["state"] in ("done", "failed", "held")
    r.run_until(done)
    return rid


@pytest.mark.parametrize("rounds", DIALECTS, indirect=True)
def test_a_lost_order_never_placed_is_placed_after_the_shipped_window(rounds, sim):
    # 6202 lost and never booked (HTTP 500: nothing committed).  Inside the 60 s window the
    # resolver's 6301 shows the order still only uploaded: waiting.  Woken early again and
    # again (a notice pokes it, a person requeues it), those waits must not use attempts.
    r = rounds
    key = new_key()
    sim.arm("6202", "http500")
    r.store.enqueue(KIND_OUTPATIENT, key, payment(sim, sim.person()))
    rid = _row_id(r, KIND_OUTPATIENT, key)
    r.run_until(lambda: r.row(rid)["state"] == "in_doubt")
    waits = 0
    while r.row(rid)["state"] == "in_doubt" and waits < 40:
        assert r.row(rid)["attempts"] < r.row(rid)["max_attempts"]
        r.due(rid)
        r.round()
        row = r.row(rid)
        if row["state"] == "in_doubt" and row["code"] == "NOT_SETTLED_YET":
            waits += 1
            r.age_call(rid, 5.0)
    assert waits > r.row(rid)["max_attempts"], waits
    assert r.row(rid)["state"] not in ("held", "in_doubt"), r.row(rid)

    def done():
        _his_round(r, sim, key)
        return r.row(rid)["state"] == "done"
    r.run_until(done)
    assert_paid_once(sim, key)


@pytest.mark.parametrize("rounds", ["sqlite"], indirect=True)
def test_a_busy_centre_is_asked_again_not_taken_as_a_refusal(rounds, sim):
    # "系统繁忙" says nothing about the order: 6202 is sent again later (it moved nothing),
    # the patient pays, the HIS gets its settlement.  A real refusal still fails the row.
    r = rounds
    busy, refused = new_key(), new_key()
    sim.arm("6202", "business_error", message="系统繁忙，请稍后再试", times=2)
    rid = _paid(r, sim, busy, payment(sim, sim.person()))
    assert r.row(rid)["state"] == "done", (r.row(rid), _inbox(r, busy))
    assert [c[:2] for c in r.calls(rid, "6202")] == [("6202", "rejected")] * 2 + [("6202", "ok")]
    assert_paid_once(sim, busy)

    sim.arm("6202", "business_error", message="支付授权码已失效")
    rid = _paid(r, sim, refused, payment(sim, sim.person()))
    assert (r.row(rid)["state"], r.row(rid)["code"]) == ("failed", "ORDER_REJECTED")


@pytest.mark.parametrize("rounds", DIALECTS, indirect=True)
def test_no_token_or_identity_in_rows_the_his_reads(rounds, sim):
    r = rounds
    key, rf = new_key(), new_key("RF")[:30]
    person = sim.person()
    doc = payment(sim, person)
    rid = _paid(r, sim, key, doc)
    assert r.row(rid)["state"] == "done"
    assert_paid_once(sim, key)
    fd = r.store.query("SELECT flow_data FROM mi_outbox WHERE id = :i", {"i": rid})[0][0]
    assert "payToken" not in fd and "pay_auth_no" not in fd, fd
    # The payToken is the daemon's (mi_secret), kept for the refunds of this payment (the
    # refund's 6301 below proves it is the centre's: it checks the token).
    secrets = r.store.secrets(rid)
    assert list(secrets) == ["payToken"] and secrets["payToken"]
    token = secrets["payToken"]

    # A refund whose 6203 answer is lost: its resolver asks 6301 with the payment's
    # payToken and patient, read where they are - nothing is copied into the refund.
    sim.arm("6203", "timeout")
    r.store.enqueue(KIND_REFUND, rf, {"payment_key": key}, serial_key=key)
    fid = _row_id(r, KIND_REFUND, rf)
    r.run_until(lambda: r.row(fid)["state"] in ("done", "failed", "held"))
    assert r.row(fid)["state"] == "done", r.row(fid)
    calls = [c[0] for c in r.calls(fid)]
    assert calls[0] == "6203" and set(calls[1:]) == {"6301"}, calls      # asked, never sent twice
    assert r.store.secrets(fid) == {}

    # A failed payment keeps nothing.
    bad = new_key()
    sim.arm("6201", "business_error", message="费用明细有误")
    bid = _paid(r, sim, bad, payment(sim, sim.person()))
    assert r.row(bid)["state"] == "failed" and r.store.secrets(bid) == {}

    # Nothing the HIS can read holds the token, the payAuthNo, the ID number or the name
    # - except the payloads the HIS wrote itself.
    needles = [token, doc["pay_auth_no"], person["certno"], person["psn_name"]]
    readable = [x for row in r.store.query("SELECT flow_data FROM mi_outbox") for x in row if x] + \
               [x for row in r.store.query("SELECT result_json, error_message FROM mi_inbox") for x in row if x]
    for text in readable:
        for n in needles:
            assert n not in text, (n, text)
    fd = json.loads(r.store.query("SELECT flow_data FROM mi_outbox WHERE id = :i", {"i": fid})[0][0])
    assert "patient" not in fd and "pay_auth_no" not in fd and "payToken" not in fd["settled"]
    assert Decimal(fd["fund"]) + Decimal(fd["account"]) + Decimal(fd["cash"]) == Decimal("120.00")


@pytest.mark.parametrize("rounds", ["sqlite"], indirect=True)
def test_a_payment_in_flight_across_the_upgrade_keeps_its_token_for_its_refunds(rounds, sim):
    # Before migration 003 the payToken sat in flow_data.  A payment waiting for the HIS
    # at the upgrade: its token moves to mi_secret when it finishes, and a refund whose
    # answer is lost can still ask 6301 with it.
    r = rounds
    key, rf = new_key(), new_key("RF")[:30]
    r.store.enqueue(KIND_OUTPATIENT, key, payment(sim, sim.person()))
    rid = _row_id(r, KIND_OUTPATIENT, key)

    def settled():
        for row in _inbox(r, key):
            if row["type"] == "order" and row["consumed"] is None:
                sim.pay(row["order_id"])
                r.store.execute("UPDATE mi_inbox SET consumed_at = CURRENT_TIMESTAMP, his_ack = 'accepted' "
                                "WHERE id = :i", {"i": row["id"]})
        return r.row(rid)["step"] == "await_his"
    r.run_until(settled)
    token = r.store.secrets(rid)["payToken"]
    fd = json.loads(r.store.query("SELECT flow_data FROM mi_outbox WHERE id = :i", {"i": rid})[0][0])
    fd["payToken"] = token
    fd["settled"]["payToken"] = token
    r.store.execute("UPDATE mi_outbox SET flow_data = :f WHERE id = :i", {"f": json.dumps(fd), "i": rid})
    r.store.execute("DELETE FROM mi_secret WHERE outbox_id = :i", {"i": rid})      # the old layout

    r.run_until(lambda: (_his_round(r, sim, key), r.row(rid)["state"] == "done")[1])
    assert r.store.secrets(rid) == {"payToken": token}
    assert "payToken" not in r.store.query("SELECT flow_data FROM mi_outbox WHERE id = :i", {"i": rid})[0][0]
    sim.arm("6203", "timeout")
    r.store.enqueue(KIND_REFUND, rf, {"payment_key": key}, serial_key=key)
    fid = _row_id(r, KIND_REFUND, rf)
    r.run_until(lambda: r.row(fid)["state"] in ("done", "failed", "held"))
    assert r.row(fid)["state"] == "done", r.row(fid)
