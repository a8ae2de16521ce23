"""Face-scan one-stop settlement with the real personal account (issue 5): where each
piece is, and the list of flows.

Kinds (payloads: docs/facepay.md; state tables: `mibridge flows`):

    facepay.identify               face on the terminal -> insured identity          identify.py
    facepay.outpatient.presettle   [2201] -> 2203 -> 2205+2204 -> 2206               presettle.py
    facepay.outpatient.settle      2207 -> terminal notice -> HIS ack                settle.py
    facepay.outpatient.cancel      2208 (+ fpy001 / mpc004 when the account refund fails)   cancel.py
    facepay.inpatient.presettle    2302+2301 -> 2303                                 presettle.py
    facepay.inpatient.settle       2304 -> terminal notice -> HIS ack                settle.py
    facepay.inpatient.cancel       2305 (+ fpy001 / mpc004)                          cancel.py
    facepay.document.presettle     2260 setl_flag 0    Guangdong one-shot outpatient (offline.md §5.11)
    facepay.document.settle        2260 setl_flag 1 -> terminal notice -> HIS ack    settle.py
    facepay.document.cancel        2261 (+ fpy001 / mpc004)                          cancel.py
    facepay.inpatient.admit        2401 (lost answer: 2601)                          admission.py
    facepay.inpatient.admit_cancel 2404                                              admission.py

Shared pieces: kinds.py (kind names, infno per setting), settings.py ([facepay]),
payloads.py (parsing), patient.py (who, and what is secret), fsi.py (9001 + call +
how an answer is read, 2601 verdicts), visit.py (the settlement request of a visit),
results.py (money rows).  The settlement call (2207/2304/2260) is
settle._SettleBase.step_settle; what happens when its answer is lost is resolve_settle.

Rules these flows keep (docs/engine.md):
* every call that moves money (2207/2304/2260 settle, 2208/2305/2261 cancel, mpc004 refund,
  2401 admission) is NOT safe to repeat and has a resolver that asks the platform first:
    - settle: no setl_id is known when its answer is lost, so fpy001 (which needs one)
      cannot help; offline.md §9.3 names 2601 with the original msgid/infno as the tool.
      2601 succeeds -> the lost settlement (if it was booked) is undone at the core,
      account included, and the settlement is sent again, as a new message (bounded by
      max_reversals).  2601 says "original not found" -> only after the settle window
      (database clock) is that taken as "never booked", and the settlement is sent.
    - cancel and mpc004: fpy001 (facepay.md §2) tells the settlement state and the
      account's deduction/refund state.
* a REJECTED answer means nothing happened (bridge/calls.py) and is what allows a
  different call (the plain settlement, mpc004) to follow.

Where facepay.md / offline.md are silent, the choice is ours and says so ("OUR CHOICE").
Tests of every decision: tests/flows_unit/test_facepay_*.py.

`all_flows(settings)` (and catalog.every_flow, with the admissions) is what the daemon
wires; the names below were importable from this module before it was split.
"""
from __future__ import annotations

from bridge.engine.flow import Flow

from .cancel import DocumentCancelFlow, InpatientCancelFlow, OutpatientCancelFlow
from .identify import IdentifyFlow
from .kinds import ALL_KINDS, DOC, INFNO, INP, KIND_IDENTIFY, OUT, kind  # noqa: F401
from .patient import PERSON_SECRETS, SECRET_KEYS, split_person, with_secrets  # noqa: F401
from .payloads import PERSON_KEYS, parse_operator, parse_presettle  # noqa: F401
from .presettle import DocumentPresettleFlow, InpatientPresettleFlow, OutpatientPresettleFlow
from .settings import FacePaySettings
from .settle import DocumentSettleFlow, InpatientSettleFlow, OutpatientSettleFlow


def all_flows(settings: FacePaySettings) -> list[Flow]:
    """The settlement flows (identify, pre-settle, settle, cancel); catalog.every_flow adds
    the admissions."""
    return [IdentifyFlow(settings), OutpatientPresettleFlow(settings), OutpatientSettleFlow(settings),
            OutpatientCancelFlow(settings), InpatientPresettleFlow(settings), InpatientSettleFlow(settings),
            InpatientCancelFlow(settings), DocumentPresettleFlow(settings), DocumentSettleFlow(settings),
            DocumentCancelFlow(settings)]
