"""Who may change which row (bridge/regions/merge.py): the decisions on their own."""
from __future__ import annotations

import dataclasses

import pytest

from bridge.regions.merge import plan_config, plan_load, plan_platform, plan_set
from bridge.regions.model import CHANNELS, Region, RegionError


def R(code, name, source, enabled=True, **kw):
    return Region(code, name, enabled, source=source, **kw)


def rows(*regions):
    return {r.admdvs: r for r in regions}


def after(current, plan):
    """The rows once the plan is applied."""
    out = dict(current)
    for c in plan.changes:
        if c.action == "insert":
            assert c.region.admdvs not in out
        else:
            assert out[c.region.admdvs] == c.before
            if c.guard is not None:
                assert c.before.source in c.guard
        out[c.region.admdvs] = c.region
    return out


CURRENT = rows(R("440100", "广州市", "1901"), R("440300", "深圳市", "csv"), R("440600", "佛山市", "manual", False),
               R("442000", "中山市", "config", channels=("kiosk",)))


# -- the platform's refresh --------------------------------------------------------------

def test_platform_adds_renames_and_disables_only_its_own_rows():
    listed = [R("440100", "广州", "1901", sort_order=3), R("440300", "深圳", "1901"), R("445100", "潮州市", "1901")]
    plan = plan_platform(CURRENT, listed)
    new = after(CURRENT, plan)
    assert new["440100"] == R("440100", "广州", "1901", sort_order=3)          # its own row follows it
    assert new["445100"] == R("445100", "潮州市", "1901")                      # new: enabled by default
    assert new["440300"] == CURRENT["440300"]                                # a person's row: name kept
    assert new["440600"] == CURRENT["440600"] and not new["440600"].enabled   # disabled by hand: stays
    # 442000 was enabled by the config and is no longer listed: left enabled, and said so.
    assert new["442000"] == CURRENT["442000"]
    assert any("442000" in n and "left enabled because config set it" in n for n in plan.notes)
    assert any("440300" in n and "the platform names it 深圳" in n for n in plan.notes)
    assert all(c.guard == ("1901",) for c in plan.changes if c.action == "update")


def test_platform_disables_its_own_row_it_no_longer_lists_and_enables_it_again():
    gone = plan_platform(CURRENT, [R("440300", "深圳市", "1901")])
    new = after(CURRENT, gone)
    assert not new["440100"].enabled and new["440100"].source == "1901"
    back = after(new, plan_platform(new, [R("440100", "广州市", "1901")]))
    assert back["440100"].enabled


def test_platform_new_regions_disabled_when_the_site_says_so_and_never_switched_on():
    plan = plan_platform({}, [R("445100", "潮州市", "1901")], enable_new=False)
    new = after({}, plan)
    assert not new["445100"].enabled
    assert after(new, plan_platform(new, [R("445100", "潮州市", "1901")], enable_new=False)) == new


def test_an_empty_answer_changes_nothing():
    plan = plan_platform(CURRENT, [])
    assert plan.changes == [] and "listed no region" in plan.notes[0]


def test_the_platform_keeps_what_a_person_set_on_its_rows_channels_and_insutypes():
    cur = rows(R("440100", "广州市", "1901", channels=("wechat",), insutypes=("310",)))
    new = after(cur, plan_platform(cur, [R("440100", "广州", "1901")]))
    assert new["440100"].channels == ("wechat",) and new["440100"].insutypes == ("310",)


# -- the config ----------------------------------------------------------------------------

CONFIG = [R("440100", "广州", "config", channels=("wechat", "alipay")), R("440300", "深圳", "config"),
          R("440600", "佛山市", "config"), R("445100", "潮州市", "config")]


def test_config_at_start_takes_platform_rows_adds_missing_and_leaves_a_persons_rows():
    plan = plan_config(CURRENT, CONFIG)
    new = after(CURRENT, plan)
    assert new["440100"] == CONFIG[0]                   # was the platform's: the config's now
    assert new["445100"] == CONFIG[3]                   # missing: added
    assert new["440300"] == CURRENT["440300"]           # set by csv: left, with a note
    assert new["440600"] == CURRENT["440600"]           # disabled by hand: left, with a note
    assert any(n.startswith("440300 深圳市: set by csv") and "name 深圳市 -> 深圳" in n for n in plan.notes)
    assert any(n.startswith("440600 佛山市: set by manual") and "enabled" in n for n in plan.notes)
    # 442000 was the config's and is no longer in it: disabled, never deleted
    assert not new["442000"].enabled and any("442000" in n and "no longer in the config" in n for n in plan.notes)
    assert all(c.guard in (("config", "1901"), ("config",)) for c in plan.changes if c.action == "update")


def test_config_applied_by_a_person_takes_every_row_it_names():
    new = after(CURRENT, plan_config(CURRENT, CONFIG, explicit=True))
    assert [new[c.admdvs] for c in CONFIG] == CONFIG
    assert all(c.guard is None for c in plan_config(CURRENT, CONFIG, explicit=True).changes
               if c.region.admdvs in ("440300", "440600"))


def test_config_again_changes_nothing():
    new = after(CURRENT, plan_config(CURRENT, CONFIG))
    again = plan_config(new, CONFIG)
    assert again.changes == [] and again.unchanged == 4


# -- a CSV load, and by hand -----------------------------------------------------------------

def test_load_takes_every_row_it_names_and_replace_disables_the_others():
    f = [R("440100", "广州", "csv"), R("440600", "佛山市", "csv")]
    new = after(CURRENT, plan_load(CURRENT, f))
    assert new["440100"] == f[0] and new["440600"] == f[1] and new["440300"] == CURRENT["440300"]
    rep = after(CURRENT, plan_load(CURRENT, f, replace=True))
    assert {k for k, r in rep.items() if r.enabled} == {"440100", "440600"}
    assert rep["442000"] == dataclasses.replace(CURRENT["442000"], enabled=False, source="csv")
    assert rep["440300"].source == "csv" and not rep["440300"].enabled


def test_load_keeps_the_values_of_columns_the_file_does_not_have():
    cur = rows(R("440100", "广州市", "1901", False, channels=("wechat",), insutypes=("390",), sort_order=4))
    f = [R("440100", "广州", "csv"), R("445100", "潮州市", "csv")]
    new = after(cur, plan_load(cur, f, columns={"admdvs", "name"}))
    assert new["440100"] == R("440100", "广州", "csv", False, channels=("wechat",), insutypes=("390",), sort_order=4)
    assert new["445100"] == R("445100", "潮州市", "csv", channels=CHANNELS)
    full = after(cur, plan_load(cur, f))
    assert full["440100"] == f[0]


def test_by_hand_takes_the_row_and_the_refresh_then_leaves_it():
    new = after(CURRENT, plan_set(CURRENT, "440100", False))
    assert new["440100"] == R("440100", "广州市", "manual", False)
    later = plan_platform(new, [R("440100", "广州市", "1901")])
    assert later.changes == []
    with pytest.raises(RegionError, match="not in the region list"):
        plan_set(CURRENT, "445100", True)
    assert plan_set(new, "440100", False).changes == []
