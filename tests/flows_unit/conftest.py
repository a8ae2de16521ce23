"""Services for the unit tables: the REAL platform clients, built once, never sending.

A step builds and signs its real request with them (a request the client refuses to
build fails the test); bridge/engine/testing.py hands back the scripted answer instead
of sending it.  The offline client holds a sign-in for its default operator, so 9001
is only scripted where a test is about it (FlowScript.send_direct)."""
from __future__ import annotations

import pytest

from bridge.crypto import sm2
from bridge.facepay.client import FacePayClient, TerminalConfig
from bridge.mobilepay.client import MobilePayClient
from bridge.mobilepay.config import MobilePayConfig
from bridge.offline import messages as m
from bridge.offline.client import OfflineClient
from bridge.offline.config import OfflineConfig, Operator
from bridge.testflow.client import TestPlatformClient

NOWHERE = "http://127.0.0.1:9"      # nothing is ever sent there
OPERATOR = Operator("op001", "收费员甲")


@pytest.fixture(scope="session")
def mp_client():
    key, centre = sm2.generate_private_key(), sm2.generate_private_key()
    public = centre.public_key() if hasattr(centre, "public_key") else centre.public
    c = MobilePayClient(MobilePayConfig(base_url=NOWHERE, app_id="A" * 20, app_secret="s", org_codg="H0001",
                                        org_private_key=key.to_base64(), platform_public_key=public.to_base64()))
    yield c
    getattr(c, "close", lambda: None)()


def offline_client(tmp_path) -> OfflineClient:
    c = OfflineClient(OfflineConfig(base_url=NOWHERE, paas_id="p", paas_secret="s", fixmedins_code="H44010000001",
                                    fixmedins_name="测试医院", mdtrtarea_admvs="440100", default_operator=OPERATOR,
                                    msgid_lock_dir=str(tmp_path), union_refund_url=NOWHERE + "/unionRefund"),
                      sign_in_request=lambda op: m.SignInRequest(opter_no=op.opter, mac="00-00-00-00-00-00",
                                                                 ip="127.0.0.1"))
    c.signin.accept(OPERATOR.opter, "SIGN-0001")
    return c


@pytest.fixture(scope="module")
def offline(tmp_path_factory):
    c = offline_client(tmp_path_factory.mktemp("msgid"))
    yield c
    c.close()


@pytest.fixture(scope="module")
def facepay(offline):
    fp = FacePayClient(offline, TerminalConfig(url=NOWHERE, org_id="H44010000001"))
    yield fp
    fp.close()


@pytest.fixture(scope="session")
def testplatform():
    return TestPlatformClient(NOWHERE, 1.0)
