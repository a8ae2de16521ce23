"""identity.choose: the patient's choice among the insurances a lookup found, written back
to the HIS (mi_identity) so that the HIS turns a self-pay patient into an insured one.

    choose   no remote call: the done identity.lookup (same serial key, enqueued after its
             `identity` row was shown), the insurance chosen (insurances.pick: it must be one
             the person can use here) -> mi_identity (chosen = 1) + an `identity_choice` row

Why a kind of its own and not a field of the payment (docs/identity.md "Why a kind"): the
choice is a fact about the patient, not about one bill - the HIS needs it written back
before any payment (registration at the window, a later counter payment, the next visit),
and every payment kind (mobile pay, face pay, the kiosk) then only names the insutype the
patient chose.  A payment still takes `insutype` in its own payload, which is how a
payment that has no lookup before it states the choice.
"""
from __future__ import annotations

import json

from bridge.engine.flow import Fail, Finish, Flow, InboxRow, Step

from . import insurances as ins
from .kinds import KIND_CHOOSE, KIND_LOOKUP
from .lookup import identity_row
from .payloads import ChooseRequest, parse_choose


def done_lookup(ctx, lookup_key: str) -> dict | Fail:
    """The flow_data of a done identity.lookup (its person and insurances), or the Fail to
    return: LOOKUP_NOT_FOUND, LOOKUP_NOT_DONE (still running, or it found no usable
    insurance: its `identity` row says why)."""
    row = ctx.port.find_request((KIND_LOOKUP,), lookup_key)
    if row is None:
        return Fail("LOOKUP_NOT_FOUND", f"no {KIND_LOOKUP} request {lookup_key!r}")
    d = row["flow_data"]
    if row["state"] != "done" or not d.get("psn_no") or "insurances" not in d:
        return Fail("LOOKUP_NOT_DONE", f"lookup {lookup_key!r} is {row['state']} without insurances to choose "
                                       "from; enqueue after its identity row (same serial_key)")
    return dict(d, _id=row["id"], _payload=row["payload"])


class ChooseFlow(Flow):
    kind = KIND_CHOOSE
    initial = "choose"
    steps = {"choose": Step("choose", next=())}

    def parse(self, doc: dict) -> ChooseRequest:
        return parse_choose(doc)

    def step_choose(self, ctx):
        p: ChooseRequest = ctx.payload
        found = done_lookup(ctx, p.lookup_key)
        if isinstance(found, Fail):
            return found
        his_patient_id = p.his_patient_id or _lookup_patient(found)
        if not his_patient_id:
            return Fail("BAD_INPUT", "payload field 'his_patient_id' is required (the lookup named none)")
        chosen = ins.pick(found["insurances"], p.insutype, p.insuplc_admdvs)
        if isinstance(chosen, ins.NoChoice):
            return Fail(chosen.code, chosen.message, inbox=[InboxRow(
                result_type="error", outcome="failed", error_code=chosen.code, error_message=chosen.message,
                result={"insurances": ins.public(found["insurances"])})])
        ident = identity_row(his_patient_id, found, chosen, chosen=True)
        b = chosen.get("benefit") or {}
        result = {"his_patient_id": his_patient_id, "lookup_key": p.lookup_key, "psn_no": ident.psn_no,
                  "insutype": ident.insutype, "insuplc_admdvs": ident.insuplc_admdvs,
                  "region_name": chosen.get("region_name"), "psn_type": ident.psn_type, "benefit": ident.benefit,
                  "med_type": ident.med_type, "benefit_status": ident.benefit_status,
                  "restrictions": b.get("restrictions") or [], "psn_cert_type": ident.psn_cert_type,
                  "certno": ident.certno_masked, "psn_name": ident.psn_name_masked, "gend": ident.gend,
                  "balc": chosen.get("balc")}
        return Finish([InboxRow(result_type="identity_choice", outcome="ok", result=result)],
                      data={"chosen": {k: result[k] for k in ("psn_no", "insutype", "insuplc_admdvs")}},
                      identities=[ident])


def _lookup_patient(found: dict):
    try:
        return (json.loads(found.get("_payload") or "{}") or {}).get("his_patient_id")
    except ValueError:
        return None
