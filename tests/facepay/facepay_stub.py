"""Stub of the gateway paths fpy001 / unionRefund (offline envelope, facepay.md) and of
the e-credential terminal URL (offline.md §7.1 wrappers), on 127.0.0.1."""
import hashlib
import json
import time
from decimal import Decimal
from http.server import BaseHTTPRequestHandler

SECRET = "tif-secret"


class Stub:
    def __init__(self):
        self.requests = []
        self.replies = {}       # key (infno or transType) -> (status, body bytes) or "timeout"


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def do_POST(self):
        stub = self.server.stub
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])),
                          parse_float=Decimal)
        stub.requests.append((self.path, dict(self.headers), body))
        key = body.get("transType") or body.get("infno")
        if "infno" in body:
            ts, nonce = self.headers["x-tif-timestamp"], self.headers["x-tif-nonce"]
            assert self.headers["x-tif-signature"] == hashlib.sha256(
                (ts + SECRET + nonce + ts).encode()).hexdigest()
        reply = stub.replies[key]
        if reply == "timeout":
            time.sleep(1.0)
            reply = (200, b"{}")
        status, data = reply
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        try:
            self.wfile.write(data)
        except OSError:         # the client gave up (timeout test)
            pass


