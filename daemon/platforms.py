"""Platform sections of the configuration: [mobilepay], [offline], [facepay].

Each section becomes a client (and, for the flows, a settings object).  Secrets
never sit in the TOML file: a secret setting is given as `<name>_env` (the
environment variable that holds it) or `<name>_file` (a file readable only by
the service account).  A secret written inline is refused, so it cannot end up
in a config file that is copied around or checked in.

    [mobilepay]
    base_url = "https://mpc.example.gov.cn"
    app_id = "..."                       # not secret: it travels in every request
    app_secret_env = "MIBRIDGE_MP_APP_SECRET"
    org_private_key_file = "/etc/mibridge/mobilepay-sm2.key"
    platform_public_key = "BASE64..."
    org_codg = "H44010600001"
    callback_listen = "127.0.0.1:8766"   # where the centre's 6302 notices arrive (behind HTTPS)

Settings not named here keep the defaults of the client's config class
(bridge/mobilepay/config.py, bridge/offline/config.py) and of the flow settings
(bridge/mobilepay/flows.py MobilePaySettings).

Each section is a pydantic model built from those dataclasses' fields and types
(section_model), registered in daemon/config.py's SECTIONS: load() checks every
key and type at start, and the *_parts() functions below check again when they
build the clients (the demo and some tests build a Config by hand).
"""
from __future__ import annotations

import dataclasses
import os
import stat
import typing
from pathlib import Path
from typing import Any, Optional

from loguru import logger
from pydantic import BaseModel, Field, create_model, field_validator

from daemon.config import STRICT, Config, ConfigError, register_section, validate_section

# Settings that are secret: only accepted as <name>_env or <name>_file.
_SECRETS = {
    "mobilepay": ("app_secret", "org_private_key"),
    "offline": ("paas_secret", "gz_sign_in_password"),
}


def section_model(section: str, parts: list[tuple[type, tuple[str, ...]]],
                  extra: Optional[dict[str, tuple[Any, Any]]] = None,
                  secrets: Optional[tuple[str, ...]] = None, validators: Optional[dict] = None) -> type[BaseModel]:
    """A strict model of one section: the fields of each dataclass in `parts`
    (minus the names excluded), with their types and defaults, plus `extra`
    fields and the <secret>_env / <secret>_file pair of each secret (`secrets`,
    default: this module's list for the section), plus pydantic `validators`."""
    fields: dict[str, tuple[Any, Any]] = {}
    for cls, exclude in parts:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if f.name in exclude:
                continue
            if f.default is not dataclasses.MISSING:
                default = f.default
            elif f.default_factory is not dataclasses.MISSING:
                default = Field(default_factory=f.default_factory)
            else:
                default = ...
            fields[f.name] = (hints[f.name], default)
    secrets = _SECRETS.get(section, ()) if secrets is None else secrets
    for name in secrets:
        fields[name] = (Any, None)          # only to refuse it with a useful message
        fields[f"{name}_env"] = (Optional[str], None)
        fields[f"{name}_file"] = (Optional[str], None)
    fields.update(extra or {})

    def no_inline_secret(cls, value, info):
        if value is not None:
            raise ValueError(f"secrets are not written in the config file; use {info.field_name}_env = "
                             f"\"VARIABLE\" or {info.field_name}_file = \"/path\"")
        return value

    validators = dict(validators or {})
    if secrets:
        validators["no_inline_secret"] = field_validator(*secrets)(classmethod(no_inline_secret))
    return create_model(f"{section.capitalize()}Section", __config__=STRICT, __validators__=validators, **fields)


def secret(section: str, raw: dict | BaseModel, name: str, required: bool = True) -> Optional[str]:
    if isinstance(raw, BaseModel):
        raw = raw.model_dump()
    elif name in raw:
        raise ConfigError(f"[{section}] {name}: secrets are not written in the config file; "
                          f"use {name}_env = \"VARIABLE\" or {name}_file = \"/path\"")
    env, path = raw.get(f"{name}_env"), raw.get(f"{name}_file")
    if env:
        value = os.environ.get(env)
        if not value:
            raise ConfigError(f"[{section}] {name}_env: environment variable {env} is not set")
        return value
    if path:
        return read_secret_file(f"[{section}] {name}_file", path)
    if required:
        raise ConfigError(f"[{section}] {name}_env or {name}_file is required")
    return None


def read_secret_file(what: str, path: str) -> str:
    """A secret file must be readable by its owner only (POSIX mode 0600 or 0400):
    a key that others on the machine can read is refused, not used."""
    p = Path(path)
    try:
        if os.name == "posix":
            mode = p.stat().st_mode
            if mode & (stat.S_IRGRP | stat.S_IROTH):
                raise ConfigError(f"{what}: {path} can be read by group or others (mode "
                                  f"{stat.S_IMODE(mode):04o}); make it readable by the service account "
                                  f"only: chmod 600 {path}")
        else:
            # Windows ACLs are not mode bits; the installer's ACL is trusted.
            logger.info("{}: file permissions of {} are not checked on this system; let only the service "
                        "account read it", what, path)
        return p.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"{what}: cannot read {path}: {exc}") from None


def _values(model: BaseModel, cls: type, exclude: tuple[str, ...] = ()) -> dict:
    names = {f.name for f in dataclasses.fields(cls)} - set(exclude)
    return {k: v for k, v in model.model_dump().items() if k in names}


# ---------------------------------------------------------------- mobile pay

def _mobilepay_model() -> type[BaseModel]:
    from bridge.mobilepay.config import MobilePayConfig
    from bridge.mobilepay.settings import MobilePaySettings

    return section_model("mobilepay", [(MobilePayConfig, _SECRETS["mobilepay"]), (MobilePaySettings, ())])


register_section("mobilepay", _mobilepay_model())


def mobilepay_parts(cfg: Config):
    """(MobilePayConfig, MobilePaySettings) or None when [mobilepay] is absent."""
    raw = cfg.platforms.get("mobilepay")
    if not raw:
        return None
    from bridge.mobilepay.config import MobilePayConfig
    from bridge.mobilepay.settings import MobilePaySettings

    m = validate_section("mobilepay", raw)
    app_secret = secret("mobilepay", m, "app_secret")
    org_key = secret("mobilepay", m, "org_private_key")
    try:
        client = MobilePayConfig(app_secret=app_secret, org_private_key=org_key,
                                 **_values(m, MobilePayConfig, _SECRETS["mobilepay"]))
        settings = MobilePaySettings(**_values(m, MobilePaySettings))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"[mobilepay]: {exc}") from None
    return client, settings


# ---------------------------------------------------------------- offline / face pay

@dataclasses.dataclass
class OperatorSettings:
    """The operator the daemon signs in as (9001) and names in every envelope."""

    operator: str = ""
    operator_name: str = ""
    operator_type: str = "1"
    # 9001 input: the machine's MAC and IP as the platform registered them.
    sign_in_mac: str = ""
    sign_in_ip: str = ""


def _offline_model() -> type[BaseModel]:
    from bridge.offline.config import OfflineConfig

    return section_model(
        "offline", [(OfflineConfig, _SECRETS["offline"] + ("input_nodes", "default_operator")),
                    (OperatorSettings, ("operator",))],
        extra={"input_nodes": (typing.Literal["national", "guangzhou"], "national"),
               # the 9001 sign-in operator code
               "operator": (str, Field(..., min_length=1))})


register_section("offline", _offline_model())


def offline_parts(cfg: Config):
    """(OfflineConfig, OperatorSettings) or None when [offline] is absent."""
    raw = cfg.platforms.get("offline")
    if not raw:
        return None
    from bridge.offline.config import GUANGZHOU_INPUT_NODES, NATIONAL_INPUT_NODES, OfflineConfig, Operator

    m = validate_section("offline", raw)
    op = OperatorSettings(**_values(m, OperatorSettings))
    paas_secret = secret("offline", m, "paas_secret")
    gz_password = secret("offline", m, "gz_sign_in_password", required=False)
    try:
        client = OfflineConfig(
            paas_secret=paas_secret, gz_sign_in_password=gz_password,
            input_nodes=GUANGZHOU_INPUT_NODES if m.input_nodes == "guangzhou" else NATIONAL_INPUT_NODES,
            default_operator=Operator(op.operator, op.operator_name or op.operator, op.operator_type),
            **_values(m, OfflineConfig, _SECRETS["offline"] + ("input_nodes", "default_operator")))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"[offline]: {exc}") from None
    return client, op
