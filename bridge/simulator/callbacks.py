"""Delivery of the 6302 settlement notice to the hospital's callback URL, with retries.

mobilepay.md §5.6: the notice carries the 6302 fields in the same SM4/SM2 envelope as the
platform's responses [L]; what the hospital answers is unknown, so a delivery counts as
accepted on HTTP 2xx unless the body is a JSON object whose `code` is not 0 (this accepts
both an enveloped reply with code 0 and a plain HTTP 200, as the digest suggests).
"""
from __future__ import annotations

import threading
from typing import Optional

import httpx
from loguru import logger

from .config import SimulatorConfig
from .faults import Faults
from .mpc_envelope import seal
from .wire import dumps, loads


class CallbackSender:
    def __init__(self, cfg: SimulatorConfig, faults: Faults) -> None:
        self.cfg = cfg
        self.faults = faults
        self._lock = threading.Lock()
        self.deliveries: list[dict] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def reset(self) -> None:
        with self._lock:
            self.deliveries.clear()

    def stop(self) -> None:
        self._stop.set()
        for t in list(self._threads):
            t.join(timeout=2)

    def send(self, pay_ord_id: str, notice: dict, url: Optional[str] = None) -> None:
        target = url or self.cfg.callback_url
        if not target:
            return
        record = {"payOrdId": pay_ord_id, "url": target, "attempts": 0, "delivered": False,
                  "last_error": None}
        with self._lock:
            self.deliveries.append(record)
        t = threading.Thread(target=self._deliver, args=(record, notice), daemon=True,
                             name=f"sim-6302-{pay_ord_id}")
        self._threads.append(t)
        t.start()

    def _deliver(self, record: dict, notice: dict) -> None:
        for attempt in range(1, self.cfg.callback_attempts + 1):
            if self._stop.is_set():
                return
            record["attempts"] = attempt
            if self.faults.take("6302") is not None:
                record["last_error"] = "fault injected: attempt not sent"
            else:
                try:
                    body = dumps(seal(self.cfg, notice, {})).encode("utf-8")
                    r = httpx.post(record["url"], content=body, timeout=5.0,
                                   headers={"Content-Type": "application/json"})
                    if self._accepted(r):
                        record["delivered"] = True
                        record["last_error"] = None
                        return
                    record["last_error"] = f"HTTP {r.status_code}"
                except httpx.HTTPError as exc:
                    record["last_error"] = type(exc).__name__
            logger.info("6302 delivery attempt {} for {} failed: {}", attempt, record["payOrdId"],
                        record["last_error"])
            self._stop.wait(self.cfg.callback_retry_delay * attempt)

    @staticmethod
    def _accepted(r: httpx.Response) -> bool:
        if not 200 <= r.status_code < 300:
            return False
        try:
            body = loads(r.content) if r.content else None
        except ValueError:
            return True
        if isinstance(body, dict) and "code" in body:
            return str(body["code"]) == "0"
        return True

    def log(self) -> list[dict]:
        with self._lock:
            return [dict(d) for d in self.deliveries]
