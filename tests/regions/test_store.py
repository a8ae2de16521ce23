"""mi_insured_region on the real databases: a plan is applied in one transaction, a guard
that no longer holds changes nothing, the view shows the enabled regions with the same
columns everywhere, and the table refuses what no region can be."""
from __future__ import annotations

from dataclasses import replace as dataclasses_replace

import pytest

from bridge.db.store import Store
from bridge.regions import storage
from bridge.regions.merge import Change, Plan, plan_config, plan_load
from bridge.regions.model import CHANNELS, Region
from bridge.regions.storage import PlanConflict


@pytest.fixture
def store(db_url):
    s = Store(db_url)
    yield s
    s.close()


def R(code, name, source="csv", enabled=True, **kw):
    return Region(code, name, enabled, source=source, **kw)


FILE = [R("440100", "广州市", channels=("wechat", "alipay"), insutypes=("310", "390"), sort_order=2),
        R("440300", "深圳市", sort_order=1), R("442000", "中山市", enabled=False), R("445100", "潮州市")]


def test_a_plan_round_trips_and_the_view_shows_the_enabled_regions(store):
    plan = storage.run(store, lambda cur: plan_load(cur, FILE))
    assert len(plan.changes) == 4
    assert storage.read_all(store) == {r.admdvs: r for r in FILE}
    view = storage.read_view(store)
    # enabled only; sort_order first (NULL last on every database), then the code
    assert [v["admdvs"] for v in view] == ["440300", "440100", "445100"]
    gz = view[1]
    assert set(gz) == set(storage.VIEW_COLUMNS)
    assert (gz["name"], int(gz["on_wechat"]), int(gz["on_alipay"]), int(gz["on_counter"]), int(gz["on_kiosk"]),
            gz["insutypes"], gz["sort_order"], gz["source"]) == ("广州市", 1, 1, 0, 0, "310,390", 2, "csv")
    assert gz["updated_at"] is not None
    # again: nothing to do
    again = storage.run(store, lambda cur: plan_load(cur, FILE))
    assert again.changes == [] and again.unchanged == 4


def test_the_view_has_the_same_columns_on_every_database(store):
    conn = store.conn
    cur = conn.cursor()
    cur.execute("SELECT * FROM mi_v_insured_regions WHERE 1 = 0")
    assert [d[0].lower() for d in cur.description] == list(storage.VIEW_COLUMNS)
    cur.close()


def test_a_plan_that_fails_half_way_leaves_nothing(store):
    bad = Region("44010x", "坏", True, source="csv")        # built past the checks: the table refuses it
    with pytest.raises(Exception):
        storage.run(store, lambda cur: Plan("test", [Change("insert", FILE[0]), Change("insert", bad)]))
    assert storage.read_all(store) == {}


def test_a_guard_that_no_longer_holds_changes_nothing(store):
    storage.run(store, lambda cur: plan_load(cur, FILE[:2]))
    calls = []

    def stale(cur):
        # A plan made as if 440100 were still the platform's; the row is csv's.
        calls.append(1)
        old = dataclasses_replace(cur["440100"], source="1901")
        return Plan("test", [Change("insert", FILE[3]),
                             Change("update", dataclasses_replace(old, name="改"), old, ("1901",))])
    with pytest.raises(PlanConflict, match="kept changing"):
        storage.run(store, stale)
    assert len(calls) == 3                      # planned again each time from the rows as they are
    assert storage.read_all(store) == {r.admdvs: r for r in FILE[:2]}


def test_the_config_at_start_on_a_database(store):
    storage.run(store, lambda cur: plan_load(cur, FILE[:1]))
    cfg = [R("440100", "广州", "config"), R("440600", "佛山市", "config", channels=("kiosk",))]
    plan = storage.run(store, lambda cur: plan_config(cur, cfg))
    rows = storage.read_all(store)
    assert rows["440100"] == FILE[0] and any("set by csv" in n for n in plan.notes)
    assert rows["440600"] == cfg[1]
    assert [v["admdvs"] for v in storage.read_view(store) if int(v["on_kiosk"]) == 1] == ["440600"]


@pytest.mark.parametrize("column, value", [("admdvs", "４４０１００"), ("admdvs", "44010"), ("admdvs", "4401000"),
                                           ("name", "   "), ("enabled", 2), ("on_kiosk", -1), ("source", "excel")])
def test_the_table_refuses_what_no_region_can_be(store, column, value):
    row = {"admdvs": "440100", "name": "广州市", "enabled": 1, "on_wechat": 1, "on_alipay": 1, "on_counter": 1,
           "on_kiosk": 1, "insutypes": None, "sort_order": None, "source": "csv", column: value}
    with pytest.raises(Exception):
        store.execute(storage._INSERT, row)
    assert store.query("SELECT COUNT(*) FROM mi_insured_region")[0][0] == 0


def test_channels_round_trip_through_the_flags(store):
    regions = [R(f"4401{n:02d}", f"区{n}", channels=tuple(c for i, c in enumerate(CHANNELS) if n >> i & 1))
               for n in range(1, 16)]
    storage.run(store, lambda cur: plan_load(cur, regions))
    assert storage.read_all(store) == {r.admdvs: r for r in regions}




def test_find_and_offers(store):
    storage.run(store, lambda cur: plan_load(cur, FILE))
    gz = storage.find(store, "440100")
    assert gz == FILE[0] and storage.find(store, "445200") is None
    assert gz.offers() and gz.offers("wechat", "390") and not gz.offers("kiosk") and not gz.offers("alipay", "510")
    assert not storage.find(store, "442000").offers()                   # disabled
    assert storage.find(store, "445100").offers("counter", "510")        # every channel and type
