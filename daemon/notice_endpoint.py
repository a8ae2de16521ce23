"""The WSGI app where the mobile-pay centre posts 6302 settlement notices,
mounted on a daemon/http_server.py listener (waitress: timeouts, a bounded
thread pool, body and header limits).

Per notice (mobilepay.md §5.6):
  1. the body is refused (400) unless it is a JSON object nested no deeper than
     the listener's max_json_depth;
  2. the envelope is opened, its SM2 signature verified, and it must be a real
     settlement notice for us (bridge/mobilepay/callback.py: appId, callType,
     required fields, amounts adding up); anything else is answered 400 and
     nothing is written;
  3. it is recorded once in mi_notice (a repeat only counts), with the outbox
     row it names (medOrgOrd = the payment's business key), flagged when it is
     stale or its amounts differ from the order's 6202 split;
  4. an open payment is made due now, so its flow asks 6301 at once: the notice
     wakes the flow and is cross-checked by it, it never settles anything itself;
  5. a notice for a payment that has ended, for an order that payment did not
     place, or for a business key no payment has, enqueues a
     mobilepay.notice_check request (bridge/mobilepay/notice_check.py), which
     asks 6301 and alerts a person only when money may really be unmatched;
  6. the centre gets our signed acknowledgement.  If the database cannot take
     the notice we answer 500, so the centre sends it again; the flow's 6301
     polling would find the settlement anyway.

Database connections: one Store per waitress worker thread, opened on first
use and kept (closed and reopened after a database error, closed at stop).
Every refusal and error is logged; no traceback reaches the answer.
"""
from __future__ import annotations

import hashlib
import json
from decimal import Decimal
from typing import Callable, Optional

from loguru import logger

from bridge.db.store import Store
from bridge.engine.events import emit
from bridge.mobilepay.callback import (ForgedNotification, NotificationRefused, SettlementCallback,
                                       SettlementNotice)
from bridge.mobilepay.centre import NOTICE
from bridge.mobilepay.kinds import KIND_NOTICE_CHECK, PAYMENT_KINDS
from daemon.http_server import HttpLimits, json_depth_exceeds, read_body, respond
from daemon.thread_stores import ThreadStores

CLOSED = ("done", "failed", "resolved")


def notice_record(n: SettlementNotice) -> dict:
    """What is kept of a verified notice: amounts, ids and times.  revsToken (a
    bearer token for reversal) and personal data are left out."""
    setlinfo = None
    if isinstance(n.extData, dict) and isinstance(n.extData.get("setlinfo"), list) and n.extData["setlinfo"]:
        first = n.extData["setlinfo"][0]
        setlinfo = first if isinstance(first, dict) else None

    def money(v):
        return None if v is None else str(v)
    return {"payOrdId": n.payOrdId, "medOrgOrd": n.medOrgOrd, "callType": n.callType,
            "traceTime": n.traceTime, "setlType": n.setlType.value if n.setlType else None,
            "feeSumamt": money(n.feeSumamt), "fundPay": money(n.fundPay), "psnAcctPay": money(n.psnAcctPay),
            "ownPayAmt": money(n.ownPayAmt), "hiChrgTime": n.hiChrgTime,
            "setlId": None if setlinfo is None else setlinfo.get("setlId"),
            "sentAt": n.sent_at, "stale": n.stale}


def _split_differs(n: SettlementNotice, split: Optional[dict]) -> Optional[dict]:
    """The order's 6202 split when the notice's amounts differ from it."""
    if not isinstance(split, dict):
        return None
    pairs = (("total", n.feeSumamt), ("fund", n.fundPay), ("account", n.psnAcctPay), ("cash", n.ownPayAmt))
    for name, v in pairs:
        if split.get(name) is not None and v is not None and Decimal(str(split[name])) != v:
            return split
    return None


class NoticeEndpoint:
    """The 6302 WSGI app; `handle(body)` is the logic, `__call__` the HTTP part."""

    def __init__(self, parser: SettlementCallback, new_store: Callable[[], Store],
                 limits: Optional[HttpLimits] = None, on_notice: Optional[Callable[[], None]] = None):
        self.parser = parser
        self.new_store = new_store
        self.limits = limits or HttpLimits()
        self.on_notice = on_notice
        self._stores = ThreadStores(new_store)

    # -- HTTP ------------------------------------------------------------------------
    def __call__(self, environ, start_response):
        peer = environ.get("REMOTE_ADDR")
        if environ.get("REQUEST_METHOD") != "POST":
            logger.info("6302 endpoint: {} from {} refused (POST only)", environ.get("REQUEST_METHOD"), peer)
            return respond(start_response, 405, b'{"error":"POST only"}', {"Allow": "POST"})
        try:
            body = read_body(environ, self.limits)
        except ValueError:
            logger.warning("6302 endpoint: body from {} over {} bytes refused", peer, self.limits.max_body_bytes)
            return respond(start_response, 413, b'{"error":"body too large"}')
        except Exception as exc:
            logger.warning("6302 endpoint: could not read the body from {} ({}: {})", peer, type(exc).__name__, exc)
            return respond(start_response, 400, b'{"error":"unreadable body"}')
        if not body:
            logger.warning("6302 endpoint: empty body from {} refused", peer)
            return respond(start_response, 400, b'{"error":"empty body"}')
        if json_depth_exceeds(body, self.limits.max_json_depth):
            logger.warning("6302 endpoint: body from {} nested deeper than {} refused", peer,
                           self.limits.max_json_depth)
            return respond(start_response, 400, b'{"error":"JSON nested too deep"}')
        status, out, headers = self.handle(body, peer)
        return respond(start_response, status, out, headers)

    # -- the notice ------------------------------------------------------------------
    def handle(self, body: bytes, peer: Optional[str] = None) -> tuple[int, bytes, dict]:
        emit("notice", interface=NOTICE, verdict="received", reason=None)
        try:
            n = self.parser.parse(body)
        except ForgedNotification as exc:
            emit("notice", interface=NOTICE, verdict="refused", reason="signature")
            logger.warning("6302 notice from {} refused as forged: {}", peer, exc)
            return self._ack(None, False, "signature check failed", status=400)
        except NotificationRefused as exc:
            emit("notice", interface=NOTICE, verdict="refused", reason="unusable")
            logger.warning("6302 notice from {} refused: {}", peer, exc)
            return self._ack(None, False, "not a usable settlement notice", status=400)
        except Exception as exc:        # a parser bug or a pathological body: still an answer
            emit("notice", interface=NOTICE, verdict="refused", reason="unparsable")
            logger.opt(exception=True).error("6302 notice from {}: could not be parsed ({}: {})", peer,
                                             type(exc).__name__, exc)
            return self._ack(None, False, "unusable notice", status=400)
        if not n.amounts_consistent():
            emit("notice", interface=NOTICE, verdict="refused", reason="amounts")
            logger.warning("6302 notice for {}: amounts do not add up; refused", n.payOrdId)
            return self._ack(n.payOrdId, False, "amounts do not add up", status=400)
        emit("notice", interface=NOTICE, verdict="verified", reason="stale" if n.stale else None)
        if n.stale:
            logger.warning("6302 notice for {} ({}) is stale: {}; recorded for a person, not acted on",
                           n.payOrdId, n.medOrgOrd, n.stale)
        store = self._stores.get()
        try:
            new, check = self._record(store, n)
        except Exception as exc:
            logger.error("6302 notice for {} could not be recorded ({}: {}); asking the centre to resend",
                         n.payOrdId, type(exc).__name__, exc)
            self._stores.drop()
            return self._ack(n.payOrdId, False, "temporarily unable to record", status=500)
        logger.info("6302 notice for {} ({}) recorded{}{}", n.payOrdId, n.medOrgOrd, "" if new else " again",
                    f"; {check}" if check else "")
        if self.on_notice:
            self.on_notice()
        return self._ack(n.payOrdId, True)

    def _record(self, store: Store, n: SettlementNotice) -> tuple[bool, Optional[str]]:
        row = store.find_request(PAYMENT_KINDS, n.medOrgOrd)
        record = notice_record(n)
        ours = None if row is None else (row["flow_data"].get("payOrdId")
                                         or (row["flow_data"].get("settled") or {}).get("payOrdId"))
        split = None if row is None or ours != n.payOrdId else _split_differs(n, row["flow_data"].get("split"))
        if split is not None:
            # Kept for the person; the payment is held AMOUNT_MISMATCH when it would settle.
            record["split6202"] = split
            logger.error("6302 notice for {} ({}): amounts {} differ from the 6202 split {}", n.payOrdId,
                         n.medOrgOrd, {k: record[k] for k in ("feeSumamt", "fundPay", "psnAcctPay", "ownPayAmt")},
                         split)
        new = store.record_notice(NOTICE, n.payOrdId, n.medOrgOrd, row and row["id"], record)
        # A payment still waiting now that the notice is on record will read it when woken:
        # the poke's row count says so without another read.
        if (row is not None and row["state"] not in CLOSED and ours in (None, n.payOrdId)
                and store.poke(PAYMENT_KINDS, n.medOrgOrd) > 0):
            return new, None
        # Otherwise read the payment again: a flow that ended in between (it checked for
        # notices before this one was there) must get a notice check, not a poke that wakes
        # nothing.
        row = store.find_request(PAYMENT_KINDS, n.medOrgOrd)
        ours = None if row is None else (row["flow_data"].get("payOrdId")
                                         or (row["flow_data"].get("settled") or {}).get("payOrdId"))
        if row is not None and row["state"] not in CLOSED and ours in (None, n.payOrdId):
            store.poke(PAYMENT_KINDS, n.medOrgOrd)
            return new, None
        if row is not None and row["state"] == "done" and ours == n.payOrdId:
            return new, "the payment is done (the HIS took it): nothing to check"
        # Ended, or an order / business key we did not place: 6301 decides (a flow).
        return new, self._enqueue_check(store, n, row, ours)

    @staticmethod
    def _enqueue_check(store: Store, n: SettlementNotice, row: Optional[dict], ours: Optional[str]) -> str:
        payload = {"payment_key": n.medOrgOrd, "payOrdId": n.payOrdId}
        key = n.medOrgOrd
        existing = store.find_request((KIND_NOTICE_CHECK,), key)
        if existing is not None and json.loads(existing["payload"] or "{}").get("payOrdId") != n.payOrdId:
            # A second order paid under one business key: a check of its own.
            key = "NOTICE-" + hashlib.sha256(n.payOrdId.encode()).hexdigest()[:24].upper()
            existing = store.find_request((KIND_NOTICE_CHECK,), key)
        if existing is None:
            oid = store.enqueue(KIND_NOTICE_CHECK, key, payload, serial_key=f"6302:{n.payOrdId}"[:64])
            what = "no payment request" if row is None else (
                f"request #{row['id']}, {row['state']}" if ours == n.payOrdId else
                f"request #{row['id']} placed {ours or 'no order'}")
            logger.warning("6302 notice for {} ({}: {}): notice check #{} enqueued", n.payOrdId, n.medOrgOrd,
                           what, oid)
            return f"notice check #{oid}"
        return f"notice check #{existing['id']} exists"

    def _ack(self, pay_ord_id, accepted, message=None, status=None):
        ack = self.parser.acknowledge(pay_ord_id, accepted=accepted, message=message)
        return (status or ack.status), ack.body, ack.headers

    def close(self) -> None:
        self._stores.close()
