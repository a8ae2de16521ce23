"""Every face-pay flow, in one list: the daemon's wiring and `mibridge flows` both take it
from here, so a new kind cannot be registered in one and forgotten in the other."""
from __future__ import annotations

from bridge.engine.flow import Flow
from bridge.facepay.admission import admission_flows
from bridge.facepay.flows import FacePaySettings, all_flows


def every_flow(settings: FacePaySettings) -> list[Flow]:
    return all_flows(settings) + admission_flows(settings)
