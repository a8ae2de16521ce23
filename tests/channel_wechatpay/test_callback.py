"""parse_callback: verified, decrypted, typed - or refused (channels.md §1.3, §1.4, §2.5, §2.6).
Callbacks are built here with cryptography directly."""
from __future__ import annotations

import base64
import json
import time
from decimal import Decimal

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from bridge.wechatpay.callback import (ACK_OK, CashPaid, ForgedCallback, InvalidCallback, MedInsPaid, OtherEvent,
                                       RefundChanged, ack_failure, parse_callback)
from bridge.wechatpay.messages import MixPayStatus, RefundStatus, SelfPayStatus, TradeState

from .conftest import APIV3_KEY, APPID, MCHID, PLATFORM_SERIAL, platform_sign


def callback(keys, event_type: str, resource: dict, *, key: str = APIV3_KEY, aad: str = "transaction",
             nonce: str = "fdasflkja484", tamper_tag: bool = False, signer=None, serial=PLATFORM_SERIAL,
             timestamp=None, probe=False):
    ct = AESGCM(key.encode()).encrypt(nonce.encode(), json.dumps(resource).encode(), aad.encode())
    if tamper_tag:
        ct = ct[:-1] + bytes([ct[-1] ^ 0x55])
    body = json.dumps({"id": "EV-2018022511223320873", "create_time": "2024-01-01T10:00:00+08:00",
                       "event_type": event_type, "resource_type": "encrypt-resource", "summary": "支付成功",
                       "resource": {"algorithm": "AEAD_AES_256_GCM", "ciphertext": base64.b64encode(ct).decode(),
                                    "nonce": nonce, "associated_data": aad, "original_type": "transaction"}},
                      ensure_ascii=False).encode()
    ts = str(int(time.time()) if timestamp is None else timestamp)
    signature = platform_sign(signer or keys["platform"], ts, "cbnonce", body)
    if probe:
        signature = "WECHATPAY/SIGNTEST/" + signature
    headers = {"Wechatpay-Timestamp": ts, "Wechatpay-Nonce": "cbnonce", "Wechatpay-Serial": serial,
               "Wechatpay-Signature": signature, "Wechatpay-Signature-Type": "WECHATPAY2-SHA256-RSA2048"}
    return headers, body


MIXED = {"mix_trade_no": "MIX001", "mix_pay_status": "MIX_PAY_SUCCESS", "self_pay_status": "SELF_PAY_SUCCESS",
         "med_ins_pay_status": "MED_INS_PAY_SUCCESS", "out_trade_no": "OT1", "paid_time": "2024-01-01T10:00:00+08:00",
         "total_fee": 10000, "wechat_pay_cash_fee": 3000, "appid": APPID}
CASH = {"mchid": MCHID, "appid": APPID, "out_trade_no": "OT1", "transaction_id": "4200001", "trade_state": "SUCCESS",
        "success_time": "2024-01-01T10:00:01+08:00", "payer": {"openid": "o1"},
        "amount": {"total": 3000, "payer_total": 3000, "currency": "CNY", "payer_currency": "CNY"}}
REFUND = {"mchid": MCHID, "out_trade_no": "OT1", "transaction_id": "4200001", "refund_id": "5000", "out_refund_no": "RF1",
          "refund_status": "SUCCESS", "success_time": "2024-01-02T10:00:00+08:00",
          "amount": {"total": 3000, "refund": 1000, "payer_total": 3000, "payer_refund": 1000}}


def test_mixed_order_callback(keys, make_config):
    event = parse_callback(make_config(), *callback(keys, "MEDICAL_INSURANCE.SUCCESS", MIXED))
    assert isinstance(event, MedInsPaid)
    assert event.order.mix_pay_status is MixPayStatus.SUCCESS and event.order.self_pay_status is SelfPayStatus.SUCCESS
    assert event.order.wechat_pay_cash_fee == Decimal("30.00")
    assert event.dedupe_key == "MEDICAL_INSURANCE.SUCCESS:MIX001"


def test_cash_and_refund_callbacks(keys, make_config):
    config = make_config()
    cash = parse_callback(config, *callback(keys, "TRANSACTION.SUCCESS", CASH, aad=""))
    assert isinstance(cash, CashPaid) and cash.transaction.trade_state is TradeState.SUCCESS
    assert cash.transaction.transaction_id == "4200001" and cash.transaction.payer_total == Decimal("30.00")
    refund = parse_callback(config, *callback(keys, "REFUND.SUCCESS", REFUND, aad="refund"))
    assert isinstance(refund, RefundChanged) and refund.refund.status is RefundStatus.SUCCESS
    assert refund.refund.refund == Decimal("10.00") and refund.dedupe_key == "REFUND.SUCCESS:RF1"
    other = parse_callback(config, *callback(keys, "SOMETHING.NEW", {"x": 1}))
    assert isinstance(other, OtherEvent)


@pytest.mark.parametrize("fault", ["tampered_tag", "wrong_apiv3_key", "bad_signature", "wrong_serial", "stale",
                                   "probe", "altered_body"])
def test_forged_callbacks_are_refused(keys, make_config, fault):
    kw = {}
    if fault == "tampered_tag":
        kw["tamper_tag"] = True
    elif fault == "wrong_apiv3_key":
        kw["key"] = "Z" * 32
    elif fault == "bad_signature":
        kw["signer"] = keys["other"]
    elif fault == "wrong_serial":
        kw["serial"] = "PUB_KEY_ID_NOT_OURS"
    elif fault == "stale":
        kw["timestamp"] = int(time.time()) - 3600
    elif fault == "probe":
        kw["probe"] = True
    headers, body = callback(keys, "MEDICAL_INSURANCE.SUCCESS", MIXED, **kw)
    if fault == "altered_body":
        body = body.replace(b"MEDICAL_INSURANCE.SUCCESS", b"MEDICAL_INSURANCE.SUCCES ")
    with pytest.raises(ForgedCallback):
        parse_callback(make_config(), headers, body)


def test_unusable_but_authentic_callbacks_are_invalid(keys, make_config):
    config = make_config()
    with pytest.raises(InvalidCallback, match="mchid"):
        parse_callback(config, *callback(keys, "TRANSACTION.SUCCESS", {**CASH, "mchid": "1999999999"}))
    with pytest.raises(InvalidCallback):
        parse_callback(config, *callback(keys, "MEDICAL_INSURANCE.SUCCESS", {"mix_trade_no": "M"}))
    ts = str(int(time.time()))
    body = b"not json"
    headers = {"Wechatpay-Timestamp": ts, "Wechatpay-Nonce": "n", "Wechatpay-Serial": PLATFORM_SERIAL,
               "Wechatpay-Signature": platform_sign(keys["platform"], ts, "n", body)}
    with pytest.raises(InvalidCallback):
        parse_callback(config, headers, body)


def test_the_window_uses_the_given_clock(keys, make_config):
    headers, body = callback(keys, "MEDICAL_INSURANCE.SUCCESS", MIXED, timestamp=1_700_000_000)
    assert isinstance(parse_callback(make_config(), headers, body, now=1_700_000_100), MedInsPaid)
    with pytest.raises(ForgedCallback):
        parse_callback(make_config(), headers, body, now=1_700_000_400)


def test_answers():
    assert ACK_OK == (204, {}, b"")
    status, headers, body = ack_failure()
    assert status == 500 and json.loads(body) == {"code": "FAIL", "message": "失败"}
