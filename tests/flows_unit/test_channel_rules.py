"""The channel legs' pure rules: the payload's channel part (BAD_INPUT before any call), the
channel's status read leg by leg, the judgement against the centre, how a refund splits into
legs, and the names the journal and the callbacks rely on."""
from __future__ import annotations

from decimal import Decimal

import pytest

from bridge.alipay import outcomes as ali_oc
from bridge.alipay.messages import MedicalPayment
from bridge.channels import notices, refund_legs
from bridge.channels.payer import parse_payer
from bridge.channels.status import (FAILED, NONE, PAID, PENDING, REFUNDED, UNKNOWN, ChannelStatus, Verdict,
                                    alipay_status, judge, wechat_status)
from bridge.engine.flow import BadInput
from bridge.mobilepay.flows import flows
from bridge.mobilepay.kinds import KIND_REFUND, PAYMENT_KINDS
from bridge.mobilepay.payloads import parse_payment
from bridge.wechatpay.messages import MedInsOrder

from .mp import SHIPPED, payment_doc

D = Decimal


# ------------------------------------------------------------------ the payload

@pytest.mark.parametrize("extra, message", [
    ({"channel": "paypal"}, "'channel' must be"),
    ({"channel": "wechat"}, "needs the payer's 'openid'"),
    ({"channel": "wechat", "openid": "o 1"}, "'openid' must be"),
    ({"channel": "wechat", "openid": "o1", "alipay_user_id": "2088000000000001"}, "is for \"channel\": \"alipay\""),
    ({"channel": "alipay"}, "exactly one of 'alipay_user_id'"),
    ({"channel": "alipay", "alipay_user_id": "1234"}, "2088 and 12 digits"),
    ({"channel": "alipay", "alipay_user_id": "2088000000000001", "alipay_open_id": "x"}, "exactly one"),
    ({"channel": "alipay", "alipay_user_id": "2088000000000001", "openid": "o1"}, "is for \"channel\": \"wechat\""),
    ({"openid": "o1"}, "without 'channel'"),
    ({"channel": "wechat", "openid": "o1", "geo_location": "east"}, "lng,lat"),
    ({"channel": "wechat", "openid": "o1", "description": "x" * 128}, "127 characters"),
], ids=["unknown", "wx-no-openid", "wx-bad-openid", "wx-alipay-field", "ali-no-buyer", "ali-bad-user", "ali-both",
        "ali-wechat-field", "no-channel", "geo", "description"])
def test_the_channel_part_of_a_payload_is_checked(extra, message):
    with pytest.raises(BadInput, match=message):
        parse_payer(payment_doc(**extra))


def test_an_alipay_payment_without_pay_auth_no_must_carry_its_identity():
    doc = payment_doc(channel="alipay", alipay_user_id="2088000000000001", pay_auth_no=None)
    assert parse_payment(doc, "11", "01").pay_auth_no is None               # mibridge asks Alipay (§7.1)
    with pytest.raises(BadInput, match="psn_no, insutype and insuplc_admdvs"):
        parse_payment(payment_doc(channel="alipay", alipay_user_id="2088000000000001", pay_auth_no=None,
                                  psn_no=None, insutype=None, insuplc_admdvs=None), "11", "01")
    with pytest.raises(BadInput, match="pay_auth_no"):
        parse_payment(payment_doc(channel="wechat", openid="o1", pay_auth_no=None), "11", "01")


def test_a_wechat_payment_may_give_the_auth_code_instead_of_pay_auth_no():
    wx = dict(channel="wechat", openid="o1", pay_auth_no=None)
    p = parse_payment(payment_doc(auth_code="AC-1", **wx), "11", "01")
    assert (p.pay_auth_no, p.auth_code) == (None, "AC-1")                  # mibridge exchanges it (§5)
    with pytest.raises(BadInput, match="psn_no, insutype and insuplc_admdvs"):
        parse_payment(payment_doc(auth_code="AC-1", psn_no=None, insutype=None, insuplc_admdvs=None, **wx),
                      "11", "01")
    with pytest.raises(BadInput, match="not both"):
        parse_payment(payment_doc(channel="wechat", openid="o1", auth_code="AC-1"), "11", "01")
    for other in ({}, {"channel": "alipay", "alipay_user_id": "2088000000000001"}):
        with pytest.raises(BadInput, match="'auth_code' is for"):
            parse_payment(payment_doc(auth_code="AC-1", **other), "11", "01")


def test_a_payment_without_a_channel_is_as_before():
    assert parse_payment(payment_doc(), "11", "01").channel is None


# ------------------------------------------------------------------ the channel's status, leg by leg

def _mix(mix, self_pay, med):
    return MedInsOrder.from_json({"mix_trade_no": "M1", "mix_pay_status": mix, "self_pay_status": self_pay,
                                  "med_ins_pay_status": med})


@pytest.mark.parametrize("statuses, cash, insurance", [
    (("MIX_PAY_CREATED", "SELF_PAY_CREATED", "MED_INS_PAY_CREATED"), PENDING, PENDING),
    (("MIX_PAY_USER_PAYING", "SELF_PAY_CREATED", "MED_INS_PAY_CREATED"), PENDING, PENDING),
    (("MIX_PAY_SUCCESS", "SELF_PAY_SUCCESS", "MED_INS_PAY_SUCCESS"), PAID, PAID),
    (("MIX_PAY_SUCCESS", "NO_SELF_PAY", "MED_INS_PAY_SUCCESS"), NONE, PAID),
    # §2.4: not only mix_pay_status - the cash may be taken while the insurance part failed
    (("MIX_PAY_FAIL", "SELF_PAY_SUCCESS", "MED_INS_PAY_FAIL"), PAID, FAILED),
    (("MIX_PAY_FAIL", "SELF_PAY_CREATED", "MED_INS_PAY_CREATED"), FAILED, FAILED),
    (("MIX_PAY_REFUND", "SELF_PAY_REFUND", "MED_INS_PAY_REFUND"), REFUNDED, REFUNDED),
    (("MIX_PAY_REVERSED", "SELF_PAY_CREATED", "MED_INS_PAY_CREATED"), FAILED, FAILED),
], ids=["created", "user-paying", "paid", "insurance-only", "cash-only-taken", "failed", "refunded", "reversed"])
def test_wechat_status_leg_by_leg(statuses, cash, insurance):
    st = wechat_status(_mix(*statuses))
    assert (st.cash, st.insurance) == (cash, insurance)


@pytest.mark.parametrize("medical, own, real, refund, cash, insurance", [
    ("WAIT_PAY", "WAIT_BUYER_PAY", "36.00", None, PENDING, PENDING),
    ("PAY_SUCCESS", "TRADE_SUCCESS", "36.00", None, PAID, PAID),
    ("PAY_SUCCESS", None, "0.00", None, NONE, PAID),
    ("PAY_FAIL", "TRADE_SUCCESS", "36.00", None, PAID, FAILED),
    ("PAY_SUCCESS", "TRADE_CLOSED", "36.00", "36.00", REFUNDED, PAID),        # closed after a full refund
    ("SOMETHING_NEW", "TRADE_SUCCESS", "36.00", None, PAID, UNKNOWN),          # §10.4.10: never guessed
], ids=["waiting", "paid", "insurance-only", "cash-only-taken", "refunded-cash", "unknown-word"])
def test_alipay_status_leg_by_leg(medical, own, real, refund, cash, insurance):
    p = MedicalPayment.from_json({"medical_pay_status": medical, "own_pay_status": own, "real_amount": real,
                                  "real_refund_amount": refund})
    st = alipay_status(p, has_insurance=True)
    assert (st.cash, st.insurance) == (cash, insurance)


def _st(cash, insurance):
    return ChannelStatus("wechat", cash, insurance, "")


@pytest.mark.parametrize("centre, cash, insurance, cash_due, verdict", [
    ("settled", PAID, PAID, True, Verdict.SETTLE),
    ("settled", NONE, PAID, False, Verdict.SETTLE),
    ("settled", NONE, PAID, True, Verdict.DISAGREE),          # the cash was due and the channel has none
    ("settled", PENDING, PAID, True, Verdict.LAG),
    ("settled", PAID, UNKNOWN, True, Verdict.LAG),
    ("settled", FAILED, PAID, True, Verdict.DISAGREE),
    ("settled", PAID, FAILED, True, Verdict.DISAGREE),
    ("settled", REFUNDED, PAID, True, Verdict.DISAGREE),
    ("processing", PENDING, PENDING, True, Verdict.PENDING),
    ("processing", NONE, PENDING, False, Verdict.PENDING),
    ("processing", PAID, PAID, True, Verdict.LAG),
    ("processing", PAID, PENDING, True, Verdict.LAG),
    ("processing", PAID, FAILED, True, Verdict.CASH_ONLY),
    ("processing", FAILED, FAILED, True, Verdict.FAILED),
    ("processing", NONE, FAILED, False, Verdict.FAILED),
    ("processing", REFUNDED, FAILED, True, Verdict.LAG),
    ("processing", UNKNOWN, PENDING, True, Verdict.LAG),
    ("ended", PENDING, PENDING, True, Verdict.ENDED),
    ("ended", FAILED, FAILED, True, Verdict.ENDED),
    ("ended", PAID, FAILED, True, Verdict.CASH_ONLY),         # revoked, then the cash paid: refund it
    ("ended", PAID, PENDING, True, Verdict.DISAGREE),
    ("ended", PAID, PAID, True, Verdict.DISAGREE),
    ("ended", REFUNDED, FAILED, True, Verdict.DISAGREE),
    ("ended", NONE, PAID, False, Verdict.DISAGREE),
])
def test_the_centre_and_the_channel_judged_together(centre, cash, insurance, cash_due, verdict):
    assert judge(centre, _st(cash, insurance), cash_due) is verdict


# ------------------------------------------------------------------ refund legs

@pytest.mark.parametrize("channel, setting, refd, amounts, want", [
    ("wechat", "hospital_refunds_cash", "ALL", ("84", "0", "36"), ("HI", "84", "0", "0", "36", True)),
    ("wechat", "hospital_refunds_cash", "CASH", ("0", "0", "10"), (None, "0", "0", "0", "10", False)),
    ("wechat", "hospital_refunds_cash", "HI", ("84", "36", "0"), ("HI", "84", "36", "0", "0", True)),
    ("wechat", "centre_returns_cash", "ALL", ("84", "0", "36"), ("ALL", "84", "0", "36", "0", True)),
    ("wechat", "centre_returns_cash", "CASH", ("0", "0", "10"), ("CASH", "0", "0", "10", "0", False)),
    ("alipay", "centre_returns_cash", "ALL", ("84", "0", "36"), ("HI", "84", "0", "0", "36", False)),
    (None, "hospital_refunds_cash", "ALL", ("84", "0", "36"), ("ALL", "84", "0", "36", "0", False)),
], ids=["wx-all", "wx-cash", "wx-hi", "wx-centre-all", "wx-centre-cash", "ali-ignores-the-setting", "no-channel"])
def test_a_refund_splits_into_legs(channel, setting, refd, amounts, want):
    by = refund_legs.cash_by(channel, setting)
    legs = refund_legs.split(channel, by, refd, *(D(a) for a in amounts))
    got = (legs.centre_type, legs.centre_fund, legs.centre_account, legs.centre_cash, legs.channel_cash, legs.notify)
    assert got == (want[0], *(D(x) for x in want[1:5]), want[5])


# ------------------------------------------------------------------ names

def test_every_interface_fits_the_journal():
    """mi_journal.interface is 40 characters, msg_id 64, on every database."""
    for flow in flows(SHIPPED):
        for step in flow.steps.values():
            for name in step.calls + step.resolves_with:
                assert len(name) <= ali_oc.INTERFACE_MAX, (flow.kind, step.name, name)
                # the channel clients' msg_id: <interface>-<24 hex> (token_hex(12))
                assert len(f"{name}-{'0' * 24}") <= 64, name
    assert all(len(n) <= ali_oc.INTERFACE_MAX for n in ali_oc.JOURNAL_NAMES.values())


def test_the_callbacks_find_the_kinds_the_flows_run():
    assert notices.CHANNEL_PAYMENT_KINDS == tuple(PAYMENT_KINDS)
    assert notices.CHANNEL_REFUND_KINDS == (KIND_REFUND,)
