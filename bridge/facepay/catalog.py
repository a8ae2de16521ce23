"""Every face-pay flow, in one list: the daemon's wiring and `mibridge flows` both take it
from here, so a new kind cannot be registered in one and forgotten in the other."""
from __future__ import annotations

from bridge.engine.flow import Flow
from bridge.facepay.admission import AdmitCancelFlow, AdmitFlow
from bridge.facepay.flows import all_flows
from bridge.facepay.settings import FacePaySettings


def every_flow(settings: FacePaySettings) -> list[Flow]:
    return all_flows(settings) + [AdmitFlow(settings), AdmitCancelFlow(settings)]
