"""6302 settlement notice: verified before use, forged ones refused; our signed acknowledgement."""
from __future__ import annotations

import base64
import json
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from bridge.crypto import sm2, sm4
from bridge.mobilepay.callback import (
    ForgedNotification, InvalidNotification, NotASettlementNotice, NotificationRefused, SettlementCallback,
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


# -- only a real settlement notice for us (issue 10 #1) ------------------------------------

def _sealed(centre, data, **head) -> bytes:
    """Like _notice, with top-level envelope fields replaced (re-signed by the centre)."""
    sealed = centre.seal(loads(json.dumps(data)))
    if head:
        fields = {k: v for k, v in sealed.items() if k not in ("encData", "signData")}
        fields.update(head)
        sealed = {**fields, "encData": sealed["encData"], "signData": centre.sign({**fields, "data": data})}
    return compact_json(sealed).encode()


def test_a_6202_answer_and_other_signed_messages_are_not_notices(hospital, centre):
    answer = {"payOrdId": "ORD1", "ordStas": "2", "feeSumamt": "12.50", "ownPayAmt": "2.50", "psnAcctPay": "0.00",
              "fundPay": "10.00", "deposit": "0.00"}
    with pytest.raises(NotASettlementNotice, match="callType"):
        hospital.parse(_notice(centre, answer))
    with pytest.raises(NotASettlementNotice, match="callType '03'"):
        hospital.parse(_notice(centre, {**NOTICE, "callType": "03"}))
    for field in ("medOrgOrd", "traceTime", "feeSumamt", "fundPay", "psnAcctPay"):
        with pytest.raises(NotASettlementNotice, match=field):
            hospital.parse(_notice(centre, {k: v for k, v in NOTICE.items() if k != field}))
    no_own = {k: v for k, v in NOTICE.items() if k != "ownpayAmt"}
    with pytest.raises(NotASettlementNotice, match="ownPayAmt"):
        hospital.parse(_notice(centre, no_own))


def test_the_app_id_must_be_ours(hospital, centre):
    # Same first 16 characters: the SM4 key is the same, the signature is the centre's.
    other = APP_ID[:16] + "X" * (len(APP_ID) - 16)
    assert other != APP_ID
    with pytest.raises(NotASettlementNotice, match="appId"):
        hospital.parse(_sealed(centre, NOTICE, appId=other))
    with pytest.raises(NotificationRefused):
        body = json.loads(_notice(centre))
        body.pop("appId")
        hospital.parse(json.dumps(body).encode())


def test_call_types_are_configurable(keys, centre):
    org, plat = keys
    lenient = SettlementCallback(_config(org, plat.public_key()), call_types=("02", "03"))
    assert lenient.parse(_notice(centre, {**NOTICE, "callType": "03"})).callType == "03"


def test_a_notice_outside_the_freshness_window_is_marked_stale(hospital, centre, keys):
    ms = str(int(time.time() * 1000))
    assert hospital.parse(_sealed(centre, NOTICE, timestamp=ms)).stale is None
    now = time.time()
    old = _sealed(centre, NOTICE, timestamp=str(int((now - 3600) * 1000)))
    assert "3600 s ago" in hospital.parse(old, now=now).stale
    ahead = _sealed(centre, NOTICE, timestamp=str(int((now + 3600) * 1000)))
    assert "ahead" in hospital.parse(ahead, now=now).stale
    cst = datetime.fromtimestamp(now - 60, timezone(timedelta(hours=8))).strftime("%Y%m%d%H%M%S")
    n = hospital.parse(_sealed(centre, NOTICE, timestamp=cst), now=now)
    assert n.stale is None and n.sent_at == cst                     # 14 digits, China time, a minute old
    assert "not epoch" in hospital.parse(_sealed(centre, NOTICE, timestamp="yesterday"), now=now).stale
    org, plat = keys
    unchecked = SettlementCallback(_config(org, plat.public_key()), max_age_seconds=0)
    assert unchecked.parse(old, now=now).stale is None
