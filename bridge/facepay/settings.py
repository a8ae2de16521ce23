"""[facepay] settings of the flows (daemon/platforms_facepay.py reads them from the config)."""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Optional

from bridge.facepay.expcontent import FacePayTerms

ZERO = Decimal("0.00")


@dataclass(frozen=True)
class FacePaySettings:
    """[facepay] section (daemon/platforms_facepay.py).  Delays in seconds."""

    # Global switch: False = every request settles the plain way (acct_used_flag 0, no
    # expContent), whatever the payload says (issue 5: "switched off ... globally").
    enabled: bool = True
    # Default terms for expContent (facepay.md table); a request may name its own terminal.
    merchant_no: str = ""
    terminal_no: str = ""
    isv_no: str = ""
    acct_type: str = "A02"
    down_payment: Decimal = ZERO
    # Face terminal (cn.nhsa.ec.auth / auth.check / settle.notify, offline.md §7.2).
    business_type: str = "01101"      # the only code seen (offline.md §13 #5)
    office_id: str = ""
    office_name: str = ""
    hospital_name: str = ""
    # Send cn.nhsa.settle.notify after a settlement of an identified patient (offline.md
    # §7.2: needed when the terminal did not collect the payment itself - it never does here).
    notify_terminal: bool = True
    notify_attempts: int = 3
    notify_retry_seconds: float = 5.0
    # The credential used in 2201..2207 for a face-identified patient.  "02" = ID number
    # (NMG route, offline.md §7.3) by default: an ecToken ("01") is short-lived and GZ
    # rescans before 2207 (§7.3) - OUR CHOICE: the route that does not expire.
    cert_type: str = "02"
    # How long after a send the core may still book it (client read timeout + margin).
    # "not found" before that is "not yet", after it "never" (docs/engine.md rule 7).
    settle_window_seconds: float = 120.0
    resolve_retry_seconds: float = 10.0
    # After a lost settle answer, 2601 reverses whatever was booked and the settlement is
    # sent again; more reversals than this on one row -> held.  OUR CHOICE.
    max_reversals: int = 2
    # The platform's text for "2601: original message not found".  No public source
    # gives it (offline.md §9.4 only says "return an error"); anything else a 2601 answers
    # keeps the row in doubt and, in the end, held.  OUR CHOICE (simulator's wording).
    reversal_not_found_markers: tuple[str, ...] = ("原交易不存在",)
    # The platform's text for "this transaction cannot be reversed" (offline.md §9.4: an
    # error for a non-reversible oinfno; §9.2's list is single-source and may not hold
    # 2260).  A lost settle answer whose reversal is refused like this is held at once
    # for a person: nothing else can tell whether it was booked.  OUR CHOICE (simulator).
    reversal_refused_markers: tuple[str, ...] = ("不允许冲正",)
    # The transactions 2601 is known to reverse (offline.md §9.2, single-source).  For any
    # other (2260) a "not found" answer cannot mean "never booked": the platform may look
    # the msgid up only among reversible messages.  Such a lost answer is held.
    reversible_infnos: tuple[str, ...] = ("2207", "2208", "2304", "2305", "2401")
    # mpc004 personal-account refund: tries and the pause before each retry
    # (facepay.md: "may be called again, in a loop").  After the last -> held.
    refund_retry_delays: tuple[float, ...] = (60.0, 300.0, 900.0, 3600.0)
    # 单边账: after the settlement row, wait for the HIS to consume it.  'rejected' ->
    # cancel at once; not consumed within his_ack_timeout_seconds -> cancel too
    # (issue 5).  0 = do not wait (no automatic cancel).
    his_ack_timeout_seconds: float = 900.0
    his_ack_poll_seconds: float = 2.0
    # After a settlement with a real-account deduction (face pay, account part > 0), ask
    # fpy001 for the UnionPay references (refNo, termSeqNo, platformSeqId) the acquirer
    # reconciliation needs, and put them in the settlement row (issue 14).  The settlement
    # has happened: a failing fpy001 is asked again (backoff) for at most
    # references_wait_seconds after its first try (database clock), then the row is
    # written with `references: "unavailable"`.  OUR CHOICE: 10 s - the cashier waits
    # for the settlement row.
    fetch_references: bool = True
    references_wait_seconds: float = 10.0

    def terms(self, override: Optional[dict] = None) -> Optional[FacePayTerms]:
        o = override or {}
        t = FacePayTerms(merchant_no=o.get("merchant_no") or self.merchant_no,
                         terminal_no=o.get("terminal_no") or self.terminal_no,
                         isv_no=o.get("isv_no") or self.isv_no,
                         acct_type=o.get("acct_type") or self.acct_type,
                         down_payment=Decimal(str(o.get("down_payment", self.down_payment))))
        if not (t.merchant_no and t.terminal_no and t.isv_no and t.acct_type):
            return None
        return t
