"""A tiny loopback HTTP server that returns canned answers (a transport test aid, not a
platform stand-in): it records each request and answers with what the test scripted,
a delay, or a connection reset after reading the request."""
from __future__ import annotations

import io
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Union


@dataclass
class Seen:
    method: str
    path: str                  # path + query exactly as received
    headers: dict
    body: bytes


@dataclass
class Canned:
    status: int = 200
    headers: dict = field(default_factory=dict)
    body: bytes = b""
    delay: float = 0.0
    reset: bool = False        # close the connection with RST after reading the request


Answer = Union[Canned, Callable[[Seen], Canned]]


class Loopback:
    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self.answer: Answer = Canned(204)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()

    def reset(self) -> None:
        """Forget what was seen and answer 204 again (one server serves a whole session)."""
        self.seen.clear()
        self.answer = Canned(204)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self):
        loop = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                seen = Seen(self.command, self.path, {k: v for k, v in self.headers.items()}, body)
                loop.seen.append(seen)
                canned = loop.answer(seen) if callable(loop.answer) else loop.answer
                if canned.delay:
                    time.sleep(canned.delay)
                if canned.reset:
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    # The socket's file objects hold it open: close them too, so the RST goes now.
                    self.rfile.close()
                    self.wfile.close()
                    self.wfile = io.BytesIO()          # what http.server flushes afterwards
                    self.connection.close()
                    self.close_connection = True
                    return
                self.send_response(canned.status)
                for k, v in canned.headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(canned.body)))
                self.end_headers()
                if canned.body:
                    self.wfile.write(canned.body)

            do_GET = do_POST = _serve

        return Handler


def closed_port() -> int:
    """A loopback port with nothing listening (connection refused)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port
