"""SIGKILL at the new unsafe calls (bridge/engine/crashpoints.py), on each database: one chain
of daemons, each killed at the next unsafe call, then a daemon that finishes everything.

* after_call (the channel answered, the answer is not written): the WeChat mixed order, the
  Alipay medical order, the WeChat cash refund (here: a settlement the HIS rejected, the
  单边账 repair's cash leg), the Alipay cash refund.  A fresh daemon resolves each by the
  channel's query and goes on; nothing is sent again.
* after_journal (journalled, never sent): the WeChat cash refund of an HIS refund.  A fresh
  daemon's query finds nothing; past the settle window the refund is sent, for the first
  time as far as WeChat knows.

Asserted on the simulator's per-leg ledger: no leg charged or refunded twice, and every
request final."""
from __future__ import annotations

from decimal import Decimal

import pytest

from tests.conftest import DIALECTS, make_database
from tests.engine.daemonproc import DaemonProcess
from tests.mobilepay_flows.harness import Bridge, new_key

from .conftest import HTTP
from .harness import ChHis, cash_of, pay_doc

LEASE = 1.0


def _daemon(tmp, url, sim, name: str, crash_at=None) -> DaemonProcess:
    extra, env = sim.daemon_toml()
    extra += sim.channel_toml(tmp) + HTTP
    return DaemonProcess(tmp, url, None, name=name, workers=4, lease=LEASE, extra=extra, env=env,
                         crash_at=crash_at)


def _killed(d: DaemonProcess) -> None:
    rc = d.wait_exit(60)
    assert rc in (-9, 137), f"the daemon was to be killed, it exited {rc}:\n{d.tail(40)}"


def _assert_each_leg_once(b: Bridge, sim, keys_by_channel: dict, result_type: str = "settlement") -> None:
    legs_all = sim.legs()["by_order"]
    for channel, key in keys_by_channel.items():
        [s] = [r for r in b.inbox(key) if r["type"] == result_type]
        legs = legs_all[s["order_id"]]
        assert (Decimal(legs["fund"]["charged"]), legs["fund"]["charges"], Decimal(legs["fund"]["refunded"]),
                legs["fund"]["refunds"]) == (s["fund"], 1, s["fund"], 1), legs
        assert cash_of(legs, channel) == (s["cash"], 1, s["cash"], 1), legs


@pytest.mark.parametrize("dialect", DIALECTS)
def test_sigkill_at_each_unsafe_channel_call(ch_sim, tmp_path, dialect):
    sim = ch_sim
    sim.clear_faults()
    url, drop = make_database(dialect, tmp_path)
    his = ChHis(url, sim)
    his.start()
    b = Bridge(dialect, url, sim, None, his)
    wx, ali, rej = new_key("KW"), new_key("KA"), new_key("KJ")
    his.rejects.add(rej)
    try:
        d = _daemon(tmp_path, url, sim, "c1", "after_call:wechat.medins.create")
        b.enqueue("mobilepay.outpatient", wx, pay_doc(sim, sim.person(account="none"), channel="wechat"))
        _killed(d)
        d = _daemon(tmp_path, url, sim, "c2", "after_call:alipay.medical.payment.create")
        b.enqueue("mobilepay.outpatient", ali, pay_doc(sim, sim.person(account="none"), channel="alipay"))
        _killed(d)
        d = _daemon(tmp_path, url, sim, "c3", "after_call:wechat.refund.create")
        b.daemon = d
        assert {k: r["state"] for k, r in b.wait_final(wx, ali).items()} == {wx: "done", ali: "done"}
        b.enqueue("mobilepay.outpatient", rej, pay_doc(sim, sim.person(account="none"), channel="wechat"))
        _killed(d)
        d = _daemon(tmp_path, url, sim, "c4", "after_call:alipay.trade.refund")
        b.daemon = d
        b.enqueue("mobilepay.refund", "R" + ali, {"payment_key": ali}, serial_key=ali)
        _killed(d)
        d = _daemon(tmp_path, url, sim, "c5", "after_journal:wechat.refund.create")
        b.daemon = d
        b.enqueue("mobilepay.refund", "R" + wx, {"payment_key": wx}, serial_key=wx)
        _killed(d)
        d = _daemon(tmp_path, url, sim, "c6")
        b.daemon = d
        rows = b.wait_final(wx, ali, rej, "R" + wx, "R" + ali)
        assert {k: (r["state"], r["code"]) for k, r in rows.items()} == {
            wx: ("done", None), ali: ("done", None), rej: ("failed", "REVERSED"), "R" + wx: ("done", None),
            "R" + ali: ("done", None)}, rows
        _assert_each_leg_once(b, sim, {"wechat": wx, "alipay": ali})
        _assert_each_leg_once(b, sim, {"wechat": rej}, result_type="order")
        # the killed calls were resolved by a query, never sent twice
        assert [o for i, o in b.calls("R" + wx) if i == "wechat.refund.create"] in (["unknown", "ok"],
                                                                                    [None, "ok"]), b.calls("R" + wx)
        assert d.terminate() == 0
    finally:
        his.stop()
        b.store.close()
        drop()
