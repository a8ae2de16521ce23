"""Identity before the payment and the kiosk (issue 13): where each piece is, and the list of
flows the daemon wires (daemon/wiring_identity.py).

    identity.lookup          [QR / card] -> 1101 -> 2001 per insurance -> `identity` row    lookup.py
    identity.choose          the patient's choice -> mi_identity + `identity_choice` row   choose.py
    kiosk.register           2201 as operator type 2 -> `registration` row              registration.py
    kiosk.register_cancel    2202 (refused while a settlement stands)                   registration.py
    kiosk.presettle          2205+2204 -> 2206 on the registered visit                  kiosk.py
    kiosk.settle             2207 -> HIS ack (face-pay's steps; 2601 resolves a lost answer)   kiosk.py
    kiosk.cancel             2208 (face-pay's steps; fpy001 resolves a lost answer)     kiosk.py

Shared pieces: kinds.py, settings.py ([identity]), payloads.py, insurances.py (the
insurance list, the benefit, which insurance a request uses: also mobile pay's 1101 path,
bridge/mobilepay/payment.py), masking.py (what of an ID number the HIS gets).
Tests of every decision: tests/flows_unit/test_identity_*.py.
"""
from __future__ import annotations

from typing import Optional

from bridge.engine.flow import Flow
from bridge.facepay.settings import FacePaySettings

from .choose import ChooseFlow
from .kiosk import KioskCancelFlow, KioskPresettleFlow, KioskSettleFlow
from .lookup import LookupFlow
from .registration import RegisterCancelFlow, RegisterFlow
from .settings import IdentitySettings


def all_flows(settings: IdentitySettings, facepay: Optional[FacePaySettings] = None) -> list[Flow]:
    """Every identity and kiosk flow; `facepay`: the [facepay] settings when configured (the
    kiosk then pays with the real account too)."""
    money = settings.kiosk_settlement(facepay)
    return [LookupFlow(settings), ChooseFlow(), RegisterFlow(settings), RegisterCancelFlow(settings),
            KioskPresettleFlow(money, settings), KioskSettleFlow(money, settings), KioskCancelFlow(money, settings)]
