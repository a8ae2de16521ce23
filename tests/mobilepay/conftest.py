import pytest

from bridge.crypto import sm2

from .platform_stub import APP_ID, APP_SECRET, Platform


@pytest.fixture(scope="session")
def keys():
    return sm2.generate_private_key(), sm2.generate_private_key()   # institution, platform


@pytest.fixture
def platform(keys):
    org, plat = keys
    p = Platform(org.public_key(), plat)
    yield p
    p.close()


@pytest.fixture
def make_config(keys):
    from bridge.mobilepay.config import MobilePayConfig
    org, plat = keys

    def make(base_url, **kw):
        return MobilePayConfig(base_url=base_url, app_id=APP_ID, app_secret=APP_SECRET,
                               org_private_key=org.to_base64(),
                               platform_public_key=plat.public_key().to_base64(),
                               org_codg="H53010000001", **kw)
    return make
