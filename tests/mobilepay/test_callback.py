"""6302 settlement notice: verified before use, forged ones refused; our signed acknowledgement."""
from __future__ import annotations

import base64
import json
from decimal import Decimal

import pytest

from bridge.crypto import sm2, sm4
from bridge.mobilepay.callback import (
    ForgedNotification, InvalidNotification, SettlementCallback,
)
from bridge.mobilepay.config import MobilePayConfig
from bridge.mobilepay.envelope import Envelope, compact_json, loads
from bridge.mobilepay.messages import SetlType

from .platform_stub import APP_ID, APP_SECRET, sm4_key

NOTICE = {"callType": "02", "payOrdId": "ORD1", "medOrgOrd": "MO1", "traceTime": "20240101101010",
          "feeSumamt": "12.50", "ownpayAmt": "2.50", "psnAcctPay": "0.00", "fundPay": "10.00",
          "setlType": "ALL", "revsToken": "RV1", "orgCode": "H53010000001",
          "extData": {"setlinfo": [{"setlId": "S1", "medfeeSumamt": "12.50"}], "setldetail": []}}


def _config(private, public):
    return MobilePayConfig(base_url="http://127.0.0.1:1", app_id=APP_ID, app_secret=APP_SECRET,
                           org_private_key=private.to_base64(), platform_public_key=public.to_base64(),
                           org_codg="H53010000001")


@pytest.fixture
def hospital(keys):
    org, plat = keys
    return SettlementCallback(_config(org, plat.public_key()))


@pytest.fixture
def centre(keys):
    org, plat = keys
    return Envelope(_config(plat, org.public_key()))


def _notice(centre, data=NOTICE) -> bytes:
    return compact_json(centre.seal(loads(json.dumps(data)))).encode()


def test_genuine_notice_is_parsed(hospital, centre):
    notice = hospital.parse(_notice(centre))
    assert notice.payOrdId == "ORD1" and notice.callType == "02" and notice.setlType is SetlType.ALL
    assert notice.ownPayAmt == Decimal("2.50") and notice.feeSumamt == Decimal("12.50")
    assert notice.amounts_consistent()
    assert notice.extData["setlinfo"][0]["setlId"] == "S1"


def test_inconsistent_amounts_are_visible(hospital, centre):
    notice = hospital.parse(_notice(centre, {**NOTICE, "fundPay": "9.00"}))
    assert not notice.amounts_consistent()


def test_forged_or_altered_notices_are_refused(hospital, centre, keys):
    org, _ = keys
    forger = Envelope(_config(sm2.generate_private_key(), org.public_key()))
    with pytest.raises(ForgedNotification):
        hospital.parse(_notice(forger))
    genuine = json.loads(_notice(centre))
    altered = sm4.encrypt_ecb(sm4_key(), compact_json({**NOTICE, "fundPay": "100.00"}).encode()).hex().upper()
    with pytest.raises(ForgedNotification, match="signature"):
        hospital.parse(json.dumps({**genuine, "encData": altered}).encode())
    with pytest.raises(ForgedNotification):
        hospital.parse(json.dumps(NOTICE).encode())      # plain, unsigned JSON
    with pytest.raises(ForgedNotification):
        hospital.parse(json.dumps({**genuine, "timestamp": "1"}).encode())


def test_unusable_notices(hospital, centre):
    with pytest.raises(InvalidNotification):
        hospital.parse(b"not json")
    with pytest.raises(InvalidNotification, match="payOrdId"):
        hospital.parse(_notice(centre, {k: v for k, v in NOTICE.items() if k != "payOrdId"}))
    with pytest.raises(InvalidNotification, match="disagree"):
        hospital.parse(_notice(centre, {**NOTICE, "ownPayAmt": "3.00"}))
    assert hospital.parse(_notice(centre, {**NOTICE, "ownPayAmt": "2.5"})).ownPayAmt == Decimal("2.5")


def test_acknowledgement_is_a_signed_envelope_the_centre_can_verify(hospital, centre):
    ack = hospital.acknowledge("ORD1")
    assert ack.status == 200 and ack.headers["Content-Type"] == "application/json"
    opened = centre.open(loads(ack.body))
    assert opened.code == "0" and opened.message == "成功" and opened.data == {"payOrdId": "ORD1"}
    fail = hospital.acknowledge(None, accepted=False, message="金额不一致")
    assert fail.status == 500
    opened = centre.open(loads(fail.body))
    assert opened.code == "-1" and opened.message == "金额不一致"
    assert len(base64.b64decode(json.loads(ack.body)["signData"])) == 64
