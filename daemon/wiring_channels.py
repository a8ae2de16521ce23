"""[wechatpay] and [alipay]: the patient channels' clients, their settings, and their
callback endpoints (daemon/channel_callbacks.py) on the listener of `callback_listen`
(the same listener as [mobilepay]'s 6302 endpoint when the address is the same).

Services for the flows: "wechatpay" (WechatPayClient), "wechatpay.messenger"
(WechatMessenger: patient messages), "wechatpay.settings" (WechatChannelSettings),
"wechatpay.auth_query" (PayAuthQuery: auth code -> payAuthNo, when auth_query_url is set);
"alipay" (AlipayClient, which also sends the template messages), "alipay.settings"
(AlipayChannelSettings), "channels.unmatched" (bridge/channels/unmatched.py: what the
callback endpoints do with a callback that matched no open request).

Flows: patient.message (bridge/channels/message_flow.py) and channel.notice_check
(bridge/channels/notice_check.py), with either section.  The channel legs of payments
and refunds are steps of the mobile-pay flows (issue 12).
"""
from __future__ import annotations

from daemon.wiring import HttpMount, Wiring
from daemon.config import Config
from daemon.platforms_channels import alipay_parts, wechatpay_parts


def wiring(cfg: Config, services: dict) -> Wiring:
    w = Wiring()
    wechat = wechatpay_parts(cfg)
    alipay = alipay_parts(cfg)
    if wechat is not None or alipay is not None:
        from bridge.channels.message_flow import MessageFlow
        from bridge.channels.notice_check import ChannelNoticeCheckFlow
        from bridge.channels.unmatched import Unmatched

        w.flows += [MessageFlow(), ChannelNoticeCheckFlow()]
        unmatched = Unmatched({name: parts.settings.order_prefix
                               for name, parts in (("wechat", wechat), ("alipay", alipay)) if parts is not None})
        w.services["channels.unmatched"] = unmatched
    if wechat is not None:
        from bridge.wechatpay.client import WechatPayClient
        from bridge.wechatpay.messenger import WechatMessenger
        from daemon.channel_callbacks import WechatCallbacks

        w.services.update({"wechatpay": WechatPayClient(wechat.client),
                           "wechatpay.messenger": WechatMessenger(wechat.client),
                           "wechatpay.settings": wechat.settings})
        if wechat.client.auth_query_url:
            from bridge.wechatpay.authquery import PayAuthQuery

            w.services["wechatpay.auth_query"] = PayAuthQuery(wechat.client)
        if wechat.settings.callback_listen:
            def make_wechat(daemon, parts=wechat):
                app = WechatCallbacks(parts.client, parts.settings, daemon.new_store, cfg.http,
                                      on_notice=daemon.wake.set,
                                     on_unmatched=services.get("channels.unmatched", unmatched))
                return app, app.close
            w.mounts.append(HttpMount(wechat.settings.callback_listen, wechat.settings.callback_path, make_wechat))
    if alipay is not None:
        from bridge.alipay.client import AlipayClient
        from daemon.channel_callbacks import AlipayNotifies

        w.services.update({"alipay": AlipayClient(alipay.client), "alipay.settings": alipay.settings})
        if alipay.settings.callback_listen:
            def make_alipay(daemon, parts=alipay):
                app = AlipayNotifies(parts.client, parts.settings, daemon.new_store, cfg.http,
                                     on_notice=daemon.wake.set,
                                     on_unmatched=services.get("channels.unmatched", unmatched))
                return app, app.close
            w.mounts.append(HttpMount(alipay.settings.callback_listen, alipay.settings.callback_path, make_alipay))
    return w
