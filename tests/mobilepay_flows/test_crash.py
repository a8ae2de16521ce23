"""SIGKILL of the daemon at each mobile-pay call, then a fresh daemon.

One batch covers every call: A is paid normally; B is paid and then rejected by
the HIS (repair refund, 6203); C is paid and refunded by the HIS (6203); D is
never paid (the deadline revokes it, 6401).  The crashing daemon kills itself at
the named point (bridge/engine/crashpoints.py); a fresh one finishes the batch.
Nothing may be charged or refunded twice, and every row must end as expected."""
from __future__ import annotations

import pytest

from bridge.db.store import Store
from bridge.mobilepay.kinds import KIND_NOTICE_CHECK, KIND_OUTPATIENT, KIND_REFUND
from tests.conftest import SERVER_DIALECTS, make_database
from tests.engine.daemonproc import DaemonProcess

from .harness import DEADLINE, His, assert_paid_once, assert_refunds_within_paid, new_key, payment, wait_for

pytestmark = pytest.mark.slow

SQLITE_POINTS = ["after_claim", "after_journal:6202", "after_call:6202", "after_call:6301",
                 "after_journal:6203", "after_call:6203", "after_call:6401", "after_inbox"]
# On the servers, the two points where a resend would charge or refund twice.
SERVER_POINTS = ["after_call:6202", "after_call:6203"]
CASES = [("sqlite", p) for p in SQLITE_POINTS] + [(d, p) for d in SERVER_DIALECTS for p in SERVER_POINTS]
# A paid request whose 6202 answer dies with the daemon is placed again only after the
# lease runs out and a fresh daemon starts: longer than the usual 4 s deadline on a
# loaded machine, and A would be revoked before the HIS could pay it.
CRASH_DEADLINE = 2 * DEADLINE


@pytest.mark.parametrize("dialect, point", CASES)
def test_sigkill_at_each_call_then_restart(mp_sim, tmp_path, dialect, point):
    sim = mp_sim
    sim.clear_faults()
    url, drop = make_database(dialect, tmp_path)
    extra, env = sim.daemon_toml(payment_deadline_seconds=CRASH_DEADLINE)
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
        rc = crashing.wait_exit(CRASH_DEADLINE + 30)
        assert rc == -9, f"expected SIGKILL at {point}, got {rc}; log:\n{crashing.tail()}"
        fresh = DaemonProcess(tmp_path, url, None, name="fresh", workers=2, lease=3.0, extra=extra, env=env)
        try:
            def final():
                # The requests of the batch; a late 6302 notice may add a notice check
                # under a payment's business key (it must end quietly: checked below).
                every = store.query("SELECT business_key, state, last_error_code, kind FROM mi_outbox")
                if not all(r[1] in ("done", "failed", "held", "resolved") for r in every):
                    return None
                return {r[0]: (r[1], r[2]) for r in every if r[3] != KIND_NOTICE_CHECK}
            rows = wait_for(final, CRASH_DEADLINE + 40, "all rows final")
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
        # A notice check a late notice enqueued found money matched: nobody was alerted.
        checks = store.query("SELECT state FROM mi_outbox WHERE kind = :k", {"k": KIND_NOTICE_CHECK})
        assert all(r[0] == "done" for r in checks), checks
    finally:
        his.stop()
        store.close()
        drop()
