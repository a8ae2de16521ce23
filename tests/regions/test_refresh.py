"""The 1901 refresh against the simulator over HTTP, on SQLite, PostgreSQL and MariaDB: what
the platform adds, renames and drops reaches the platform's own rows, never a row a person
set (which the refresh names in its notes); an empty answer, a refusal or a missing
dictionary type changes nothing."""
from __future__ import annotations

import pytest

from bridge.db.store import Store
from bridge.regions import storage
from bridge.regions.merge import plan_config, plan_load
from bridge.regions.model import Region
from bridge.regions.platform import RefreshError, refresh

from .conftest import SIM_REGIONS, make_client


@pytest.fixture
def store(db_url):
    s = Store(db_url)
    yield s
    s.close()


def codes(store, enabled=True):
    return sorted(k for k, r in storage.read_all(store).items() if r.enabled == enabled)


def test_first_refresh_fills_the_list(store, client, sim):
    plan, listed = refresh(store, client)
    assert sorted(r.admdvs for r in listed.regions) == sorted(SIM_REGIONS)
    rows = storage.read_all(store)
    assert {k: (r.name, r.source, r.enabled) for k, r in rows.items()} == {
        k: (v, "1901", True) for k, v in SIM_REGIONS.items()}
    assert [r.sort_order for _, r in sorted(rows.items())] == [1, 2, 3, 4]
    assert len(plan.changes) == 4 and plan.notes == []
    # the call went out, signed in first (the simulator requires a sign_no)
    assert sim.state()["sign_ins"]
    again, _ = refresh(store, client)
    assert again.changes == [] and again.unchanged == 4


def test_later_refresh_follows_the_platform_on_its_rows_only(store, client, sim):
    refresh(store, client)
    # People take three rows: a CSV disables 440300, the config takes 440600, by hand 442000.
    storage.run(store, lambda cur: plan_load(cur, [Region("440300", "深圳市", False, source="csv")]))
    storage.run(store, lambda cur: plan_config(cur, [Region("440600", "佛山", True, source="config")]))
    sim.set_regions({"440100": "广州市(新)", "440300": "深圳市", "442000": "中山市", "445100": "潮州市"})
    plan, _ = refresh(store, client)
    rows = storage.read_all(store)
    assert (rows["440100"].name, rows["440100"].enabled) == ("广州市(新)", True)           # renamed
    assert (rows["445100"].source, rows["445100"].enabled) == ("1901", True)             # added
    assert rows["440300"] == Region("440300", "深圳市", False, source="csv")              # a person's: as set
    assert rows["440600"] == Region("440600", "佛山", True, source="config")              # not listed: kept
    assert any("440600" in n and "left enabled because config set it" in n for n in plan.notes)
    assert any("440600" in line for line in plan.notes) and not any("440600" in l for l in plan.lines())
    # the platform drops one of its own rows: disabled, not deleted
    sim.set_regions({"440100": "广州市(新)", "440300": "深圳市", "445100": "潮州市"})
    refresh(store, client)
    assert codes(store, enabled=False) == ["440300", "442000"]
    assert storage.read_all(store)["442000"].source == "1901"
    assert [v["admdvs"] for v in storage.read_view(store)] == ["440100", "445100", "440600"]


def test_an_empty_answer_changes_nothing(store, client, sim, msgid_dir):
    refresh(store, client)
    before = storage.read_all(store)
    sim.set_regions({})
    plan, listed = refresh(store, client)
    assert listed.regions == [] and plan.changes == [] and "listed no region" in plan.notes[0]
    # a wrong dictionary type answers another (here: empty) dictionary: the same
    other = make_client(sim.creds, msgid_dir, region_dictionary_type="insutype")
    try:
        plan, _ = refresh(store, other)
    finally:
        other.close()
    assert plan.changes == [] and storage.read_all(store) == before


def test_a_refusal_or_no_type_is_an_error_and_changes_nothing(store, client, sim, msgid_dir):
    sim.arm("1901", "business_error", message="字典服务暂不可用")
    with pytest.raises(RefreshError, match="字典服务暂不可用"):
        refresh(store, client)
    assert storage.read_all(store) == {}
    untyped = make_client(sim.creds, msgid_dir, region_dictionary_type=None)
    try:
        with pytest.raises(RefreshError, match="region_dictionary_type is not set"):
            refresh(store, untyped)
    finally:
        untyped.close()
    # the next round works
    refresh(store, client)
    assert codes(store) == sorted(SIM_REGIONS)
