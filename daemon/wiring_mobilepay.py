"""[mobilepay]: the centre's client, the payment/refund/revoke flows and the
6302 notice endpoint."""
from __future__ import annotations

from daemon.wiring import HttpMount, Wiring
from daemon.config import Config
from daemon.platforms import mobilepay_parts


def wiring(cfg: Config, services: dict) -> Wiring:
    from bridge.mobilepay.callback import SettlementCallback
    from bridge.mobilepay.client import MobilePayClient
    from bridge.mobilepay.flows import flows
    from daemon.notice_endpoint import NoticeEndpoint

    client_cfg, settings = mobilepay_parts(cfg)
    w = Wiring(flows=flows(settings),
               services={"mobilepay": MobilePayClient(client_cfg), "mobilepay.settings": settings})
    if settings.callback_listen:
        def make_app(daemon):
            endpoint = NoticeEndpoint(SettlementCallback(client_cfg, settings.notice_call_types,
                                                         settings.notice_max_age_seconds),
                                      daemon.new_store, cfg.http, on_notice=daemon.wake.set)
            return endpoint, endpoint.close
        w.mounts.append(HttpMount(settings.callback_listen, settings.callback_path, make_app))
    return w
