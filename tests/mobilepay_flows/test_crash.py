"""SIGKILL of the daemon at each mobile-pay call, then a fresh daemon.

One batch covers every call: A is paid normally; B is paid and then rejected by
the HIS (repair refund, 6203); C is paid and refunded by the HIS (6203); D is
never paid (the deadline revokes it, 6401).  The crashing daemon kills itself at
the named point (bridge/engine/crashpoints.py); a fresh one finishes the batch.
Nothing may be charged or refunded twice, and every row must end as expected."""
from __future__ import annotations

import pytest

from bridge.db.store import Store
from bridge.mobilepay.flows import KIND_OUTPATIENT, KIND_REFUND
from tests.conftest import SERVER_DIALECTS, make_database
from tests.engine.daemonproc import DaemonProcess

from .harness import DEADLINE, His, assert_paid_once, assert_refunds_within_paid, new_key, payment, wait_for

pytestmark = pytest.mark.slow

SQLITE_POINTS = ["after_claim", "after_journal:6202", "after_call:6202", "after_call:6301",
                 "after_journal:6203", "after_call:6203", "after_call:6401", "after_inbox"]
# On the servers, the two points where a resend would charge or refund twice.
SERVER_POINTS = ["after_call:6202", "after_call:6203"]
CASES = [("sqlite", p) for p in SQLITE_POINTS] + [(d, p) for d in SERVER_DIALECTS for p in SERVER_POINTS]


@pytest.mark.parametrize("dialect, point", CASES)
def test_sigkill_at_each_call_then_restart(mp_sim, tmp_path, dialect, point):
    sim = mp_sim
    sim.clear_faults()
    url, drop = make_database(dialect, tmp_path)
    extra, env = sim.daemon_toml()
    his = His(url, sim)
    store = Store(url)
    try:
        a, b, c, d = new_key("A"), new_key("B"), new_key("C"), new_key("D")
        rf = new_key("RF")
        his.rejects.add(b)
        his.unpaid.add(d)
        for key, person in ((a, sim.person()), (b, sim.person("390", "none")), (c, sim.person("390", "none")),
                            (d, sim.person())):
            store.enqueue(KIND_OUTPATIENT, key, payment(sim, person))
        store.enqueue(KIND_REFUND, rf, {"payment_key": c, "amount": "10.00"}, serial_key=c)
        his.start()
        crashing = DaemonProcess(tmp_path, url, None, name="crashing", workers=2, lease=3.0,
                                 crash_at=point, extra=extra, env=env)
        rc = crashing.wait_exit(DEADLINE + 30)
        assert rc == -9, f"expected SIGKILL at {point}, got {rc}; log:\n{crashing.tail()}"
        fresh = DaemonProcess(tmp_path, url, None, name="fresh", workers=2, lease=3.0, extra=extra, env=env)
        try:
            def final():
                rows = {r[0]: (r[1], r[2]) for r in store.query(
                    "SELECT business_key, state, last_error_code FROM mi_outbox")}
                return rows if all(s in ("done", "failed", "held", "resolved") for s, _ in rows.values()) else None
            rows = wait_for(final, DEADLINE + 40, "all rows final")
        finally:
            assert fresh.terminate() == 0, fresh.tail()
        assert rows == {a: ("done", None), b: ("failed", "REVERSED"), c: ("done", None), rf: ("done", None),
                        d: ("failed", "EXPIRED")}, (rows, fresh.tail())
        st = sim.state()
        for key in (a, b, c):
            assert assert_paid_once(sim, key, st), f"{key} not charged"
        assert assert_paid_once(sim, d, st) == {}
        (order_b,) = sim.orders_for(b, st)
        (order_c,) = sim.orders_for(c, st)
        assert len(sim.events("mobilepay.refund", order_b["payOrdId"], st)) == 1
        assert len(sim.events("mobilepay.refund", order_c["payOrdId"], st)) == 1
        assert order_b["ordStas"] == "7" and order_c["refunded"]["cash"] == "10.00"
        assert_refunds_within_paid(sim, st)
        # one settlement row per paid request for the HIS
        n = store.query("""SELECT business_key, COUNT(*) FROM mi_inbox WHERE result_type = 'settlement'
                            GROUP BY business_key""")
        assert {r[0]: int(r[1]) for r in n} == {a: 1, b: 1, c: 1}
    finally:
        his.stop()
        store.close()
        drop()
