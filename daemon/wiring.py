"""What a platform section of the config adds to the daemon: its flows, its services
(platform clients), its scheduled jobs and its HTTP apps (Wiring), and the HTTP
listeners serving those apps.  The platform modules (daemon/wiring_*.py) build one
each; daemon/app.py merges them.  This module imports neither, so there is no cycle.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from bridge.engine.flow import Flow
from daemon.config import Config


@dataclass
class Wiring:
    flows: list[Flow] = field(default_factory=list)
    services: dict = field(default_factory=dict)
    # Callables (scheduler, daemon) -> None that add APScheduler jobs.
    jobs: list[Callable] = field(default_factory=list)
    # Callables (daemon) -> stop() that start a server beside the workers;
    # started after the workers, stopped before.
    servers: list[Callable] = field(default_factory=list)
    # WSGI apps to serve (the 6302 notice endpoint, the WeChat Pay and Alipay
    # callbacks): one HTTP listener per listen address, apps mounted by path.
    mounts: list["HttpMount"] = field(default_factory=list)

    def merge(self, other: "Wiring") -> None:
        self.flows += other.flows
        for name, svc in other.services.items():
            if name in self.services and self.services[name] is not svc:
                raise ValueError(f"service {name!r} wired twice")
            self.services[name] = svc
        self.jobs += other.jobs
        self.servers += other.servers
        self.mounts += other.mounts


@dataclass
class HttpMount:
    listen: str                 # "host:port"
    path: str                   # path prefix on that listener
    # (daemon) -> (WSGI app, close() or None): built when the daemon starts.
    make_app: Callable


def http_servers(cfg: Config, mounts: list[HttpMount]) -> list[Callable]:
    """One starter per listen address, each serving every app mounted there with
    the [http] limits."""
    from daemon.http_server import HttpServer, parse_listen

    by_listen: dict[str, list[HttpMount]] = {}
    for m in mounts:
        by_listen.setdefault(m.listen, []).append(m)

    def starter(listen: str, group: list[HttpMount]):
        host, port = parse_listen(listen)

        def start(daemon):
            server = HttpServer(listen, host, port, cfg.http)
            for m in group:
                app, close = m.make_app(daemon)
                server.mount(m.path, app, on_stop=close)
            return server.start()
        return start
    return [starter(listen, group) for listen, group in by_listen.items()]
