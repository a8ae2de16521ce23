"""Did the HIS take a result row?  The 单边账 guard shared by the money flows.

After a settlement is final on the platform, the flow writes its inbox row and
waits.  The HIS either consumes it (accepted), marks it rejected, or lets it
sit.  A row left longer than the window is taken back *atomically*: it is
marked consumed-and-rejected only if the HIS has not consumed it in the same
instant, so the HIS can never accept a settlement that is being reversed.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

ACCEPTED = "accepted"      # consumed, not rejected: keep the money
REJECTED = "rejected"      # the HIS said no: reverse
EXPIRED = "expired"        # not taken within the window, and now withdrawn: reverse
WAITING = "waiting"        # ask again after `wait` seconds
MISSING = "missing"        # no such inbox row (someone deleted it): a person looks


@dataclass(frozen=True)
class Verdict:
    status: str
    wait: float = 0.0                  # seconds left in the window (WAITING)
    age_seconds: Optional[float] = None


def his_verdict(ctx, result_type: str, window_seconds: float) -> Verdict:
    st = ctx.port.inbox_state(ctx.row.id, result_type)
    if st is None:
        return Verdict(MISSING)
    if st["consumed"]:
        return Verdict(REJECTED if st["his_ack"] == "rejected" else ACCEPTED, age_seconds=st["age_seconds"])
    if st["age_seconds"] < window_seconds:
        return Verdict(WAITING, wait=window_seconds - st["age_seconds"], age_seconds=st["age_seconds"])
    if ctx.port.withdraw_inbox_row(st["id"]):
        return Verdict(EXPIRED, age_seconds=st["age_seconds"])
    return Verdict(WAITING, wait=0.1, age_seconds=st["age_seconds"])   # consumed just now: look again
