"""[mobilepay]: the centre's client, the payment/refund/revoke flows and the
6302 notice endpoint."""
from __future__ import annotations

from daemon.app import Wiring
from daemon.config import Config
from daemon.platforms import mobilepay_parts


def wiring(cfg: Config, services: dict) -> Wiring:
    from bridge.mobilepay.callback import SettlementCallback
    from bridge.mobilepay.client import MobilePayClient
    from bridge.mobilepay.flows import flows
    from daemon.notice_endpoint import NoticeEndpoint, parse_listen

    client_cfg, settings = mobilepay_parts(cfg)
    w = Wiring(flows=flows(settings),
               services={"mobilepay": MobilePayClient(client_cfg), "mobilepay.settings": settings})
    if settings.callback_listen:
        host, port = parse_listen(settings.callback_listen)

        def start(daemon):
            endpoint = NoticeEndpoint(SettlementCallback(client_cfg), daemon.new_store, settings.callback_path,
                                      on_notice=daemon.wake.set)
            return endpoint.serve(host, port)
        w.servers.append(start)
    return w
