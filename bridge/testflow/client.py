"""Client of the test platform, following the bridge.calls contract."""
from __future__ import annotations

import json
import uuid
from dataclasses import replace
from urllib.parse import urlencode
from decimal import Decimal

import httpx

from bridge.calls import CallResult, Outcome, PreparedCall
from bridge.tls import client_context


class TestPlatformClient:
    def __init__(self, base_url: str, timeout: float = 2.0):
        self.base_url = base_url.rstrip("/")
        self.http = httpx.Client(timeout=timeout, verify=client_context())

    def _prepare(self, interface: str, method: str, path: str, body: dict | None) -> PreparedCall:
        raw = json.dumps(body, default=str).encode() if body is not None else b""
        return PreparedCall(interface=interface, msg_id=uuid.uuid4().hex, url=self.base_url + path,
                            body=raw, headers={"X-Method": method, "Content-Type": "application/json"},
                            masked_request=raw.decode() or path, decode=_decode(interface))

    def prepare_charge(self, ref: str, amount: Decimal) -> PreparedCall:
        return self._prepare("charge", "POST", "/charge", {"ref": ref, "amount": str(amount)})

    def prepare_query(self, ref: str) -> PreparedCall:
        return self._prepare("charge.query", "GET", "/charge?" + urlencode({"ref": ref}), None)

    def prepare_notify(self, ref: str) -> PreparedCall:
        return self._prepare("notify", "POST", "/notify", {"ref": ref})

    def send(self, p: PreparedCall) -> CallResult:
        method = p.headers.get("X-Method", "POST")
        try:
            if method == "GET":
                r = self.http.get(p.url)
            else:
                r = self.http.post(p.url, content=p.body, headers={"Content-Type": "application/json"})
        except httpx.ConnectError as exc:
            # Refused before anything was sent: nothing can have happened remotely.
            return CallResult(Outcome.NOT_SENT, p.interface, p.msg_id, message=str(exc))
        except httpx.HTTPError as exc:
            return CallResult(Outcome.UNKNOWN, p.interface, p.msg_id,
                              message=f"{type(exc).__name__}: {exc}")
        return replace(p.decode(r.status_code, r.content), msg_id=p.msg_id)

    def close(self) -> None:
        self.http.close()


def _decode(interface: str):
    def decode(status: int, body: bytes) -> CallResult:
        if status >= 500:
            return CallResult(Outcome.UNKNOWN, interface, "", http_status=status, message=f"HTTP {status}")
        try:
            doc = json.loads(body, parse_float=Decimal)
        except ValueError:
            return CallResult(Outcome.UNKNOWN, interface, "", http_status=status, message="unparseable response")
        if str(doc.get("code")) != "0":
            return CallResult(Outcome.REJECTED, interface, "", http_status=status, code=str(doc.get("code")),
                              message=doc.get("message"), response_text=body.decode())
        return CallResult(Outcome.OK, interface, "", data=doc, raw=doc, http_status=status,
                          response_text=body.decode())
    return decode
