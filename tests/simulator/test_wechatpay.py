"""WeChat Pay 医保 in the simulator, driven by the spec-written client (channels.md §1-§4)."""
from __future__ import annotations

import gzip
import hashlib
import time
import uuid
from datetime import date, timedelta

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from .channel_client import WeChatClient, query_of
from .channel_helpers import (ACCT_PSN, CASH_PSN, CentreOrder, centre, channel_hospital,  # noqa: F401
                              channel_running, csim, ctl, fen, legs, medins_error_number, mixed_body, prepay,
                              wait_for, wechat_paid_order, wx)

def arm(sim, interface, fault, **kw):
    ctl(sim, "POST", "/__sim__/faults", {"interface": interface, "fault": fault, **kw})


def wx_state(sim):
    return ctl(sim, "GET", "/__sim__/wechat/state")


def create_mixed(wx, body):
    return wx.request("POST", "/v3/med-ins/orders", body, extra_headers={"Wechatpay-Serial": wx.c["platform_serial"]})


def other_key() -> str:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()


# --- §1.2 signatures ----------------------------------------------------------------------
def test_unsigned_forged_stale_or_tampered_requests_are_refused_and_nothing_recorded(csim, wx):
    body = {"appid": wx.c["appid"], "mchid": wx.c["mchid"], "description": "x", "out_trade_no": "SIG000001",
            "notify_url": "http://127.0.0.1/n", "amount": {"total": 1, "currency": "CNY"}, "payer": {"openid": "o"}}
    forgers = [WeChatClient(wx.c, private_key=other_key()), WeChatClient(wx.c, serial="00" * 20)]
    responses = [f.request("POST", "/v3/pay/transactions/jsapi", body) for f in forgers]
    responses.append(wx.request("POST", "/v3/pay/transactions/jsapi", body, timestamp=int(time.time()) - 301))
    responses.append(wx.request("POST", "/v3/pay/transactions/jsapi", body, tamper=True))
    responses.append(httpx.post(wx.base + "/v3/pay/transactions/jsapi", json=body))
    for r in responses:
        assert r.status_code == 401 and r.json()["code"] == "SIGN_ERROR", r.text
        assert wx.verified(r)                       # errors are signed too (§1.6)
    assert wx_state(csim)["prepays"] == {}
    # The same request, correctly signed, goes through: the refusals were about the signature.
    status, out = wx.call("POST", "/v3/pay/transactions/jsapi", body)
    assert status == 200 and out["prepay_id"]


def test_signed_get_covers_the_query_string(csim, wx):
    prepay(wx, "QRY0000001", 100, "o1", "http://127.0.0.1/n")
    good = wx.request("GET", "/v3/pay/transactions/out-trade-no/QRY0000001?mchid=" + wx.c["mchid"])
    assert good.status_code == 200 and good.json()["trade_state"] == "NOTPAY"
    auth = wx.authorization("GET", "/v3/pay/transactions/out-trade-no/QRY0000001", b"")   # no query signed
    r = httpx.get(wx.base + "/v3/pay/transactions/out-trade-no/QRY0000001?mchid=" + wx.c["mchid"],
                  headers={"Authorization": auth})
    assert r.status_code == 401


# --- §2: the mixed order end to end --------------------------------------------------------
def test_mixed_order_paid_in_the_cashier_callbacks_verified_queries_show_paid(csim, wx, centre, channel_hospital):
    h = channel_hospital
    got = wechat_paid_order(csim, wx, centre, h, pay=False)
    order, mix = got["order"], got["mix"]
    assert (mix["mix_pay_status"], mix["self_pay_status"], mix["med_ins_pay_status"]) == (
        "MIX_PAY_CREATED", "SELF_PAY_CREATED", "MED_INS_PAY_CREATED")
    assert "transaction_id" not in mix and len(mix["mix_trade_no"]) == 32
    assert order.query(centre)["ordStas"] == "2"
    # The patient pays once in the cashier, which checks paySign (§1.7).
    bad = dict(wx.pay_sign(got["prepay_id"]), mix_trade_no=mix["mix_trade_no"], nonceStr="other")
    ctl(csim, "POST", "/__sim__/wechat/pay", bad, status=409)
    ctl(csim, "POST", "/__sim__/wechat/pay", dict(wx.pay_sign(got["prepay_id"]), mix_trade_no=mix["mix_trade_no"]))
    assert wait_for(lambda: h.genuine("/wx/medins") and h.genuine("/wx/pay"))
    medins, paid = h.genuine("/wx/medins")[0], h.genuine("/wx/pay")[0]
    assert medins["envelope"]["event_type"] == "MEDICAL_INSURANCE.SUCCESS"
    assert medins["resource"]["mix_trade_no"] == mix["mix_trade_no"]
    assert medins["resource"]["mix_pay_status"] == "MIX_PAY_SUCCESS" and "transaction_id" not in medins["resource"]
    assert paid["envelope"]["event_type"] == "TRANSACTION.SUCCESS"
    assert paid["resource"]["out_trade_no"] == got["out_trade_no"]
    assert paid["resource"]["amount"]["total"] == fen(order.cash)
    # Queries: the mixed order, the cash transaction, the centre (6301), all paid.
    _, q = wx.call("GET", "/v3/med-ins/orders/mix-trade-no/" + mix["mix_trade_no"])
    assert q["mix_pay_status"] == "MIX_PAY_SUCCESS" and q["paid_time"] and "transaction_id" not in q
    _, q2 = wx.call("GET", "/v3/med-ins/orders/out-trade-no/" + got["out_trade_no"])
    assert q2["mix_trade_no"] == mix["mix_trade_no"]
    _, t = wx.call("GET", f"/v3/pay/transactions/out-trade-no/{got['out_trade_no']}?mchid={wx.c['mchid']}")
    assert t["trade_state"] == "SUCCESS" and t["transaction_id"] == paid["resource"]["transaction_id"]
    assert order.query(centre)["ordStas"] == "6"
    assert wait_for(lambda: h.genuine("/mpc/notice"))            # the centre's 6302
    mine = legs(csim, order.pay_ord_id)
    assert mine["fund"]["charges"] == 1 and mine["fund"]["charged"] == str(order.fund)
    assert mine["cash"]["wechat"] == {"charged": str(order.cash), "charges": 1, "refunded": "0.00", "refunds": 0}
    # Paying again is refused; nothing more is charged.
    ctl(csim, "POST", "/__sim__/wechat/pay", {"mix_trade_no": mix["mix_trade_no"]}, status=409)
    assert legs(csim, order.pay_ord_id)["cash"]["wechat"]["charges"] == 1


def test_insurance_only_order_has_no_cash_leg(csim, wx, centre, channel_hospital):
    got = wechat_paid_order(csim, wx, centre, channel_hospital, psn_no=ACCT_PSN)
    assert got["mix"]["mix_pay_type"] == "INSURANCE_ONLY" and got["prepay_id"] is None
    assert wait_for(lambda: channel_hospital.genuine("/wx/medins"))
    res = channel_hospital.genuine("/wx/medins")[0]["resource"]
    assert res["self_pay_status"] == "NO_SELF_PAY" and res["med_ins_pay_status"] == "MED_INS_PAY_SUCCESS"
    mine = legs(csim, got["order"].pay_ord_id)
    assert mine["fund"]["charges"] == 1 and mine["acct"]["charges"] == 1 and mine["cash"]["wechat"]["charges"] == 0


def test_mixed_order_rules_answer_the_spec_numbers(csim, wx, centre, channel_hospital):
    order = CentreOrder(csim, centre, CASH_PSN, "100.00")
    otn = "RULES" + uuid.uuid4().hex[:10]
    pid = prepay(wx, otn, fen(order.cash), "o-patient-1", channel_hospital.base + "/wx/pay")
    good = mixed_body(wx, order, otn, channel_hospital.base + "/wx/medins", pid)
    cases = [
        (dict(good, total_fee=good["total_fee"] + 1), "268529477"),
        (dict(good, med_ins_cash_fee=good["med_ins_cash_fee"] - 1), "268529481"),
        (dict(good, med_ins_cash_fee=good["med_ins_cash_fee"] - 1, total_fee=good["total_fee"] - 1), "268529477"),
        (dict(good, mix_pay_type="INSURANCE_ONLY"), "268529475"),
        ({k: v for k, v in good.items() if k != "geo_location"}, "268529475"),
        (dict(good, mix_pay_type="CASH_ONLY"), "268529474"),
        (dict(good, med_ins_gov_fee=good["med_ins_gov_fee"] - 100, med_ins_cash_fee=good["med_ins_cash_fee"] + 100,
              wechat_pay_cash_fee=good["wechat_pay_cash_fee"] + 100), "268529476"),   # prepay amount differs
        (dict(good, med_ins_gov_fee=good["med_ins_gov_fee"] - 100, med_ins_cash_fee=good["med_ins_cash_fee"] + 100,
              cash_reduce_detail=[{"cash_reduce_fee": 100, "cash_reduce_type": "HOSPITAL_REDUCE"}]), "268510610"),
        (dict(good, payer=dict(good["payer"], name=wx.encrypt("别人"))), "268545962"),
        (dict(good, payer=dict(good["payer"], id_digest=wx.encrypt("0" * 32))), "268545961"),
        (dict(good, pay_auth_no="AUTH440100NOPE"), "268547120"),
        (dict(good, passthrough_request_content="{}"), "268545967"),
        (dict(good, serial_no="OTHER"), "268510610"),
    ]
    for body, number in cases:
        r = create_mixed(wx, body)
        assert r.status_code in (400, 404) and medins_error_number(r) == number, (number, r.text)
        assert wx.verified(r)
    r = wx.request("POST", "/v3/med-ins/orders", good)                   # no Wechatpay-Serial header
    assert r.status_code == 400 and r.json()["detail"]["field"] == "Wechatpay-Serial"
    assert wx_state(csim)["mix_orders"] == {}
    r = create_mixed(wx, good)
    assert r.status_code == 200
    again = create_mixed(wx, good)
    assert again.status_code == 400 and medins_error_number(again) == "268512536"
    other = CentreOrder(csim, centre, CASH_PSN, "10.00")                 # the used pay_auth_no elsewhere
    body = mixed_body(wx, other, "RULES2" + uuid.uuid4().hex[:10], channel_hospital.base + "/wx/medins",
                      prepay(wx, "P2" + uuid.uuid4().hex[:10], fen(other.cash), "o-patient-1", "http://x/n"))
    assert medins_error_number(create_mixed(wx, body)) == "268529476"   # prepay is for another out_trade_no


def test_cash_taken_insurance_failed_and_user_paying_then_close(csim, wx, centre, channel_hospital):
    h = channel_hospital
    got = wechat_paid_order(csim, wx, centre, h, pay=False)
    ctl(csim, "POST", "/__sim__/wechat/pay", {"mix_trade_no": got["mix"]["mix_trade_no"], "outcome": "insurance_fail"})
    _, q = wx.call("GET", "/v3/med-ins/orders/mix-trade-no/" + got["mix"]["mix_trade_no"])
    assert (q["mix_pay_status"], q["self_pay_status"], q["med_ins_pay_status"]) == (
        "MIX_PAY_FAIL", "SELF_PAY_SUCCESS", "MED_INS_PAY_FAIL") and q["med_ins_fail_reason"]
    assert wait_for(lambda: h.genuine("/wx/pay"))
    assert not h.genuine("/wx/medins")                 # the mixed callback only on MIX_PAY_SUCCESS
    assert got["order"].query(centre)["ordStas"] == "2"
    mine = legs(csim, got["order"].pay_ord_id)
    assert mine["cash"]["wechat"]["charges"] == 1 and mine["fund"]["charges"] == 0
    # The hospital must give this cash back by a WeChat refund.
    status, r = wx.call("POST", "/v3/refund/domestic/refunds", {
        "out_trade_no": got["out_trade_no"], "out_refund_no": "RF-FAIL-1",
        "amount": {"refund": fen(got["order"].cash), "total": fen(got["order"].cash), "currency": "CNY"}})
    assert status == 200
    assert wait_for(lambda: wx.call("GET", "/v3/refund/domestic/refunds/RF-FAIL-1")[1]["status"] == "SUCCESS")
    assert legs(csim, got["order"].pay_ord_id)["cash"]["wechat"]["refunds"] == 1

    paying = wechat_paid_order(csim, wx, centre, h, pay=False)
    ctl(csim, "POST", "/__sim__/wechat/pay", {"mix_trade_no": paying["mix"]["mix_trade_no"], "outcome": "user_paying"})
    r = wx.request("POST", f"/v3/pay/transactions/out-trade-no/{paying['out_trade_no']}/close", {"mchid": wx.c["mchid"]})
    assert r.status_code == 400 and medins_error_number(r) == "268560650"
    ctl(csim, "POST", "/__sim__/wechat/pay", {"mix_trade_no": paying["mix"]["mix_trade_no"]})
    assert wx.call("GET", "/v3/med-ins/orders/mix-trade-no/" + paying["mix"]["mix_trade_no"])[1][
        "mix_pay_status"] == "MIX_PAY_SUCCESS"


def test_close_unpaid_prepay_answers_204_and_the_cashier_then_fails(csim, wx, centre, channel_hospital):
    got = wechat_paid_order(csim, wx, centre, channel_hospital, pay=False)
    status, body = wx.call("POST", f"/v3/pay/transactions/out-trade-no/{got['out_trade_no']}/close",
                           {"mchid": wx.c["mchid"]})
    assert status == 204 and body is None
    ctl(csim, "POST", "/__sim__/wechat/pay", {"mix_trade_no": got["mix"]["mix_trade_no"]})
    _, q = wx.call("GET", "/v3/med-ins/orders/mix-trade-no/" + got["mix"]["mix_trade_no"])
    assert q["mix_pay_status"] == "MIX_PAY_FAIL" and q["self_pay_status"] == "SELF_PAY_FAIL"
    assert legs(csim)["cash"]["wechat"]["charges"] == 0 and legs(csim)["fund"]["charges"] == 0


# --- §2.6 / §2.7 refunds ----------------------------------------------------------------------
def cash_refund(wx, otn, orn, refund, total, notify_url=None):
    body = {"out_trade_no": otn, "out_refund_no": orn, "amount": {"refund": refund, "total": total, "currency": "CNY"}}
    if notify_url:
        body["notify_url"] = notify_url
    return wx.request("POST", "/v3/refund/domestic/refunds", body)


def test_cash_refund_is_idempotent_by_out_refund_no(csim, wx, centre, channel_hospital):
    h = channel_hospital
    got = wechat_paid_order(csim, wx, centre, h)
    cash = fen(got["order"].cash)
    first = cash_refund(wx, got["out_trade_no"], "RF-1", cash - 100, cash, h.base + "/wx/refund")
    assert first.status_code == 200 and wx.verified(first) and first.json()["status"] == "PROCESSING"
    again = cash_refund(wx, got["out_trade_no"], "RF-1", cash - 100, cash, h.base + "/wx/refund")
    assert again.status_code == 200 and again.json()["refund_id"] == first.json()["refund_id"]
    changed = cash_refund(wx, got["out_trade_no"], "RF-1", cash - 99, cash)
    assert changed.status_code == 400 and changed.json()["code"] == "INVALID_REQUEST"
    too_much = cash_refund(wx, got["out_trade_no"], "RF-2", 101, cash)
    assert too_much.status_code == 400
    assert wait_for(lambda: wx.call("GET", "/v3/refund/domestic/refunds/RF-1")[1]["status"] == "SUCCESS")
    assert wait_for(lambda: h.genuine("/wx/refund"))
    cb = h.genuine("/wx/refund")[0]
    assert cb["envelope"]["event_type"] == "REFUND.SUCCESS" and cb["resource"]["refund_status"] == "SUCCESS"
    assert cb["resource"]["out_refund_no"] == "RF-1"
    mine = legs(csim, got["order"].pay_ord_id)["cash"]["wechat"]
    assert mine["refunds"] == 1 and mine["refunded"] == f"{(cash - 100) / 100:.2f}"
    assert cash_refund(wx, got["out_trade_no"], "RF-1", cash - 100, cash).json()["status"] == "SUCCESS"
    assert legs(csim, got["order"].pay_ord_id)["cash"]["wechat"]["refunds"] == 1
    _, t = wx.call("GET", f"/v3/pay/transactions/out-trade-no/{got['out_trade_no']}?mchid={wx.c['mchid']}")
    assert t["trade_state"] == "REFUND"
    missing = wx.request("GET", "/v3/refund/domestic/refunds/NOPE")
    assert missing.status_code == 404


def test_insurance_refund_notify_then_the_order_shows_refunded(csim, wx, centre, channel_hospital):
    got = wechat_paid_order(csim, wx, centre, channel_hospital)
    order, mtn = got["order"], got["mix"]["mix_trade_no"]
    env, out = order.refund(centre, "SN-1", "HI", fund=str(order.fund))
    assert out["refStatus"] == "SUCC"
    cash = fen(order.cash)
    assert cash_refund(wx, got["out_trade_no"], "SN-1", cash, cash).status_code == 200
    assert wait_for(lambda: wx.call("GET", "/v3/refund/domestic/refunds/SN-1")[1]["status"] == "SUCCESS")
    notice = {"med_refund_total_fee": fen(order.fund), "med_refund_gov_fee": fen(order.fund),
              "med_refund_self_fee": 0, "med_refund_other_fee": 0, "refund_time": "2026-01-01T12:00:00+08:00",
              "out_refund_no": "SN-1"}
    status, body = wx.call("POST", f"/v3/med-ins/refunds/notify?mix_trade_no={mtn}", notice)
    assert status == 204 and body is None
    assert wx.call("POST", f"/v3/med-ins/refunds/notify?mix_trade_no={mtn}", notice)[0] == 204     # repeat
    assert wx.request("POST", f"/v3/med-ins/refunds/notify?mix_trade_no={mtn}",
                      dict(notice, med_refund_total_fee=1, med_refund_gov_fee=1)).status_code == 400
    bad_time = wx.request("POST", f"/v3/med-ins/refunds/notify?mix_trade_no={mtn}",
                          dict(notice, out_refund_no="SN-2", refund_time="20260101120000"))
    assert bad_time.status_code == 400
    _, q = wx.call("GET", "/v3/med-ins/orders/mix-trade-no/" + mtn)
    assert (q["mix_pay_status"], q["self_pay_status"], q["med_ins_pay_status"]) == (
        "MIX_PAY_REFUND", "SELF_PAY_REFUND", "MED_INS_PAY_REFUND")
    unknown = wx.request("POST", "/v3/med-ins/refunds/notify?mix_trade_no=NOPE", notice)
    assert unknown.status_code == 404 and medins_error_number(unknown) == "268529515"
    mine = legs(csim, order.pay_ord_id)
    assert mine["fund"]["refunds"] == 1 and mine["cash"]["wechat"]["refunds"] == 1


# --- §10.3 faults ---------------------------------------------------------------------------
def test_refund_processing_then_abnormal_then_applied(csim, wx, centre, channel_hospital):
    h = channel_hospital
    got = wechat_paid_order(csim, wx, centre, h)
    cash = fen(got["order"].cash)
    arm(csim, "wechat.refund", "refund_abnormal", code="2")
    assert cash_refund(wx, got["out_trade_no"], "AB-1", cash, cash, h.base + "/wx/refund").json()["status"] == "PROCESSING"
    seen = [wx.call("GET", "/v3/refund/domestic/refunds/AB-1")[1]["status"] for _ in range(3)]
    assert seen == ["PROCESSING", "ABNORMAL", "ABNORMAL"]
    assert wait_for(lambda: h.genuine("/wx/refund"))
    assert h.genuine("/wx/refund")[0]["envelope"]["event_type"] == "REFUND.ABNORMAL"
    assert legs(csim)["cash"]["wechat"]["refunds"] == 0            # the money did not reach the patient
    assert cash_refund(wx, got["out_trade_no"], "AB-2", 1, cash).status_code == 400   # still reserved
    refund_id = wx.call("GET", "/v3/refund/domestic/refunds/AB-1")[1]["refund_id"]
    status, r = wx.call("POST", f"/v3/refund/domestic/refunds/{refund_id}/apply-abnormal-refund",
                        {"out_refund_no": "AB-1", "type": "USER_BANK_CARD"})
    assert status == 200 and r["status"] == "PROCESSING"
    assert wait_for(lambda: wx.call("GET", "/v3/refund/domestic/refunds/AB-1")[1]["status"] == "SUCCESS")
    assert legs(csim)["cash"]["wechat"]["refunds"] == 1


def test_refund_processing_for_n_polls_then_success(csim, wx, centre, channel_hospital):
    got = wechat_paid_order(csim, wx, centre, channel_hospital)
    cash = fen(got["order"].cash)
    arm(csim, "wechat.refund", "refund_processing", code="3")
    cash_refund(wx, got["out_trade_no"], "PR-1", cash, cash)
    seen = [wx.call("GET", "/v3/refund/domestic/refunds/PR-1")[1]["status"] for _ in range(4)]
    assert seen == ["PROCESSING", "PROCESSING", "SUCCESS", "SUCCESS"]
    assert legs(csim)["cash"]["wechat"]["refunds"] == 1


def test_refund_closed_frees_the_amount_for_a_new_refund_number(csim, wx, centre, channel_hospital):
    got = wechat_paid_order(csim, wx, centre, channel_hospital)
    cash = fen(got["order"].cash)
    arm(csim, "wechat.refund", "refund_closed", code="1")
    cash_refund(wx, got["out_trade_no"], "CL-1", cash, cash)
    assert wx.call("GET", "/v3/refund/domestic/refunds/CL-1")[1]["status"] == "CLOSED"
    assert legs(csim)["cash"]["wechat"]["refunds"] == 0
    assert cash_refund(wx, got["out_trade_no"], "CL-1", cash, cash).json()["status"] == "CLOSED"   # same number
    assert cash_refund(wx, got["out_trade_no"], "CL-2", cash, cash).status_code == 200            # a new one
    assert wait_for(lambda: wx.call("GET", "/v3/refund/domestic/refunds/CL-2")[1]["status"] == "SUCCESS")
    assert legs(csim)["cash"]["wechat"]["refunds"] == 1


def test_timeout_and_lost_answer_on_refund_commit_and_a_retry_with_the_same_key_is_one_refund(
        csim, wx, centre, channel_hospital):
    got = wechat_paid_order(csim, wx, centre, channel_hospital)
    cash = fen(got["order"].cash)
    arm(csim, "wechat.refund", "lost_after_commit")
    with pytest.raises(httpx.TransportError):
        cash_refund(wx, got["out_trade_no"], "LOST-1", 100, cash)
    assert "LOST-1" in wx_state(csim)["refunds"]
    arm(csim, "wechat.refund", "timeout", delay=0.8)
    with pytest.raises(httpx.ReadTimeout):
        wx.request("POST", "/v3/refund/domestic/refunds", {
            "out_trade_no": got["out_trade_no"], "out_refund_no": "SLOW-1",
            "amount": {"refund": 100, "total": cash, "currency": "CNY"}}, timeout=0.2)
    assert wait_for(lambda: "SLOW-1" in wx_state(csim)["refunds"])
    for orn in ("LOST-1", "SLOW-1", "LOST-1", "SLOW-1"):
        assert cash_refund(wx, got["out_trade_no"], orn, 100, cash).status_code == 200
    assert wait_for(lambda: legs(csim)["cash"]["wechat"]["refunds"] == 2)
    assert len(wx_state(csim)["refunds"]) == 2


def test_http500_does_nothing_and_a_bad_answer_signature_still_commits(csim, wx, centre, channel_hospital):
    arm(csim, "wechat.jsapi", "http500")
    body = {"appid": wx.c["appid"], "mchid": wx.c["mchid"], "description": "x", "out_trade_no": "F500000001",
            "notify_url": "http://127.0.0.1/n", "amount": {"total": 1, "currency": "CNY"}, "payer": {"openid": "o"}}
    assert wx.request("POST", "/v3/pay/transactions/jsapi", body).status_code == 500
    assert wx_state(csim)["prepays"] == {}
    for kind in ("bad_signature", "wrong_serial", "skew", "probe"):
        arm(csim, "wechat.jsapi", kind)
        r = wx.request("POST", "/v3/pay/transactions/jsapi", body)
        assert r.status_code == 200 and not wx.verified(r), kind
    assert list(wx_state(csim)["prepays"]) == ["F500000001"]


def test_business_error_fault_answers_the_number(csim, wx, centre, channel_hospital):
    order = CentreOrder(csim, centre, ACCT_PSN, "20.00")
    arm(csim, "wechat.medins_order", "business_error", code="268510610", message="医保局返回: 超过限额")
    r = create_mixed(wx, mixed_body(wx, order, "BE" + uuid.uuid4().hex[:10], channel_hospital.base + "/wx/medins"))
    assert r.status_code == 400 and medins_error_number(r) == "268510610" and wx.verified(r)
    assert wx_state(csim)["mix_orders"] == {}


def test_callbacks_duplicate_out_of_order_dropped_and_defective(csim, wx, centre, channel_hospital):
    h = channel_hospital
    arm(csim, "wechat.notify.medins", "duplicate")
    arm(csim, "wechat.notify.medins", "out_of_order")
    got = wechat_paid_order(csim, wx, centre, h)
    assert wait_for(lambda: len(h.genuine("/wx/medins")) == 2 and h.genuine("/wx/pay"))
    paths = [e["path"] for e in h.genuine() if e["path"].startswith("/wx/")]
    assert paths == ["/wx/pay", "/wx/medins", "/wx/medins"]         # cash first, then the mixed one twice
    dupes = h.genuine("/wx/medins")
    assert dupes[0]["envelope"]["id"] == dupes[1]["envelope"]["id"]

    with h.lock:
        h.received.clear()
    for kind in ("bad_signature", "wrong_serial", "skew", "probe", "wrong_key", "tampered"):
        arm(csim, "wechat.notify.transaction", kind)
    arm(csim, "wechat.notify.medins", "empty_aad")
    arm(csim, "wechat.notify.medins", "drop", times=3)                # every attempt: lost
    wechat_paid_order(csim, wx, centre, h)
    assert wait_for(lambda: ctl(csim, "GET", "/__sim__/channels/callbacks")["idle"] and len(h.genuine("/wx/pay")) == 1)
    assert len(h.refused("/wx/pay")) == 6 and not h.genuine("/wx/medins")
    log = ctl(csim, "GET", "/__sim__/channels/callbacks")["callbacks"]
    medins = [d for d in log if d["kind"] == "MEDICAL_INSURANCE.SUCCESS"][-1]
    assert medins["delivered"] is False and medins["attempts"] == 3
    assert all(not d["accepted_defective"] for d in log)
    _, q = wx.call("GET", "/v3/med-ins/orders/out-trade-no/" + got["out_trade_no"])   # the query still tells
    assert q["mix_pay_status"] == "MIX_PAY_SUCCESS"


def test_callback_retried_after_the_hospital_fails_and_empty_aad_decrypts(csim, wx, centre, channel_hospital):
    h = channel_hospital
    h.fail_next = {"/wx/medins": 1}
    arm(csim, "wechat.notify.medins", "empty_aad")
    wechat_paid_order(csim, wx, centre, h, psn_no=ACCT_PSN)
    assert wait_for(lambda: h.genuine("/wx/medins"))
    assert h.genuine("/wx/medins")[0]["envelope"]["resource"]["associated_data"] == ""
    medins = [d for d in ctl(csim, "GET", "/__sim__/channels/callbacks")["callbacks"]
              if d["kind"] == "MEDICAL_INSURANCE.SUCCESS"][0]
    assert medins["statuses"] == [500, 204] and medins["deliveries"] == 1


# --- §3 bills -------------------------------------------------------------------------------
def parse_bill(text: str) -> tuple[list[str], list[list[str]], list[str], list[str]]:
    lines = text.split("\n")
    assert lines[-1] == ""
    lines = lines[:-1]
    header, summary_header = lines[0].split(","), lines[-2].split(",")
    rows = [line.split(",") for line in lines[1:-2]]
    for row in rows + [lines[-1].split(",")]:
        assert all(f.startswith("`") for f in row)
    return header, [[f[1:] for f in r] for r in rows], summary_header, [f[1:] for f in lines[-1].split(",")]


def test_trade_bill_in_the_real_format_with_a_mismatch(csim, wx, centre, channel_hospital):
    day = (date.today() - timedelta(days=3)).isoformat()
    ctl(csim, "POST", "/__sim__/channels/date", {"date": day})
    a = wechat_paid_order(csim, wx, centre, channel_hospital)
    b = wechat_paid_order(csim, wx, centre, channel_hospital, total="50.00")
    cash_a = fen(a["order"].cash)
    cash_refund(wx, a["out_trade_no"], "BILL-R1", 500, cash_a)
    ctl(csim, "POST", "/__sim__/bills/mismatch", {"channel": "wechat", "date": day, "kind": "amount",
                                                  "out_trade_no": b["out_trade_no"], "delta": "0.01"})
    ctl(csim, "POST", "/__sim__/channels/date", {"date": None})
    status, meta = wx.call("GET", f"/v3/bill/tradebill?bill_date={day}&bill_type=ALL&tar_type=GZIP")
    assert status == 200 and meta["hash_type"] == "SHA1"
    url = meta["download_url"][len(wx.base):]
    raw = wx.request("GET", url)
    assert raw.status_code == 200 and "Wechatpay-Signature" not in raw.headers     # the file is not signed
    plain = gzip.decompress(raw.content)
    assert hashlib.sha1(plain).hexdigest() == meta["hash_value"]
    header, rows, summary_header, summary = parse_bill(plain.decode("utf-8"))
    assert len(header) == 27 and header[5:7] == ["微信订单号", "商户订单号"] and header[3] == "特约商户号"
    assert summary_header[0] == "总交易单数"
    by = {(r[6], r[9]): r for r in rows}
    pay_a, pay_b, refund_a = by[(a["out_trade_no"], "SUCCESS")], by[(b["out_trade_no"], "SUCCESS")], \
        by[(a["out_trade_no"], "REFUND")]
    assert pay_a[12] == f"{cash_a / 100:.2f}" and pay_a[8] == "JSAPI" and pay_a[14] == "0"
    assert pay_b[12] == f"{fen(b['order'].cash) / 100 + 0.01:.2f}"          # the injected 0.01
    assert refund_a[12] == "0.00" and refund_a[16] == "5.00" and refund_a[15] == "BILL-R1"
    assert refund_a[0].startswith(day) and len(pay_a[22].split(".")[1]) == 5
    assert summary[0] == "3" and summary[2] == "5.00"
    refunds_only = wx.request("GET", wx.call("GET", f"/v3/bill/tradebill?bill_date={day}&bill_type=REFUND")[1][
        "download_url"][len(wx.base):])
    assert parse_bill(refunds_only.text)[3][0] == "1"
    assert query_of(meta["download_url"])["token"]
    today = wx.request("GET", f"/v3/bill/tradebill?bill_date={date.today().isoformat()}")
    assert today.status_code == 400 and today.json()["code"] == "NO_STATEMENT_EXIST"
    arm(csim, "wechat.tradebill", "hash_mismatch")
    _, meta2 = wx.call("GET", f"/v3/bill/tradebill?bill_date={day}")
    assert hashlib.sha1(wx.request("GET", meta2["download_url"][len(wx.base):]).content).hexdigest() != \
        meta2["hash_value"]


def test_empty_day_bill_has_only_the_summary(csim, wx):
    day = (date.today() - timedelta(days=5)).isoformat()
    _, meta = wx.call("GET", f"/v3/bill/tradebill?bill_date={day}")
    text = wx.request("GET", meta["download_url"][len(wx.base):]).text
    header, rows, _, summary = parse_bill(text)
    assert rows == [] and summary == ["0", "0.00", "0.00", "0.00", "0.00000", "0.00", "0.00"]


# --- §4 messages -----------------------------------------------------------------------------
def test_access_token_and_subscribe_messages_with_user_refusal(csim, wx):
    base, c = wx.base, wx.c
    bad = httpx.get(f"{base}/cgi-bin/token", params={"grant_type": "client_credential", "appid": c["appid"],
                                                     "secret": "nope"}).json()
    assert bad["errcode"] == 40001
    tok = httpx.get(f"{base}/cgi-bin/token", params={"grant_type": "client_credential", "appid": c["appid"],
                                                     "secret": c["app_secret"]}).json()
    assert tok["expires_in"] == 7200 and len(tok["access_token"]) >= 100
    msg = {"touser": "o-patient-1", "template_id": "TPL-PAID", "page": "pages/order?id=1",
           "data": {"thing1": {"value": "门诊缴费"}, "amount2": {"value": "45.00元"}}, "miniprogram_state": "formal"}
    send = f"{base}/cgi-bin/message/subscribe/send?access_token={tok['access_token']}"
    assert httpx.post(send, json=msg).json()["errcode"] == 43101           # never subscribed: refused
    ctl(csim, "POST", "/__sim__/wechat/subscribe", {"openid": "o-patient-1", "template_id": "TPL-PAID"})
    ok = httpx.post(send, json=msg).json()
    assert ok["errcode"] == 0 and ok["msgid"]
    assert httpx.post(send, json=msg).json()["errcode"] == 43101           # one-off: used up
    assert httpx.post(send, json=dict(msg, data={"thing1": "x"})).json()["errcode"] == 47003
    sent = ctl(csim, "GET", "/__sim__/wechat/messages")["sent"]
    assert len(sent) == 1 and sent[0]["touser"] == "o-patient-1" and sent[0]["data"] == msg["data"]
    # A new /cgi-bin/token retires the old one (grace 0 in this simulator); the stable token is separate.
    tok2 = httpx.get(f"{base}/cgi-bin/token", params={"grant_type": "client_credential", "appid": c["appid"],
                                                      "secret": c["app_secret"]}).json()
    ctl(csim, "POST", "/__sim__/wechat/subscribe", {"openid": "o-patient-1", "template_id": "TPL-PAID", "count": -1})
    assert httpx.post(send, json=msg).json()["errcode"] == 40001
    assert httpx.post(send.replace(tok["access_token"], tok2["access_token"]), json=msg).json()["errcode"] == 0
    ctl(csim, "POST", "/__sim__/wechat/expire_tokens")
    assert httpx.post(send.replace(tok["access_token"], tok2["access_token"]), json=msg).json()["errcode"] == 42001
    st = httpx.post(f"{base}/cgi-bin/stable_token", json={"grant_type": "client_credential", "appid": c["appid"],
                                                          "secret": c["app_secret"]}).json()
    st2 = httpx.post(f"{base}/cgi-bin/stable_token", json={"grant_type": "client_credential", "appid": c["appid"],
                                                           "secret": c["app_secret"]}).json()
    assert st["access_token"] == st2["access_token"]
    arm(csim, "wechat.subscribe_send", "business_error", code="45009", message="reach max api daily quota limit")
    stable_send = f"{base}/cgi-bin/message/subscribe/send?access_token={st['access_token']}"
    assert httpx.post(stable_send, json=msg).json()["errcode"] == 45009
    assert httpx.post(stable_send, json=msg).json()["errcode"] == 0


def test_official_account_template_message_needs_its_own_token(csim, wx):
    base, c = wx.base, wx.c
    mini = httpx.get(f"{base}/cgi-bin/token", params={"grant_type": "client_credential", "appid": c["appid"],
                                                      "secret": c["app_secret"]}).json()["access_token"]
    oa = httpx.get(f"{base}/cgi-bin/token", params={"grant_type": "client_credential", "appid": c["oa_appid"],
                                                    "secret": c["oa_secret"]}).json()["access_token"]
    msg = {"touser": "oa-openid-1", "template_id": "TPL-REFUND", "miniprogram": {"appid": c["appid"],
                                                                                 "pagepath": "pages/r"},
           "data": {"first": {"value": "退款成功"}}}
    assert httpx.post(f"{base}/cgi-bin/message/template/send?access_token={mini}", json=msg).json()["errcode"] == 40001
    ok = httpx.post(f"{base}/cgi-bin/message/template/send?access_token={oa}", json=msg).json()
    assert ok["errcode"] == 0 and ok["msgid"]


def test_lost_answer_on_the_mixed_order_is_found_by_the_query_not_made_twice(csim, wx, centre, channel_hospital):
    order = CentreOrder(csim, centre, ACCT_PSN, "30.00")
    otn = "LOSTMIX" + uuid.uuid4().hex[:10]
    body = mixed_body(wx, order, otn, channel_hospital.base + "/wx/medins")
    arm(csim, "wechat.medins_order", "lost_after_commit")
    with pytest.raises(httpx.TransportError):
        create_mixed(wx, body)
    again = create_mixed(wx, body)                                   # a blind resend is refused...
    assert again.status_code == 400 and medins_error_number(again) == "268512536"
    _, found = wx.call("GET", "/v3/med-ins/orders/out-trade-no/" + otn)   # ...the query finds the order
    assert found["mix_pay_status"] == "MIX_PAY_CREATED" and len(wx_state(csim)["mix_orders"]) == 1
