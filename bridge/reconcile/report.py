"""What the HIS is told about a run: inbox rows of result type `reconciliation`, under one
outbox row of kind reconciliation.report per run (written done, with them, when the run ends:
runs.Runs.complete).

* one summary row: error_code NULL when the day balanced, RECON_DIFFERENCES when not; the
  counts per class in `result`;
* one row per differing item (order and leg), up to report_max_rows: error_code
  RECON_<CLASS>, order_id = the order (setl_id / payOrdId / out_trade_no), the three sides'
  amounts and the payment's business key in `result`.  The rest are in mi_v_recon_review.

A run whose differences are exactly those of the previous completed run of its day writes no
report: the HIS already has them (re-running a day is idempotent for the HIS).
"""
from __future__ import annotations

from typing import Iterable

from bridge.db.store import InboxRow
from bridge.reconcile.model import BALANCED, DIFFERENCES

RESULT_TYPE = "reconciliation"


def _text(d: dict) -> str:
    def m(v):
        return "-" if v is None else str(v)
    sides = f"hospital {m(d['hospital_amount'])}, platform {m(d['platform_amount'])}"
    if d.get("channel_amount") is not None or d["leg"] == "channel":
        sides += f", channel {m(d['channel_amount'])}"
    return f"{d['order_key']} {d['leg']}: {d['diff_class']} ({sides})" + (f"; {d['note']}" if d.get("note") else "")


def build(day: str, platform: str, run_id: int, counts: dict[str, int], balanced: bool,
          differences: Iterable[dict], max_rows: int, remark: str = "") -> tuple[str, dict, list[InboxRow]]:
    differ = sum(n for c, n in counts.items() if c != BALANCED)
    total = sum(counts.values())
    said = (f"{day} {platform}: {total} item(s), {'balanced' if balanced else f'{differ} difference(s)'}"
            + (f"; {remark}" if remark else "") + (" (see mi_v_recon_review)" if differ else ""))
    rows = [InboxRow(RESULT_TYPE, "ok", error_code=None if balanced else "RECON_DIFFERENCES", error_message=said,
                     result={"summary": True, "day": day, "platform": platform, "run_id": run_id,
                             "balanced": balanced, "counts": counts, "differences_sent": min(differ, max_rows),
                             "differences": differ})]
    for n, d in enumerate(differences):
        if n >= max_rows:
            break
        assert d["diff_class"] in DIFFERENCES
        rows.append(InboxRow(
            RESULT_TYPE, "ok", error_code=f"RECON_{d['diff_class'].upper()}", error_message=_text(d),
            order_id=d["order_key"][:64],
            result={"day": day, "platform": platform, "run_id": run_id, "order_key": d["order_key"],
                    "leg": d["leg"],
                    "class": d["diff_class"], "payment_key": d["business_key"], "channel": d["channel"],
                    "channel_ref": d["channel_ref"],
                    "hospital_amount": None if d["hospital_amount"] is None else str(d["hospital_amount"]),
                    "platform_amount": None if d["platform_amount"] is None else str(d["platform_amount"]),
                    "channel_amount": None if d["channel_amount"] is None else str(d["channel_amount"]),
                    "hospital_state": d["hospital_state"], "platform_state": d["platform_state"],
                    "source": d["source"], "note": d["note"]}))
    key = f"RECON-{day}-{platform}-{run_id}"
    return key, {"day": day, "platform": platform, "run_id": run_id}, rows
