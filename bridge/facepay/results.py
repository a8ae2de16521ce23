"""The money rows a face-pay flow writes for the HIS: a settlement's split (split_of) as
flow_data text, and an inbox row of it (money_row)."""
from __future__ import annotations

from decimal import Decimal
from typing import Any, Optional

from bridge.engine.flow import InboxRow
from bridge.offline import messages as m

ZERO = Decimal("0.00")


def split_of(s: m.Settlement) -> dict:
    acct = s.acct_pay if s.acct_pay is not None else ZERO
    cash = s.psn_cash_pay if s.psn_cash_pay is not None else ZERO
    return {"total": str(s.medfee_sumamt), "fund": str(s.fund_pay_sumamt if s.fund_pay_sumamt is not None else ZERO),
            "account": str(acct), "cash": str(cash), "hosp_part": str(s.hosp_part_amt or ZERO),
            "balc": None if s.balc is None else str(s.balc)}


def dec(v: Any) -> Optional[Decimal]:
    return None if v in (None, "") else Decimal(str(v))


def money_row(result_type: str, split: dict, *, settlement_id: Optional[str] = None,
               outcome: str = "ok", result: Optional[dict] = None, sign: int = 1,
               error_code: Optional[str] = None, error_message: Optional[str] = None) -> InboxRow:
    def amt(k):
        v = dec(split.get(k))
        return None if v is None else (v * sign).quantize(Decimal("0.01"))
    return InboxRow(result_type=result_type, outcome=outcome, settlement_id=settlement_id,
                    total_amount=amt("total"), fund_amount=amt("fund"),
                    account_amount=amt("account"), cash_amount=amt("cash"),
                    error_code=error_code, error_message=error_message,
                    result=dict(result or {}, split=split))
