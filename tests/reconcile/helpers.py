"""Writing inbox rows the way the engine does (claim, then advance/finish), so that the order
book is kept by the real Store code on a real database."""
from __future__ import annotations

import itertools
import json
from decimal import Decimal
from typing import Iterable, Optional

from bridge.db.store import ClaimedRow, InboxRow, Store

D = Decimal
_owners = itertools.count(1)


def claim_row(store: Store, kind: str, key: str, payload: Optional[dict] = None,
              serial: Optional[str] = None) -> tuple[ClaimedRow, str]:
    """Enqueue a request and claim exactly it (other due rows are put back)."""
    oid = store.enqueue(kind, key, payload or {"total_amount": "1.00"}, serial_key=serial)
    owner = f"test:{next(_owners)}"
    got = None
    for r in store.claim(owner, 30, limit=50):
        if r.id == oid:
            got = r
        else:
            store.release(r, owner, "pending", 0, r.flow_data, error_code=None, error_message=None,
                          keep_call=False, keep_attempts=True)
    assert got is not None, f"could not claim {kind} {key}"
    return got, owner


def write(store: Store, kind: str, key: str, rows: Iterable[InboxRow], *, serial: Optional[str] = None,
          journal: Optional[list[tuple[str, dict]]] = None, state: str = "done",
          payload: Optional[dict] = None) -> int:
    """One request that writes `rows` when it finishes (`journal`: calls it made first, as
    (interface, answer) pairs journalled ok)."""
    row, owner = claim_row(store, kind, key, payload, serial)
    for n, (iface, answer) in enumerate(journal or ()):
        msg = f"M{row.id}-{n}"
        store.begin_call(row.id, owner, "x", msg, iface, "{}", unsafe=False, mark=False)
        store.end_call(msg, "ok", 200, json.dumps(answer, ensure_ascii=False), None)
    store.finish(row, owner, state, {}, list(rows))
    return row.id


def settlement(order_id: Optional[str], total: str, fund: str, acct: str, cash: str, *,
               settlement_id: Optional[str] = None, **result) -> InboxRow:
    return InboxRow("settlement", "ok", order_id=order_id, settlement_id=settlement_id or order_id,
                    total_amount=D(total), fund_amount=D(fund), account_amount=D(acct), cash_amount=D(cash),
                    result=result)


def refund(order_id: Optional[str], total: str, fund: str, acct: str, cash: str, *, result_type: str = "refund",
           outcome: str = "ok", settlement_id: Optional[str] = None, **result) -> InboxRow:
    return InboxRow(result_type, outcome, order_id=order_id, settlement_id=settlement_id,
                    total_amount=D(total), fund_amount=D(fund), account_amount=D(acct), cash_amount=D(cash),
                    error_code="REVERSED" if result_type == "reversal" else None, result=result)


def setlinfo(setl_id: str, *, insutype="310", clr_type="11", optins="440100", psn_no="P1", mdtrt_id="MD1",
             setl_time="2024-03-01 09:30:00", total="100.00", fund="70.00", acct="30.00") -> dict:
    """A 2207 answer as the journal keeps it."""
    return {"infcode": 0, "output": {"setlinfo": {
        "setl_id": setl_id, "psn_no": psn_no, "mdtrt_id": mdtrt_id, "insutype": insutype, "clr_type": clr_type,
        "clr_optins": optins, "setl_time": setl_time, "medfee_sumamt": total, "fund_pay_sumamt": fund,
        "acct_pay": acct}}}


def money(v) -> Optional[Decimal]:
    return None if v is None else Decimal(str(v)).quantize(Decimal("0.01"))
