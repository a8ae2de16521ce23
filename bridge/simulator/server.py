"""One HTTP server (loopback only) that plays the platforms and the patient's channels, plus controls.

Platform routes
    Mobile-pay centre (mobilepay.md §0 table), SM4/SM2 envelope:
        POST /org/local/api/hos/uldFeeInfo        6201
        POST /org/local/api/hos/pay_order         6202
        POST /org/local/api/hos/refund_Order      6203
        POST /org/local/api/hos/query_order_info  6301
        POST /org/local/api/hos/revoke_order      6401
    Offline gateway (offline.md §1.1: base URL + infno; x-tif headers, §1.2):
        POST /ebus/gdyb_inf/poc/hsa/hgs/<infno>   9001 1101 2201-2208 2260 2261 2301-2305 2401
                                                   2404 2601 3201 3202 9101 9102, and fpy001
        POST /ebus/gdyb_inf/poc_hos_unionRefund   mpc004 (infno tgdupc004; facepay.md)
    Face terminal / e-credential library (offline.md §7; the DLL's exchange as HTTP):
        POST /nationec/trans   {orgId, transType, data, extra} -> {code, message, data: "<json>"}
    WeChat Pay APIv3 (channels.md §1-§4; api.mch.weixin.qq.com and api.weixin.qq.com), every /v3
    request signature verified, every answer signed (routes and fault names: channel_fronts.py):
        POST /v3/pay/transactions/jsapi, GET /v3/pay/transactions/out-trade-no/{no}?mchid=,
        GET /v3/pay/transactions/id/{id}?mchid=, POST /v3/pay/transactions/out-trade-no/{no}/close
        POST /v3/med-ins/orders, GET /v3/med-ins/orders/mix-trade-no/{no} | out-trade-no/{no}
        POST /v3/med-ins/refunds/notify?mix_trade_no=
        POST /v3/refund/domestic/refunds, GET /v3/refund/domestic/refunds/{out_refund_no},
        POST /v3/refund/domestic/refunds/{refund_id}/apply-abnormal-refund
        GET  /v3/bill/tradebill?bill_date=&bill_type=&tar_type=, GET /v3/billdownload/file?token=
        GET  /cgi-bin/token, POST /cgi-bin/stable_token,
        POST /cgi-bin/message/subscribe/send, POST /cgi-bin/message/template/send
        POST /api/mipuserquery/userQuery/{partner id}  (the 医保 auth code exchange, §5)
      callbacks (signed, AEAD_AES_256_GCM): MEDICAL_INSURANCE.SUCCESS, TRANSACTION.SUCCESS, REFUND.*
    Alipay OpenAPI (channels.md §6-§9), RSA2 verified and signed:
        GET|POST /gateway.do  alipay.commerce.medical.authinfo.auth.query,
            alipay.commerce.medical.payment.createandpay / .query, alipay.commerce.medical.trade.createandpay
            / .query, alipay.trade.query, alipay.trade.refund, alipay.trade.fastpay.refund.query,
            alipay.data.dataservice.bill.downloadurl.query, alipay.open.app.mini.templatemessage.send
        GET  /downloadBillFile.resource?...&token=   the bill zip (30 s)
      notifies (signed forms) to call_url / result_notify_url
                               cn.nhsa.ec.auth, cn.nhsa.auth.check, ec.query, cn.nhsa.qrcode.get,
                               cn.nhsa.settle.notify
    Social-security card reader (ReadCardBas as HTTP, bridge/terminal/client.py):
        POST /heasec/readcardbas {orgId} -> {code, message, data: "<11 fields>|"}
Control endpoints
    GET  /__sim__/state                 counts, orders, settlements, visits, balances, callbacks
    POST /__sim__/reset                 back to the seed persons, no orders, no faults
    POST /__sim__/faults                arm a fault (see faults.py); GET lists; DELETE clears
    POST /__sim__/persons               add a person (persons.py); GET lists
    POST /__sim__/mobilepay/authorize   {"psn_no"} -> {"payAuthNo"} (the channel's authorisation)
    POST /__sim__/mobilepay/pay         {"payOrdId"} the patient pays; 6302 follows
    POST /__sim__/face/present          {"psn_no"|"certno"} the person in front of the terminal
    The channels' controls (channels.py): POST /__sim__/wechat/pay, /__sim__/wechat/subscribe,
    /__sim__/wechat/expire_tokens, /__sim__/alipay/authorize, /__sim__/alipay/pay,
    /__sim__/channels/settings, /__sim__/channels/date, /__sim__/bills/close, /__sim__/bills/mismatch;
    GET /__sim__/wechat/state, /__sim__/wechat/messages, /__sim__/alipay/state,
    /__sim__/channels/callbacks, /__sim__/legs (money per leg), /__sim__/bills
    POST /__sim__/qrcode/present        {"psn_no"|"certno"} the e-credential QR shown to the scanner
    POST /__sim__/card/present          {"psn_no"|"certno"} the social-security card inserted
    POST /__sim__/card/remove           the card taken out
    POST /__sim__/reconciliation/mismatch  {"kind", "setl_id", ...} see reconciliation.py
    DELETE /__sim__/reconciliation/mismatch  forget the statement controls
    POST /__sim__/reconciliation/backdate  {"setl_id", "days"} the settlement happened days earlier
    GET  /__sim__/reconciliation        uploaded/result files and the armed mismatches
"""
from __future__ import annotations

import base64
import re
import socket
import struct
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Optional
from urllib.parse import urlsplit

from loguru import logger

from bridge.masking import mask_text

from . import gateway, mpc_envelope
from .callbacks import CallbackSender
from .channel_fronts import AlipayFront, WeChatPayFront
from .channels import Channels
from .config import SimulatorConfig
from .facepay import RealAccounts
from .faults import Fault, FaultError, Faults
from .ledger import Ledger
from .mobilepay import PATHS as MPC_PATHS
from .mobilepay import MobilePay, MpcError
from .offline import Offline, OfflineError
from .persons import PersonError, Persons
from .reconciliation import Reconciliation
from .terminal import FaceTerminal, TerminalError
from .tokens import Tokens
from .wire import dumps, loads

TERMINAL_PATH = "/nationec/trans"
CARD_READER_PATH = "/heasec/readcardbas"

_TOKEN_IN_QUERY = re.compile(r"\b(access_token|token)=[^&\s\"]+")

GARBLED = b"\x1f\x8b<html>502 Bad Gateway</ht"   # not JSON, not even complete


class Reply:
    """What a platform front answers: HTTP status and body bytes (channel fronts add headers)."""

    def __init__(self, status: int, body: bytes, headers: Optional[dict] = None,
                 ctype: str = "application/json; charset=utf-8") -> None:
        self.status = status
        self.body = body
        self.headers = headers or {}
        self.ctype = ctype


class MobilePayFront:
    """Opens mobile-pay requests, runs the rules, seals the answer (mobilepay.md §2-§4)."""

    bad_signature_commits = True     # the bad_signature fault spoils the answer, not the effect

    def __init__(self, sim: "Simulator") -> None:
        self.sim = sim

    def interface_of(self, path: str, body: bytes) -> Optional[str]:
        return MPC_PATHS.get(path)

    def _sealed(self, data: Optional[dict], code: int, message: str, bad_signature: bool = False) -> Reply:
        cfg = self.sim.cfg
        env = mpc_envelope.seal(cfg, data, {"code": mpc_envelope.code_value(cfg, code),
                                            "message": message, "success": code == 0})
        if bad_signature:
            sig = bytearray(base64.b64decode(env["signData"]))
            sig[5] ^= 0x01
            env["signData"] = base64.b64encode(bytes(sig)).decode("ascii")
        return Reply(200, dumps(env).encode("utf-8"))

    def rejection(self, interface: str, fault: Fault) -> Reply:
        return self._sealed(None, int(fault.code or -1), fault.message or "业务处理失败")

    def process(self, interface: str, body: bytes, headers: Any, fault: Optional[Fault]) -> Reply:
        try:
            _, data = mpc_envelope.open_request(body, self.sim.cfg)
        except mpc_envelope.EnvelopeError as exc:
            return self._sealed(None, -1, str(exc))
        bad_sig = fault is not None and fault.fault == "bad_signature"
        try:
            out = self.sim.mobilepay.handle(interface, data)
        except MpcError as exc:
            return self._sealed(None, exc.code, exc.message, bad_sig)
        if interface == "6203" and fault is not None and fault.fault == "refund_exp":
            out = self.sim.mobilepay.mark_refund_exp(out)
        return self._sealed(out, 0, "成功", bad_sig)


class OfflineFront:
    """x-tif gateway check, then the offline platform (offline.md §1-§3)."""

    def __init__(self, sim: "Simulator") -> None:
        self.sim = sim

    def interface_of(self, path: str, body: bytes) -> Optional[str]:
        cfg = self.sim.cfg
        if path == cfg.unionrefund_path:
            return "tgdupc004"
        if path.startswith(cfg.offline_base_path):
            infno = path[len(cfg.offline_base_path):]
            return infno if infno and "/" not in infno else None
        return None

    def _json(self, obj: dict) -> Reply:
        return Reply(200, dumps(obj).encode("utf-8"))

    def rejection(self, interface: str, fault: Fault) -> Reply:
        if fault.fault == "bad_signature":
            return self._json(gateway.wrapper_error(fault.message or "x-tif-signature签名校验失败"))
        return self._json(gateway.response(self.sim.cfg, None, gateway.received_time(),
                                           error=fault.message or "业务处理失败",
                                           infcode=int(fault.code or -1)))

    def process(self, interface: str, body: bytes, headers: Any, fault: Optional[Fault]) -> Reply:
        cfg = self.sim.cfg
        received = gateway.received_time()
        try:
            gateway.check_tif(headers, cfg)
        except gateway.GatewayError as exc:
            return self._json(gateway.wrapper_error(str(exc)))
        try:
            env = loads(body)
            if not isinstance(env, dict):
                raise ValueError
        except (ValueError, UnicodeDecodeError):
            return self._json(gateway.response(cfg, None, received, error="请求报文不是合法的JSON对象"))
        try:
            output = self.sim.offline.handle(env, interface)
        except OfflineError as exc:
            return self._json(gateway.response(cfg, None, received, error=exc.message))
        if isinstance(output, bytes):   # 9102: the reply body is the file itself (offline.md §10.2)
            return Reply(200, output)
        return self._json(gateway.response(cfg, output, received))


class TerminalFront:
    """The e-credential library's exchange with the face terminal (terminal.py)."""

    def __init__(self, sim: "Simulator") -> None:
        self.sim = sim

    def interface_of(self, path: str, body: bytes) -> Optional[str]:
        try:
            req = loads(body)
        except (ValueError, UnicodeDecodeError):
            return "terminal"
        return str(req.get("transType") or "terminal") if isinstance(req, dict) else "terminal"

    @staticmethod
    def _reply(code: int, message: str, data: Optional[dict], org: str = "") -> Reply:
        body = {"code": code, "message": message, "data": None if data is None else dumps(data), "orgId": org}
        return Reply(200, dumps(body).encode("utf-8"))

    def rejection(self, interface: str, fault: Fault) -> Reply:
        return self._reply(int(fault.code or -1), fault.message or "业务处理失败", None)

    def process(self, interface: str, body: bytes, headers: Any, fault: Optional[Fault]) -> Reply:
        try:
            req = loads(body)
            if not isinstance(req, dict):
                raise ValueError
        except (ValueError, UnicodeDecodeError):
            return self._reply(-1, "请求报文不是合法的JSON对象", None)
        org = str(req.get("orgId") or "")
        try:
            return self._reply(0, "成功", self.sim.terminal.handle(req), org)
        except TerminalError as exc:
            return self._reply(-1, str(exc), None, org)


class CardReaderFront:
    """The social-security card reader's ReadCardBas (terminal.py)."""

    def __init__(self, sim: "Simulator") -> None:
        self.sim = sim

    def interface_of(self, path: str, body: bytes) -> Optional[str]:
        return "ReadCardBas"

    @staticmethod
    def _reply(code: int, message: str, data: Optional[str]) -> Reply:
        return Reply(200, dumps({"code": code, "message": message, "data": data}).encode("utf-8"))

    def rejection(self, interface: str, fault: Fault) -> Reply:
        return self._reply(int(fault.code or -1), fault.message or "读卡失败", None)

    def process(self, interface: str, body: bytes, headers: Any, fault: Optional[Fault]) -> Reply:
        try:
            req = loads(body) if body else {}
            if not isinstance(req, dict):
                raise ValueError
        except (ValueError, UnicodeDecodeError):
            return self._reply(-1, "请求报文不是合法的JSON对象", None)
        try:
            return self._reply(0, "成功", self.sim.terminal.read_card(req))
        except TerminalError as exc:
            return self._reply(-1, str(exc), None)


class Simulator:
    """All state of the simulated platforms; the HTTP handler only routes to it."""

    def __init__(self, cfg: SimulatorConfig) -> None:
        self.cfg = cfg
        self.persons = Persons()
        self.tokens = Tokens()
        self.ledger = Ledger()
        self.faults = Faults()
        self.callbacks = CallbackSender(cfg, self.faults)
        self.mobilepay = MobilePay(cfg, self.persons, self.tokens, self.ledger, self.callbacks)
        self.accounts = RealAccounts(cfg, self.persons, self.faults, self.ledger)
        self.offline = Offline(cfg, self.persons, self.tokens, self.ledger, self.accounts)
        self.reconciliation = Reconciliation(self.offline)
        self.offline.reconciliation = self.reconciliation
        self.terminal = FaceTerminal(cfg, self.persons, self.tokens, self.ledger)
        self.channels = Channels(cfg, self.mobilepay, self.tokens, self.persons, self.faults)
        offline_front = OfflineFront(self)
        self.fronts: list[tuple[Any, Any]] = [
            (lambda p: p in MPC_PATHS, MobilePayFront(self)),
            (lambda p: offline_front.interface_of(p, b"") is not None, offline_front),
            (lambda p: p == TERMINAL_PATH, TerminalFront(self)),
            (WeChatPayFront.matches, WeChatPayFront(self)),
            (AlipayFront.matches, AlipayFront(self)),
            (lambda p: p == CARD_READER_PATH, CardReaderFront(self)),
        ]

    def reset(self) -> None:
        self.faults.clear()
        self.persons.reset()
        self.tokens.reset()
        self.ledger.reset()
        self.callbacks.reset()
        self.mobilepay.reset()
        self.accounts.reset()
        self.offline.reset()
        self.reconciliation.reset()
        self.terminal.reset()
        self.channels.reset()

    def front_for(self, path: str):
        for match, front in self.fronts:
            if match(path):
                return front
        return None

    def state(self) -> dict:
        return {"counts": self.ledger.counts(), "orders": self.mobilepay.public(),
                "settlements": self.offline.public(), "visits": self.offline.public_visits(),
                "sign_ins": self.offline.public_sign_ins(),
                "account_deductions": self.accounts.public(),
                "persons": self.persons.balances(), "callbacks": self.callbacks.log(),
                "terminal_notices": self.terminal.public(),
                "terminal_reads": self.terminal.public_reads(),
                "visit_identity": self.offline.public_visit_identity(),
                "reconciliation": self.reconciliation.public(),
                "faults_armed": self.faults.armed(), "faults_fired": list(self.faults.fired),
                "events": self.ledger.events(), "legs": self.channels.legs.summary()["total"],
                "channels": self.channels.state()}

    # --- control endpoints -----------------------------------------------------------
    def control(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        route = (method, path)
        if route == ("GET", "/__sim__/state"):
            return 200, self.state()
        if route == ("POST", "/__sim__/reset"):
            self.reset()
            return 200, {"reset": True}
        if route == ("POST", "/__sim__/faults"):
            return 200, {"armed": self.faults.arm(body).public()}
        if route == ("GET", "/__sim__/faults"):
            return 200, {"armed": self.faults.armed(), "fired": list(self.faults.fired)}
        if route == ("DELETE", "/__sim__/faults"):
            self.faults.clear()
            return 200, {"cleared": True}
        if route == ("POST", "/__sim__/persons"):
            return 200, self.persons.add(body).public()
        if route == ("GET", "/__sim__/persons"):
            return 200, {"persons": [p.public() for p in self.persons.all()]}
        if route == ("POST", "/__sim__/mobilepay/authorize"):
            person = self.persons.get(str(body.get("psn_no")))
            if person is None:
                return 404, {"error": "unknown psn_no"}
            tok = self.tokens.issue("payAuthNo", person.psn_no, self.cfg.pay_auth_ttl_seconds,
                                    "AUTH" + person.insuplc_admdvs)
            return 200, {"payAuthNo": tok.value, "psn_no": person.psn_no, "expires_at": int(tok.expires_at)}
        if route == ("POST", "/__sim__/mobilepay/pay"):
            try:
                return 200, self.mobilepay.pay(str(body.get("payOrdId")))
            except MpcError as exc:
                return 409, {"error": exc.message}
        if route == ("POST", "/__sim__/face/present"):
            try:
                return 200, self.terminal.present(body)
            except TerminalError as exc:
                return 404, {"error": str(exc)}
        answered = self.channels.control(method, path, body)
        if answered is not None:
            return answered
        found = self._identity_controls(route, body)
        if found is not None:
            return found
        return 404, {"error": "no such control endpoint"}

    def _identity_controls(self, route: tuple[str, str], body: Any) -> Optional[tuple[int, Any]]:
        """Kiosk identification (QR, card) and reconciliation mismatches."""
        terminal = {("POST", "/__sim__/qrcode/present"): self.terminal.present_qr,
                    ("POST", "/__sim__/card/present"): self.terminal.insert_card,
                    ("POST", "/__sim__/card/remove"): self.terminal.remove_card}
        if route in terminal:
            try:
                return 200, terminal[route](body)
            except TerminalError as exc:
                return 404, {"error": str(exc)}
        if route == ("POST", "/__sim__/reconciliation/mismatch"):
            return 200, self.reconciliation.mismatch(body)
        if route == ("POST", "/__sim__/reconciliation/backdate"):
            return 200, self.reconciliation.backdate(body)
        if route == ("DELETE", "/__sim__/reconciliation/mismatch"):
            self.reconciliation.clear_mismatches()
            return 200, {"cleared": True}
        if route == ("GET", "/__sim__/reconciliation"):
            return 200, self.reconciliation.public()
        return None


class _Handler(BaseHTTPRequestHandler):
    server_version = "mibridge-simulator"
    sim: Simulator   # set on the subclass made per server

    def log_message(self, fmt: str, *args: Any) -> None:
        # access_token and bill tokens ride in query strings (channels.md §3.2, §4): never logged
        line = _TOKEN_IN_QUERY.sub(r"\1=***", fmt % args)
        logger.debug("simulator: " + mask_text(line))

    def _read(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _send(self, status: int, body: bytes, ctype: str = "application/json; charset=utf-8",
              headers: Optional[dict] = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _reset_connection(self) -> None:
        """Abort with RST (SO_LINGER 0): the client sees a reset, not an answer."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass
        self.wfile = _Sink()

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        path = urlsplit(self.path).path
        body = self._read()
        if path.startswith("/__sim__/"):
            try:
                parsed = loads(body) if body else {}
                if not isinstance(parsed, dict):
                    raise ValueError("the body must be a JSON object")
                status, out = self.sim.control(method, path, parsed)
            except (FaultError, PersonError, ValueError) as exc:
                status, out = 400, {"error": str(exc)}
            self._send(status, dumps(out).encode("utf-8"))
            return
        front = self.sim.front_for(path)
        if front is not None and method not in getattr(front, "methods", ("POST",)):
            front = None
        routed = None
        if front is not None and hasattr(front, "route"):      # the channel fronts
            routed = front.route(method, self.path, body)
            interface = routed[0] if routed else None
        else:
            interface = front.interface_of(path, body) if front else None
        if interface is None:
            self._send(404, b'{"error":"not found"}')
            return
        fault = self.sim.faults.take(interface)
        kind = fault.fault if fault else None
        if kind == "reset":
            self._reset_connection()
            return
        if kind == "http500":
            self._send(500, b"Internal Server Error", "text/plain")
            return
        if kind == "business_error" or (kind == "bad_signature"
                                        and not getattr(front, "bad_signature_commits", False)):
            reply = front.rejection(interface, fault)
            self._send(reply.status, reply.body, reply.ctype, reply.headers)
            return
        if kind == "timeout":
            time.sleep(fault.delay if fault.delay is not None else self.sim.cfg.timeout_delay)
        if routed is not None:
            reply = front.serve(method, self.path, body, self.headers, fault, routed)
        else:
            reply = front.process(interface, body, self.headers, fault)
        if kind == "lost_after_commit":
            self._reset_connection()
            return
        if kind == "garbled":
            self._send(200, GARBLED)
            return
        try:
            self._send(reply.status, reply.body, reply.ctype, reply.headers)
        except OSError:
            pass   # the client gave up (e.g. during a timeout fault); the effect stands


class _Sink:
    closed = False      # socketserver's finish() looks at it after a reset

    def write(self, data: bytes) -> int:
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


@dataclass
class RunningSimulator:
    url: str
    config: SimulatorConfig
    simulator: Simulator
    _server: ThreadingHTTPServer
    _thread: threading.Thread

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self.simulator.callbacks.stop()
        self.simulator.channels.stop()
        self._thread.join(timeout=5)

    def client_credentials(self) -> dict:
        return self.config.client_credentials(self.url)

    def __enter__(self) -> "RunningSimulator":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def start_simulator(config: Optional[SimulatorConfig] = None, host: str = "127.0.0.1",
                    port: int = 0) -> RunningSimulator:
    """Start the simulator in a background thread; loopback only."""
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError("the simulator listens on loopback only")
    cfg = config or SimulatorConfig.generate()
    sim = Simulator(cfg)
    handler = type("SimHandler", (_Handler,), {"sim": sim})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              name="mibridge-simulator", daemon=True)
    thread.start()
    url = f"http://{host}:{server.server_address[1]}"
    return RunningSimulator(url, cfg, sim, server, thread)
