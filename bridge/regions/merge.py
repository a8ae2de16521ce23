"""Who may change which row of the region list: each way in plans its changes against the
rows as they are, and the plan is applied in one transaction (storage.py).

The rules (docs/identity.md, "Who changes a row"):

* `source` names who set a row last.  config, csv and manual are a person's choice; 1901 is
  the platform's.
* A person's explicit act wins over everything and takes the row: `mibridge regions load`
  (source csv), `mibridge regions enable|disable` (manual), `mibridge regions config`
  (config, every region the config names).
* The daemon applies the config's list at start, automatically: it adds the regions that
  are missing and updates the rows the config or the platform set, but leaves a row a
  person set with a CSV or by hand, saying so when the config disagrees.  A row the config
  set that the config no longer names is disabled (never deleted), with a note.
* The 1901 refresh only ever changes rows the platform set (source 1901): it adds the
  regions it has not seen (enabled when [regions] enable_new_from_platform, the default),
  renames and re-sorts its own rows, enables them again when listed (only when
  enable_new_from_platform), and disables its own rows the platform no longer lists.  It
  never changes a row a person set: a region a person enabled that the platform no longer
  lists stays enabled, and the refresh says so in the log every time.  An answer with no
  region in it changes nothing (a wrong dictionary type or an outage must not empty the list).
* `load --replace`: the file is the whole list; regions not in it are disabled (kept, with
  source csv, so that the refresh does not bring them back).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Iterable, Optional

from bridge.regions.model import (SOURCE_CONFIG, SOURCE_CSV, SOURCE_MANUAL, SOURCE_PLATFORM, Region, RegionError,
                                  differences)


@dataclass(frozen=True)
class Change:
    action: str                       # "insert" or "update"
    region: Region                    # the row as it will be
    before: Optional[Region] = None   # the row as it was (update)
    # Update only while the row's source is one of these (None: whatever it is).  A concurrent
    # change by someone with more say makes the guard fail, and the plan is made again.
    guard: Optional[tuple[str, ...]] = None

    def describe(self) -> str:
        if self.action == "insert":
            return f"added {self.region.describe()}"
        return f"{self.before.admdvs} {self.before.name}: " + ", ".join(differences(self.before, self.region))


@dataclass
class Plan:
    what: str                                          # "csv load", "config", "1901 refresh", ...
    changes: list[Change] = field(default_factory=list)
    # A person's row the plan left alone although its source disagrees (warnings), and
    # anything else worth a line in the log.
    notes: list[str] = field(default_factory=list)
    unchanged: int = 0

    def lines(self) -> list[str]:
        return [c.describe() for c in self.changes]

    def summary(self) -> str:
        ins = sum(1 for c in self.changes if c.action == "insert")
        upd = len(self.changes) - ins
        return (f"{self.what}: {ins} added, {upd} changed, {self.unchanged} unchanged"
                + (f", {len(self.notes)} note(s)" if self.notes else ""))


def _update(plan: Plan, old: Region, new: Region, guard: Optional[tuple[str, ...]]) -> None:
    if old == new:
        plan.unchanged += 1
    else:
        plan.changes.append(Change("update", new, old, guard))


# The optional CSV columns, and the Region field each one sets.
_OPTIONAL = {"enabled": "enabled", "channels": "channels", "insutypes": "insutypes", "sort_order": "sort_order"}


def plan_load(current: dict[str, Region], rows: Iterable[Region], replace: bool = False,
              columns: Optional[Iterable[str]] = None) -> Plan:
    """A CSV the DBA loads: every row of the file, as written (source csv).  `columns`: those
    the file has (None: all); a region already in the list keeps the values of the others.
    replace: the regions not in the file are disabled."""
    plan = Plan("csv load" + (" --replace" if replace else ""))
    kept = set() if columns is None else set(_OPTIONAL) - set(columns)
    names = set()
    for r in rows:
        new = dataclasses.replace(r, source=SOURCE_CSV)
        names.add(new.admdvs)
        old = current.get(new.admdvs)
        if old is None:
            plan.changes.append(Change("insert", new))
        else:
            new = dataclasses.replace(new, **{_OPTIONAL[c]: getattr(old, _OPTIONAL[c]) for c in kept})
            _update(plan, old, new, None)
    if replace:
        for code, old in sorted(current.items()):
            if code in names:
                continue
            new = dataclasses.replace(old, enabled=False, source=SOURCE_CSV)
            _update(plan, old, new, None)
    return plan


def plan_config(current: dict[str, Region], rows: Iterable[Region], explicit: bool = False) -> Plan:
    """The config's list (source config).  explicit (`mibridge regions config`): a person's
    act, it takes every row it names.  Otherwise (the daemon's start) it leaves the rows a
    person set by CSV or by hand, with a note where they differ."""
    plan = Plan("config" if explicit else "config at start")
    may = None if explicit else (SOURCE_CONFIG, SOURCE_PLATFORM)
    names = set()
    for r in rows:
        new = dataclasses.replace(r, source=SOURCE_CONFIG)
        names.add(new.admdvs)
        old = current.get(new.admdvs)
        if old is None:
            plan.changes.append(Change("insert", new))
        elif may is not None and old.source not in may:
            if not old.same_values(new):
                diff = ", ".join(differences(old, dataclasses.replace(new, source=old.source)))
                plan.notes.append(f"{old.admdvs} {old.name}: set by {old.source}, so the config's values are not "
                                  f"applied ({diff}); 'mibridge regions config' applies them")
            plan.unchanged += 1
        else:
            _update(plan, old, new, may)
    for code, old in sorted(current.items()):
        if code in names or old.source != SOURCE_CONFIG or not old.enabled:
            continue
        plan.changes.append(Change("update", dataclasses.replace(old, enabled=False), old, (SOURCE_CONFIG,)))
        plan.notes.append(f"{old.admdvs} {old.name}: no longer in the config, disabled")
    return plan


def plan_platform(current: dict[str, Region], listed: Iterable[Region], enable_new: bool = True) -> Plan:
    """The platform's list (1901).  Changes only rows the platform set; see the module."""
    plan = Plan("1901 refresh")
    listed = list(listed)
    if not listed:
        plan.notes.append("the platform listed no region: nothing changed (check [offline] region_dictionary_type)")
        return plan
    seen = set()
    for r in listed:
        seen.add(r.admdvs)
        old = current.get(r.admdvs)
        if old is None:
            plan.changes.append(Change("insert", dataclasses.replace(r, enabled=enable_new, source=SOURCE_PLATFORM)))
        elif old.source == SOURCE_PLATFORM:
            new = dataclasses.replace(old, name=r.name, sort_order=r.sort_order,
                                      enabled=True if enable_new else old.enabled)
            _update(plan, old, new, (SOURCE_PLATFORM,))
        else:
            if old.name != r.name:
                plan.notes.append(f"{old.admdvs} {old.name}: the platform names it {r.name}; kept the name "
                                  f"{old.source} set")
            plan.unchanged += 1
    for code, old in sorted(current.items()):
        if code in seen:
            continue
        if old.source == SOURCE_PLATFORM:
            if old.enabled:
                plan.changes.append(Change("update", dataclasses.replace(old, enabled=False), old,
                                           (SOURCE_PLATFORM,)))
            else:
                plan.unchanged += 1
        elif old.enabled:
            plan.notes.append(f"{old.admdvs} {old.name}: the platform no longer lists it; left enabled because "
                              f"{old.source} set it (disable it with 'mibridge regions disable {old.admdvs}' "
                              f"if the hospital no longer serves it)")
            plan.unchanged += 1
        else:
            plan.unchanged += 1
    return plan


def plan_set(current: dict[str, Region], admdvs: str, enabled: bool) -> Plan:
    """`mibridge regions enable|disable`: a person's act (source manual)."""
    plan = Plan("enable" if enabled else "disable")
    old = current.get(admdvs)
    if old is None:
        raise RegionError(f"{admdvs} is not in the region list; add it with 'mibridge regions load' or the config")
    _update(plan, old, dataclasses.replace(old, enabled=enabled, source=SOURCE_MANUAL), None)
    return plan

