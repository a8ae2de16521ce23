"""SIGKILL at the new unsafe calls (bridge/engine/crashpoints.py): the daemon dies just after
the channel answered, before the answer is written (after_call); a fresh daemon resolves the
call by the channel's query before anything is sent again.  (A call killed before it was sent,
after_journal, is resolved the same way and then sent: tests/flows_unit/test_channel_*.py
"not found past the settle window".)  Asserted on the simulator's per-leg ledger: no leg charged or refunded twice,
and every request final.

SQLite: one chain of daemons, each killed at the next unsafe call (the WeChat mixed order,
the Alipay medical order, the WeChat cash refund, the Alipay cash refund), then a daemon that
finishes everything.  PostgreSQL and MariaDB: one crash
each."""
from __future__ import annotations

from decimal import Decimal

import pytest

from tests.conftest import SERVER_DIALECTS, make_database
from tests.engine.daemonproc import DaemonProcess
from tests.mobilepay_flows.harness import Bridge, new_key

from .conftest import HTTP
from .harness import ChHis, cash_of, pay_doc, wait_for

LEASE = 1.0


def _daemon(tmp, url, sim, name: str, crash_at=None) -> DaemonProcess:
    extra, env = sim.daemon_toml()
    extra += sim.channel_toml(tmp) + HTTP
    return DaemonProcess(tmp, url, None, name=name, workers=4, lease=LEASE, extra=extra, env=env,
                         crash_at=crash_at)


def _killed(d: DaemonProcess) -> None:
    rc = d.wait_exit(60)
    assert rc in (-9, 137), f"the daemon was to be killed, it exited {rc}:\n{d.tail(40)}"


def _assert_each_leg_once(b: Bridge, sim, keys_by_channel: dict) -> None:
    legs_all = sim.legs()["by_order"]
    for channel, key in keys_by_channel.items():
        [s] = [r for r in b.inbox(key) if r["type"] == "settlement"]
        legs = legs_all[s["order_id"]]
        assert (Decimal(legs["fund"]["charged"]), legs["fund"]["charges"], Decimal(legs["fund"]["refunded"]),
                legs["fund"]["refunds"]) == (s["fund"], 1, s["fund"], 1), legs
        assert cash_of(legs, channel) == (s["cash"], 1, s["cash"], 1), legs


def test_sigkill_at_each_unsafe_channel_call_on_sqlite(ch_sim, tmp_path):
    sim = ch_sim
    sim.clear_faults()
    url, _ = make_database("sqlite", tmp_path)
    his = ChHis(url, sim)
    his.start()
    b = Bridge("sqlite", url, sim, None, his)
    wx, ali = new_key("KW"), new_key("KA")
    try:
        d = _daemon(tmp_path, url, sim, "c1", "after_call:wechat.medins.create")
        b.enqueue("mobilepay.outpatient", wx, pay_doc(sim, sim.person(account="none"), channel="wechat"))
        _killed(d)
        d = _daemon(tmp_path, url, sim, "c2", "after_call:alipay.medical.payment.create")
        b.enqueue("mobilepay.outpatient", ali, pay_doc(sim, sim.person(account="none"), channel="alipay"))
        _killed(d)
        d = _daemon(tmp_path, url, sim, "c3", "after_call:wechat.refund.create")
        b.daemon = d
        assert b.wait_final(wx)[wx]["state"] == "done"
        b.enqueue("mobilepay.refund", "R" + wx, {"payment_key": wx}, serial_key=wx)
        _killed(d)
        d = _daemon(tmp_path, url, sim, "c4", "after_call:alipay.trade.refund")
        b.daemon = d
        assert b.wait_final(ali)[ali]["state"] == "done"
        b.enqueue("mobilepay.refund", "R" + ali, {"payment_key": ali}, serial_key=ali)
        _killed(d)
        d = _daemon(tmp_path, url, sim, "c5")
        b.daemon = d
        rows = b.wait_final(wx, ali, "R" + wx, "R" + ali)
        assert {k: r["state"] for k, r in rows.items()} == {k: "done" for k in rows}, rows
        _assert_each_leg_once(b, sim, {"wechat": wx, "alipay": ali})
        assert d.terminate() == 0
    finally:
        his.stop()
        b.store.close()


@pytest.mark.parametrize("dialect, crash_at", [
    ("postgresql", "after_call:wechat.medins.create"), ("mysql", "after_call:alipay.trade.refund")])
def test_sigkill_at_an_unsafe_channel_call_on_a_server(ch_sim, tmp_path, dialect, crash_at):
    if dialect not in SERVER_DIALECTS:
        pytest.skip(f"{dialect} not available")
    sim = ch_sim
    sim.clear_faults()
    url, drop = make_database(dialect, tmp_path)
    his = ChHis(url, sim)
    his.start()
    b = Bridge(dialect, url, sim, None, his)
    channel = "wechat" if "wechat" in crash_at else "alipay"
    key = new_key("KS")
    try:
        d = _daemon(tmp_path, url, sim, "s1", crash_at)
        b.daemon = d
        b.enqueue("mobilepay.outpatient", key, pay_doc(sim, sim.person(account="none"), channel=channel))
        if "refund" in crash_at:
            wait_for(lambda: b.row(key)["state"] == "done", 30, "the payment")
            b.enqueue("mobilepay.refund", "R" + key, {"payment_key": key}, serial_key=key)
        _killed(d)
        d = _daemon(tmp_path, url, sim, "s2")
        b.daemon = d
        if "refund" not in crash_at:
            assert b.wait_final(key)[key]["state"] == "done"
            b.enqueue("mobilepay.refund", "R" + key, {"payment_key": key}, serial_key=key)
        rows = b.wait_final(key, "R" + key)
        assert {k: r["state"] for k, r in rows.items()} == {k: "done" for k in rows}, rows
        _assert_each_leg_once(b, sim, {channel: key})
        assert d.terminate() == 0
    finally:
        his.stop()
        b.store.close()
        drop()
