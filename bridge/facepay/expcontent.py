"""Every wire name of the Guangdong real-account face-pay extension, in one place.

Source: ../shared/spec/facepay.md (a 2026 Guangdong county-hospital tender; no
public implementation exists - searched code/pages for fpy001, tgdupc004,
unionRefund, origPlatformSeqId, merchantNo+isvNo: nothing).  Every name is
therefore [L] at best; fpy001/mpc004 field names are *our* choice where facepay.md names
no field at all.  They are defined once, in bridge/facepay/fields.py, shared with the
simulator; correct them there when the provincial document is available.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from bridge.offline.envelope import dumps

# All wire names live in bridge/facepay/fields.py, which the simulator imports too; they
# are re-exported here for the client code that already reads them from this module.
from bridge.facepay.fields import (  # noqa: F401,E402  (re-exports)
    ACCT_PAY, ACCT_REFD_AMT, ACCT_STAS, ACCT_TYPE, APP_REFD_SN, APP_REFD_TIME, DOWN_PAYMENT,
    FPY001_INFNO, FPY001_INPUT_FIELDS, ISV_NO, MERCHANT_NO, MPC004_INFNO,
    MPC004_SETTLEMENT_FIELDS, ORIG_PLATFORM_SEQ_ID, OUTPUT_NODE, PLATFORM_SEQ_ID,
    PSN_ACCT_REFD_AMT, REF_NO, REF_STATUS, REFUND_SEQ_ID, SETL_STAS, SETL_STAS_VALID, TERM_SEQ_NO,
    TERMINAL_NO,
)

# Which calls carry expContent is the offline envelope's business (the offline client
# applies it); named here too for face pay's readers.
from bridge.offline.expcontent import ACCOUNT_FLAG_INFNOS, EXP_CONTENT_INFNOS  # noqa: F401,E402


@dataclass(frozen=True)
class FacePayTerms:
    """The institution's face-pay identifiers that go into expContent."""

    merchant_no: str
    terminal_no: str
    isv_no: str
    acct_type: str
    down_payment: Decimal = Decimal("0.00")

    def exp_content(self, *, as_string: bool = False) -> Any:
        obj = {MERCHANT_NO: self.merchant_no, TERMINAL_NO: self.terminal_no,
               ISV_NO: self.isv_no, ACCT_TYPE: self.acct_type,
               DOWN_PAYMENT: self.down_payment}
        # Some versions carry the extension as a JSON string (offline.md §5.5 CQ 2204).
        return dumps(obj).decode("utf-8") if as_string else obj
