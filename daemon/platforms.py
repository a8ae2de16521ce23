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
    callback_listen = "0.0.0.0:8766"     # where the centre's 6302 notices arrive

Settings not named here keep the defaults of the client's config class
(bridge/mobilepay/config.py, bridge/offline/config.py) and of the flow settings
(bridge/mobilepay/flows.py MobilePaySettings).
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Optional

from daemon.config import Config, ConfigError

# Settings that are secret: only accepted as <name>_env or <name>_file.
_SECRETS = {
    "mobilepay": ("app_secret", "org_private_key"),
    "offline": ("paas_secret", "gz_sign_in_password"),
}


def secret(section: str, raw: dict, name: str, required: bool = True) -> Optional[str]:
    if name in raw:
        raise ConfigError(f"[{section}] {name}: secrets are not written in the config file; "
                          f"use {name}_env = \"VARIABLE\" or {name}_file = \"/path\"")
    env, path = raw.get(f"{name}_env"), raw.get(f"{name}_file")
    if env:
        value = os.environ.get(env)
        if not value:
            raise ConfigError(f"[{section}] {name}_env: environment variable {env} is not set")
        return value
    if path:
        try:
            return Path(path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"[{section}] {name}_file: cannot read {path}: {exc}") from None
    if required:
        raise ConfigError(f"[{section}] {name}_env or {name}_file is required")
    return None


def split(section: str, raw: dict, *targets: type) -> list[dict]:
    """Share one section's keys between dataclasses; unknown keys are an error."""
    raw = dict(raw)
    for name in _SECRETS.get(section, ()):
        if name in raw:
            secret(section, raw, name)      # raises the "not in the config file" error
        raw.pop(f"{name}_env", None)
        raw.pop(f"{name}_file", None)
    out = []
    for cls in targets:
        names = {f.name for f in dataclasses.fields(cls)}
        out.append({k: raw.pop(k) for k in list(raw) if k in names})
    if raw:
        raise ConfigError(f"[{section}]: unknown setting(s) {', '.join(sorted(raw))}")
    return out


# ---------------------------------------------------------------- mobile pay

def mobilepay_parts(cfg: Config):
    """(MobilePayConfig, MobilePaySettings) or None when [mobilepay] is absent."""
    raw = cfg.platforms.get("mobilepay")
    if not raw:
        return None
    from bridge.mobilepay.config import MobilePayConfig
    from bridge.mobilepay.flows import MobilePaySettings

    client_kw, flow_kw = split("mobilepay", raw, _without(MobilePayConfig, _SECRETS["mobilepay"]),
                               MobilePaySettings)
    app_secret = secret("mobilepay", raw, "app_secret")
    org_key = secret("mobilepay", raw, "org_private_key")
    try:
        client = MobilePayConfig(app_secret=app_secret, org_private_key=org_key, **client_kw)
        settings = MobilePaySettings(**flow_kw)
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


def offline_parts(cfg: Config):
    """(OfflineConfig, OperatorSettings) or None when [offline] is absent."""
    raw = cfg.platforms.get("offline")
    if not raw:
        return None
    from bridge.offline.config import GUANGZHOU_INPUT_NODES, NATIONAL_INPUT_NODES, OfflineConfig, Operator

    raw = dict(raw)
    nodes = raw.pop("input_nodes", "national")
    client_kw, op_kw = split("offline", raw, _without(OfflineConfig, _SECRETS["offline"] + (
        "input_nodes", "default_operator")), OperatorSettings)
    op = OperatorSettings(**op_kw)
    if not op.operator:
        raise ConfigError("[offline] operator is required (the 9001 sign-in operator code)")
    if nodes not in ("national", "guangzhou"):
        raise ConfigError("[offline] input_nodes must be \"national\" or \"guangzhou\"")
    paas_secret = secret("offline", raw, "paas_secret")
    gz_password = secret("offline", raw, "gz_sign_in_password", required=False)
    try:
        client = OfflineConfig(
            paas_secret=paas_secret, gz_sign_in_password=gz_password,
            input_nodes=GUANGZHOU_INPUT_NODES if nodes == "guangzhou" else NATIONAL_INPUT_NODES,
            default_operator=Operator(op.operator, op.operator_name or op.operator, op.operator_type),
            **client_kw)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"[offline]: {exc}") from None
    return client, op


def _without(cls: type, names: tuple[str, ...]) -> type:
    """A stand-in dataclass with cls's fields minus `names` (for split())."""
    fields = [(f.name, Any, dataclasses.field(default=None)) for f in dataclasses.fields(cls)
              if f.name not in names]
    return dataclasses.make_dataclass(f"{cls.__name__}Keys", fields)
