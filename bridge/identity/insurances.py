"""A person's insurances as the HIS and the patient see them, and which one a request uses.

insurance_rows(person, ...)   1101 `insuinfo[]` -> one row per insurance: insutype, person
                              type, region, balance, status, whether it can be used here
                              (`selectable`) and why not (`why_not`)
with_benefit(row, check)      the 2001 answer of that insurance: its benefit status and
                              restrictions
pick(rows, insutype, region)  the insurance a request runs under: the one the patient chose,
                              or the only usable one; never the first of several
                              (CHOOSE_INSURANCE with the list)

Rows are plain JSON-safe dicts: they go into flow_data and the HIS's result_json as they are.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Optional

from bridge.offline import messages as m

# benefit_status values (mi_identity.benefit_status, docs/identity.md).
ENJOYED, RESTRICTED, NOT_CHECKED, CHECK_FAILED = "enjoyed", "restricted", "not_checked", "check_failed"

# Why an insurance cannot be used for this request (row["why_not"]).
NOT_IN_FORCE = "not in force (psn_insu_stas {stas})"
OTHER_REGION = "insured in {region}, not in the region chosen ({asked})"
REGION_NOT_LISTED = "its region {region} is not in the hospital's region list"
REGION_DISABLED = "its region {region} is disabled in the hospital's region list"
REGION_NOT_ON_CHANNEL = "its region {region} is not offered on {channel}"
TYPE_NOT_ACCEPTED = "insurance type {insutype} is not accepted for region {region}"


def insurance_rows(person: m.PersonInfo, *, region_asked: Optional[str] = None,
                   channel: Optional[str] = None,
                   region_of: Optional[Callable[[str], Optional[dict]]] = None) -> list[dict]:
    """Every insurance 1101 answered, in its order.  `region_of(admdvs)`: the region list
    (FlowPort.insured_region) when the site keeps one, else None (any region)."""
    rows = []
    for i in person.insuinfo:
        region = i.insuplc_admdvs or ""
        listed = region_of(region) if (region_of is not None and region) else None
        why = None
        if not i.active:
            why = NOT_IN_FORCE.format(stas=i.psn_insu_stas)
        elif region_asked and region != region_asked:
            why = OTHER_REGION.format(region=region or "?", asked=region_asked)
        elif region_of is not None:
            why = _region_problem(listed, region, i.insutype or "", channel)
        rows.append({"insutype": i.insutype, "psn_type": i.psn_type, "insuplc_admdvs": i.insuplc_admdvs,
                     "region_name": (listed or {}).get("name"),
                     "balc": None if i.balc is None else str(i.balc), "psn_insu_stas": i.psn_insu_stas,
                     "cvlserv_flag": i.cvlserv_flag, "selectable": why is None, "why_not": why})
    return rows


def _region_problem(listed: Optional[dict], region: str, insutype: Optional[str],
                    channel: Optional[str]) -> Optional[str]:
    if listed is None:
        return REGION_NOT_LISTED.format(region=region or "?")
    if not listed["enabled"]:
        return REGION_DISABLED.format(region=region)
    if channel and channel not in listed["channels"]:
        return REGION_NOT_ON_CHANNEL.format(region=region, channel=channel)
    if insutype is not None and listed["insutypes"] is not None and insutype not in listed["insutypes"]:
        return TYPE_NOT_ACCEPTED.format(insutype=insutype, region=region)
    return None


def region_problem(listed: Optional[dict], region: str, channel: Optional[str]) -> Optional[str]:
    """Why the region a patient chose cannot be used (None: it can): not listed, disabled,
    not on this channel."""
    return _region_problem(listed, region, None, channel)


def with_benefit(row: dict, med_type: str, check: Optional[m.BenefitCheck] = None,
                 failed: Optional[str] = None) -> dict:
    """The row with its benefit (2001): `check` the answer, or `failed` the refusal's text;
    neither: not checked."""
    benefit: dict = {"med_type": med_type, "restrictions": []}
    if failed is not None:
        benefit.update(status=CHECK_FAILED, message=failed)
    elif check is None:
        benefit["status"] = NOT_CHECKED
    else:
        benefit["restrictions"] = [{"fund_pay_type": t.fund_pay_type, "reason": t.trt_chk_rslt,
                                    "begndate": t.begndate, "enddate": t.enddate} for t in check.restrictions]
        benefit["status"] = RESTRICTED if check.restrictions else ENJOYED
    return dict(row, benefit=benefit)


def idet_type(person: m.PersonInfo) -> Optional[str]:
    """The person's identity category (1101 idetinfo psn_idet_type), when 1101 gives one."""
    for i in person.identities:
        if i.psn_idet_type:
            return i.psn_idet_type
    return None


def benefit_category(found: dict, row: dict) -> Optional[str]:
    """mi_identity.benefit: the person's identity category when 1101 gave one, else the
    person type of the insurance - the rule face-pay's identify uses
    (bridge/facepay/identify.py), so that the column means one thing."""
    return found.get("psn_idet_type") or row.get("psn_type")


@dataclass(frozen=True)
class NoChoice:
    """No insurance can be picked: `code` (NOT_INSURED, CHOOSE_INSURANCE, NOT_A_CHOICE) and
    the message the mini-program can show."""
    code: str
    message: str


def _label(r: dict) -> str:
    return f"{r['insutype']} in {r['insuplc_admdvs']}" + (f" ({r['region_name']})" if r.get("region_name") else "")


def pick(rows: Iterable[dict], insutype: Optional[str] = None,
         insuplc_admdvs: Optional[str] = None) -> dict | NoChoice:
    """The insurance a request runs under.  The patient's choice (`insutype`, and the region
    when the same type is held in two) must be one of the usable ones; without a choice, the
    only usable one.  Several and none chosen: CHOOSE_INSURANCE - never the first."""
    rows = list(rows)
    usable = [r for r in rows if r["selectable"]]
    if not usable:
        why = "; ".join(f"{_label(r)}: {r['why_not']}" for r in rows) or "1101 lists no insurance"
        return NoChoice("NOT_INSURED", f"the person has no insurance that can be used here ({why})")
    if insutype is None and insuplc_admdvs is None:
        if len(usable) == 1:
            return usable[0]
        return NoChoice("CHOOSE_INSURANCE", "the person has more than one insurance; the patient chooses one: "
                                            + ", ".join(_label(r) for r in usable))
    match = [r for r in usable if (insutype is None or r["insutype"] == insutype)
             and (insuplc_admdvs is None or r["insuplc_admdvs"] == insuplc_admdvs)]
    if len(match) == 1:
        return match[0]
    if len(match) > 1:
        return NoChoice("CHOOSE_INSURANCE", f"insurance type {insutype} is held in more than one region; "
                                            f"give the region too: " + ", ".join(_label(r) for r in match))
    chosen = " in ".join(x for x in (insutype, insuplc_admdvs) if x)
    held = [r for r in rows if (insutype is None or r["insutype"] == insutype)
            and (insuplc_admdvs is None or r["insuplc_admdvs"] == insuplc_admdvs)]
    why = f" ({held[0]['why_not']})" if held and held[0]["why_not"] else ""
    return NoChoice("NOT_A_CHOICE", f"the insurance chosen ({chosen}) is not one the person can use here{why}; "
                                    "usable: " + ", ".join(_label(r) for r in usable))


def public(rows: Iterable[dict]) -> list[dict]:
    """The rows as the HIS reads them (result_json.insurances)."""
    return [dict(r) for r in rows]
