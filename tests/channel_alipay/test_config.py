"""Alipay settings are checked at construction."""
from __future__ import annotations

import pytest


@pytest.mark.parametrize("change,match", [
    ({"app_id": "abc"}, "app_id"),
    ({"app_private_key": "not a key"}, "app_private_key"),
    ({"alipay_public_key": ""}, "alipay_public_key"),
    ({"gateway_url": "ftp://x"}, "gateway_url"),
    ({"order_api": "generic"}, "order_api"),
    ({"message_user_id": "uid"}, "message_user_id"),
])
def test_bad_settings_are_refused(make_config, change, match):
    with pytest.raises(ValueError, match=match):
        make_config(**change)


def test_keys_stay_out_of_repr(make_config):
    assert "PRIVATE" not in repr(make_config()) and "crtf/+code" not in repr(make_config())
