"""The WeChat Pay and Alipay callback endpoints of a real daemon, on each database, with
the simulator sending the callbacks of orders and refunds that mibridge's own clients
placed (issue 12 "Callbacks"):

* verified before anything is written, recorded once, a repeat only counted, out-of-order
  deliveries recorded, and the request they are about made due at once (the daemon, which
  runs no channel flow yet, then holds it UNKNOWN_KIND: proof that it was woken);
* each of the simulator's forged copies (a bad signature, an unknown serial, a skewed
  timestamp, the SIGNTEST probe, the wrong APIv3 key, a tampered body; Alipay: a bad or
  tampered signature) gets a 4xx and writes nothing; the genuine callback that follows is
  recorded;
* a callback for a request that ended, or for none, is recorded and logged, never acted on.
"""
from __future__ import annotations

from decimal import Decimal

import httpx
import pytest

from bridge.alipay.messages import RefundRequest as AlipayRefund
from bridge.channels import keys
from bridge.channels.notices import (ALIPAY_REFUND, ALIPAY_TRADE, WECHAT_MEDINS, WECHAT_REFUND, WECHAT_TRADE)
from bridge.wechatpay.messages import RefundRequest as WechatRefund

from bridge.mobilepay.flows import KIND_OUTPATIENT, KIND_REFUND

from .conftest import (ALI_PATH, WX_PATH, alipay_order, arm, centre_order, new_key, settled, wait_for,
                       wechat_order)


def _no_secrets(record: dict) -> None:
    """No pay_auth_no, payer (name, ID digest), openid or passthrough contents are kept."""
    assert not {"pay_auth_no", "payer", "relative", "openid", "passthrough_request_content",
                "passthrough_response_content", "prepay_id"} & set(record), record
    assert not any(str(v).startswith("AUTH") for v in record.values()), record


def _by_interface(rows: list[dict]) -> dict:
    out: dict = {}
    for r in rows:
        out.setdefault(r["interface"], []).append(r)
    return out


def _held(bridge, oid: int):
    return wait_for(lambda: bridge.state(oid) == ("held", "UNKNOWN_KIND"), 15, f"request {oid} woken")


def test_wechat_payment_and_refund_callbacks_are_recorded_once_and_wake_their_requests(bridge, sim):
    centre, refund_key = centre_order(bridge), new_key("RF")
    key = centre.med_org_ord
    pay_id = bridge.request(KIND_OUTPATIENT, key)
    refund_id = bridge.request(KIND_REFUND, refund_key)
    order = wechat_order(bridge, centre)
    order.pay(sim)
    for d in settled(sim, order.mix_trade_no) + settled(sim, order.out_trade_no):
        assert d["delivered"] and d["deliveries"] == 1 and d["statuses"] == [204], d
    got = _by_interface(bridge.notices(key))
    [medins], [trade] = got[WECHAT_MEDINS], got[WECHAT_TRADE]
    assert (medins["notice_key"], medins["outbox_id"], medins["received_count"]) == (order.mix_trade_no, pay_id, 1)
    assert (trade["notice_key"], trade["outbox_id"], trade["received_count"]) == (order.out_trade_no, pay_id, 1)
    assert medins["notice"]["mix_pay_status"] == "MIX_PAY_SUCCESS"
    assert medins["notice"]["serial_no"] == order.centre.med_org_ord
    assert Decimal(medins["notice"]["wechat_pay_cash_fee"]) == Decimal(order.centre.cash)
    assert trade["notice"]["trade_state"] == "SUCCESS" and trade["notice"]["transaction_id"]
    assert "serial_no_differs" not in medins["notice"]
    _no_secrets(medins["notice"])
    _no_secrets(trade["notice"])
    _held(bridge, pay_id)

    cash = Decimal(order.centre.cash)
    r = bridge.wechat.refund(WechatRefund(out_refund_no=keys.refund_no(refund_key), refund=cash, total=cash,
                                          out_trade_no=order.out_trade_no))
    assert r.ok, r.message
    [d] = settled(sim, keys.refund_no(refund_key))
    assert d["kind"] == "REFUND.SUCCESS" and d["statuses"] == [204]
    [refund] = bridge.notices(refund_key)
    assert refund["interface"] == WECHAT_REFUND and refund["outbox_id"] == refund_id
    assert refund["notice_key"] == f"{keys.refund_no(refund_key)}|SUCCESS"
    assert Decimal(refund["notice"]["refund"]) == cash and refund["notice"]["out_trade_no"] == order.out_trade_no
    _held(bridge, refund_id)


def test_alipay_payment_and_refund_notifies_are_recorded_once_and_wake_their_requests(bridge, sim):
    centre, refund_key = centre_order(bridge), new_key("RF")
    key = centre.med_org_ord
    pay_id = bridge.request(KIND_OUTPATIENT, key)
    refund_id = bridge.request(KIND_REFUND, refund_key)
    order = alipay_order(bridge, centre)
    order.pay(sim)
    [d] = settled(sim, order.out_trade_no)
    assert d["delivered"] and d["statuses"] == [200], d
    [trade] = bridge.notices(key)
    assert (trade["interface"], trade["outbox_id"], trade["received_count"]) == (ALIPAY_TRADE, pay_id, 1)
    assert trade["notice_key"].startswith(order.out_trade_no + "|TRADE_SUCCESS")
    assert trade["notice"]["pay_order_id"] == order.centre.pay_ord_id
    _no_secrets(trade["notice"])
    _held(bridge, pay_id)

    cash = Decimal(order.centre.cash)
    r = bridge.alipay.refund(AlipayRefund(out_trade_no=order.out_trade_no, refund_amount=cash,
                                          out_request_no=keys.refund_no(refund_key)))
    assert r.ok, r.message
    settled(sim, keys.refund_no(refund_key))
    [refund] = bridge.notices(refund_key)
    assert (refund["interface"], refund["outbox_id"], refund["received_count"]) == (ALIPAY_REFUND, refund_id, 1)
    assert refund["notice_key"] == f"{order.out_trade_no}|{keys.refund_no(refund_key)}"
    assert Decimal(refund["notice"]["refund_fee"]) == cash
    _held(bridge, refund_id)


# ---------------------------------------------------------------- repeats and order

def test_duplicates_only_count_and_out_of_order_callbacks_are_recorded(bridge, sim):
    centre = centre_order(bridge)
    key = centre.med_org_ord
    pay_id = bridge.request(KIND_OUTPATIENT, key)
    order = wechat_order(bridge, centre)
    arm(sim, "wechat.notify.transaction", "duplicate")
    arm(sim, "wechat.notify.medins", "out_of_order")      # the mixed callback waits behind the cash one
    order.pay(sim)
    [trade_d] = settled(sim, order.out_trade_no)
    [medins_d] = settled(sim, order.mix_trade_no)
    assert trade_d["deliveries"] == 2 and medins_d["deliveries"] == 1
    rows = bridge.notices(key)
    assert [(r["interface"], r["received_count"]) for r in rows] == [(WECHAT_TRADE, 2), (WECHAT_MEDINS, 1)]
    assert {r["outbox_id"] for r in rows} == {pay_id}

    centre = centre_order(bridge)
    ali = alipay_order(bridge, centre)
    arm(sim, "alipay.notify", "duplicate")
    ali.pay(sim)
    [d] = settled(sim, ali.out_trade_no)
    assert d["deliveries"] == 2
    [row] = bridge.notices(centre.med_org_ord)
    assert (row["interface"], row["received_count"], row["outbox_id"]) == (ALIPAY_TRADE, 2, None)


# ---------------------------------------------------------------- forgeries

@pytest.mark.parametrize("medins_fault, trade_fault", [("bad_signature", "wrong_key"), ("wrong_serial", "tampered"),
                                                       ("skew", "probe")])
def test_forged_wechat_callbacks_get_401_and_write_nothing(bridge, sim, medins_fault, trade_fault):
    centre = centre_order(bridge)
    order = wechat_order(bridge, centre)
    before = bridge.notice_count()
    arm(sim, "wechat.notify.medins", medins_fault)
    arm(sim, "wechat.notify.transaction", trade_fault)
    order.pay(sim)
    [medins_d] = settled(sim, order.mix_trade_no)
    [trade_d] = settled(sim, order.out_trade_no)
    # The forged copy went first and was refused; the genuine one that followed was taken.
    assert medins_d["statuses"] == [f"{medins_fault}:401", 204] and medins_d["accepted_defective"] == []
    assert trade_d["statuses"] == [f"{trade_fault}:401", 204] and trade_d["accepted_defective"] == []
    rows = bridge.notices(centre.med_org_ord)
    assert sorted((r["interface"], r["received_count"]) for r in rows) == [(WECHAT_MEDINS, 1), (WECHAT_TRADE, 1)]
    assert bridge.notice_count() == before + 2
    log = bridge.log()
    assert log.count("wechatpay callback from 127.0.0.1 refused as forged") >= 2


def test_a_forged_refund_callback_and_forged_alipay_notifies_write_nothing(bridge, sim):
    centre = centre_order(bridge)
    order = wechat_order(bridge, centre)
    order.pay(sim)
    settled(sim, order.out_trade_no)
    refund_key = new_key("RF")
    arm(sim, "wechat.notify.refund", "probe")
    cash = Decimal(centre.cash)
    assert bridge.wechat.refund(WechatRefund(out_refund_no=keys.refund_no(refund_key), refund=cash, total=cash,
                                             out_trade_no=order.out_trade_no)).ok
    [d] = settled(sim, keys.refund_no(refund_key))
    assert d["statuses"] == ["probe:401", 204]
    assert [r["received_count"] for r in bridge.notices(refund_key)] == [1]

    for fault in ("bad_signature", "tampered"):
        centre = centre_order(bridge)
        ali = alipay_order(bridge, centre)
        arm(sim, "alipay.notify", fault)
        ali.pay(sim)
        [d] = settled(sim, ali.out_trade_no)
        assert d["statuses"] == [f"{fault}:400", 200] and d["accepted_defective"] == [], d
        assert [r["received_count"] for r in bridge.notices(centre.med_org_ord)] == [1]
    assert bridge.log().count("alipay notify from 127.0.0.1 refused as forged") >= 2


def test_callbacks_signed_right_but_not_for_us_are_refused(bridge, sim):
    """A notify for another Alipay app or seller, and a WeChat resource for another merchant,
    are refused (4xx) and write nothing, although their signatures verify."""
    from bridge.simulator.alipay_wire import notify
    from bridge.simulator.wechatpay_wire import callback

    before = bridge.notice_count()
    base = {"notify_id": "n" + new_key(), "notify_type": "trade_status_sync", "notify_time": "2026-01-01 10:00:00",
            "charset": "utf-8", "version": "1.0", "out_trade_no": keys.out_trade_no(new_key()),
            "trade_no": "2026T" + new_key(), "trade_status": "TRADE_SUCCESS", "total_amount": "1.00"}
    for params in ({**base, "app_id": "2021000000000009", "seller_id": sim.config.alipay_pid},
                   {**base, "app_id": sim.config.alipay_app_id, "seller_id": "2088000000000009"}):
        body, headers = notify(sim.config, params)
        r = httpx.post(f"http://127.0.0.1:{bridge.port}{ALI_PATH}/notify", content=body, headers=headers)
        assert (r.status_code, r.text) == (400, "fail")
    resource = {"mchid": "1900000001", "out_trade_no": keys.out_trade_no(new_key()), "trade_state": "SUCCESS",
                "transaction_id": "42000" + "1" * 23, "amount": {"total": 100}}
    body, headers = callback(sim.config, "TRANSACTION.SUCCESS", resource, "transaction", "transaction", "支付成功",
                             event_id="EV-" + new_key())
    r = httpx.post(f"http://127.0.0.1:{bridge.port}{WX_PATH}/pay", content=body, headers=headers)
    assert r.status_code == 400 and r.json()["code"] == "FAIL"
    r = httpx.post(f"http://127.0.0.1:{bridge.port}{WX_PATH}/pay", content=b'{"id":"EV-1"}',
                   headers={"Content-Type": "application/json"})
    assert r.status_code == 401 and r.json() == {"code": "FAIL", "message": "signature verification failed"}
    assert bridge.notice_count() == before


# ---------------------------------------------------------------- requests ended or unknown

def test_callbacks_for_ended_unknown_or_foreign_requests_are_recorded_and_logged(bridge, sim):
    from bridge.simulator.wechatpay_wire import callback

    closed = centre_order(bridge)
    done_id = bridge.request(KIND_OUTPATIENT, closed.med_org_ord, state="done")
    order = wechat_order(bridge, closed)
    unknown = centre_order(bridge)                 # no request in the outbox at all
    lost = wechat_order(bridge, unknown)
    order.pay(sim)
    lost.pay(sim)
    settled(sim, order.out_trade_no)
    settled(sim, lost.out_trade_no)
    assert {(r["interface"], r["outbox_id"]) for r in bridge.notices(closed.med_org_ord)} == \
        {(WECHAT_MEDINS, done_id), (WECHAT_TRADE, done_id)}
    assert bridge.state(done_id) == ("done", None)            # recorded, never acted on
    assert {(r["interface"], r["outbox_id"]) for r in bridge.notices(unknown.med_org_ord)} == \
        {(WECHAT_MEDINS, None), (WECHAT_TRADE, None)}
    log = bridge.log()
    assert f"payment {closed.med_org_ord!r}, request #{done_id} (done), closed" in log
    assert f"payment {unknown.med_org_ord!r}, no such request, unknown" in log

    # Another system's number on our merchant, and an event type we do not act on.
    foreign = "OTHER" + new_key().replace("-", "")
    for event_type, resource in (("TRANSACTION.SUCCESS", {"out_trade_no": foreign, "trade_state": "SUCCESS",
                                                          "amount": {"total": 100}}),
                                 ("TRANSACTION.CLOSED", {"out_trade_no": foreign})):
        event_id = "EV-" + new_key()
        body, headers = callback(sim.config, event_type, dict(resource, mchid=sim.config.wechat_mchid),
                                 "transaction", "transaction", "x", event_id=event_id)
        r = httpx.post(f"http://127.0.0.1:{bridge.port}{WX_PATH}/pay", content=body, headers=headers)
        assert r.status_code == 204 and r.content == b""
    rows = bridge.store.query("SELECT interface, business_key FROM mi_notice WHERE notice_key IN (:a, :b)",
                              {"a": foreign, "b": event_id})
    assert sorted(tuple(r) for r in rows) == [("wechat.other", None), ("wechat.trade", None)]
    assert f"out_trade_no {foreign} recorded: no request of ours" in bridge.log()


# ---------------------------------------------------------------- the server

def test_the_callback_endpoint_survives_stalled_clients_and_answers_parallel_posts(bridge, sim):
    from bridge.simulator.wechatpay_wire import callback

    from tests.daemon_http.load import stalled_and_parallel

    otn = keys.out_trade_no(new_key())
    body, headers = callback(sim.config, "TRANSACTION.SUCCESS",
                             {"mchid": sim.config.wechat_mchid, "appid": sim.config.wechat_appid, "out_trade_no": otn,
                              "trade_state": "SUCCESS", "transaction_id": "4200" + "7" * 24,
                              "amount": {"total": 100, "payer_total": 100}},
                             "transaction", "transaction", "支付成功", event_id="EV-" + new_key())
    url = f"http://127.0.0.1:{bridge.port}{WX_PATH}/pay"

    def post(_):
        return httpx.post(url, content=body, headers=headers, timeout=30).status_code
    answers = stalled_and_parallel(bridge.port, WX_PATH + "/pay", post, stalled=100, parallel=50)
    assert answers == [204] * 50
    [row] = [r for r in bridge.notices() if r["notice_key"] == otn]
    assert row["received_count"] == 50                    # one row, every delivery counted


def test_wrong_methods_sizes_and_nesting_get_an_answer_and_a_log_line(bridge):
    base = f"http://127.0.0.1:{bridge.port}"
    r = httpx.get(base + WX_PATH + "/pay")
    assert r.status_code == 405 and r.json()["code"] == "FAIL"
    r = httpx.post(base + WX_PATH + "/pay", content=b"[" * 40 + b"]" * 40)
    assert r.status_code == 400 and r.json() == {"code": "FAIL", "message": "JSON nested too deep"}
    r = httpx.post(base + ALI_PATH + "/notify", content=b"")
    assert (r.status_code, r.text) == (400, "fail")
    r = httpx.post(base + ALI_PATH + "/notify", content=b"a=" + b"x" * 20000)
    assert r.status_code == 413
    log = bridge.log()
    assert "refused (POST only)" in log and "nested deeper than" in log and "empty body" in log
    assert "Traceback" not in log
