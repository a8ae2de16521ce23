"""Settings of a patient channel that are not the client's (bridge/wechatpay/config.py,
bridge/alipay/config.py): where its callbacks are served, how our numbers are spelt
(bridge/channels/keys.py), and the choices where channels.md is uncertain.  One object per
section ([wechatpay], [alipay]); the daemon builds them from the TOML file
(daemon/platforms_channels.py) and the flows read them as the ``<channel>.settings`` service.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .keys import DEFAULT_PREFIX, check_prefix

# channels.md §2.7 / §10.4 item 4: after the centre's 6203 refdType=ALL on a WeChat mixed
# order, who gives the cash back?  "hospital_refunds_cash" (the digest's conservative
# reading, the default): the centre refunds only the insurance parts and the hospital
# refunds the cash through POST /v3/refund/domestic/refunds.  "centre_returns_cash": the
# centre's 6203 also returns the cash, so a hospital refund on top would pay it twice.
# The simulator plays both readings (wechat_cash_after_6203), so a wrong setting shows as
# a test failure, not as a double refund.
CashAfter6203 = Literal["hospital_refunds_cash", "centre_returns_cash"]
CASH_AFTER_6203 = ("hospital_refunds_cash", "centre_returns_cash")


def check_path(path: str) -> str:
    if not path.startswith("/") or "?" in path or "#" in path or path.rstrip("/") == "":
        raise ValueError(f"callback_path must be a path starting with '/', without a query: {path!r}")
    return path


@dataclass(frozen=True)
class ChannelSettings:
    # host:port where this channel's callbacks are served (plain HTTP behind the hospital's
    # HTTPS front, on the same listener as [mobilepay] when the address is the same);
    # empty: no callback endpoint (the flows then rely on their queries).
    callback_listen: str = ""
    callback_path: str = "/mibridge/channel"
    order_prefix: str = DEFAULT_PREFIX

    def __post_init__(self) -> None:
        check_prefix(self.order_prefix)
        check_path(self.callback_path)


@dataclass(frozen=True)
class WechatChannelSettings(ChannelSettings):
    callback_path: str = "/mibridge/wechatpay"
    cash_after_6203: CashAfter6203 = "hospital_refunds_cash"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.cash_after_6203 not in CASH_AFTER_6203:
            raise ValueError(f"cash_after_6203 must be one of {', '.join(CASH_AFTER_6203)}, "
                             f"not {self.cash_after_6203!r}")


@dataclass(frozen=True)
class AlipayChannelSettings(ChannelSettings):
    callback_path: str = "/mibridge/alipay"
