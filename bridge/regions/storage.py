"""mi_insured_region's queries, in the Store's way: parameterised SQL, one short
transaction per plan, nothing held open across a remote call (the 1901 answer is in hand
before the transaction starts).

A plan (merge.py) is made inside the transaction that applies it, from the rows as that
transaction reads them.  An update whose guard no longer holds (someone with more say
changed the row meanwhile), or an insert of a code someone else inserted meanwhile, rolls
the whole plan back; it is made again from the new rows, at most `attempts` times.
"""
from __future__ import annotations

from typing import Callable, Optional

from loguru import logger

from bridge.db.store import Store
from bridge.regions.merge import Change, Plan
from bridge.regions.model import CHANNELS, Region

TABLE_COLUMNS = ("admdvs", "name", "enabled", "on_wechat", "on_alipay", "on_counter", "on_kiosk", "insutypes",
                 "sort_order", "source")
VIEW_COLUMNS = ("admdvs", "name", "on_wechat", "on_alipay", "on_counter", "on_kiosk", "insutypes", "sort_order",
                "source", "updated_at")
_SELECT = f"SELECT {', '.join(TABLE_COLUMNS)} FROM mi_insured_region ORDER BY admdvs"
# NULL sort orders last on every database (they sort first on some, last on others).
_ORDER = "ORDER BY CASE WHEN sort_order IS NULL THEN 1 ELSE 0 END, sort_order, admdvs"
_INSERT = (f"INSERT INTO mi_insured_region ({', '.join(TABLE_COLUMNS)}) "
           f"VALUES ({', '.join(':' + c for c in TABLE_COLUMNS)})")


class PlanConflict(RuntimeError):
    """The rows changed under the plan (see the module)."""


def region_of(row) -> Region:
    admdvs, name, enabled, wechat, alipay, counter, kiosk, insutypes, sort_order, source = row
    flags = {"wechat": wechat, "alipay": alipay, "counter": counter, "kiosk": kiosk}
    return Region(admdvs=str(admdvs), name=str(name), enabled=int(enabled) == 1,
                  channels=tuple(c for c in CHANNELS if int(flags[c]) == 1),
                  insutypes=tuple(insutypes.split(",")) if insutypes else None,
                  sort_order=None if sort_order is None else int(sort_order), source=str(source))


def params_of(r: Region) -> dict:
    return {"admdvs": r.admdvs, "name": r.name, "enabled": int(r.enabled), **r.flags(),
            "insutypes": r.insutypes_text, "sort_order": r.sort_order, "source": r.source}


def read_all(store: Store) -> dict[str, Region]:
    """Every row, enabled or not, by code."""
    return {r.admdvs: r for r in (region_of(row) for row in store.query(_SELECT))}


def find(store: Store, admdvs: str) -> Optional[Region]:
    """One region by its code, enabled or not (a lookup checks the patient's choice with
    Region.offers)."""
    rows = store.query(f"SELECT {', '.join(TABLE_COLUMNS)} FROM mi_insured_region WHERE admdvs = :admdvs",
                       {"admdvs": admdvs})
    return region_of(rows[0]) if rows else None


def read_view(store: Store) -> list[dict]:
    """mi_v_insured_regions as the HIS and the mini-program backend read it."""
    return [dict(zip(VIEW_COLUMNS, row))
            for row in store.query(f"SELECT {', '.join(VIEW_COLUMNS)} FROM mi_v_insured_regions {_ORDER}")]


def _update_sql(store: Store, guard: Optional[tuple[str, ...]]) -> str:
    sets = ", ".join(f"{c} = :{c}" for c in TABLE_COLUMNS if c != "admdvs")
    where = "admdvs = :admdvs"
    if guard:
        where += f" AND source IN ({', '.join(f':g{n}' for n in range(len(guard)))})"
    return f"UPDATE mi_insured_region SET {sets}, updated_at = {store.dialect.now} WHERE {where}"


def _apply(store: Store, cur, changes: list[Change]) -> None:
    for ch in changes:
        params = params_of(ch.region)
        if ch.action == "insert":
            store._exec(cur, _INSERT, params)
            continue
        guard = ch.guard or ()
        params.update({f"g{n}": g for n, g in enumerate(guard)})
        store._exec(cur, _update_sql(store, ch.guard), params)
        if cur.rowcount != 1:
            raise PlanConflict(f"{ch.region.admdvs} changed meanwhile")


def run(store: Store, planner: Callable[[dict[str, Region]], Plan], attempts: int = 3) -> Plan:
    """Read the rows, plan, apply: one transaction.  Returns the plan applied."""
    def go(cur):
        store._exec(cur, _SELECT)
        current = {r.admdvs: r for r in (region_of(row) for row in cur.fetchall())}
        plan = planner(current)
        _apply(store, cur, plan.changes)
        return plan

    for attempt in range(1, attempts + 1):
        try:
            return store._tx(go)
        except PlanConflict as exc:
            if attempt == attempts:
                raise PlanConflict(f"the region list kept changing ({exc}); nothing was applied after "
                                   f"{attempts} attempts") from None
            why = str(exc)
        except Exception as exc:
            # A code inserted meanwhile breaks the primary key: plan again from the rows as
            # they are now.  Every driver names that error IntegrityError (a CHECK violation
            # too: it fails again and goes up).
            if attempt == attempts or not any(c.__name__ == "IntegrityError" for c in type(exc).__mro__):
                raise
            why = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        logger.info("region list: the rows changed while the plan was applied ({}); planning again", why)
    raise AssertionError("unreachable")
