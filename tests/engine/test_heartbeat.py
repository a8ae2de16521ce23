"""The heartbeat renews the leases this daemon holds; a worker that lost a row stops
renewing only its own claim, never a newer claim of the same row (review finding: a
late release of the old claim let the new claim's lease run out in the middle of a call)."""
from __future__ import annotations

from bridge.engine.heartbeat import Heartbeat


def test_a_late_release_of_an_old_claim_keeps_the_new_claim_renewed():
    hb = Heartbeat(lambda: None, lease_seconds=30)
    hb.hold(7, "d:1:w0:1")
    hb.hold(7, "d:1:w1:2")           # rescued, then claimed again here under a new owner
    hb.release(7, "d:1:w0:1")        # the old worker finishes (LostLease) and lets go
    assert hb._held == {7: "d:1:w1:2"}
    hb.release(7, "d:1:w1:2")
    assert hb._held == {}
