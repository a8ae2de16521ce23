"""The simulator's control endpoints (/__sim__/...), over HTTP like everything else.
Shared by the test packages that drive a running simulator."""
from __future__ import annotations

from typing import Any, Optional

import httpx


class SimControl:
    def __init__(self, running) -> None:
        self.running = running
        self.url = running.url
        self.creds = running.client_credentials()
        self.http = httpx.Client(timeout=10.0)

    def control(self, method: str, path: str, body: Optional[dict] = None) -> Any:
        r = self.http.request(method, self.url + path, json=body)
        r.raise_for_status()
        return r.json()

    def state(self) -> dict:
        return self.control("GET", "/__sim__/state")

    def arm(self, interface: str, fault: str, **kw: Any) -> None:
        self.control("POST", "/__sim__/faults", {"interface": interface, "fault": fault, **kw})

    def person(self, psn_no: str) -> dict:
        return next(p for p in self.control("GET", "/__sim__/persons")["persons"] if p["psn_no"] == psn_no)
