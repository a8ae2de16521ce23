"""A tiny stand-in for the mobile-payment centre, written from mobilepay.md for the tests.

It listens on 127.0.0.1 (port 0) in a thread, opens each request as §2.1/§3/§4
describe (decrypt encData, verify signData with the institution's public key),
records it, and answers with whatever the test scripted: a properly signed and
encrypted response, HTTP 500, garbage, a bad signature, a delay, or a reset.
"""
from __future__ import annotations

import base64
import json
import socket
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Optional

from bridge.crypto import sm2, sm4
from bridge.mobilepay.envelope import compact_json, loads, signing_string

APP_ID = "A1B2C3D4E5F60718293A4B5C6D7E8F90"
APP_SECRET = "S3cr3tS3cr3tS3cr3tS3cr3tS3cr3t01"


def sm4_key() -> bytes:
    # §4 steps 1-3, spelled out independently of envelope.derive_sm4_key.
    tmp = sm4.encrypt_ecb(APP_ID[:16].encode(), APP_SECRET.encode())
    return tmp.hex().upper()[:16].encode()


class Platform:
    def __init__(self, org_public: sm2.PublicKey, platform_private: sm2.PrivateKey):
        self.org_public = org_public
        self.private = platform_private
        self.requests: list[dict] = []          # {"path", "envelope", "data", "verified"}
        self.respond: Callable[[dict], tuple[int, Any]] = lambda req: (200, self.answer({}))
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    # -------------------------------------------------------- building answers

    def answer(self, data: Optional[dict], code: Any = "0", message: str = "成功", *,
               key: Optional[sm2.PrivateKey] = None, uid: bytes = sm2.DEFAULT_UID,
               lower_hex: bool = False, **outer: Any) -> bytes:
        """A response envelope as §2.2 describes, signed with the platform key by default."""
        fields: dict[str, Any] = {"appId": APP_ID, "code": code, "message": message, "encType": "SM4",
                                  "signType": "SM2", "timestamp": str(int(time.time() * 1000)),
                                  "version": "2.0.1", **outer}
        signed = dict(fields)
        if data is not None:
            signed["data"] = data
        sig = (key or self.private).sign(signing_string(signed, APP_SECRET).encode(), uid=uid)
        fields["signData"] = base64.b64encode(sig).decode()
        if data is not None:
            enc = sm4.encrypt_ecb(sm4_key(), compact_json(data).encode()).hex()
            fields["encData"] = enc if lower_hex else enc.upper()
        return json.dumps(fields, ensure_ascii=False).encode()

    # -------------------------------------------------------- the HTTP side

    def _open(self, path: str, body: bytes) -> dict:
        envelope = loads(body)
        data = loads(sm4.decrypt_ecb(sm4_key(), bytes.fromhex(envelope["encData"])).decode())
        fields = {k: v for k, v in envelope.items() if k not in ("encData", "signData")}
        text = signing_string({**fields, "data": data}, APP_SECRET).encode()
        verified = self.org_public.verify(text, base64.b64decode(envelope["signData"]))
        return {"path": path, "envelope": envelope, "data": data, "verified": verified}

    def _handler(self):
        platform = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                request = platform._open(self.path, body)
                request["content_type"] = self.headers["Content-Type"]
                platform.requests.append(request)
                status, payload = platform.respond(request)
                if status == "reset":
                    # RST instead of an answer: the request arrived, the reply never comes.
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.connection.close()
                    self.close_connection = True
                    return
                if status == "delay":
                    time.sleep(payload)
                    status, payload = 200, platform.answer({})
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        return Handler
