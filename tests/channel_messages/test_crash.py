"""SIGKILL of the daemon during a patient message's send, then a fresh daemon: the message
is sent at most once (bridge/engine/crashpoints.py).  On SQLite: the at-most-once rule is
the flow's (a journalled send whose answer was never written is never sent again), and the
engine's crash matrix covers the databases.

One database, three daemons in turn:
  A  killed after the journal row of M1's send, before it left      -> M1 never sent
  B  (M2 added) killed after M2's send returned, before its answer was written -> M2 sent once
  C  fresh: finishes both as "unknown", sends nothing."""
from __future__ import annotations

import uuid

import pytest

from bridge.db.store import Store
from tests.conftest import make_database
from tests.engine.daemonproc import DaemonProcess

from .conftest import daemon_toml, final, free_port, inbox, journal, message, add, subscribe, wechat_sent

SEND = "wechat.message.subscribe"


def _expire_leases(store: Store) -> None:
    """The killed daemon's lease runs out now (database clock), not in lease_seconds."""
    d = store.dialect
    store.execute(f"UPDATE mi_outbox SET lease_expires_at = {d.after('x')} WHERE state = 'running'",
                  {"x": d.seconds(-60)})


def _killed(tmp, url, sim, name: str, point: str) -> None:
    d = DaemonProcess(tmp, url, None, name=name, workers=1, lease=3.0, crash_at=f"{point}:{SEND}",
                      extra=daemon_toml(sim, free_port(), tmp))
    rc = d.wait_exit(40)
    assert rc == -9, f"expected SIGKILL at {point}, got {rc}:\n{d.tail()}"


@pytest.mark.slow
def test_sigkill_during_the_send_then_a_fresh_daemon_sends_at_most_once(msim, tmp_path):
    url, drop = make_database("sqlite", tmp_path)
    store = Store(url)
    try:
        u1, u2 = (f"o-crash-{uuid.uuid4().hex[:8]}" for _ in range(2))
        for u in (u1, u2):
            subscribe(msim, u)                      # a resend would go through: it must not happen
        m1, m2 = message("registration_paid", 901, openid=u1), message("registration_paid", 902, openid=u2)
        add(store, m1)
        _killed(tmp_path, url, msim, "a", "after_journal")
        assert wechat_sent(msim, u1) == []
        _expire_leases(store)
        add(store, m2)
        _killed(tmp_path, url, msim, "b", "after_call")
        assert len(wechat_sent(msim, u2)) == 1
        _expire_leases(store)
        fresh = DaemonProcess(tmp_path, url, None, name="c", workers=2, lease=3.0,
                              extra=daemon_toml(msim, free_port(), tmp_path))
        try:
            got = final(store, [m1.business_key, m2.business_key], timeout=40)
        finally:
            assert fresh.terminate() == 0, fresh.tail()
        for m, user, sent in ((m1, u1, 0), (m2, u2, 1)):
            row = got[m.business_key]
            assert (row["state"], row["data"]["outcome"]) == ("done", "unknown"), row
            assert len(wechat_sent(msim, user)) == sent
            [(iface, outcome, _)] = journal(store, row["id"])      # one journalled send, never a second
            assert (iface, outcome) == (SEND, None)
            [(_, result, code, body)] = inbox(store, row["id"])
            assert (result, code, body["sent"]) == ("failed", "SEND_UNKNOWN", None)
    finally:
        store.close()
        drop()
