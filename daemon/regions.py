"""[regions]: the insured regions (参保地) the hospital supports (docs/identity.md).

    [regions]
    refresh_from_platform = false       # ask the platform's 1901 dictionary every day
    refresh_hour = 5                    # local hour of that refresh
    refresh_at_start = true             # and once when the daemon starts
    enable_new_from_platform = true     # a region the platform adds is offered at once

    [[regions.region]]
    admdvs = "440100"
    name = "广州市"
    channels = ["wechat", "alipay", "counter", "kiosk"]   # default: all four
    insutypes = ["310", "390"]                            # default: every type
    sort_order = 1
    enabled = true

The region list is applied at start (retried every few minutes until the database takes
it); rows a person set with a CSV or by hand are left as they are (bridge/regions/merge.py).
The refresh needs [offline] with region_dictionary_type: no public source names the 1901
dictionary type of the insured regions, so the site asks the platform and sets it.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Optional

from loguru import logger
from pydantic import BaseModel, Field, field_validator, model_validator

from bridge.regions.merge import Plan
from bridge.regions.model import (Region, RegionError, check_admdvs, check_channels, check_insutypes, check_name)
from daemon.wiring import Wiring
from daemon.config import STRICT, Config, ConfigError, register_section, validate_section

CONFIG_RETRY_MINUTES = 5
REFRESH_RETRY_MINUTES = 30


class RegionEntry(BaseModel):
    """One region of the config's list."""

    model_config = STRICT

    admdvs: str
    name: str
    enabled: bool = True
    channels: Optional[tuple[str, ...]] = None       # None: every channel
    insutypes: Optional[tuple[str, ...]] = None      # None: every insurance type
    sort_order: Optional[int] = Field(None, ge=-999_999_999, le=999_999_999)

    @field_validator("admdvs")
    @classmethod
    def _admdvs(cls, v: str) -> str:
        return _checked(check_admdvs, v)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return _checked(check_name, v)

    @field_validator("channels")
    @classmethod
    def _channels(cls, v):
        return None if v is None else _checked(check_channels, v)

    @field_validator("insutypes")
    @classmethod
    def _insutypes(cls, v):
        return None if v is None else _checked(check_insutypes, v)

    def region(self) -> Region:
        return Region.build(self.admdvs, self.name, enabled=self.enabled, channels=self.channels,
                            insutypes=self.insutypes, sort_order=self.sort_order, source="config")


def _checked(check, value):
    try:
        return check(value)
    except RegionError as exc:
        raise ValueError(str(exc)) from None


class RegionsSection(BaseModel):
    model_config = STRICT

    # The config's list ([[regions.region]] tables).  Absent: the config manages no region
    # (CSV and the platform do); present, even empty: the config's regions are applied at start.
    region: Optional[tuple[RegionEntry, ...]] = None
    refresh_from_platform: bool = False
    refresh_hour: int = Field(5, ge=0, le=23)
    refresh_at_start: bool = True
    enable_new_from_platform: bool = True

    @model_validator(mode="after")
    def _unique(self) -> "RegionsSection":
        seen = set()
        for r in self.region or ():
            if r.admdvs in seen:
                raise ValueError(f"region: {r.admdvs} is listed twice")
            seen.add(r.admdvs)
        return self

    def regions(self) -> list[Region]:
        return [r.region() for r in self.region or ()]


register_section("regions", RegionsSection)


def settings(cfg: Config) -> Optional[RegionsSection]:
    raw = cfg.platforms.get("regions")
    return None if raw is None else validate_section("regions", raw)


def log_plan(plan: Plan) -> None:
    """What changed, one line each, and what was left alone on purpose (a warning)."""
    if plan.changes or plan.notes:
        logger.info("region list: {}", plan.summary())
    for line in plan.lines():
        logger.info("region list ({}): {}", plan.what, line)
    for note in plan.notes:
        logger.warning("region list ({}): {}", plan.what, note)


def offline_client(cfg: Config, services: dict):
    """The offline gateway client 1901 goes through, checked for the dictionary type."""
    client = services.get("offline")
    if client is None:
        raise ConfigError("[regions] refresh_from_platform needs the [offline] section: 1901 goes through "
                          "the offline gateway")
    if not client.config.region_dictionary_type:
        raise ConfigError("[regions] refresh_from_platform needs [offline] region_dictionary_type: no public "
                          "source names the 1901 dictionary type of the insured regions; ask the platform "
                          "and set it")
    return client


def wiring(cfg: Config, services: dict) -> Wiring:
    section = settings(cfg)
    w = Wiring()
    if section is None:
        return w
    if section.region is not None:
        w.jobs.append(config_job(section.regions()))
    if section.refresh_from_platform:
        w.jobs.append(refresh_job(offline_client(cfg, services), section))
    return w


def config_job(regions: list[Region]):
    """The config's list, at start; tried again every few minutes until it is applied."""
    from bridge.regions import storage
    from bridge.regions.merge import plan_config

    def apply(daemon, scheduler) -> None:
        store = daemon.new_store()
        try:
            log_plan(storage.run(store, lambda current: plan_config(current, regions)))
        except Exception as exc:
            logger.warning("region list: the config's regions were not applied ({}: {}); trying again in {} "
                           "minutes", type(exc).__name__, exc, CONFIG_RETRY_MINUTES)
            return
        finally:
            store.close()
        try:
            scheduler.remove_job("regions-config")
        except Exception:
            pass

    def add(scheduler, daemon) -> None:
        scheduler.add_job(apply, "interval", minutes=CONFIG_RETRY_MINUTES, args=[daemon, scheduler],
                          next_run_time=datetime.now(), id="regions-config", name="region list from the config")
    return add


def refresh_job(client, section: RegionsSection):
    """1901 daily at refresh_hour (and at start); a failed round is tried once more later."""
    from bridge.regions.platform import refresh

    def run(daemon, scheduler, retry: bool = True) -> None:
        store = daemon.new_store()
        try:
            plan, listed = refresh(store, client, section.enable_new_from_platform)
        except Exception as exc:
            logger.warning("region list: the 1901 refresh failed ({}: {}){}", type(exc).__name__, exc,
                           f"; trying again in {REFRESH_RETRY_MINUTES} minutes" if retry else "")
            if retry:
                scheduler.add_job(run, "date", run_date=datetime.now() + timedelta(minutes=REFRESH_RETRY_MINUTES),
                                  args=[daemon, scheduler, False], id="regions-refresh-retry",
                                  name="region list 1901 refresh (retry)", replace_existing=True)
            return
        finally:
            store.close()
        logger.info("region list: 1901 listed {} region(s)", len(listed.regions))
        log_plan(plan)

    def add(scheduler, daemon) -> None:
        kw = {"next_run_time": datetime.now()} if section.refresh_at_start else {}
        scheduler.add_job(run, "cron", hour=section.refresh_hour, minute=41, args=[daemon, scheduler],
                          id="regions-refresh", name="region list 1901 refresh", **kw)
    return add
