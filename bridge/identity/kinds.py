"""The request kinds of identity and the kiosk (payloads: docs/identity.md).

    identity.lookup          [QR / card read] -> 1101 -> 2001 per insurance       lookup.py
    identity.choose          the patient's choice -> mi_identity                  choose.py
    kiosk.register           2201 at a kiosk (operator type 2)                    registration.py
    kiosk.register_cancel    2202                                                 registration.py
    kiosk.presettle          2205+2204 -> 2206 on the registered visit            kiosk.py
    kiosk.settle             2207 -> HIS ack (the face-pay settlement steps)      kiosk.py
    kiosk.cancel             2208 (the face-pay cancel steps)                     kiosk.py
"""
from __future__ import annotations

KIND_LOOKUP = "identity.lookup"
KIND_CHOOSE = "identity.choose"
KIND_REGISTER = "kiosk.register"
KIND_REGISTER_CANCEL = "kiosk.register_cancel"
KIND_PRESETTLE = "kiosk.presettle"
KIND_SETTLE = "kiosk.settle"
KIND_CANCEL = "kiosk.cancel"

ALL_KINDS = (KIND_LOOKUP, KIND_CHOOSE, KIND_REGISTER, KIND_REGISTER_CANCEL, KIND_PRESETTLE, KIND_SETTLE,
             KIND_CANCEL)

# The order book's platform of the kiosk's money rows (bridge/db/orderbook.py).
PLATFORM_KIOSK = "kiosk"
# Envelope opter_type of a self-service terminal (offline.md §2 #11, §6).
OPTER_KIOSK = "2"
