"""Delivery of the channels' callbacks to the hospital: WeChat Pay callbacks and Alipay notifies.

One worker thread delivers the events in the order they happened (deterministic, so a test can
see "out of order" only when it asks for it), each with up to `channel_callback_attempts`
attempts `channel_callback_retry_delay` x attempt apart. Accepted means: WeChat, HTTP 200/204
(channels.md §1.4; a body is tolerated, §10.4 item 6); Alipay, HTTP 200 whose body is the text
`success` (§6.4, general knowledge).

Faults (faults.py), armed on the callback's interface, e.g. "wechat.notify.medins",
"wechat.notify.transaction", "wechat.notify.refund", "alipay.notify":
    drop            this attempt is not sent (arm times >= attempts to lose the callback)
    duplicate       the callback is delivered a second time after it was accepted
    out_of_order    the callback waits behind the next one queued (or `delay` s, default 1)
    empty_aad       WeChat: the genuine callback is sealed with associated_data "" (valid, §1.4)
    bad_signature / wrong_serial / skew / probe / wrong_key / tampered
                    a defective copy is sent first (a forgery, a probe, a wrong APIv3 key...);
                    the hospital must refuse it; the genuine callback follows. A defective copy
                    the hospital accepts is logged as `accepted_defective` for the tests.
"""
from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Optional

import httpx
from loguru import logger

from .config import SimulatorConfig
from .faults import Faults

DEFECTS = ("bad_signature", "wrong_serial", "skew", "probe", "wrong_key", "tampered")

Builder = Callable[[Optional[str]], tuple[bytes, dict]]


@dataclass
class Delivery:
    seq: int
    channel: str
    interface: str
    kind: str
    key: str
    url: str
    build: Builder
    attempts: int = 0
    delivered: bool = False
    deliveries: int = 0            # accepted genuine deliveries (2 after a duplicate)
    statuses: list = field(default_factory=list)
    accepted_defective: list = field(default_factory=list)
    last_error: Optional[str] = None
    parked: bool = False
    duplicate: bool = False           # faults about the event, kept across a requeue
    variant: Optional[str] = None

    def public(self) -> dict:
        return {"seq": self.seq, "channel": self.channel, "interface": self.interface, "kind": self.kind,
                "key": self.key, "url": self.url, "attempts": self.attempts, "delivered": self.delivered,
                "deliveries": self.deliveries, "statuses": list(self.statuses),
                "accepted_defective": list(self.accepted_defective), "last_error": self.last_error}


class ChannelCallbacks:
    def __init__(self, cfg: SimulatorConfig, faults: Faults) -> None:
        self.cfg = cfg
        self.faults = faults
        self._cv = threading.Condition()
        self._queue: deque[Delivery] = deque()
        self._log: list[Delivery] = []
        self._seq = 0
        self._busy = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="sim-channel-callbacks")
        self._thread.start()

    def enqueue(self, channel: str, interface: str, kind: str, key: str, url: str, build: Builder) -> None:
        if not url:
            return
        with self._cv:
            self._seq += 1
            d = Delivery(self._seq, channel, interface, kind, key, url, build)
            self._log.append(d)
            self._queue.append(d)
            self._cv.notify_all()

    def idle(self) -> bool:
        with self._cv:
            return not self._queue and not self._busy

    def reset(self) -> None:
        with self._cv:
            self._queue.clear()
            self._log.clear()

    def stop(self) -> None:
        self._stop.set()
        with self._cv:
            self._cv.notify_all()
        self._thread.join(timeout=2)

    def log(self) -> list[dict]:
        with self._cv:
            return [d.public() for d in self._log]

    # --- the worker --------------------------------------------------------------------
    def _next(self) -> Optional[Delivery]:
        with self._cv:
            while not self._queue and not self._stop.is_set():
                self._busy = False
                self._cv.wait(0.5)
            if self._stop.is_set():
                return None
            self._busy = True
            return self._queue.popleft()

    def _run(self) -> None:
        while True:
            d = self._next()
            if d is None:
                return
            try:
                self._deliver(d)
            except Exception as exc:   # a worker that dies would silently stop all callbacks
                d.last_error = f"simulator error: {type(exc).__name__}"
                logger.exception("channel callback {} failed inside the simulator", d.seq)

    def _park(self, d: Delivery, delay: float) -> bool:
        """out_of_order: let the next queued callback go first; True if d was requeued."""
        with self._cv:
            if self._queue:
                self._queue.insert(1, d)
                d.parked = True
                return True
            self._cv.wait(delay)
            if self._queue:
                self._queue.insert(1, d)
                d.parked = True
                return True
        return False

    def _deliver(self, d: Delivery) -> None:
        while d.attempts < self.cfg.channel_callback_attempts and not self._stop.is_set():
            fault = self.faults.take(d.interface)
            kind = fault.fault if fault else None
            # Faults about the event (not one attempt) take no attempt: read the next one too.
            if kind == "out_of_order":
                if not d.parked and self._park(d, fault.delay if fault.delay is not None else 1.0):
                    return
                continue
            if kind == "duplicate":
                d.duplicate = True
                continue
            if kind == "empty_aad":
                d.variant = kind
                continue
            if kind in DEFECTS:
                status = self._post(d, kind)
                if status is not None and self._accepted(d, *status):
                    d.accepted_defective.append(kind)
                continue                  # the genuine callback follows at once
            d.attempts += 1
            if kind == "drop":
                d.last_error = "fault injected: attempt not sent"
            else:
                status = self._post(d, None, d.variant)
                if status is not None and self._accepted(d, *status):
                    d.delivered = True
                    d.deliveries += 1
                    d.last_error = None
                    if d.duplicate:
                        again = self._post(d, None, d.variant)
                        if again is not None and self._accepted(d, *again):
                            d.deliveries += 1
                    return
            logger.info("{} callback {} attempt {} failed: {}", d.channel, d.kind, d.attempts, d.last_error)
            self._stop.wait(self.cfg.channel_callback_retry_delay * d.attempts)

    def _post(self, d: Delivery, defect: Optional[str],
              variant: Optional[str] = None) -> Optional[tuple[int, bytes]]:
        body, headers = d.build(defect or variant)
        try:
            r = httpx.post(d.url, content=body, headers=headers, timeout=5.0)
        except httpx.HTTPError as exc:
            d.statuses.append(type(exc).__name__ if defect is None else f"{defect}:{type(exc).__name__}")
            d.last_error = type(exc).__name__
            return None
        d.statuses.append(r.status_code if defect is None else f"{defect}:{r.status_code}")
        if defect is None and not self._accepted(d, r.status_code, r.content):
            d.last_error = f"HTTP {r.status_code}"
        return r.status_code, r.content

    @staticmethod
    def _accepted(d: Delivery, status: int, content: bytes) -> bool:
        if d.channel == "alipay":
            return status == 200 and content.strip() == b"success"
        return status in (200, 204)
