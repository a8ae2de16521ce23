"""The expContent extension of the offline envelope, as the offline client sees it: which
calls carry it, and the one method it needs of the terms it carries.

The terms themselves (merchant, terminal, ISV, account type) are face pay's
(bridge/facepay/expcontent.py FacePayTerms, whose wire names bridge/facepay/fields.py
shares with the simulator).  Kept here so that the offline client does not import face
pay: face pay is built on the offline client, not the other way round.
"""
from __future__ import annotations

from typing import Any, Protocol

# Calls that carry expContent (facepay.md settlement flow + cancellation section;
# offline.md §8): pre-settle / settle / cancel, outpatient, inpatient, GD one-shot.
EXP_CONTENT_INFNOS = frozenset({"2206", "2207", "2208", "2303", "2304", "2305", "2260", "2261"})
# Of those, the ones where face-pay sets acct_used_flag = "1" (facepay.md steps 2 and 4).
ACCOUNT_FLAG_INFNOS = frozenset({"2206", "2207", "2303", "2304", "2260"})


class ExpContentTerms(Protocol):
    """What the offline client puts in a record's expContent field."""

    def exp_content(self, *, as_string: bool = False) -> Any: ...
