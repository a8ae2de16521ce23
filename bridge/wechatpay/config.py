"""Settings of one hospital's WeChat Pay 医保 merchant and its mini-program / official account.

Keys arrive as values: the daemon reads them only from ``*_env`` / ``*_file`` settings and
passes the text in.  Everything is checked here, at construction, with a message that
names the setting.  Where channels.md is uncertain (§10.4) the choice is a field here,
defaulting to the digest's conservative reading; docs/platform-choices.md lists them.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property
from types import MappingProxyType
from typing import Literal, Mapping, Optional
from urllib.parse import urlsplit

from loguru import logger

from .cipher import check_apiv3_key
from .signing import DEFAULT_WINDOW_SECONDS, KeyFormatError, PlatformKey, check_serial, load_platform_key, \
    load_private_key

MAIN_HOST = "https://api.mch.weixin.qq.com"          # §1.1
MESSAGE_HOST = "https://api.weixin.qq.com"           # §4

UnsignedErrors = Literal["accept", "unknown"]
TokenApi = Literal["stable", "classic"]
MessageKind = Literal["subscribe", "official"]
MiniProgramState = Literal["formal", "trial", "developer"]

_APPID_RE = re.compile(r"^wx[0-9a-f]{16}$")          # W1 §2.8 B: appid is lower case
_MCHID_RE = re.compile(r"^\d{8,12}$")


def _check_url(name: str, value: str, *, https: bool = False, query: bool = True) -> None:
    parts = urlsplit(value or "")
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{name} must be an http(s) URL, not {value!r}")
    if https and parts.scheme != "https":
        # §2.2 callback_url: HTTPS only.  Loopback stays allowed so the simulator can stand in.
        host = parts.hostname or ""
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError(f"{name} must be https (WeChat calls only HTTPS callbacks): {value!r}")
    if not query and parts.query:
        raise ValueError(f"{name} must not carry a query string (§2.2): {value!r}")


@dataclass(frozen=True)
class MessageTemplate:
    """One patient message (issue 12): which template, where it leads, and how our event's
    fields fill the template's keys.

    ``fields`` maps a template key (``thing1``, ``time2``, ``amount3`` ...) to the name of a
    value the flow supplies (``patient_name``, ``paid_time``, ``amount`` ...).  A value whose
    name is a personal-data field (bridge/masking.py) is masked in the journal."""

    template_id: str
    fields: Mapping[str, str]
    kind: MessageKind = "subscribe"   # mini-program subscribe message, or 公众号 template message
    page: str = ""                    # mini-program page (subscribe) / pagepath (official account)
    url: str = ""                     # official account only: web page to open

    def __post_init__(self) -> None:
        if not self.template_id:
            raise ValueError("message template: template_id is required")
        if not self.fields:
            raise ValueError(f"message template {self.template_id}: fields must map at least one key")
        if self.kind not in ("subscribe", "official"):
            raise ValueError(f"message template {self.template_id}: kind must be 'subscribe' or 'official'")
        object.__setattr__(self, "fields", MappingProxyType(dict(self.fields)))


@dataclass(frozen=True)
class WechatPayConfig:
    mchid: str
    appid: str                                   # the mini-program (or 公众号) bound to mchid
    merchant_serial: str                         # serial of the merchant API certificate (§1.2 serial_no)
    merchant_private_key: str = field(repr=False)   # PEM
    apiv3_key: str = field(repr=False)              # 32 bytes: callback decryption (§1.4)
    platform_public_key: str = field(repr=False)    # WeChat Pay public key PEM, or platform certificate PEM
    platform_serial: str = ""                    # PUB_KEY_ID_... (required with a public key)
    # Older platform certificates still accepted while WeChat rotates: serial -> PEM.
    extra_platform_keys: Mapping[str, str] = field(default_factory=dict, repr=False)
    base_url: str = MAIN_HOST
    message_base_url: str = MESSAGE_HOST
    notify_url: str = ""                         # JSAPI prepay notify_url: TRANSACTION.SUCCESS (§2.1)
    callback_url: str = ""                       # mixed order callback_url: MEDICAL_INSURANCE.SUCCESS (§2.2)
    refund_notify_url: str = ""                  # cash refund notify_url: REFUND.* (§2.6)
    med_inst_no: str = ""                        # 医疗机构编码, as the bureau registered it
    med_inst_name: str = ""
    city_id: str = ""                            # Tencent city id (W1 §2.3; may differ from the national code)
    channel_no: str = ""
    # §2.2: routing orders to the bureau's test environment in production loses money.
    med_ins_test_env: bool = False
    # INSURANCE_ONLY orders: W1's parameter table says wechat_pay_cash_fee "must be 0", its
    # troubleshooting Q&A says "do not send it".  "omit" (default) or "zero".
    insurance_only_cash_fee: Literal["omit", "zero"] = "omit"
    timeout_seconds: float = 15.0
    connect_timeout_seconds: float = 5.0
    timestamp_window_seconds: int = DEFAULT_WINDOW_SECONDS
    # §1.6/§10.4.7: whether 4xx answers are always signed is unknown.  "accept": an unsigned
    # 4xx is a REJECTED business error (a signed one must verify); "unknown": it is UNKNOWN.
    unsigned_errors: UnsignedErrors = "accept"
    # Messages (§4).  The AppSecret is a key like the others: from *_env / *_file only.
    app_secret: str = field(default="", repr=False)
    official_appid: str = ""                     # 公众号 for template messages (§4.3)
    official_app_secret: str = field(default="", repr=False)
    token_api: TokenApi = "stable"               # §4.1: stable_token does not invalidate other holders
    token_refresh_margin_seconds: int = 300
    miniprogram_state: MiniProgramState = "formal"
    templates: Mapping[str, MessageTemplate] = field(default_factory=dict)
    # The 医保 authorisation exchange (auth code -> payAuthNo, §5; bridge/wechatpay/authquery.py):
    # the whole URL of the user query, with the partner id (https://<host>/api/mipuserquery/
    # userQuery/<partner id>), the partner id and its secret.  Empty: off (the HIS supplies
    # payAuthNo).  The production host is not public: Tencent gives it with the partner id.
    auth_query_url: str = ""
    auth_partner_id: str = ""
    auth_partner_secret: str = field(default="", repr=False)

    def __post_init__(self) -> None:
        if not _MCHID_RE.match(self.mchid or ""):
            raise ValueError(f"mchid must be 8-12 digits, not {self.mchid!r}")
        if not _APPID_RE.match(self.appid or ""):
            raise ValueError(f"appid must look like wx + 16 lower-case hex characters, not {self.appid!r}")
        if self.official_appid and not _APPID_RE.match(self.official_appid):
            raise ValueError(f"official_appid must look like wx + 16 lower-case hex, not {self.official_appid!r}")
        try:
            check_serial(self.merchant_serial or "", "merchant_serial")
            if not self.merchant_serial or self.merchant_serial.startswith("PUB_KEY_ID_"):
                raise KeyFormatError("merchant_serial must be the hex serial of the merchant API certificate")
            self.private_key  # noqa: B018 - loads (once) and checks the keys now
            self.platform_keys  # noqa: B018
        except KeyFormatError as exc:
            raise ValueError(str(exc)) from None
        check_apiv3_key(self.apiv3_key)
        _check_url("base_url", self.base_url)
        _check_url("message_base_url", self.message_base_url)
        for name in ("notify_url", "callback_url", "refund_notify_url"):
            value = getattr(self, name)
            if value:
                _check_url(name, value, https=True, query=name == "notify_url")
        if self.timeout_seconds <= 0 or self.connect_timeout_seconds <= 0:
            raise ValueError("timeouts must be positive")
        if not 30 <= self.timestamp_window_seconds <= 3600:
            raise ValueError("timestamp_window_seconds must be between 30 and 3600")
        if self.insurance_only_cash_fee not in ("omit", "zero"):
            raise ValueError("insurance_only_cash_fee must be 'omit' or 'zero'")
        if self.unsigned_errors not in ("accept", "unknown"):
            raise ValueError(f"unsigned_errors must be 'accept' or 'unknown', not {self.unsigned_errors!r}")
        if self.token_api not in ("stable", "classic"):
            raise ValueError(f"token_api must be 'stable' or 'classic', not {self.token_api!r}")
        if self.miniprogram_state not in ("formal", "trial", "developer"):
            raise ValueError("miniprogram_state must be formal, trial or developer")
        if not 0 <= self.token_refresh_margin_seconds <= 3600:
            raise ValueError("token_refresh_margin_seconds must be between 0 and 3600")
        for name, template in self.templates.items():
            if not isinstance(template, MessageTemplate):
                raise ValueError(f"templates[{name!r}] must be a MessageTemplate")
            if template.kind == "official" and not (self.official_appid and self.official_app_secret):
                raise ValueError(f"templates[{name!r}] is an official-account message: "
                                 "official_appid and official_app_secret are required")
            if template.kind == "subscribe" and not self.app_secret:
                raise ValueError(f"templates[{name!r}] is a subscribe message: app_secret is required")
        if self.auth_query_url:
            _check_url("auth_query_url", self.auth_query_url, https=True)
            if not (self.auth_partner_id and self.auth_partner_secret):
                raise ValueError("auth_query_url needs auth_partner_id and auth_partner_secret")
        if self.med_ins_test_env:
            logger.warning("wechatpay: med_ins_test_env is on: mixed orders go to the bureau's TEST "
                           "environment while the cash part is real (channels.md §2.2); never in production")
        object.__setattr__(self, "templates", MappingProxyType(dict(self.templates)))
        object.__setattr__(self, "extra_platform_keys", MappingProxyType(dict(self.extra_platform_keys)))

    # Parsed keys, loaded once (cached_property writes the instance dict, which a frozen
    # dataclass allows).  Never part of repr().

    @cached_property
    def private_key(self):
        return load_private_key(self.merchant_private_key, "merchant_private_key")

    @cached_property
    def platform_key(self) -> PlatformKey:
        """The key sensitive fields are encrypted for; its serial goes in Wechatpay-Serial."""
        return load_platform_key(self.platform_public_key, self.platform_serial)

    @cached_property
    def platform_keys(self) -> list[PlatformKey]:
        keys = [self.platform_key]
        keys += [load_platform_key(pem, serial) for serial, pem in self.extra_platform_keys.items()]
        return keys

    @cached_property
    def apiv3_key_bytes(self) -> bytes:
        return check_apiv3_key(self.apiv3_key)

    def url(self, path_and_query: str) -> str:
        return self.base_url.rstrip("/") + path_and_query

    def message_url(self, path: str) -> str:
        return self.message_base_url.rstrip("/") + path

    def template(self, event: str) -> Optional[MessageTemplate]:
        return self.templates.get(event)
