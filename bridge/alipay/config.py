"""Settings of one hospital's Alipay mini-program app for 医保 payments.

Keys arrive as values (the daemon reads them from ``*_env`` / ``*_file`` only).  Where
channels.md is uncertain (§10.4.10-14) the choice is a field, listed in
docs/platform-choices.md.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from types import MappingProxyType
from typing import Literal, Mapping
from urllib.parse import urlsplit

from .signing import KeyFormatError, load_private_key, load_public_key

GATEWAY = "https://openapi.alipay.com/gateway.do"                      # §6.1
SANDBOX_GATEWAY = "https://openapi-sandbox.dl.alipaydev.com/gateway.do"

# §7.2 medical createandpay (primary) or §7.3 the trade variant carrying InsurancePayExtendParams.
OrderApi = Literal["medical", "trade"]
UnsignedErrors = Literal["accept", "unknown"]
UserIdKind = Literal["user_id", "open_id"]


@dataclass(frozen=True)
class AlipayTemplate:
    """One patient message (§9): template id, page, and template key -> value name."""

    template_id: str
    fields: Mapping[str, str]
    page: str = ""

    def __post_init__(self) -> None:
        if not self.template_id:
            raise ValueError("Alipay message template: template_id is required")
        if not self.fields:
            raise ValueError(f"Alipay message template {self.template_id}: fields must map at least one key")
        object.__setattr__(self, "fields", MappingProxyType(dict(self.fields)))


@dataclass(frozen=True)
class AlipayConfig:
    app_id: str
    app_private_key: str = field(repr=False)     # PEM or bare Base64 (PKCS#8 / PKCS#1)
    alipay_public_key: str = field(repr=False)   # PEM or bare Base64
    # The merchant's PID (2088 + 12 digits): a notify naming another seller_id is refused
    # even when its signature verifies (one Alipay key may serve several merchants' apps).
    seller_id: str = ""
    gateway_url: str = GATEWAY
    notify_url: str = ""                         # async notifies of trades and refunds (§6.4)
    call_url: str = ""                           # medical order callback (§7.2 call_url) [format unknown]
    org_no: str = ""                             # 定点医疗机构编码 (§7.2 org_no)
    org_app_id: str = ""                         # 定点机构应用ID (auth query, required for 04107)
    org_chnl_crtf_code: str = field(default="", repr=False)   # 机构渠道认证编码 (auth query)
    ins_code: str = ""
    merchant_name: str = ""
    payment_city_code: str = ""
    order_api: OrderApi = "medical"
    # §7.3 variant: InsurancePayExtendParams.sys_service_provider_id (ISV pid), optional.
    sys_service_provider_id: str = ""
    timeout_seconds: float = 15.0
    connect_timeout_seconds: float = 5.0
    # §6.3: an error answer may come unsigned.  "accept": an unsigned non-10000 answer is a
    # REJECTED business error; "unknown": it is UNKNOWN.  A signed answer must always verify.
    unsigned_errors: UnsignedErrors = "accept"
    # §9 / §10.4.14: to_user_id (2088…) or to_open_id (the official SDK model has both).
    message_user_id: UserIdKind = "user_id"
    templates: Mapping[str, AlipayTemplate] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not (self.app_id or "").isdigit() or not 10 <= len(self.app_id) <= 32:
            raise ValueError(f"app_id must be the numeric Alipay app id, not {self.app_id!r}")
        if self.seller_id and not (self.seller_id.isdigit() and len(self.seller_id) == 16
                                   and self.seller_id.startswith("2088")):
            raise ValueError(f"seller_id must be the merchant's PID (2088 and 12 digits), not {self.seller_id!r}")
        try:
            self.private_key  # noqa: B018 - parse both keys now, with a clear message
            self.public_key  # noqa: B018
        except KeyFormatError as exc:
            raise ValueError(str(exc)) from None
        for name in ("gateway_url", "notify_url", "call_url"):
            value = getattr(self, name)
            if not value and name != "gateway_url":
                continue
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ValueError(f"{name} must be an http(s) URL, not {value!r}")
        if self.order_api not in ("medical", "trade"):
            raise ValueError(f"order_api must be 'medical' or 'trade', not {self.order_api!r}")
        if self.unsigned_errors not in ("accept", "unknown"):
            raise ValueError(f"unsigned_errors must be 'accept' or 'unknown', not {self.unsigned_errors!r}")
        if self.message_user_id not in ("user_id", "open_id"):
            raise ValueError("message_user_id must be 'user_id' or 'open_id'")
        if self.timeout_seconds <= 0 or self.connect_timeout_seconds <= 0:
            raise ValueError("timeouts must be positive")
        for name, template in self.templates.items():
            if not isinstance(template, AlipayTemplate):
                raise ValueError(f"templates[{name!r}] must be an AlipayTemplate")
        object.__setattr__(self, "templates", MappingProxyType(dict(self.templates)))

    @cached_property
    def private_key(self):
        return load_private_key(self.app_private_key, "app_private_key")

    @cached_property
    def public_key(self):
        return load_public_key(self.alipay_public_key, "alipay_public_key")
