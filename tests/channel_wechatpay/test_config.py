"""Settings are checked at construction, with a message naming the setting."""
from __future__ import annotations

import pytest

from .conftest import pem_public


@pytest.mark.parametrize("change,match", [
    ({"mchid": "19abc"}, "mchid"),
    ({"appid": "WX0123456789ABCDEF"}, "appid"),
    ({"apiv3_key": "short"}, "32 bytes"),
    ({"merchant_private_key": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----"}, "merchant_private_key"),
    ({"merchant_private_key": "MIIE..."}, "PEM"),
    ({"merchant_serial": "PUB_KEY_ID_1"}, "merchant_serial"),
    ({"platform_serial": ""}, "PUB_KEY_ID_"),
    ({"platform_serial": "not-hex-not-pubkey"}, "platform key serial"),
    ({"callback_url": "http://hospital.example/cb"}, "https"),
    ({"callback_url": "https://hospital.example/cb?x=1"}, "query"),
    ({"unsigned_errors": "maybe"}, "unsigned_errors"),
    ({"timestamp_window_seconds": 5}, "timestamp_window_seconds"),
])
def test_bad_settings_are_refused(make_config, change, match):
    with pytest.raises(ValueError, match=match):
        make_config(**change)


def test_message_templates_need_their_secrets(make_config):
    from bridge.wechatpay.config import MessageTemplate
    with pytest.raises(ValueError, match="app_secret"):
        make_config(templates={"paid": MessageTemplate(template_id="T", fields={"thing1": "x"})})
    with pytest.raises(ValueError, match="official_app"):
        make_config(app_secret="s", templates={"paid": MessageTemplate(template_id="T", fields={"thing1": "x"},
                                                                       kind="official")})


def test_secrets_stay_out_of_repr(make_config, keys):
    config = make_config(app_secret="APPSECRET-XYZ")
    text = repr(config)
    assert "PRIVATE" not in text and "APPSECRET-XYZ" not in text and "0123456789abcdefABCDEF" not in text
    assert config.platform_key.serial == "PUB_KEY_ID_0114232134912410000000000000"
    assert pem_public(keys["platform"]) not in text
