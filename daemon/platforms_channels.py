"""The patient channels' sections of the configuration: [wechatpay] and [alipay].

    [wechatpay]
    mchid = "1900000109"
    appid = "wx0123456789abcdef"                  # the mini-program bound to mchid
    merchant_serial = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1"
    merchant_private_key_file = "/etc/mibridge/wechatpay/apiclient_key.pem"     # secret
    apiv3_key_env = "MIBRIDGE_WX_APIV3_KEY"                                      # secret
    platform_serial = "PUB_KEY_ID_0114232134912410000000000000"
    platform_public_key_file = "/etc/mibridge/wechatpay/pub_key.pem"            # public
    notify_url = "https://pay-notify.hospital.example/mibridge/wechatpay/pay"
    callback_url = "https://pay-notify.hospital.example/mibridge/wechatpay/medins"
    refund_notify_url = "https://pay-notify.hospital.example/mibridge/wechatpay/refund"
    med_inst_no = "H44010600001"
    med_inst_name = "..."
    city_id = "440100"
    callback_listen = "127.0.0.1:8766"          # where the callbacks arrive, behind the HTTPS front
    callback_path = "/mibridge/wechatpay"

    [wechatpay.templates.registration_paid]      # a patient message (bridge/channels/patient_messages.py)
    template_id = "..."
    page = "pages/order/detail"
    fields = { thing1 = "patient_name", amount2 = "amount", time3 = "paid_time" }

    [alipay]
    app_id = "2021004100000001"
    seller_id = "2088000000000001"
    app_private_key_file = "/etc/mibridge/alipay/app_private_key.pem"           # secret
    alipay_public_key_file = "/etc/mibridge/alipay/alipay_public_key.pem"       # public
    notify_url = ...; call_url = ...; org_no = "H44010600001"
    callback_listen = "127.0.0.1:8766"
    callback_path = "/mibridge/alipay"

Each section is the client's config class (bridge/wechatpay/config.py WechatPayConfig,
bridge/alipay/config.py AlipayConfig) plus the channel settings
(bridge/channels/settings.py): every field of them may be set, with its type checked.
Secrets (the private keys, the APIv3 key, the AppSecrets, Alipay's 机构渠道认证编码) come
only from `<name>_env` or `<name>_file` (a file only the service account can read:
daemon/platforms.py).  Public keys may be written inline (PEM, or Alipay's bare Base64)
or given as `<name>_file` (no permission check: they are public).  What the flows and the
callbacks need (the callback URLs, the institution, Alipay's seller_id when callbacks are
served) is required at start, so a gap stops the daemon instead of failing a payment.
"""
from __future__ import annotations

import dataclasses
import difflib
from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import BaseModel, ValidationError, field_validator, model_validator

from daemon.config import STRICT, Config, ConfigError, register_section, validate_section
from daemon.http_server import parse_listen
from daemon.platforms import _values, secret, section_model

WECHAT_SECRETS = ("merchant_private_key", "apiv3_key", "app_secret", "official_app_secret", "auth_partner_secret")
ALIPAY_SECRETS = ("app_private_key", "org_chnl_crtf_code")
# Client fields the section gives another way (secrets above; public keys inline or from a
# file; templates as sub-tables).
_WECHAT_OTHER = ("platform_public_key", "extra_platform_keys", "templates")
_ALIPAY_OTHER = ("alipay_public_key", "templates")


@dataclasses.dataclass(frozen=True)
class ChannelParts:
    client: Any            # WechatPayConfig / AlipayConfig
    settings: Any          # WechatChannelSettings / AlipayChannelSettings


# ---------------------------------------------------------------- templates

class WechatTemplate(BaseModel):
    model_config = STRICT

    template_id: str
    kind: Literal["subscribe", "official"] = "subscribe"   # mini-program subscribe / 公众号 template message
    page: str = ""                                          # mini-program page (pagepath for "official")
    url: str = ""                                           # "official" only: a web page
    fields: dict[str, str]                                  # template key -> value name


class AlipayTemplate(BaseModel):
    model_config = STRICT

    template_id: str
    page: str = ""
    fields: dict[str, str]


def _templates(model: type[BaseModel], raw: Any) -> dict:
    """[<section>.templates.<event>] tables, checked with messages that name the event and key."""
    from bridge.channels.patient_messages import EVENTS, VALUES

    if not isinstance(raw, dict):
        raise ValueError("templates must be tables: [<section>.templates.<event>]")
    out = {}
    for event, table in raw.items():
        if event not in EVENTS:
            close = difflib.get_close_matches(event, EVENTS, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ValueError(f"templates.{event}: unknown event{hint}; known: {', '.join(EVENTS)}")
        try:
            t = model.model_validate(table)
        except ValidationError as exc:
            # A misspelt key first: it explains the "required" that follows from it.
            errors = sorted(exc.errors(include_url=False), key=lambda e: e["type"] != "extra_forbidden")
            said = []
            for e in errors:
                name = ".".join(str(p) for p in e["loc"])
                if e["type"] == "extra_forbidden":
                    close = difflib.get_close_matches(str(e["loc"][0]), model.model_fields, n=1)
                    hint = f" (did you mean {close[0]}?)" if close else ""
                    said.append(f"templates.{event}.{name}: unknown setting{hint}; known: "
                                f"{', '.join(model.model_fields)}")
                else:
                    said.append(f"templates.{event}.{name}: {e['msg']}")
            raise ValueError("; ".join(said)) from None
        if not t.template_id or not t.fields:
            raise ValueError(f"templates.{event}: template_id and fields are required")
        for key, source in t.fields.items():
            if source not in VALUES:
                close = difflib.get_close_matches(source, VALUES, n=1)
                hint = f" (did you mean {close[0]}?)" if close else ""
                raise ValueError(f"templates.{event}.fields.{key}: unknown value {source!r}{hint}; known: "
                                 f"{', '.join(VALUES)}")
        out[event] = t
    return out


def _listen(value: str) -> str:
    if value:
        parse_listen(value)
    return value


def _common_validators(template_model: type[BaseModel], check) -> dict:
    """The checks both sections make at load: templates, the listen address, the channel
    settings' own rules (order_prefix, callback_path), and the section-wide `check`."""
    from bridge.channels.keys import check_prefix
    from bridge.channels.settings import check_path

    return {"_templates": field_validator("templates", mode="before")(
                classmethod(lambda cls, v: _templates(template_model, v))),
            "_listen": field_validator("callback_listen")(classmethod(lambda cls, v: _listen(v))),
            "_prefix": field_validator("order_prefix")(classmethod(lambda cls, v: check_prefix(v))),
            "_path": field_validator("callback_path")(classmethod(lambda cls, v: check_path(v))),
            "_check": model_validator(mode="after")(check)}


# ---------------------------------------------------------------- models

def _one_of(m: BaseModel, name: str) -> None:
    if (getattr(m, name) is None) == (getattr(m, f"{name}_file") is None):
        raise ValueError(f"give exactly one of {name} (inline) and {name}_file")


def _required(m: BaseModel, names: tuple[str, ...], why: str) -> None:
    missing = [n for n in names if not getattr(m, n)]
    if missing:
        raise ValueError(f"{', '.join(missing)}: required ({why})")


def _wechat_model() -> type[BaseModel]:
    from bridge.channels.settings import WechatChannelSettings
    from bridge.wechatpay.config import WechatPayConfig

    def check(m):
        _one_of(m, "platform_public_key")
        _required(m, ("notify_url", "callback_url", "refund_notify_url"),
                  "the prepay, the mixed order and the cash refund name them")
        _required(m, ("med_inst_no", "med_inst_name", "city_id"), "every mixed order carries them")
        return m

    return section_model(
        "wechatpay", [(WechatPayConfig, WECHAT_SECRETS + _WECHAT_OTHER), (WechatChannelSettings, ())],
        secrets=WECHAT_SECRETS,
        extra={"platform_public_key": (Optional[str], None), "platform_public_key_file": (Optional[str], None),
               # older platform certificates still valid while WeChat rotates: serial -> file
               "extra_platform_key_files": (dict[str, str], {}),
               "templates": (dict[str, WechatTemplate], {})},
        validators=_common_validators(WechatTemplate, check))


def _alipay_model() -> type[BaseModel]:
    from bridge.alipay.config import AlipayConfig
    from bridge.channels.settings import AlipayChannelSettings

    def check(m):
        _one_of(m, "alipay_public_key")
        _required(m, ("org_no", "notify_url"), "every order and refund names them")
        if m.order_api == "medical":
            _required(m, ("call_url",), "the medical order (order_api = \"medical\") names it")
        if m.callback_listen:
            _required(m, ("seller_id",), "the notifies are checked against it")
        return m

    return section_model(
        "alipay", [(AlipayConfig, ALIPAY_SECRETS + _ALIPAY_OTHER), (AlipayChannelSettings, ())],
        secrets=ALIPAY_SECRETS,
        extra={"alipay_public_key": (Optional[str], None), "alipay_public_key_file": (Optional[str], None),
               "templates": (dict[str, AlipayTemplate], {})},
        validators=_common_validators(AlipayTemplate, check))


register_section("wechatpay", _wechat_model())
register_section("alipay", _alipay_model())


# ---------------------------------------------------------------- building the parts

def _public(section: str, m: BaseModel, name: str) -> str:
    inline, path = getattr(m, name), getattr(m, f"{name}_file")
    if inline is not None:
        return inline
    return _read_public(f"[{section}] {name}_file", path)


def _read_public(what: str, path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{what}: cannot read {path}: {exc}") from None


def wechatpay_parts(cfg: Config) -> Optional[ChannelParts]:
    """(WechatPayConfig, WechatChannelSettings), or None when [wechatpay] is absent."""
    raw = cfg.platforms.get("wechatpay")
    if not raw:
        return None
    from bridge.channels.settings import WechatChannelSettings
    from bridge.wechatpay.config import MessageTemplate, WechatPayConfig

    m = validate_section("wechatpay", raw)
    values = {name: secret("wechatpay", m, name, required=name in ("merchant_private_key", "apiv3_key")) or ""
              for name in WECHAT_SECRETS}
    try:
        client = WechatPayConfig(
            platform_public_key=_public("wechatpay", m, "platform_public_key"),
            extra_platform_keys={serial: _read_public(f"[wechatpay] extra_platform_key_files.{serial}", path)
                                 for serial, path in m.extra_platform_key_files.items()},
            templates={event: MessageTemplate(template_id=t.template_id, fields=t.fields, kind=t.kind, page=t.page,
                                              url=t.url) for event, t in m.templates.items()},
            **values, **_values(m, WechatPayConfig, WECHAT_SECRETS + _WECHAT_OTHER))
        settings = WechatChannelSettings(**_values(m, WechatChannelSettings))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"[wechatpay]: {exc}") from None
    return ChannelParts(client, settings)


def alipay_parts(cfg: Config) -> Optional[ChannelParts]:
    """(AlipayConfig, AlipayChannelSettings), or None when [alipay] is absent."""
    raw = cfg.platforms.get("alipay")
    if not raw:
        return None
    from bridge.alipay.config import AlipayConfig, AlipayTemplate as ClientTemplate
    from bridge.channels.settings import AlipayChannelSettings

    m = validate_section("alipay", raw)
    values = {name: secret("alipay", m, name, required=name == "app_private_key") or ""
              for name in ALIPAY_SECRETS}
    try:
        client = AlipayConfig(
            alipay_public_key=_public("alipay", m, "alipay_public_key"),
            templates={event: ClientTemplate(template_id=t.template_id, fields=t.fields, page=t.page)
                       for event, t in m.templates.items()},
            **values, **_values(m, AlipayConfig, ALIPAY_SECRETS + _ALIPAY_OTHER))
        settings = AlipayChannelSettings(**_values(m, AlipayChannelSettings))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"[alipay]: {exc}") from None
    return ChannelParts(client, settings)
