"""The money legs: each counted on its own, and who returns the cash after a centre 6203.

channels.md §2.7 / §10.4 item 4: after a 6203 `ALL` on a WeChat mixed order it is unknown whether
the centre or the hospital (by a WeChat refund) returns the cash. The simulator plays both
readings; a hospital that assumes the wrong one is caught by "cash refunded exactly once".
"""
from __future__ import annotations

import uuid
from decimal import Decimal

from .channel_helpers import (CASH_PSN, CentreOrder, ali, centre, channel_hospital,  # noqa: F401
                              channel_running, csim, ctl, fen, legs, wait_for, wechat_paid_order, wx)
from .test_alipay import paid as alipay_paid


def settings(sim, reading):
    return ctl(sim, "POST", "/__sim__/channels/settings", {"wechat_cash_after_6203": reading})


def wechat_refund(wx, otn, orn, cash_fen):
    return wx.request("POST", "/v3/refund/domestic/refunds", {
        "out_trade_no": otn, "out_refund_no": orn, "amount": {"refund": cash_fen, "total": cash_fen, "currency": "CNY"}})


def refund_all(order: CentreOrder, centre, sn: str):
    env, out = order.refund(centre, sn, "ALL", fund=str(order.fund), acct=str(order.acct), cash=str(order.cash))
    assert env["code"] == 0 and out["refStatus"] == "SUCC", env
    return out


def test_a_6203_cash_refund_at_the_centre_returns_no_cash_to_the_patient(csim, centre):
    """The legacy path (no channel modelled): 6203 CASH is the centre's record only."""
    order = CentreOrder(csim, centre, CASH_PSN, "40.00")
    ctl(csim, "POST", "/__sim__/mobilepay/pay", {"payOrdId": order.pay_ord_id})
    env, out = order.refund(centre, "LEG-1", "CASH", cash=str(order.cash))
    assert out["refStatus"] == "SUCC"
    mine = legs(csim, order.pay_ord_id)
    assert mine["cash"]["external"] == {"charged": str(order.cash), "charges": 1, "refunded": "0.00", "refunds": 0}
    assert ctl(csim, "GET", "/__sim__/state")["orders"][order.pay_ord_id]["refunded"]["cash"] == str(order.cash)
    refund_all_legs = order.refund(centre, "LEG-2", "HI", fund=str(order.fund))[1]
    assert refund_all_legs["refStatus"] == "SUCC"
    mine = legs(csim, order.pay_ord_id)
    assert mine["fund"] == {"charged": str(order.fund), "charges": 1, "refunded": str(order.fund), "refunds": 1}
    assert mine["cash"]["external"]["refunds"] == 0


def test_hospital_refunds_cash_reading(csim, wx, centre, channel_hospital):
    settings(csim, "hospital_refunds_cash")
    got = wechat_paid_order(csim, wx, centre, channel_hospital)
    order, cash = got["order"], fen(got["order"].cash)
    refund_all(order, centre, "HR-1")
    mine = legs(csim, order.pay_ord_id)
    assert mine["fund"]["refunds"] == 1
    # A hospital that (wrongly) counts on the centre stops here: the patient never gets the cash.
    assert mine["cash"]["wechat"]["refunds"] == 0
    # The right hospital refunds the cash through WeChat, once.
    assert wechat_refund(wx, got["out_trade_no"], "HR-1", cash).status_code == 200
    assert wait_for(lambda: legs(csim, order.pay_ord_id)["cash"]["wechat"]["refunds"] == 1)
    assert legs(csim, order.pay_ord_id)["cash"]["wechat"] == {
        "charged": str(order.cash), "charges": 1, "refunded": str(order.cash), "refunds": 1}
    assert ctl(csim, "GET", "/__sim__/wechat/state")["centre_cash_returns"] == []


def test_centre_returns_cash_reading(csim, wx, centre, channel_hospital):
    settings(csim, "centre_returns_cash")
    got = wechat_paid_order(csim, wx, centre, channel_hospital)
    order, cash = got["order"], fen(got["order"].cash)
    refund_all(order, centre, "CR-1")
    mine = legs(csim, order.pay_ord_id)
    assert mine["cash"]["wechat"] == {"charged": str(order.cash), "charges": 1, "refunded": str(order.cash),
                                      "refunds": 1}
    returned = ctl(csim, "GET", "/__sim__/wechat/state")["centre_cash_returns"]
    assert returned[0]["done"] is True and returned[0]["appRefdSn"] == "CR-1"
    # A hospital that also refunds (the wrong reading for this centre) is refused: nothing left.
    again = wechat_refund(wx, got["out_trade_no"], "CR-1-HOSP", cash)
    assert again.status_code == 400 and again.json()["code"] == "INVALID_REQUEST"
    assert legs(csim, order.pay_ord_id)["cash"]["wechat"]["refunds"] == 1
    _, t = wx.call("GET", f"/v3/pay/transactions/out-trade-no/{got['out_trade_no']}?mchid={wx.c['mchid']}")
    assert t["trade_state"] == "REFUND"


def test_centre_returns_cash_after_a_hospital_refund_does_not_pay_twice(csim, wx, centre, channel_hospital):
    """The other wrong order: the hospital refunds first, then 6203 ALL under the centre reading."""
    settings(csim, "centre_returns_cash")
    got = wechat_paid_order(csim, wx, centre, channel_hospital)
    order, cash = got["order"], fen(got["order"].cash)
    assert wechat_refund(wx, got["out_trade_no"], "EARLY-1", cash).status_code == 200
    refund_all(order, centre, "EARLY-6203")
    assert wait_for(lambda: legs(csim, order.pay_ord_id)["cash"]["wechat"]["refunds"] == 1)
    returned = ctl(csim, "GET", "/__sim__/wechat/state")["centre_cash_returns"]
    assert returned[0]["done"] is False and "left" in returned[0]["reason"]


def test_the_setting_is_checked_and_restored_by_reset(csim):
    bad = ctl(csim, "POST", "/__sim__/channels/settings", {"wechat_cash_after_6203": "both"}, status=409)
    assert "must be one of" in bad["error"]
    settings(csim, "centre_returns_cash")
    ctl(csim, "POST", "/__sim__/reset")
    assert ctl(csim, "GET", "/__sim__/state")["channels"]["settings"]["wechat_cash_after_6203"] == \
        "hospital_refunds_cash"


def test_alipay_cash_comes_back_only_through_alipay_whatever_the_reading(csim, ali, centre, channel_hospital):
    settings(csim, "centre_returns_cash")             # a WeChat question: Alipay is not affected
    got = alipay_paid(csim, ali, centre, channel_hospital)
    order = got["order"]
    refund_all(order, centre, "AL-1")
    assert legs(csim, order.pay_ord_id)["cash"]["alipay"]["refunds"] == 0
    r = ali.call("alipay.trade.refund", {"out_trade_no": got["out_trade_no"], "refund_amount": str(order.cash),
                                         "out_request_no": "AL-1"})
    assert r["fund_change"] == "Y"
    mine = legs(csim, order.pay_ord_id)
    assert mine["cash"]["alipay"] == {"charged": str(order.cash), "charges": 1, "refunded": str(order.cash),
                                      "refunds": 1}
    assert mine["fund"]["refunds"] == 1
    q = ali.call("alipay.commerce.medical.payment.query", {"out_trade_no": got["out_trade_no"]})["result_data"]
    assert q["medical_pay_status"] == "REFUND_SUCCESS" and q["medical_refund_amount"] == str(order.fund)


def test_cash_only_order_is_keyed_by_out_trade_no_and_totals_add_up(csim, wx, centre, channel_hospital):
    otn = "CO" + uuid.uuid4().hex[:12]
    status, pre = wx.call("POST", "/v3/pay/transactions/jsapi", {
        "appid": wx.c["appid"], "mchid": wx.c["mchid"], "description": "自费挂号", "out_trade_no": otn,
        "notify_url": channel_hospital.base + "/wx/pay", "amount": {"total": 1500, "currency": "CNY"},
        "payer": {"openid": "o-patient-2"}})
    body = {"mix_pay_type": "CASH_ONLY", "order_type": "REG_PAY", "appid": wx.c["appid"], "openid": "o-patient-2",
            "out_trade_no": otn, "callback_url": channel_hospital.base + "/wx/medins", "total_fee": 1500,
            "med_ins_cash_fee": 1500, "wechat_pay_cash_fee": 1500, "prepay_id": pre["prepay_id"]}
    status, mix = wx.call("POST", "/v3/med-ins/orders", body, extra_headers={"Wechatpay-Serial": wx.c["platform_serial"]})
    assert status == 200 and mix["med_ins_pay_status"] == "NO_MED_INS_PAY"
    ctl(csim, "POST", "/__sim__/wechat/pay", {"mix_trade_no": mix["mix_trade_no"]})
    other = wechat_paid_order(csim, wx, centre, channel_hospital)
    by_order = ctl(csim, "GET", "/__sim__/legs")["by_order"]
    assert by_order[otn]["cash"]["wechat"]["charged"] == "15.00"
    assert by_order[other["order"].pay_ord_id]["cash"]["wechat"]["charged"] == str(other["order"].cash)
    total = legs(csim)
    assert Decimal(total["cash"]["wechat"]["charged"]) == Decimal("15.00") + other["order"].cash
    assert total["cash"]["wechat"]["charges"] == 2 and total["fund"]["charges"] == 1
