"""Every wire name of the Guangdong real-account face-pay extension, in one place.

Source: /work/shared/spec/facepay.md (a 2026 Guangdong county-hospital tender; no
public implementation exists - searched code/pages for fpy001, tgdupc004,
unionRefund, origPlatformSeqId, merchantNo+isvNo: nothing).  Every name below is
therefore [L] at best; names marked [U] are *our* choice where facepay.md names no
field at all.  Correct them here when the provincial document is available.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from bridge.offline.envelope import dumps

# --- expContent (facepay.md "expContent fields") ------------------------------- [L]
MERCHANT_NO = "merchantNo"          # UnionPay merchant number of the institution
TERMINAL_NO = "terminalNo"          # terminal number
ISV_NO = "isvNo"                    # service-provider number (provider dictionary)
ACCT_TYPE = "acctType"              # account / business type, test value "A02"
DOWN_PAYMENT = "down_payment"       # down payment amount, test value 0.0

# Calls that carry expContent (facepay.md settlement flow + cancellation section;
# offline.md §8): pre-settle / settle / cancel, outpatient, inpatient, GD one-shot.
EXP_CONTENT_INFNOS = frozenset({"2206", "2207", "2208", "2303", "2304", "2305", "2260", "2261"})
# Of those, the ones where face-pay sets acct_used_flag = "1" (facepay.md steps 2 and 4).
ACCOUNT_FLAG_INFNOS = frozenset({"2206", "2207", "2303", "2304", "2260"})

# --- fpy001 real-account status query ------------------------------------------
FPY001_INFNO = "fpy001"             # path suffix …/hsa/hgs/fpy001 (facepay.md)
# [U] facepay.md names no input field.  The query is about one settlement, so we send
# the offline identifiers of that settlement (offline.md §5.9 names).
FPY001_INPUT_FIELDS = ("setl_id", "mdtrt_id", "psn_no")
# facepay.md names no output field either (it describes: core settlement state,
# account deduction/refund state, UnionPay payment serial, reference number, channel
# terminal serial), so the output is kept whole, not typed.

# --- mpc004 personal-account refund, infno tgdupc004 ---------------------------
MPC004_INFNO = "tgdupc004"          # facepay.md
ORIG_PLATFORM_SEQ_ID = "origPlatformSeqId"   # [L] UnionPay serial of the deduction, optional
# [U] facepay.md says mpc004 "reuses a mobile-pay interface"; the mobile-pay refund is
# 6203 (mobilepay.md §5.3), whose names we reuse for the refund serial, its time and
# the personal-account amount; the settlement is named by its offline identifiers.
APP_REFD_SN = "appRefdSn"
APP_REFD_TIME = "appRefdTime"
PSN_ACCT_REFD_AMT = "psnAcctRefdAmt"
MPC004_SETTLEMENT_FIELDS = ("setl_id", "mdtrt_id", "psn_no")
# 6203 answers refStatus SUCC / FAIL / EXP (mobilepay.md §5.3); used when present.
REF_STATUS = "refStatus"


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
