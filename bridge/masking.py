"""Masking of personal data before it reaches a log line or the call journal.

Chinese resident ID numbers (18 chars, last may be X), mainland mobile numbers,
and personal names in the fields the platforms use for them.  Masking keeps
enough to let a human match a row (first and last characters) and nothing more.
"""
from __future__ import annotations

import re
from typing import Any

# Field names (lower-cased) whose value is a person's name, an ID number or a phone,
# taken from the spec digests (offline.md §5.1, mobilepay.md §5, facepay.md).
NAME_FIELDS = {"psn_name", "psnname", "name", "patn_name", "patnname", "username", "user_name",
               "insuname", "opter_name", "optername", "patientname", "patient_name", "payer_name"}
ID_FIELDS = {"certno", "cert_no", "mdtrt_cert_no", "mdtrtcertno", "idno", "id_no", "idcard",
             "id_card", "psn_cert_no", "psncertno", "certnumber", "id_digest"}
PHONE_FIELDS = {"tel", "phone", "mob", "mobile", "psn_tel", "conerr_tel", "contact_tel"}
SECRET_FIELDS = {"appsecret", "app_secret", "password", "private_key", "privatekey", "secret",
                 "token", "sign_key", "x-tif-signature", "paytoken", "pay_token", "ectoken",
                 "payauthno", "pay_auth_no", "revstoken"}

_ID_RE = re.compile(r"(?<![0-9A-Za-z])(\d{6})\d{8}(\d{3}[0-9Xx])(?![0-9A-Za-z])")
_PHONE_RE = re.compile(r"(?<!\d)(1[3-9]\d)\d{4}(\d{4})(?!\d)")


def mask_name(value: str) -> str:
    if not value:
        return value
    if len(value) == 1:
        return "*"
    if len(value) == 2:
        return value[0] + "*"
    return value[0] + "*" * (len(value) - 2) + value[-1]


def mask_id(value: str) -> str:
    if len(value) <= 8:
        return "*" * len(value)
    return value[:4] + "*" * (len(value) - 8) + value[-4:]


def mask_phone(value: str) -> str:
    if len(value) < 7:
        return "*" * len(value)
    return value[:3] + "*" * (len(value) - 7) + value[-4:]


def mask_text(text: str) -> str:
    """Mask ID numbers and mobile numbers found anywhere in free text (log lines)."""
    text = _ID_RE.sub(lambda m: m.group(1) + "********" + m.group(2), text)
    return _PHONE_RE.sub(lambda m: m.group(1) + "****" + m.group(2), text)


def mask_value(obj: Any) -> Any:
    """Return a copy of a JSON-like object with personal fields masked and secrets removed."""
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            lk = str(k).lower()
            if lk in SECRET_FIELDS:
                out[k] = "***"
            elif isinstance(v, str) and lk in NAME_FIELDS:
                out[k] = mask_name(v)
            elif isinstance(v, str) and lk in ID_FIELDS:
                out[k] = mask_id(v)
            elif isinstance(v, str) and lk in PHONE_FIELDS:
                out[k] = mask_phone(v)
            else:
                out[k] = mask_value(v)
        return out
    if isinstance(obj, list):
        return [mask_value(v) for v in obj]
    if isinstance(obj, str):
        return mask_text(obj)
    return obj
