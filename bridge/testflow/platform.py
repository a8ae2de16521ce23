"""The test platform: an HTTP server that books charges and counts every call.

    POST /charge   {"ref", "amount"}  -> {"code": "0", "charge_id"}   books a NEW charge every time
    GET  /charge?ref=R                -> {"code": "0", "charges": [...]}
    POST /notify   {"ref"}            -> {"code": "0"}                 idempotent
    POST /__faults__ {"path", "fault": http500|timeout|lost_after_commit|reject, "times"}
    GET  /__state__                   -> {"charges": {ref: n}, "notifies": {ref: n}, "calls": n}
"""
from __future__ import annotations

import json
import socket
import threading
import time
from collections import Counter, defaultdict
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


class TestPlatform:
    def __init__(self, timeout_delay: float = 3.0):
        self.lock = threading.Lock()
        self.charges: dict[str, list[dict]] = defaultdict(list)
        self.notifies: Counter = Counter()
        self.calls = 0
        self.faults: list[dict] = []
        self.timeout_delay = timeout_delay
        self._seq = 0

    def take_fault(self, path: str):
        with self.lock:
            for f in self.faults:
                if f["path"] == path and f["times"] > 0:
                    f["times"] -= 1
                    return f["fault"]
        return None

    def state(self) -> dict:
        with self.lock:
            return {"charges": {k: len(v) for k, v in self.charges.items()},
                    "notifies": dict(self.notifies), "calls": self.calls}


def _handler(platform: TestPlatform):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def _body(self) -> dict:
            n = int(self.headers.get("Content-Length") or 0)
            return json.loads(self.rfile.read(n) or b"{}", parse_float=Decimal)

        def _send(self, status: int, obj: dict):
            data = json.dumps(obj, default=str).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _drop(self):
            # Close without an answer: the client sees a reset / empty reply.
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.close_connection = True

        def do_GET(self):
            url = urlsplit(self.path)
            if url.path == "/__state__":
                return self._send(200, platform.state())
            if url.path == "/charge":
                ref = parse_qs(url.query).get("ref", [""])[0]
                with platform.lock:
                    platform.calls += 1
                    found = list(platform.charges.get(ref, []))
                return self._send(200, {"code": "0", "charges": found})
            self._send(404, {"code": "404", "message": "no such path"})

        def do_POST(self):
            path = urlsplit(self.path).path
            body = self._body()
            if path == "/__faults__":
                with platform.lock:
                    platform.faults.append({"path": body["path"], "fault": body["fault"],
                                            "times": int(body.get("times", 1))})
                return self._send(200, {"code": "0"})
            if path == "/__reset__":
                with platform.lock:
                    platform.charges.clear(); platform.notifies.clear(); platform.faults.clear()
                    platform.calls = 0
                return self._send(200, {"code": "0"})
            fault = platform.take_fault(path)
            with platform.lock:
                platform.calls += 1
            if fault == "http500":
                return self._send(500, {"code": "500", "message": "injected"})
            if fault == "reject":
                return self._send(200, {"code": "E100", "message": "injected business error"})
            if fault == "timeout":
                time.sleep(platform.timeout_delay)
            if path == "/charge":
                with platform.lock:
                    platform._seq += 1
                    charge = {"charge_id": f"CH{platform._seq:08d}", "ref": body["ref"],
                              "amount": str(body["amount"])}
                    platform.charges[body["ref"]].append(charge)
                if fault == "lost_after_commit":
                    return self._drop()
                return self._send(200, {"code": "0", "charge_id": charge["charge_id"]})
            if path == "/notify":
                with platform.lock:
                    platform.notifies[body["ref"]] += 1
                if fault == "lost_after_commit":
                    return self._drop()
                return self._send(200, {"code": "0"})
            self._send(404, {"code": "404", "message": "no such path"})

    return Handler


class RunningTestPlatform:
    def __init__(self, host: str = "127.0.0.1", port: int = 0, timeout_delay: float = 3.0):
        self.platform = TestPlatform(timeout_delay)
        self.server = ThreadingHTTPServer((host, port), _handler(self.platform))
        self.server.daemon_threads = True
        self.url = f"http://{host}:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def main(argv=None) -> None:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m bridge.testflow.platform")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--timeout-delay", type=float, default=3.0)
    args = ap.parse_args(argv)
    p = RunningTestPlatform(port=args.port, timeout_delay=args.timeout_delay)
    print(p.url, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        p.stop()


if __name__ == "__main__":
    main()
