"""Who a face-pay request is for, and which of it is secret.

* person_of: the payload's person, or the identity of a done facepay.identify;
* admitted_stay: the stay (and person) a done facepay.inpatient.admit made;
* split_person / with_secrets: a person or visit split into what flow_data may keep
  and what goes to mi_secret (the credential, the face identity), and joined again in
  memory for a call;
* lookup: another request of this visit, through the FlowPort.
"""
from __future__ import annotations

from typing import Optional

from bridge.engine.flow import Fail

from .kinds import KIND_ADMIT, KIND_IDENTIFY

# ---- secrets (docs/facepay.md "What the HIS sees"): kept in mi_secret, never in flow_data.
# A patient's credential (mdtrt_cert_no: an ID number or an ecToken) and what the face
# terminal gave (authNo, ID number, name).  A pre-settlement or admission keeps them
# when done, for the settlement that follows; a settlement drops them when final.
CERT = "mdtrt_cert_no"
FACE_SECRETS = ("auth_no", "id_no", "user_name")
PERSON_SECRETS = (CERT,) + tuple(f"face.{k}" for k in FACE_SECRETS)
# Keys that never stay in a final row's flow_data (rows written before mi_secret).
SECRET_KEYS = (CERT, "id_no", "user_name", "ec_token", "auth_no", "certno", "psn_name")


def split_person(person: dict) -> tuple[dict, dict]:
    """(what flow_data may keep, what goes to mi_secret) of a person or visit dict that
    holds its credential and, face-identified, its terminal identity."""
    public = {k: v for k, v in person.items() if k not in (CERT, "face")}
    secret = {CERT: person.get(CERT)}
    face = person.get("face")
    if face:
        public["face"] = {k: v for k, v in face.items() if k not in FACE_SECRETS}
        secret.update({f"face.{k}": face.get(k) for k in FACE_SECRETS})
    elif "face" in person:
        public["face"] = face
    return public, {k: v for k, v in secret.items() if v not in (None, "")}


def with_secrets(public: dict, secret: dict) -> dict:
    """The person or visit again, in memory only: flow_data's part plus its secrets (a
    row written before mi_secret still has them in flow_data: they stay)."""
    out = dict(public)
    if secret.get(CERT):
        out[CERT] = secret[CERT]
    if out.get("face"):
        face = dict(out["face"])
        for k in FACE_SECRETS:
            if secret.get(f"face.{k}"):
                face[k] = secret[f"face.{k}"]
        face.setdefault("user_name", "")
        out["face"] = face
    return out


def own_secrets(ctx) -> dict:
    return {n: ctx.secret(n) for n in PERSON_SECRETS}


def lookup(ctx, kinds: tuple[str, ...], business_key: str) -> Optional[dict]:
    """Another request of this visit, by its business key (Store.find_request)."""
    return ctx.port.find_request(kinds, business_key)

def identity_secret(ctx, data: dict, name: str) -> Optional[str]:
    """An identify row's own secret (flow_data holds it only in rows written before mi_secret)."""
    return ctx.secret(name) or data.get(name)

def person_of(ctx, p, cert_type: str) -> dict | Fail:
    """Who a pre-settlement or an admission is for: `p.person` as the payload gave it,
    or the identity of the done facepay.identify `p.identify_key` - psn_no, insutype,
    insuplc_admdvs, the credential (`cert_type` "01" the ecToken, else the ID number)
    and the terminal identity for the settlement notice.  Its secrets are for memory
    only (split_person before anything is kept)."""
    if p.person is not None:
        return dict(p.person)
    row = lookup(ctx, (KIND_IDENTIFY,), p.identify_key)
    if row is None:
        return Fail("IDENTIFY_NOT_FOUND", f"no facepay.identify request {p.identify_key!r}")
    d = dict(row["flow_data"])
    for k, v in ctx.port.secrets(row["id"]).items():   # its ID number, name, tokens
        d[k] = v
    if row["state"] != "done" or not d.get("psn_no"):
        return Fail("IDENTIFY_NOT_DONE", f"facepay.identify {p.identify_key!r} is {row['state']}, "
                                         "not done with an identity")
    if not d.get("insured"):
        return Fail("NOT_INSURED", f"the person identified by {p.identify_key!r} is not insured")
    use_token = cert_type == "01" and d.get("ec_token")
    if not d.get("id_no"):
        return Fail("IDENTIFY_NOT_DONE", f"facepay.identify {p.identify_key!r} holds no identity any more")
    return {"psn_no": d["psn_no"], "insutype": d["insutype"], "insuplc_admdvs": d["insuplc_admdvs"],
            "mdtrt_cert_type": "01" if use_token else "02",
            "mdtrt_cert_no": d["ec_token"] if use_token else d["id_no"],
            "face": {"out_biz_no": d["out_biz_no"], "auth_no": d.get("auth_no"), "id_no": d["id_no"],
                     "user_name": d.get("user_name") or "", "office": d.get("office") or {}}}


def admitted_stay(ctx, admit_key: str) -> dict | Fail:
    """The stay a done `facepay.inpatient.admit` request made, for the requests that work on
    it (inpatient pre-settlement, admission cancel):

        {"mdtrt_id", "psn_no", "insutype", "insuplc_admdvs", "mdtrt_cert_type", "mdtrt_cert_no",
         "med_type", "ipt_no", "begntime", "admit_key"[, "face"]}

    The person keys are those of person_of (PERSON_KEYS, and "face" when the patient was
    identified by face), so the dict can stand in for it; its secrets (the credential,
    the face identity) come from the admission's mi_secret and are for memory only
    (split_person before anything is kept).  Otherwise
    Fail("ADMISSION_NOT_FOUND") or Fail("ADMISSION_NOT_DONE").  A stay cancelled later by
    admit_cancel is not seen here: the platform refuses calls on it."""
    row = lookup(ctx, (KIND_ADMIT,), admit_key)
    if row is None:
        return Fail("ADMISSION_NOT_FOUND", f"no {KIND_ADMIT} request {admit_key!r}")
    stay = row["flow_data"].get("stay")
    if row["state"] != "done" or not stay or not stay.get("mdtrt_id"):
        return Fail("ADMISSION_NOT_DONE", f"admission {admit_key!r} is {row['state']}, not done with a stay; "
                                          "enqueue after it with the same serial_key")
    return dict(with_secrets(stay, ctx.port.secrets(row["id"])), admit_key=admit_key)
