"""Wire names of the real-account face-pay extension shared by the client AND the simulator.

This module imports nothing from the rest of bridge on purpose: bridge/simulator imports it
too, so that the client (bridge/facepay, bridge/offline) and the simulated platform cannot
drift apart on names that no public document gives.

Source: ../shared/spec/facepay.md (a 2026 Guangdong tender; no public implementation).
* [L]  names the tender itself gives (expContent fields, fpy001, tgdupc004, origPlatformSeqId).
* [OUR CHOICE] everything else below: facepay.md describes what fpy001 and mpc004 carry but
  names no field.  These are our choice pending the official provincial document; correct
  them HERE and both sides follow.
"""
from __future__ import annotations

# --- expContent (facepay.md "expContent fields") ------------------------------- [L]
EXP_CONTENT = "expContent"          # the extension object on 2206/2207/2208/2303/2304/2305/2260/2261
MERCHANT_NO = "merchantNo"          # UnionPay merchant number of the institution
TERMINAL_NO = "terminalNo"          # terminal number
ISV_NO = "isvNo"                    # service-provider number (provider dictionary)
ACCT_TYPE = "acctType"              # account / business type, test value "A02"
DOWN_PAYMENT = "down_payment"       # down payment amount, test value 0.0
EXP_CONTENT_REQUIRED = (MERCHANT_NO, TERMINAL_NO, ISV_NO, ACCT_TYPE)   # down_payment optional

# --- interface codes ---------------------------------------------------------- [L]
FPY001_INFNO = "fpy001"             # path suffix …/hsa/hgs/fpy001
MPC004_INFNO = "tgdupc004"          # mpc004, sent to …/poc_hos_unionRefund

# --- [OUR CHOICE] common: the settlement is named by its offline identifiers (offline.md §5.9)
SETL_ID = "setl_id"
MDTRT_ID = "mdtrt_id"
PSN_NO = "psn_no"
# Both answers put their record under this node of `output` (like 2201's `data`).
OUTPUT_NODE = "data"
# Input node: the national default for single-record inputs.
INPUT_NODE = "data"

# --- [OUR CHOICE] fpy001 real-account status query -----------------------------
FPY001_INPUT_FIELDS = (SETL_ID, MDTRT_ID, PSN_NO)          # setl_id required, others checked
SETL_STAS = "setl_stas"             # core settlement state
SETL_STAS_VALID, SETL_STAS_CANCELLED = "1", "0"
ACCT_PAY = "acct_pay"               # the account part of the settlement (offline name)
ACCT_STAS = "acct_stas"             # account deduction/refund state, values below
ACCT_STAS_NONE = "0"                # no real-account deduction for this settlement
ACCT_STAS_DEDUCTED = "1"
ACCT_STAS_REFUNDED = "2"
ACCT_STAS_REFUND_FAILED = "3"
PLATFORM_SEQ_ID = "platformSeqId"   # UnionPay serial: always that of the deduction (tender)
REF_NO = "refNo"                    # reference number for acquirer reconciliation
TERM_SEQ_NO = "termSeqNo"           # channel terminal serial
REFUND_SEQ_ID = "refundSeqId"       # UnionPay serial of the refund, once refunded

# --- [OUR CHOICE] mpc004 personal-account refund --------------------------------
ORIG_PLATFORM_SEQ_ID = "origPlatformSeqId"   # [L] optional input: the deduction's serial
# mpc004 "reuses a mobile-pay interface" (facepay.md); the mobile-pay refund is 6203
# (mobilepay.md §5.3), whose names we reuse for the refund serial, time and amount.
APP_REFD_SN = "appRefdSn"
APP_REFD_TIME = "appRefdTime"       # yyyyMMddHHmmss
PSN_ACCT_REFD_AMT = "psnAcctRefdAmt"         # must equal the refundable account amount
MPC004_SETTLEMENT_FIELDS = (SETL_ID, MDTRT_ID, PSN_NO)
# Output: refStatus as 6203 (SUCC / FAIL / EXP), plus the amount and the serials.
REF_STATUS = "refStatus"
ACCT_REFD_AMT = "acct_refd_amt"
