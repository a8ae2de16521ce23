"""The platform sections of install/mibridge.example.toml are complete and valid,
and secrets cannot be written into the file."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from daemon.config import Config, ConfigError
from daemon.platforms import mobilepay_parts, offline_parts
from daemon.platforms_facepay import facepay_parts

EXAMPLE = Path(__file__).resolve().parents[2] / "install" / "mibridge.example.toml"


def _example_platforms() -> dict:
    text = EXAMPLE.read_text(encoding="utf-8")
    i = text.index("# Mobile payment 2.0")
    # what an administrator does: uncomment the platform sections
    return tomllib.loads(text[:i] + re.sub(r"^# (\[|[a-z_]+ = )", r"\1", text[i:], flags=re.M))


def test_example_platform_sections_load(tmp_path, monkeypatch):
    raw = _example_platforms()
    from bridge.crypto import sm2
    key = tmp_path / "mp.key"
    key.write_text(sm2.generate_private_key().to_base64())
    key.chmod(0o600)                                  # a key others can read is refused
    raw["mobilepay"]["org_private_key_file"] = str(key)
    raw["mobilepay"]["platform_public_key"] = sm2.generate_private_key().public_key().to_base64()
    raw["mobilepay"]["app_id"] = "A" * 32
    monkeypatch.setenv("MIBRIDGE_MP_APP_SECRET", "s" * 32)
    monkeypatch.setenv("MIBRIDGE_GW_SECRET", "g" * 16)
    cfg = Config()
    cfg.platforms = {k: raw[k] for k in ("mobilepay", "offline", "facepay")}
    client, settings = mobilepay_parts(cfg)
    assert client.org_codg == "H44010600001" and settings.payment_deadline_seconds == 1800
    assert settings.callback_listen == "127.0.0.1:8766" and settings.notice_call_types == ("02",)
    off, op = offline_parts(cfg)
    assert off.paas_secret == "g" * 16 and op.operator == "op001"
    assert facepay_parts(cfg).settings.merchant_no == "102440100000004"


def test_secrets_written_inline_are_refused(monkeypatch):
    cfg = Config()
    cfg.platforms = {"mobilepay": {"base_url": "http://x", "app_id": "A" * 32, "app_secret": "inline!",
                                   "org_private_key_env": "K", "platform_public_key": "x", "org_codg": "H1"}}
    with pytest.raises(ConfigError, match="secrets are not written in the config file"):
        mobilepay_parts(cfg)


def test_unknown_mobilepay_setting_is_refused(monkeypatch):
    monkeypatch.setenv("S", "s" * 32)
    cfg = Config()
    cfg.platforms = {"mobilepay": {"base_url": "http://x", "app_id": "A" * 32, "app_secret_env": "S",
                                   "org_private_key_env": "S", "platform_public_key": "x", "org_codg": "H1",
                                   "paymnet_deadline_seconds": 5}}
    with pytest.raises(ConfigError, match="paymnet_deadline_seconds"):
        mobilepay_parts(cfg)
