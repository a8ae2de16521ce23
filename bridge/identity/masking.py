"""What of a person's ID number and name the HIS gets (docs/identity.md "Masking").

The rule: the ID number and the name are masked in every row mibridge writes for the HIS
(mi_identity, the `identity` and `identity_choice` rows, the registration row), with the
journal's own masks (bridge/masking.py: an ID keeps its first 4 and last 4 characters, a
name its first and last character) so that a person comparing a row with the journal sees
the same text.  The HIS matches its patient by `his_patient_id`, `psn_no` and these masks:
it typed the number itself (lookup by ID card) or the channel gave it (a payAuthNo comes
with the patient's ID from the mini-program, mobilepay.md §5.7).

One exception: a lookup from a QR code or a social-security card at a kiosk is the only
way the HIS learns who stands there, so its `identity` row carries the number and name
whole (IdentitySettings.whole_identity_on_terminal; false masks them there too).  Whole
values never go to mi_identity, flow_data or a log line; the daemon keeps the ID number in
mi_secret for the kiosk's registration.
"""
from __future__ import annotations

from typing import Optional

from bridge.masking import mask_id, mask_name


def masked_certno(certno: Optional[str]) -> Optional[str]:
    return mask_id(str(certno)) if certno else None


def masked_name(name: Optional[str]) -> Optional[str]:
    return mask_name(str(name)) if name else None
