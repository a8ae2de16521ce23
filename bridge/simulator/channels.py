"""The simulated patient channels (WeChat Pay 医保, Alipay) as one piece of the simulator, with
their control endpoints (the patient's actions and the test's views):

    POST /__sim__/wechat/pay          {"mix_trade_no"|"out_trade_no", "outcome"?, "paySign"...} the
                                      patient pays in the WeChat cashier (wechatpay.py `pay`)
    POST /__sim__/wechat/subscribe    {"openid", "template_id", "count"? | "refuse": true}
    POST /__sim__/wechat/expire_tokens  every access_token expires now (the next send gets 42001)
    POST /__sim__/wechat/auth_code    {"openid", "psn_no", "family"?} the patient finished the 医保
                                      authorisation mini-program: its auth code (wechat_auth.py)
    GET  /__sim__/wechat/state        prepays, mixed orders, refunds, refund notices, centre cash returns,
                                      auth codes and their exchanges
    GET  /__sim__/wechat/messages     messages sent, subscriptions left
    POST /__sim__/alipay/authorize    {"alipay_user_id", "psn_no"} the patient authorises (§7.1)
    POST /__sim__/alipay/pay          {"out_trade_no"|"chnl_ord_sn", "outcome"?} pays in the cashier
    GET  /__sim__/alipay/state        medical orders, trades, refunds, messages sent
    GET  /__sim__/channels/callbacks  every callback/notify delivery with attempts and statuses
    POST /__sim__/channels/settings   {"wechat_cash_after_6203": "hospital_refunds_cash" |
                                      "centre_returns_cash", "alipay_order_api": "both"|"payment"|"trade"}
    POST /__sim__/channels/date       {"date": "yyyy-MM-dd" | null} the business day of new events
    GET  /__sim__/legs                money per leg (fund, acct, cash per channel), total and by order
    POST /__sim__/bills/close         {"channel": "wechat"|"alipay"|"all", "date"} the bill exists now
    POST /__sim__/bills/mismatch      {"channel", "date", "kind": drop|amount|extra_refund,
                                      "out_trade_no", "delta"?}
    GET  /__sim__/bills               closed days, frozen bills, mismatches
"""
from __future__ import annotations

from typing import Any

from .alipay import Alipay
from .channel_bills import BillError, Bills
from .channel_callbacks import ChannelCallbacks
from .channel_clock import ChannelClock
from .config import ALIPAY_ORDER_APIS, CASH_READINGS, SimulatorConfig
from .faults import Faults
from .mobilepay import MobilePay
from .persons import Persons
from .tokens import Tokens
from .wechat_auth import WeChatAuth
from .wechat_messages import WeChatMessages
from .wechatpay import WeChatPay


class Channels:
    def __init__(self, cfg: SimulatorConfig, mobilepay: MobilePay, tokens: Tokens, persons: Persons,
                 faults: Faults) -> None:
        self.cfg = cfg
        self.clock = ChannelClock()
        self.callbacks = ChannelCallbacks(cfg, faults)
        legs = mobilepay.legs
        self.legs = legs
        self.wechat = WeChatPay(cfg, mobilepay, tokens, persons, legs, self.callbacks, self.clock)
        self.alipay = Alipay(cfg, mobilepay, tokens, persons, legs, self.callbacks, self.clock)
        self.messages = WeChatMessages(cfg)
        self.auth = WeChatAuth(cfg, tokens, persons)
        self.bills = Bills(cfg, self.wechat, self.alipay, self.clock)
        mobilepay.cash_return = self.wechat.centre_cash_return
        self._initial_settings = self.settings()

    def reset(self) -> None:
        self._set(self._initial_settings)    # a test's /__sim__/channels/settings ends with it
        self.callbacks.reset()
        self.clock.reset()
        self.wechat.reset()
        self.alipay.reset()
        self.messages.reset()
        self.auth.reset()
        self.bills.reset()

    def stop(self) -> None:
        self.callbacks.stop()

    def state(self) -> dict:
        return {"wechat": self.wechat.public(), "alipay": self.alipay.public(),
                "callbacks": self.callbacks.log(), "settings": self.settings()}

    def settings(self) -> dict:
        return {"wechat_cash_after_6203": self.cfg.wechat_cash_after_6203,
                "alipay_order_api": self.cfg.alipay_order_api}

    def control(self, method: str, path: str, body: dict) -> tuple[int, Any] | None:
        """The answer to a channel control endpoint, or None when the path is not one."""
        route = (method, path)
        try:
            if route == ("POST", "/__sim__/wechat/pay"):
                return 200, self.wechat.pay(body)
            if route == ("POST", "/__sim__/wechat/subscribe"):
                return 200, self.messages.subscribe(body)
            if route == ("POST", "/__sim__/wechat/expire_tokens"):
                return 200, {"expired": self.messages.expire_tokens()}
            if route == ("POST", "/__sim__/wechat/auth_code"):
                return 200, self.auth.issue(body)
            if route == ("GET", "/__sim__/wechat/state"):
                return 200, {**self.wechat.public(), "auth": self.auth.public()}
            if route == ("GET", "/__sim__/wechat/messages"):
                return 200, self.messages.public()
            if route == ("POST", "/__sim__/alipay/authorize"):
                return 200, self.alipay.authorise(body)
            if route == ("POST", "/__sim__/alipay/pay"):
                return 200, self.alipay.pay(body)
            if route == ("GET", "/__sim__/alipay/state"):
                return 200, self.alipay.public()
            if route == ("GET", "/__sim__/channels/callbacks"):
                return 200, {"callbacks": self.callbacks.log(), "idle": self.callbacks.idle()}
            if route == ("POST", "/__sim__/channels/settings"):
                return 200, self._set(body)
            if route == ("POST", "/__sim__/channels/date"):
                return 200, {"date": self.clock.set_day(body.get("date"))}
            if route == ("GET", "/__sim__/legs"):
                return 200, self.legs.summary()
            if route == ("POST", "/__sim__/bills/close"):
                return 200, self.bills.close(body)
            if route == ("POST", "/__sim__/bills/mismatch"):
                return 200, self.bills.mismatch(body)
            if route == ("GET", "/__sim__/bills"):
                return 200, self.bills.public()
        except LookupError as exc:
            return 404, {"error": str(exc)}
        except (ValueError, BillError) as exc:
            return 409, {"error": str(exc)}
        return None

    def _set(self, body: dict) -> dict:
        if "wechat_cash_after_6203" in body:
            if body["wechat_cash_after_6203"] not in CASH_READINGS:
                raise ValueError(f"wechat_cash_after_6203 must be one of {CASH_READINGS}")
            self.cfg.wechat_cash_after_6203 = body["wechat_cash_after_6203"]
        if "alipay_order_api" in body:
            if body["alipay_order_api"] not in ALIPAY_ORDER_APIS:
                raise ValueError(f"alipay_order_api must be one of {ALIPAY_ORDER_APIS}")
            self.cfg.alipay_order_api = body["alipay_order_api"]
        return self.settings()
