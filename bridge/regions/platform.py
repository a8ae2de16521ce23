"""The region list from the platform: 1901 字典表查询 with the dictionary type the site
configures ([offline] region_dictionary_type: no public source names the type that lists
the insured regions, docs/platform-choices.md), merged by merge.plan_platform.

1901 reads only: a lost answer is simply asked again at the next refresh.  The call is made
before the transaction that applies the answer, so no database lock waits on the network.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from bridge.calls import CallResult
from bridge.db.store import Store
from bridge.offline import messages as m
from bridge.regions import storage
from bridge.regions.merge import Plan, plan_platform
from bridge.regions.model import SOURCE_PLATFORM, Region, RegionError, check_admdvs, check_name, check_sort_order

# valiFlag of a row in force (the 1901 input asks for "1"; a row with another flag is not listed).
VALID = "1"


class RefreshError(RuntimeError):
    """The platform did not give the list (not configured, refused, no answer)."""


@dataclass
class Listed:
    regions: list[Region] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)     # rows that are not a 6-digit region, with why


def regions_of(result: m.DictionaryResult) -> Listed:
    """The rows of a 1901 answer that name a region in force.  A row whose value is not a
    6-digit code (a province heading, another level) or whose valiFlag is not 1 is skipped."""
    out = Listed()
    seen = set()
    for e in result.entries:
        if e.valiFlag not in (None, VALID):
            out.skipped.append(f"{e.value}: valiFlag {e.valiFlag}")
            continue
        try:
            code = check_admdvs(e.value)
            name = check_name(e.label or code)
            sort = check_sort_order(e.sort)
        except RegionError as exc:
            out.skipped.append(f"{str(e.value)[:20]}: {exc}")
            continue
        if code in seen:
            out.skipped.append(f"{code}: listed twice")
            continue
        seen.add(code)
        out.regions.append(Region(code, name, True, sort_order=sort, source=SOURCE_PLATFORM))
    return out


def fetch(client, operator=None) -> Listed:
    """One 1901 call for the configured type.  RefreshError when it gives no list."""
    if not getattr(client.config, "region_dictionary_type", None):
        raise RefreshError("[offline] region_dictionary_type is not set: no public source names the 1901 "
                           "dictionary type of the insured regions; ask the platform and set it")
    res: CallResult = client.call(lambda _req, operator=None: client.prepare_region_dictionary(operator=operator),
                                  None, operator=operator)
    if not res.ok:
        raise RefreshError(f"1901 {res.outcome.value}: {res.code or ''} {res.message or ''}".strip())
    return regions_of(res.data)


def refresh(store: Store, client, enable_new: bool = True, listed: Optional[Listed] = None) -> tuple[Plan, Listed]:
    """Fetch (unless `listed` is given) and merge; returns the plan applied and what 1901 listed."""
    listed = listed if listed is not None else fetch(client)
    plan = storage.run(store, lambda current: plan_platform(current, listed.regions, enable_new))
    if listed.skipped:
        plan.notes.append(f"{len(listed.skipped)} row(s) of the 1901 answer are not a region in force and were "
                          f"skipped: {'; '.join(listed.skipped[:5])}{' ...' if len(listed.skipped) > 5 else ''}")
    return plan, listed
