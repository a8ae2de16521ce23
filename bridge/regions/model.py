"""A region of the list, and the checks every way in goes through (config, CSV, 1901, CLI).

A region is a 6-digit administrative division code (admdvs, GB/T 2260 form, the code the
platforms name 参保地 with: 1101 insuinfo.insuplc_admdvs, the envelope's insuplc_admdvs),
a name, whether it is offered, on which channels and for which insurance types.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Optional

# Where a patient meets the list: the two mini-programs, the counter, the kiosk.
CHANNELS = ("wechat", "alipay", "counter", "kiosk")
# Who set a row last.  config, csv and manual are a person's choice; 1901 is the platform's.
SOURCE_CONFIG, SOURCE_CSV, SOURCE_PLATFORM, SOURCE_MANUAL = "config", "csv", "1901", "manual"
SOURCES = (SOURCE_CONFIG, SOURCE_CSV, SOURCE_PLATFORM, SOURCE_MANUAL)
PERSON_SOURCES = (SOURCE_CONFIG, SOURCE_CSV, SOURCE_MANUAL)

NAME_MAX = 100           # characters (the column holds 100 everywhere, 200 UTF-16 units on SQL Server)
INSUTYPES_MAX = 200      # characters of the comma-separated list
_ADMDVS = re.compile(r"[0-9]{6}")           # ASCII digits only: no full-width ０-９
_INSUTYPE = re.compile(r"[0-9A-Za-z]{1,10}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SPLIT = re.compile(r"[\s;,|，；、]+")


class RegionError(ValueError):
    """A value no region can have; the message says which and why."""


def check_admdvs(value: object) -> str:
    text = "" if value is None else str(value).strip()
    if not _ADMDVS.fullmatch(text):
        raise RegionError(f"admdvs must be a 6-digit division code such as 440100, not {str(value)[:20]!r}")
    return text


def check_name(value: object) -> str:
    text = "" if value is None else str(value).strip()
    if not text:
        raise RegionError("name is required")
    if len(text) > NAME_MAX:
        raise RegionError(f"name is longer than {NAME_MAX} characters")
    if _CONTROL.search(text):
        raise RegionError("name holds a control character")
    return text


def _items(value: object) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [v for v in _SPLIT.split(value.strip()) if v]
    if isinstance(value, (list, tuple, set, frozenset)):
        out = []
        for v in value:
            if not isinstance(v, str):
                raise RegionError(f"expected text, got {type(v).__name__}")
            out += [x for x in _SPLIT.split(v.strip()) if x]
        return out
    raise RegionError(f"expected a list, got {type(value).__name__}")


def check_channels(value: object) -> tuple[str, ...]:
    """Channels as written (a list, or text split at , ; | or blanks); empty or None = all."""
    items = [v.lower() for v in _items(value)]
    if not items:
        return CHANNELS
    unknown = sorted(set(items) - set(CHANNELS))
    if unknown:
        raise RegionError(f"unknown channel {', '.join(unknown)}; channels are {', '.join(CHANNELS)}")
    return tuple(c for c in CHANNELS if c in items)


def check_insutypes(value: object) -> Optional[tuple[str, ...]]:
    """Insurance types (险种类型, e.g. 310, 390); empty or None = every type."""
    items = _items(value)
    if not items:
        return None
    out: list[str] = []
    for v in items:
        if not _INSUTYPE.fullmatch(v):
            raise RegionError(f"insutype {v[:20]!r} is not a code such as 310 or 390")
        if v not in out:
            out.append(v)
    if len(",".join(out)) > INSUTYPES_MAX:
        raise RegionError(f"insutypes is longer than {INSUTYPES_MAX} characters")
    return tuple(out)


def check_sort_order(value: object) -> Optional[int]:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise RegionError("sort_order must be a whole number")
    try:
        n = int(str(value).strip()) if not isinstance(value, int) else value
    except ValueError:
        raise RegionError(f"sort_order must be a whole number, not {str(value)[:20]!r}") from None
    if not -999_999_999 <= n <= 999_999_999:
        raise RegionError("sort_order is out of range")
    return n


@dataclass(frozen=True)
class Region:
    admdvs: str
    name: str
    enabled: bool = True
    channels: tuple[str, ...] = CHANNELS
    insutypes: Optional[tuple[str, ...]] = None       # None: every insurance type
    sort_order: Optional[int] = None
    source: str = SOURCE_MANUAL

    @classmethod
    def build(cls, admdvs: object, name: object, *, enabled: bool = True, channels: object = None,
              insutypes: object = None, sort_order: object = None, source: str = SOURCE_MANUAL) -> "Region":
        """A region from values as written, each checked (RegionError says which is wrong)."""
        if source not in SOURCES:
            raise RegionError(f"source must be one of {', '.join(SOURCES)}")
        return cls(check_admdvs(admdvs), check_name(name), bool(enabled), check_channels(channels),
                   check_insutypes(insutypes), check_sort_order(sort_order), source)

    def offers(self, channel: Optional[str] = None, insutype: Optional[str] = None) -> bool:
        """Whether a patient may choose this region on `channel` for `insutype` (None: any)."""
        if not self.enabled:
            return False
        if channel is not None and channel not in self.channels:
            return False
        return insutype is None or self.insutypes is None or str(insutype) in self.insutypes

    # -- the columns ----------------------------------------------------------------
    def flags(self) -> dict[str, int]:
        return {f"on_{c}": int(c in self.channels) for c in CHANNELS}

    @property
    def insutypes_text(self) -> Optional[str]:
        return ",".join(self.insutypes) if self.insutypes else None

    def same_values(self, other: "Region") -> bool:
        """Everything but the source is equal."""
        return (self.name, self.enabled, self.channels, self.insutypes, self.sort_order) == \
            (other.name, other.enabled, other.channels, other.insutypes, other.sort_order)

    def describe(self) -> str:
        chans = "all channels" if self.channels == CHANNELS else "/".join(self.channels) or "no channel"
        types = "every insutype" if not self.insutypes else "insutypes " + "/".join(self.insutypes)
        return (f"{self.admdvs} {self.name} ({'enabled' if self.enabled else 'disabled'}, {chans}, {types}"
                f"{'' if self.sort_order is None else f', sort {self.sort_order}'}; {self.source})")


def differences(old: Region, new: Region) -> list[str]:
    """What changes from old to new, in words (for the log and the CLI)."""
    out = []
    if old.name != new.name:
        out.append(f"name {old.name} -> {new.name}")
    if old.enabled != new.enabled:
        out.append("enabled" if new.enabled else "disabled")
    if old.channels != new.channels:
        out.append(f"channels {'/'.join(old.channels) or '-'} -> {'/'.join(new.channels) or '-'}")
    if old.insutypes != new.insutypes:
        out.append(f"insutypes {old.insutypes_text or 'all'} -> {new.insutypes_text or 'all'}")
    if old.sort_order != new.sort_order:
        out.append(f"sort {old.sort_order} -> {new.sort_order}")
    if old.source != new.source:
        out.append(f"source {old.source} -> {new.source}")
    return out


def by_code(regions: Iterable[Region]) -> dict[str, Region]:
    return {r.admdvs: r for r in regions}
