"""The channels' part of the simulator configuration: credentials handed out, saved sets reloaded."""
from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization

from bridge.simulator import SimulatorConfig
from bridge.simulator.__main__ import _load_config, _save_config


def test_credentials_carry_what_a_channel_client_needs():
    cfg = SimulatorConfig.generate()
    creds = cfg.client_credentials("http://127.0.0.1:1")
    wx, ali = creds["wechatpay"], creds["alipay"]
    for pem in (wx["merchant_private_key"], ali["app_private_key"]):
        serialization.load_pem_private_key(pem.encode(), password=None)
    for pem in (wx["platform_public_key"], ali["alipay_public_key"]):
        serialization.load_pem_public_key(pem.encode())
    assert wx["platform_serial"].startswith("PUB_KEY_ID_") and len(wx["apiv3_key"]) == 32
    assert wx["mchid"] and wx["appid"].startswith("wx") and len(wx["merchant_serial"]) == 40
    assert ali["gateway_url"] == "http://127.0.0.1:1/gateway.do" and ali["app_id"] and ali["pid"].startswith("2088")


def test_a_saved_configuration_reloads_equal(tmp_path):
    cfg = SimulatorConfig.generate(wechat_template_ids=("T1",), wechat_refund_settle_seconds=0.05,
                                   wechat_cash_after_6203="centre_returns_cash")
    _save_config(cfg, str(tmp_path / "sim.json"))
    assert _load_config(str(tmp_path / "sim.json")) == cfg


def test_an_unknown_reading_is_refused():
    with pytest.raises(ValueError, match="wechat_cash_after_6203"):
        SimulatorConfig.generate(wechat_cash_after_6203="both")
