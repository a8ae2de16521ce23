"""What the operations tests share: a database with rows in every state an
operator meets (held with and without a call in doubt, in doubt, pending, done),
console users, and a console served by the daemon's own HTTP listener."""
from __future__ import annotations

import secrets

from werkzeug.security import generate_password_hash

from bridge.db.store import InboxRow, Store
from daemon.config import ConsoleConfig, ConsoleUser

PASSWORDS = {"olga": "operator-pw-" + secrets.token_hex(4), "victor": "viewer-pw-" + secrets.token_hex(4)}
# Hashing is slow on purpose: once per test session.
_HASHES = {name: generate_password_hash(pw) for name, pw in PASSWORDS.items()}


def console_env(monkeypatch) -> ConsoleConfig:
    """[console] as an operator writes it, secrets in the environment."""
    monkeypatch.setenv("MI_TEST_CONSOLE_SECRET", secrets.token_urlsafe(48))
    monkeypatch.setenv("MI_TEST_HASH_OLGA", _HASHES["olga"])
    monkeypatch.setenv("MI_TEST_HASH_VICTOR", _HASHES["victor"])
    return ConsoleConfig(enabled=True, listen="127.0.0.1:0", secret_key_env="MI_TEST_CONSOLE_SECRET",
                         users=[ConsoleUser(name="olga", role="operator", password_hash_env="MI_TEST_HASH_OLGA"),
                                ConsoleUser(name="victor", role="viewer", password_hash_env="MI_TEST_HASH_VICTOR")])


def fill(store: Store) -> dict:
    """Rows of every kind an operator meets.  Returns their ids by name."""
    ids = {}
    ids["held"] = store.enqueue("test.charge", "INV-HELD-1", {"patient_id": "P1", "total_amount": "12.50",
                                                              "id_no": "110101199003071234"})
    ids["held_doubt"] = store.enqueue("test.charge", "INV-DOUBT-2", {"patient_id": "P2", "total_amount": "3.00"})
    ids["pending"] = store.enqueue("test.charge", "INV-WAIT-3", {"patient_id": "P3", "total_amount": "1.00"})
    ids["done"] = store.enqueue("test.charge", "INV-DONE-4", {"patient_id": "P4", "total_amount": "4.00"})
    rows = {r.id: r for r in store.claim("w", 30, limit=10)}
    # held, no call in doubt (a safe step gave up)
    store.begin_call(ids["held"], "w", "charge", "MSG-H1", "charge", '{"certno": "110101********1234"}',
                     unsafe=False)
    store.end_call("MSG-H1", "rejected", 503, '{"error": "busy"}', "platform busy")
    store.release(rows[ids["held"]], "w", "held", 0, {}, error_code="NOTIFY_FAILED",
                  error_message="gave up after 10 attempts: platform busy", keep_call=False,
                  inbox=[InboxRow("held", "held", "NOTIFY_FAILED", "gave up")])
    # held inside an unsafe call whose answer was lost
    store.begin_call(ids["held_doubt"], "w", "charge", "MSG-D2", "charge", "{}", unsafe=True)
    store.end_call("MSG-D2", "unknown", None, None, "read timeout")
    store.release(rows[ids["held_doubt"]], "w", "held", 0, {}, error_code="CHARGE_IN_DOUBT",
                  error_message="the charge may have been booked", keep_call=True)
    store.release(rows[ids["pending"]], "w", "pending", 3600, {}, error_code=None, error_message=None,
                  keep_call=False)
    store.finish(rows[ids["done"]], "w", "done", {}, [InboxRow("charge", "ok")])
    return ids


PSN = "44010000000000012345"        # an insured person number: shown masked, never whole


def fill_book(store: Store, bulk: int = 0) -> dict:
    """An order book and reconciliation results as the engine and a run write them (the
    real Store and Runs code): a WeChat payment with two refunds, an Alipay payment, a
    face-pay settlement cancelled, a refund whose payment the book lacks, `bulk` small
    payments on 2024-02-28 (for paging); reconciliation of 2024-03-01 (offline: a failed
    run, then a done run with differences; mobile pay balanced) and a run of 2024-03-02
    still going.  Returns outbox ids and run ids by name."""
    from bridge.reconcile.model import Item
    from bridge.reconcile.runs import Runs
    from tests.reconcile.helpers import D, refund, settlement, setlinfo, write

    ids = {}
    ids["mp1"] = write(store, "mobilepay.outpatient", "INV-MP-1", [settlement(
        "PO-MP-1", "120.00", "70.00", "30.00", "20.00", channel="wechat", out_trade_no="OTN-MP-1",
        psn_no=PSN, traceTime="20240301093000")])
    ids["rf1"] = write(store, "mobilepay.refund", "RF-MP-1a", [refund(
        "PO-MP-1", "5.50", "0.00", "0.00", "5.50", out_refund_no="WXR-1", refund_time="2024-03-01 11:00:00")],
        serial="INV-MP-1")
    ids["rf2"] = write(store, "mobilepay.refund", "RF-MP-1b", [refund(
        "PO-MP-1", "30.00", "0.00", "30.00", "0.00", refund_time="2024-03-02 08:00:00")], serial="INV-MP-1")
    ids["mp2"] = write(store, "mobilepay.outpatient", "INV-MP-2", [settlement(
        "PO-MP-2", "50.00", "35.00", "15.00", "0.00", channel="alipay", traceTime="20240302100000")])
    ids["fp3"] = write(store, "facepay.outpatient.settle", "INV-FP-3",
                       [settlement(None, "100.00", "70.00", "30.00", "0.00", settlement_id="SETL-FP-3",
                                   refNo="REF77", termSeqNo="T0001")],
                       journal=[("2207", setlinfo("SETL-FP-3", setl_time="2024-03-01 15:00:00"))])
    ids["cx3"] = write(store, "facepay.outpatient.cancel", "CX-FP-3", [refund(
        None, "100.00", "70.00", "30.00", "0.00", result_type="cancellation", settlement_id="SETL-FP-3",
        cancel_time="2024-03-01 16:00:00")], serial="INV-FP-3")
    ids["orphan"] = write(store, "mobilepay.refund", "RF-ORPHAN", [refund(
        "PO-GONE", "8.00", "0.00", "0.00", "8.00", refund_time="2024-03-01 12:00:00")])
    for n in range(bulk):
        write(store, "mobilepay.outpatient", f"INV-BULK-{n:03d}", [settlement(
            f"PO-BULK-{n:03d}", "1.00", "0.00", "0.00", "1.00", channel="wechat", traceTime="20240228080000")])

    runs = Runs(store)
    ids["run_failed"] = runs.start("2024-03-01", "offline")
    runs.fail(ids["run_failed"], "3201: connection refused")
    r = ids["run_offline"] = runs.start("2024-03-01", "offline")
    runs.add_items(r, [
        Item("SETL-FP-3", "total", "balanced", "3202", D("0.00"), D("0.00"), business_key="INV-FP-3"),
        Item("SETL-FP-3", "fund", "balanced", "3202", D("0.00"), D("0.00"), business_key="INV-FP-3"),
        Item("SETL-X-9", "total", "platform_only", "3202", None, D("42.00"),
             note="centre has it; patient 110101199003071234 at the desk"),
        Item("SETL-Y-8", "total", "amount_differs", "3202", D("10.00"), D("10.01"), business_key="INV-Y-8"),
        Item("SETL-Z-7", "total", "hospital_only", "3202", D("5.00"), None, business_key="INV-Z-7")])
    runs.complete(r, balanced=False, counts=runs.counts(r), digest=runs.digest(r), report=None)
    m = ids["run_mobilepay"] = runs.start("2024-03-01", "mobilepay")
    runs.add_items(m, [Item("PO-MP-1", "cash", "balanced", "6301", D("14.50"), D("14.50"),
                            business_key="INV-MP-1")])
    runs.complete(m, balanced=True, counts=runs.counts(m), digest=runs.digest(m), report=None)
    ids["run_running"] = runs.start("2024-03-02", "offline")
    return ids
