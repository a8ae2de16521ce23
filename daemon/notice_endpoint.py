"""The HTTP endpoint where the mobile-pay centre posts 6302 settlement notices.

Per notice (mobilepay.md §5.6):
  1. the envelope is opened and its SM2 signature verified (bridge/mobilepay/callback.py);
     a forged or unusable notice is answered 400 and nothing is written;
  2. it is recorded once in mi_notice (a repeat only counts), with the outbox
     row it names (medOrgOrd = the payment's business key);
  3. that payment is made due now, so its flow confirms the settlement at once;
  4. the centre gets our signed acknowledgement.  If the database cannot take
     the notice we answer 500, so the centre sends it again; the flow's 6301
     polling would find the settlement anyway.
The flow compares the notice with the 6202 split and the 6301 answer; the
endpoint itself never moves a request forward.
"""
from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Optional

from loguru import logger

from bridge.db.store import InboxRow, Store
from bridge.mobilepay.callback import (ForgedNotification, NotificationRefused, SettlementCallback,
                                       SettlementNotice)
from bridge.mobilepay.flows import NOTICE, PAYMENT_KINDS

MAX_BODY = 1 << 20


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
            "setlId": None if setlinfo is None else setlinfo.get("setlId")}


class NoticeEndpoint:
    def __init__(self, parser: SettlementCallback, new_store: Callable[[], Store], path: str,
                 on_notice: Optional[Callable[[], None]] = None):
        self.parser = parser
        self.new_store = new_store
        self.path = path
        self.on_notice = on_notice
        self._local = threading.local()

    def _store(self) -> Store:
        s = getattr(self._local, "store", None)
        if s is None:
            s = self._local.store = self.new_store()
        return s

    def handle(self, body: bytes) -> tuple[int, bytes, dict]:
        try:
            n = self.parser.parse(body)
        except ForgedNotification as exc:
            logger.warning("6302 notice refused as forged: {}", exc)
            return self._ack(None, False, "signature check failed", status=400)
        except NotificationRefused as exc:
            logger.warning("6302 notice refused: {}", exc)
            return self._ack(None, False, "unusable notice", status=400)
        if n.callType not in (None, "02"):
            # §6.2: only 02 (payment success) is known; record nothing we cannot interpret.
            logger.warning("6302 notice for {} with unknown callType {}: acknowledged, not recorded",
                           n.payOrdId, n.callType)
            return self._ack(n.payOrdId, True)
        if not n.amounts_consistent():
            logger.warning("6302 notice for {}: amounts do not add up; refused", n.payOrdId)
            return self._ack(n.payOrdId, False, "amounts do not add up", status=400)
        store = self._store()
        try:
            row = store.find_request(PAYMENT_KINDS, n.medOrgOrd) if n.medOrgOrd else None
            new = store.record_notice(NOTICE, n.payOrdId, n.medOrgOrd, row and row["id"], notice_record(n))
            if n.medOrgOrd:
                store.poke(PAYMENT_KINDS, n.medOrgOrd)
        except Exception as exc:
            logger.error("6302 notice for {} could not be recorded ({}: {}); asking the centre to resend",
                         n.payOrdId, type(exc).__name__, exc)
            store.close()
            self._local.store = None
            return self._ack(n.payOrdId, False, "temporarily unable to record", status=500)
        if new and (row is None or row["state"] in ("failed", "resolved")):
            # Money was taken for a request that is closed (or unknown to us): the HIS
            # and the DBA must see it, not just the log.
            what = "no payment request" if row is None else f"request #{row['id']}, which is {row['state']}"
            logger.error("6302 notice: {} paid for {} ({}): check with the centre", n.payOrdId, n.medOrgOrd, what)
            if row is not None:
                try:
                    store.add_inbox_row(row["id"], row["kind"], n.medOrgOrd, InboxRow(
                        result_type="held", outcome="held", error_code="NOTICE_FOR_CLOSED_PAYMENT",
                        error_message=f"the centre says {n.payOrdId} was paid {n.feeSumamt} after this request "
                                      f"ended {row['state']}: check with the centre and refund or settle by hand",
                        order_id=n.payOrdId, total_amount=n.feeSumamt, result=notice_record(n)))
                except Exception as exc:
                    logger.error("could not write the inbox row for {}: {}", n.payOrdId, exc)
        logger.info("6302 notice for {} ({}) recorded{}", n.payOrdId, n.medOrgOrd, "" if new else " again")
        if self.on_notice:
            self.on_notice()
        return self._ack(n.payOrdId, True)

    def _ack(self, pay_ord_id, accepted, message=None, status=None):
        ack = self.parser.acknowledge(pay_ord_id, accepted=accepted, message=message)
        return (status or ack.status), ack.body, ack.headers

    def serve(self, host: str, port: int) -> Callable[[], None]:
        """Start serving in a thread; returns stop()."""
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                if self.path.split("?")[0] != endpoint.path:
                    self._reply(404, b"{}", {"Content-Type": "application/json"})
                    return
                length = int(self.headers.get("Content-Length") or 0)
                if length <= 0 or length > MAX_BODY:
                    self._reply(413 if length > MAX_BODY else 400, b"{}", {"Content-Type": "application/json"})
                    return
                status, body, headers = endpoint.handle(self.rfile.read(length))
                self._reply(status, body, headers)

            def _reply(self, status, body, headers) -> None:
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        server = ThreadingHTTPServer((host, port), Handler)
        server.daemon_threads = True
        self.port = server.server_address[1]
        thread = threading.Thread(target=server.serve_forever, name="mibridge-6302", daemon=True)
        thread.start()
        logger.info("6302 notice endpoint listening on {}:{}{}", host, self.port, self.path)

        def stop() -> None:
            server.shutdown()
            server.server_close()
        return stop


def parse_listen(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"callback_listen must be host:port, not {text!r}")
    return host, int(port)
