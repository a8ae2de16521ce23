"""SIGKILL of the daemon on the kiosk's calls that change something at the centre: the
settlement and its cancel (2207, 2208: money) and the registration and its cancel (2201: not
safe to repeat, resolved by 5201; 2202: asked again); the faults on every call are in
test_scenarios.py (the module's daemon).  Money is checked on the simulator, never
on our own tables (face-pay's money_invariants: at most one valid settlement per visit,
every balance equal to its start minus the account part of the valid settlements, no
deduction refunded twice), and every row ends final.

Cost control: after_journal and after_call of both unsafe calls on SQLite, after_call on
PostgreSQL and MariaDB (the call went out, its answer was never written: the case that needs
the resolver).  One run covers both calls: the first daemon dies at 2207, the second
resolves it and dies at 2208, and the engine in this process (the daemon's own wiring and
runner, no process start) resolves that."""
from __future__ import annotations

import pytest

from bridge.db.store import Store
from tests.conftest import SERVER_DIALECTS, make_database
from tests.facepay_flows.conftest import AutoAccept, money_invariants

from .conftest import ZHANG, IdHis, IdSim, enqueue_visit, finish_in_process, key, start_daemon

pytestmark = pytest.mark.slow


def _matrix():
    for point in ("after_journal", "after_call"):
        yield pytest.param("sqlite", point, id=f"sqlite-{point}")
    for dialect in SERVER_DIALECTS:
        yield pytest.param(dialect, "after_call", id=f"{dialect}-after_call")


@pytest.mark.parametrize("dialect, point", list(_matrix()))
def test_sigkill_at_the_kiosk_settlement_and_its_cancel(dialect, point, id_running, id_msgid_dir, tmp_path):
    sim = IdSim(id_running)
    sim.reset()
    url, drop = make_database(dialect, tmp_path)
    store = Store(url)
    his = IdHis(store)
    hisbg = AutoAccept(url)
    try:
        his.seed_regions()
        sim.card(ZHANG)
        ks = enqueue_visit(his, key("VISIT"), register_cancel=False)
        for n, crash in enumerate((f"{point}:2207", f"{point}:2208")):
            # A short lease: the next daemon takes the dead one's row over sooner.
            _, _, proc = start_daemon(dialect, tmp_path, sim, id_msgid_dir, url=url, name=f"crash{n}",
                                      crash_at=crash, workers=1, lease=1.2)
            rc = proc.wait_exit(60)
            assert rc == -9, f"expected SIGKILL at {crash}, got {rc}; log:\n{proc.tail()}"
        counts = finish_in_process(proc.config_path, url, store)
        assert set(counts) == {"done"}, counts
        st = money_invariants(sim, {ZHANG: "1000.00"})
        s = his.one("kiosk.settle", ks["settle"], "settlement")
        c = his.one("kiosk.cancel", ks["cancel"], "cancellation")
        assert c["setl_id"] == s["setl_id"] and not st["settlements"][s["setl_id"]]["valid"]
        assert st["persons"][ZHANG] == "1000.00"
        # Whatever the crashes did, the centre holds no settlement that stands.
        assert not [x for x in st["settlements"].values() if x["valid"]]
    finally:
        hisbg.stop()
        store.close()
        drop()


@pytest.mark.parametrize("dialect, point", list(_matrix()))
def test_sigkill_at_the_registration_and_its_cancel(dialect, point, id_running, id_msgid_dir, tmp_path):
    """The first daemon dies at 2201, the next one resolves it (5201: the visit is there after
    after_call; nothing is there after after_journal, so after the window it registers) and
    dies at 2202, which the engine in this process asks again.  One registration at the
    centre whatever happened, cancelled at the end; the fee settled and cancelled once."""
    sim = IdSim(id_running)
    sim.reset()
    url, drop = make_database(dialect, tmp_path)
    store = Store(url)
    his = IdHis(store)
    hisbg = AutoAccept(url)
    try:
        his.seed_regions()
        sim.card(ZHANG)
        ks = enqueue_visit(his, key("VISIT"))
        for n, crash in enumerate((f"{point}:2201", f"{point}:2202")):
            _, _, proc = start_daemon(dialect, tmp_path, sim, id_msgid_dir, url=url, name=f"crash{n}",
                                      crash_at=crash, workers=1, lease=1.2)
            rc = proc.wait_exit(60)
            assert rc == -9, f"expected SIGKILL at {crash}, got {rc}; log:\n{proc.tail()}"
        counts = finish_in_process(proc.config_path, url, store)
        assert set(counts) == {"done"}, counts
        st = money_invariants(sim, {ZHANG: "1000.00"})
        reg = his.one("kiosk.register", ks["register"], "registration")["result"]
        same = [k for k, v in st["visit_identity"].items() if v["ipt_otp_no"] == reg["ipt_otp_no"]]
        assert same == [reg["mdtrt_id"]], (same, reg)               # never registered twice
        assert ("confirmed_by" in reg) == (point == "after_call") and "lost_msgids" not in reg
        assert not st["visits"][reg["mdtrt_id"]]["active"]          # and cancelled once
        unreg = his.one("kiosk.register_cancel", ks["unreg"], "registration_cancellation")["result"]
        assert unreg["mdtrt_id"] == reg["mdtrt_id"] and ("confirmed_by" in unreg) == (point == "after_call")
        assert not [x for x in st["settlements"].values() if x["valid"]]
        assert st["persons"][ZHANG] == "1000.00"
    finally:
        hisbg.stop()
        store.close()
        drop()
