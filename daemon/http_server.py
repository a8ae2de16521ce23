"""The daemon's HTTP listeners: one waitress server per listen address, with
several WSGI apps mounted on it by path prefix, and the same limits for all.

The 6302 notice endpoint is mounted here today; the WeChat Pay and Alipay
callbacks mount beside it on the same listener, and the admin console and
/metrics get a listener of their own (another HttpServer).

Why waitress (https://docs.pylonsproject.org/projects/waitress/): pure Python
(runs where the daemon runs, Windows included), a fixed pool of worker threads,
and request parsing in one asynchronous I/O loop, so a client that connects and
then stalls costs a socket, not a thread.  Its adjustments give what a server
facing a network needs:

    threads           worker threads: requests handled at once (the rest queue)
    connection_limit  open connections at most; beyond it new ones wait in the backlog
    channel_timeout   an idle or stalled connection (no complete request) is closed after this
    backlog           listen() queue, so a burst of connections is not reset
    max_body_bytes    a larger body is answered 413 before the app sees it
    max_header_bytes  likewise for the request head (431)

A malformed request (a bad Content-Length, a broken request line) is answered
400 by waitress itself; LoggedChannel puts every such answer in the log.  The
apps answer their own errors; an exception that escapes one is logged with its
traceback and answered 500 with no detail (Mount).  Nothing is printed to stderr
but through the log.
"""
from __future__ import annotations

import logging
import threading
from typing import Callable, Iterable, Optional

from loguru import logger
from pydantic import BaseModel, ConfigDict, Field

WsgiApp = Callable[[dict, Callable], Iterable[bytes]]


class HttpLimits(BaseModel):
    """The limits of one listener (a settings group of the config sections that
    open one: [mobilepay] today)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    threads: int = Field(4, ge=1, le=64)
    connection_limit: int = Field(500, ge=1)
    channel_timeout: int = Field(15, ge=1)           # seconds
    backlog: int = Field(1024, ge=1)
    max_body_bytes: int = Field(64 * 1024, ge=1)      # a 6302 notice is a few KB
    max_header_bytes: int = Field(16 * 1024, ge=1024)
    max_json_depth: int = Field(32, ge=2)             # nesting of a JSON body (apps check it)


class ListenError(ValueError):
    """An address that cannot be listened on (taken by another process, not on this
    machine): the daemon does not start."""


def parse_listen(text: str) -> tuple[str, int]:
    """"host:port" (IPv6 in brackets: "[::1]:8766")."""
    host, _, port = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"a listen address is host:port, not {text!r}")
    return host, int(port)


def json_depth_exceeds(body: bytes, limit: int) -> bool:
    """True when the JSON text nests arrays/objects deeper than `limit`.  Checked
    before json.loads, whose recursion would otherwise fail deep inside the
    parser (RecursionError).  Brackets inside strings do not count."""
    depth = 0
    in_string = escaped = False
    for ch in body:
        if in_string:
            if escaped:
                escaped = False
            elif ch == 0x5C:        # backslash
                escaped = True
            elif ch == 0x22:        # quote
                in_string = False
        elif ch == 0x22:
            in_string = True
        elif ch in (0x5B, 0x7B):    # [ {
            depth += 1
            if depth > limit:
                return True
        elif ch in (0x5D, 0x7D):    # ] }
            depth -= 1
    return False


def respond(start_response, status: int, body: bytes, headers: Optional[dict] = None) -> list[bytes]:
    reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
              411: "Length Required", 413: "Payload Too Large", 500: "Internal Server Error",
              503: "Service Unavailable"}.get(status, "Status")
    hdrs = {"Content-Type": "application/json", **(headers or {})}
    hdrs["Content-Length"] = str(len(body))
    start_response(f"{status} {reason}", list(hdrs.items()))
    return [body]


def read_body(environ: dict, limits: HttpLimits) -> bytes:
    """The request body (waitress has buffered it whole and checked its size)."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    if length > limits.max_body_bytes:     # waitress answers 413 first; kept for other servers
        raise ValueError("body too large")
    return environ["wsgi.input"].read(length) if length > 0 else b""


class Mount:
    """The WSGI app of one listener: apps by path prefix; 404 elsewhere.  The
    last line of defence: an exception an app did not handle is logged with its
    traceback and answered 500 without detail."""

    def __init__(self, name: str):
        self.name = name
        self._apps: list[tuple[str, WsgiApp]] = []

    def mount(self, prefix: str, app: WsgiApp) -> None:
        if not prefix.startswith("/"):
            raise ValueError(f"a mount path starts with '/', not {prefix!r}")
        if any(p == prefix for p, _ in self._apps):
            raise ValueError(f"{prefix!r} is mounted twice on {self.name}")
        self._apps.append((prefix, app))
        self._apps.sort(key=lambda pa: -len(pa[0]))     # longest prefix first

    def paths(self) -> list[str]:
        return [p for p, _ in self._apps]

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO") or "/"
        for prefix, app in self._apps:
            if path == prefix or path.startswith(prefix.rstrip("/") + "/"):
                try:
                    return app(environ, start_response)
                except Exception:
                    logger.exception("{}: {} {} failed", self.name, environ.get("REQUEST_METHOD"), path)
                    return respond(start_response, 500, b'{"error":"internal error"}')
        logger.info("{}: {} {} from {}: no such path (404)", self.name, environ.get("REQUEST_METHOD"),
                    path[:200], environ.get("REMOTE_ADDR"))
        return respond(start_response, 404, b'{"error":"not found"}')


class _ToLoguru(logging.Handler):
    """waitress logs through `logging` (logger "waitress"): send it to our log."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        if record.name == "waitress.queue":
            level = "DEBUG"         # "Task queue depth is N" on every queued request: not a warning
        logger.opt(exception=record.exc_info).log(level, "waitress: {}", record.getMessage())


def _route_waitress_logging() -> None:
    wl = logging.getLogger("waitress")
    if not any(isinstance(h, _ToLoguru) for h in wl.handlers):
        wl.addHandler(_ToLoguru())
        wl.propagate = False
        wl.setLevel(logging.INFO)


def _logged_channel_class():
    """waitress answers malformed requests (400, 413, 431) itself, without a log
    line: its channel's error task is wrapped to log each one."""
    from waitress.channel import HTTPChannel
    from waitress.task import ErrorTask

    class LoggedErrorTask(ErrorTask):
        def execute(self):
            e = self.request.error
            logger.warning("http {}: refused a request from {}: {} {} ({})",
                           getattr(self.channel.server, "mibridge_name", "?"),
                           self.channel.addr[0] if self.channel.addr else "?",
                           e.code, e.reason, e.body)
            super().execute()

    class LoggedChannel(HTTPChannel):
        error_task_class = LoggedErrorTask

    return LoggedChannel


class HttpServer:
    """One listen address, its mounted apps and its limits.  start() binds and
    serves in a thread; stop() closes every connection and the worker threads."""

    def __init__(self, name: str, host: str, port: int, limits: HttpLimits):
        self.name = name
        self.host = host
        self.port = port
        self.limits = limits
        self.app = Mount(name)
        self._server = None
        self._thread: Optional[threading.Thread] = None
        self._on_stop: list[Callable[[], None]] = []

    def mount(self, prefix: str, app: WsgiApp, on_stop: Optional[Callable[[], None]] = None) -> None:
        self.app.mount(prefix, app)
        if on_stop is not None:
            self._on_stop.append(on_stop)

    def start(self) -> Callable[[], None]:
        from waitress.server import create_server

        _route_waitress_logging()
        lim = self.limits
        try:
            server = create_server(
                self.app, host=self.host, port=self.port, threads=lim.threads,
                connection_limit=lim.connection_limit, channel_timeout=lim.channel_timeout,
                # idle connections are looked for this often (waitress's default is 30 s)
                cleanup_interval=max(1, min(30, lim.channel_timeout // 2 or 1)),
                backlog=lim.backlog, max_request_body_size=lim.max_body_bytes,
                max_request_header_size=lim.max_header_bytes, expose_tracebacks=False,
                ident="mibridge", clear_untrusted_proxy_headers=True)
        except OSError as exc:      # port taken, address not on this machine: a config problem
            raise ListenError(f"cannot listen on {self.host}:{self.port} for {', '.join(self.app.paths())}: "
                             f"{exc.strerror or exc}") from None
        if not hasattr(server, "channel_class"):       # several sockets: not what we asked for
            server.close()
            raise RuntimeError(f"{self.host}:{self.port} resolves to several addresses; give one IP address")
        server.channel_class = _logged_channel_class()
        server.mibridge_name = self.name
        self._server = server
        self.port = int(server.effective_port)
        self._thread = threading.Thread(target=self._run, name=f"mibridge-http-{self.name}", daemon=True)
        self._thread.start()
        logger.info("http {} listening on {}:{} ({}; {} threads, {} connections at most, idle timeout {} s, "
                    "body at most {} bytes)", self.name, self.host, self.port, ", ".join(self.app.paths()),
                    lim.threads, lim.connection_limit, lim.channel_timeout, lim.max_body_bytes)
        return self.stop

    def _run(self) -> None:
        try:
            self._server.run()
        except Exception:
            logger.exception("http {}: the server loop stopped", self.name)

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        from waitress import wasyncore

        def close_everything():
            wasyncore.close_all(server._map)

        try:
            # In the loop's own thread, so the socket map is not changed under it.
            server.trigger.pull_trigger(close_everything)
        except Exception:
            close_everything()
        if self._thread is not None:
            self._thread.join(timeout=5)
            if self._thread.is_alive():
                close_everything()
                self._thread.join(timeout=5)
        server.task_dispatcher.shutdown(timeout=5)
        for fn in self._on_stop:
            try:
                fn()
            except Exception as exc:
                logger.warning("http {}: cleanup at stop failed: {}", self.name, exc)
        logger.info("http {} on {}:{} stopped", self.name, self.host, self.port)
