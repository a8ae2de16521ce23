"""Masking of personal data before it reaches a log line or the call journal.

Two layers:

* ``mask_value`` masks structured objects by field name.  Names are compared
  after lower-casing and dropping ``_``/``-``, so ``idCardNo``, ``id_card_no`` and
  ``IDCARDNO`` are one field.  Secrets (tokens, keys) become ``***``.
* ``mask_text`` finds resident ID numbers and mainland mobile numbers in free
  text, in the forms people and systems write them: 18-character IDs (last may be
  X) and first-generation 15-digit IDs, also glued to a label (``ID4408...``),
  in full-width digits (``４４０８...``) or grouped 6-8-4 with spaces or hyphens;
  mobiles with or without ``+86``/``0086``/``86``, grouped 3-4-4 with spaces or
  hyphens.  An ID candidate must carry a plausible birth date, so that order
  numbers and timestamps made of digits are left alone; a mobile candidate must
  not touch an ASCII letter or digit, nor be part of a decimal number, so that
  amounts, hex ids and epoch milliseconds are left alone.

Masking keeps enough to let a human match a row (the region and the last
characters of an ID, the first 3 and last 4 digits of a mobile) and nothing more.
"""
from __future__ import annotations

import re
from typing import Any


def _norm(name: str) -> str:
    return name.lower().replace("_", "").replace("-", "")


def _fields(*names: str) -> frozenset[str]:
    return frozenset(_norm(n) for n in names)


# Field names whose value is a person's name, an ID number, a phone or a secret:
# the spec digests (offline.md §5.1, mobilepay.md §5, facepay.md, channels.md),
# plus the spellings HIS payloads and other tools use for the same things.
NAME_FIELDS = _fields(
    "psn_name", "name", "patn_name", "user_name", "insu_name", "opter_name", "patient_name", "payer_name",
    "real_name", "true_name", "full_name", "agnter_name", "coner_name", "rels_pay_user_name",
    "email", "addr", "address", "agnter_addr")
ID_FIELDS = _fields(
    "certno", "cert_no", "mdtrt_cert_no", "id_no", "idcard", "id_card", "id_card_no", "id_card_num",
    "id_number", "id_num", "psn_cert_no", "cert_number", "id_digest", "agnter_certno", "card_no")
PHONE_FIELDS = _fields(
    "tel", "telephone", "phone", "phone_no", "phone_number", "mob", "mobile", "mobile_no", "mobile_phone",
    "cellphone", "psn_tel", "conerr_tel", "coner_tel", "contact_tel", "agnter_tel")
SECRET_FIELDS = _fields(
    "app_secret", "password", "private_key", "secret", "token", "sign_key", "x-tif-signature",
    "pay_token", "ec_token", "pay_auth_no", "revs_token", "access_token", "app_auth_token",
    "business_token", "oc_token", "ftoken", "auth_code")

# \d is Unicode-aware on str patterns, so full-width digits (U+FF10-FF19) match too.
_ID_RE = re.compile(
    r"(?<!\d)(?<!\d\.)"
    r"(?:(?P<r18>\d{6})(?P<s1>[ -]?)(?P<b18>\d{8})(?P<s2>[ -]?)(?P<t18>\d{3}[\dXx\uff38\uff58])"
    r"|(?P<r15>\d{6})(?P<b15>\d{6})(?P<t15>\d{3}))"
    r"(?![\dA-Za-z]|\.\d)")
_PHONE_RE = re.compile(
    r"(?<![\dA-Za-z.])"
    r"(?P<cc>\(?(?:\+|00|\uff0b)?[8\uff18][6\uff16]\)?[ -]?)?"
    r"(?P<head>[1\uff11][3-9\uff13-\uff19]\d)(?P<s1>[ -]?)(?P<mid>\d{4})(?P<s2>[ -]?)(?P<tail>\d{4})"
    r"(?![\dA-Za-z]|\.\d)")
# Both need 7 digits with at most one space or hyphen between the 3rd and 4th: a
# cheap first look that lets most log lines through without the two scans above.
_CANDIDATE = re.compile(r"\d{3}[ -]?\d{4}")


def _plausible_birth(year: int, month: int, day: int) -> bool:
    return 1 <= month <= 12 and 1 <= day <= 31 and 1800 <= year <= 2199


def _mask_id_match(m: re.Match) -> str:
    if m.group("r18") is not None:
        b = m.group("b18")      # int() reads full-width digits as well
        if not _plausible_birth(int(b[:4]), int(b[4:6]), int(b[6:])):
            return m.group(0)
        return m.group("r18") + m.group("s1") + "*" * 8 + m.group("s2") + m.group("t18")
    b = m.group("b15")
    if not _plausible_birth(1900 + int(b[:2]), int(b[2:4]), int(b[4:])):
        return m.group(0)
    return m.group("r15") + "*" * 6 + m.group("t15")


def _mask_phone_match(m: re.Match) -> str:
    return (m.group("cc") or "") + m.group("head") + m.group("s1") + "****" + m.group("s2") + m.group("tail")


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
    if _CANDIDATE.search(text) is None:
        return text
    return _PHONE_RE.sub(_mask_phone_match, _ID_RE.sub(_mask_id_match, text))


_SECRET = object()
# normalised field name -> what to do with its value; filled once per distinct name seen
_ACTIONS: dict[str, Any] = {}
for _names, _masker in ((NAME_FIELDS, mask_name), (ID_FIELDS, mask_id), (PHONE_FIELDS, mask_phone)):
    _ACTIONS.update(dict.fromkeys(_names, _masker))
_ACTIONS.update(dict.fromkeys(SECRET_FIELDS, _SECRET))
_BY_KEY: dict[str, Any] = {}        # raw key -> action (None: not a personal field)


def _action(key: Any) -> Any:
    try:
        return _BY_KEY[key]
    except (KeyError, TypeError):
        action = _ACTIONS.get(_norm(str(key)))
        if isinstance(key, str) and len(_BY_KEY) < 10_000:   # bounded: keys come from messages
            _BY_KEY[key] = action
        return action


def mask_value(obj: Any) -> Any:
    """Return a copy of a JSON-like object with personal fields masked and secrets removed."""
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            action = _action(k)
            if action is None:
                out[k] = mask_value(v)
            elif action is _SECRET:
                out[k] = "***"
            elif isinstance(v, (str, int)) and not isinstance(v, bool):
                # a phone or an ID sent as a JSON number is masked as its text
                out[k] = action(v if isinstance(v, str) else str(v))
            else:
                out[k] = mask_value(v)
        return out
    if isinstance(obj, list):
        return [mask_value(v) for v in obj]
    if isinstance(obj, str):
        return mask_text(obj)
    return obj
