"""kiosk.presettle / kiosk.settle / kiosk.cancel: the fee of a kiosk registration (or any
outpatient bill of that visit) settled at the kiosk, with face-pay's own steps
(bridge/facepay presettle.py, settle.py, cancel.py, fsi.py) as operator type 2.

    kiosk.presettle   prepare (the visit of a done kiosk.register) -> 2205+2204 -> 2206
    kiosk.settle      2207 [-> fpy001: the UnionPay references, when the real account paid]
                      -> waits for the HIS to take the row (单边账: else 2208)
    kiosk.cancel      2208 (+ fpy001 / mpc004 when the real account's refund fails; without
                      face pay a lost 2208 is resolved by 2601 of its msgid, cancel.py)

With a [facepay] section the kiosk can pay with the real personal account (face_pay true,
the default there); without one, or with face_pay false, it settles the plain way
(acct_used_flag 0 with `face_pay: false`).  The money rules are face-pay's, unchanged: 2207
and 2208 are journalled before they are sent and NOT safe to repeat; a lost 2207 is resolved
by 2601 with its msgid (reversed -> sent again as a new message; "not found" -> only after
the settle window), a lost 2208 by fpy001; never a blind resend.  Every money row carries
`platform: "kiosk"` in result_json (the order book reads it, bridge/db/orderbook.py), and a
settlement row the facts the book and the reconciliation need (book_facts: psn_no, mdtrt_id,
insutype, clr_type, clr_optins, setl_time).
"""
from __future__ import annotations

from bridge.engine.flow import Fail, Goto, Step
from bridge.facepay.cancel import OutpatientCancelFlow
from bridge.facepay.patient import split_person
from bridge.facepay.payloads import PERSON_KEYS
from bridge.facepay.presettle import OutpatientPresettleFlow
from bridge.facepay.settings import FacePaySettings
from bridge.facepay.settle import OutpatientSettleFlow
from bridge.offline import messages as m

from .kinds import KIND_CANCEL, KIND_PRESETTLE, KIND_SETTLE, PLATFORM_KIOSK
from .payloads import KioskPresettleRequest, parse_kiosk_cancel, parse_kiosk_settle, parse_presettle
from .registration import done_registration
from .settings import IdentitySettings


class KioskPresettleFlow(OutpatientPresettleFlow):
    """The outpatient trial on the registered visit: no 2201 (the registration did it), no
    2203 (a registration fee has no diagnosis; 2206 needs only the fee lines, offline.md
    §5.7), then face-pay's upload_fees and presettle steps."""

    kind = KIND_PRESETTLE
    steps = {
        "prepare": Step("prepare", next=("upload_fees",)),
        "upload_fees": Step("upload_fees", calls=("2205", "2204"), next=("presettle",)),
        "presettle": Step("presettle", calls=("2206",), next=("presettle",)),
    }

    def __init__(self, settings: FacePaySettings, identity: IdentitySettings):
        super().__init__(settings)
        self.identity = identity

    def parse(self, doc: dict) -> KioskPresettleRequest:
        return parse_presettle(doc, self.identity)

    def step_prepare(self, ctx):
        p: KioskPresettleRequest = ctx.payload
        reg = done_registration(ctx, p.register_key)
        if isinstance(reg, Fail):
            return reg
        face_pay, terms = self._mode(ctx)
        operator = p.operator or reg.get("operator")
        visit = {k: reg[k] for k in PERSON_KEYS}
        visit.update(total=str(p.total), chrg_bchno=p.chrg_bchno, med_type=p.med_type, psn_setlway=p.psn_setlway,
                     mid_setl_flag="0", terms=terms, mdtrt_id=reg["mdtrt_id"], face=None,
                     dr_name=reg.get("dr_name"), operator=operator)
        public, secret = split_person(visit)
        return Goto("upload_fees", data={"visit": public, "face_pay": face_pay, "operator": operator},
                    secrets=secret)


def book_facts(s: m.Settlement, visit: dict) -> dict:
    """What the order book and the day-end reconciliation group and list a settlement by
    (bridge/db/orderbook.py RESULT_KEYS; 3201 per insutype and clr_type, 3202 lists psn_no,
    mdtrt_id, setl_id): from 2207's setlinfo, else the registered visit.  In the row itself,
    so that the book never depends on reading the call's answer back from the journal."""
    facts = {"psn_no": s.psn_no or visit.get("psn_no"), "mdtrt_id": s.mdtrt_id or visit.get("mdtrt_id"),
             "insutype": s.insutype or visit.get("insutype"), "clr_type": s.clr_type,
             "clr_optins": s.clr_optins or visit.get("insuplc_admdvs"), "setl_time": s.setl_time}
    return {k: v for k, v in facts.items() if v not in (None, "")}


class KioskSettleFlow(OutpatientSettleFlow):
    kind = KIND_SETTLE
    platform = PLATFORM_KIOSK

    def __init__(self, settings: FacePaySettings, identity: IdentitySettings):
        super().__init__(settings)
        self.identity = identity

    def _settlement_result(self, ctx, s: m.Settlement, result: dict) -> dict:
        return dict(result, **book_facts(s, ctx.data["visit"]))

    @property
    def presettle_kind(self) -> str:
        return KIND_PRESETTLE

    def parse(self, doc: dict):
        return parse_kiosk_settle(doc, self.identity)


class KioskCancelFlow(OutpatientCancelFlow):
    kind = KIND_CANCEL
    platform = PLATFORM_KIOSK

    def __init__(self, settings: FacePaySettings, identity: IdentitySettings):
        super().__init__(settings)
        self.identity = identity

    @property
    def settle_kind(self) -> str:
        return KIND_SETTLE

    def parse(self, doc: dict):
        return parse_kiosk_cancel(doc, self.identity)
