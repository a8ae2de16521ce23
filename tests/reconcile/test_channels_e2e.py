"""Mobile pay against the channels' bills, end to end on SQLite, PostgreSQL and MariaDB.

The WeChat and Alipay *flows* are being written elsewhere, so the payments here are made in the
simulator's channels directly (its spec-written test clients: tests/simulator/channel_helpers.py),
and the order book gets the rows the Store would write for them: each payment's settlement row,
with the `result` keys the channel flows will add (channel, out_trade_no, mix_trade_no), and
each refund's row.  Then the real reconciliation downloads the real bills (WeChat gzip CSV with
backticks, Alipay GBK zip) with the product clients and asks the centre (6301) about each order.
Injected bill mismatches (drop, amount, extra_refund) show with their class and amounts.
"""
from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from decimal import Decimal

import httpx
import pytest

from bridge.alipay.client import AlipayClient as ProductAlipay
from bridge.alipay.config import AlipayConfig
from bridge.db.store import InboxRow, Store
from bridge.mobilepay.client import MobilePayClient as ProductCentre
from bridge.mobilepay.config import MobilePayConfig
from bridge.reconcile.channels import AlipayBills, WeChatBills
from bridge.reconcile.mobilepay import MobilePayReconciler
from bridge.reconcile.runner import Reconciliation
from bridge.reconcile.settings import ReconcileSettings
from bridge.simulator import SimulatorConfig, start_simulator
from bridge.wechatpay.client import WechatPayClient
from bridge.wechatpay.config import WechatPayConfig
from tests.conftest import DIALECTS, make_database
from tests.simulator.channel_client import AlipayClient as SpecAlipay
from tests.simulator.channel_client import WeChatClient as SpecWeChat
from tests.simulator.channel_helpers import CASH_PSN, ORG, CentreOrder, ctl, fen, wechat_paid_order
from tests.simulator.spec_client import MobilePayClient as SpecCentre
from tests.simulator.test_alipay import authorised_order, create_payment

from .helpers import claim_row

D = Decimal


@dataclass
class Nowhere:
    """Callbacks go nowhere: the bills, not the notices, are under test."""
    base: str = "http://127.0.0.1:9"


@pytest.fixture(scope="module")
def channels():
    cfg = SimulatorConfig.generate(wechat_refund_settle_seconds=0.0, channel_callback_attempts=1,
                                   callback_attempts=1)
    running = start_simulator(cfg)
    creds = running.client_credentials()
    yield running, creds
    running.stop()


def _product_clients(creds: dict):
    w, a, m = creds["wechatpay"], creds["alipay"], creds["mobilepay"]
    wx = WechatPayClient(WechatPayConfig(mchid=w["mchid"], appid=w["appid"], merchant_serial=w["merchant_serial"],
                                         merchant_private_key=w["merchant_private_key"], apiv3_key=w["apiv3_key"],
                                         platform_public_key=w["platform_public_key"],
                                         platform_serial=w["platform_serial"], base_url=w["base_url"]))
    ali = ProductAlipay(AlipayConfig(app_id=a["app_id"], app_private_key=a["app_private_key"],
                                     alipay_public_key=a["alipay_public_key"], gateway_url=a["gateway_url"]))
    centre = ProductCentre(MobilePayConfig(base_url=m["base_url"], app_id=m["app_id"], app_secret=m["app_secret"],
                                           org_private_key=m["institution_private_key"],
                                           platform_public_key=m["platform_public_key"], org_codg=ORG))
    return wx, ali, centre


def _book(store: Store, order: CentreOrder, key: str, channel: str, otn: str, mix: str = "") -> str:
    """What the Store writes for a channel payment: the settlement row (with the keys the
    channel flows add), the payment's payToken in mi_secret, the patient in its request."""
    row, owner = claim_row(store, "mobilepay.outpatient", key, {
        "total_amount": str(order.total), "id_no": order.person["certno"], "user_name": order.person["psn_name"]})
    store.finish(row, owner, "done", {}, [InboxRow(
        "settlement", "ok", order_id=order.pay_ord_id, settlement_id=order.pay_ord_id, total_amount=order.total,
        fund_amount=D(order.fund), account_amount=D(order.acct), cash_amount=D(order.cash),
        result={"channel": channel, "out_trade_no": otn, "mix_trade_no": mix or None,
                "traceTime": time.strftime("%Y%m%d%H%M%S")})], secrets={"payToken": order.pay_token},
        keep_secrets=("payToken",))
    return order.pay_ord_id


def _book_refund(store: Store, payment_key: str, pay_ord_id: str, cash: str, out_refund_no: str) -> None:
    row, owner = claim_row(store, "mobilepay.refund", f"RF-{out_refund_no}", {"payment_key": payment_key},
                           serial=payment_key)
    store.finish(row, owner, "done", {}, [InboxRow(
        "refund", "ok", order_id=pay_ord_id, settlement_id=out_refund_no, total_amount=D(cash),
        fund_amount=D("0.00"), account_amount=D("0.00"), cash_amount=D(cash),
        result={"out_refund_no": out_refund_no, "refund_time": time.strftime("%Y-%m-%d %H:%M:%S")})])


@pytest.fixture(scope="module", params=DIALECTS)
def day(request, channels, tmp_path_factory):
    running, creds = channels
    httpx.post(running.url + "/__sim__/reset").raise_for_status()
    url, drop = make_database(request.param, tmp_path_factory.mktemp(f"ch-{request.param}"))
    store = Store(url)
    spec_wx, spec_ali, spec_centre = SpecWeChat(creds["wechatpay"]), SpecAlipay(creds["alipay"]), \
        SpecCentre(running.url, creds["mobilepay"])
    made = {"wechat": [], "alipay": []}
    for n, total in enumerate(("100.00", "80.00", "45.50")):
        got = wechat_paid_order(running, spec_wx, spec_centre, Nowhere(), psn_no=CASH_PSN, total=total)
        key = f"WX{n}-{uuid.uuid4().hex[:6]}"
        pay = _book(store, got["order"], key, "wechat", got["out_trade_no"], got["mix"]["mix_trade_no"])
        made["wechat"].append((key, pay, got))
    for n, total in enumerate(("60.00", "33.30")):
        order = authorised_order(running, spec_ali, spec_centre, CASH_PSN, total)
        created = create_payment(spec_ali, order, Nowhere())
        otn = created["biz"]["out_trade_no"]
        ctl(running, "POST", "/__sim__/alipay/pay", {"out_trade_no": otn})
        key = f"AL{n}-{uuid.uuid4().hex[:6]}"
        made["alipay"].append((key, _book(store, order, key, "alipay", otn), {"order": order, "out_trade_no": otn}))
    # A cash refund in each channel, as the refund flows make it (6203 CASH for the centre's
    # books, then the channel gives the cash back), booked as they will book it.
    key, pay, got = made["wechat"][0]
    assert got["order"].refund(spec_centre, "MPRF-W1", "CASH", cash="5.00")[0]["code"] == 0
    status, body = spec_wx.call("POST", "/v3/refund/domestic/refunds", {
        "out_trade_no": got["out_trade_no"], "out_refund_no": "WXRF1",
        "amount": {"refund": 500, "total": fen(got["order"].cash), "currency": "CNY"}})
    assert status == 200, body
    _book_refund(store, key, pay, "5.00", "WXRF1")
    key, pay, got = made["alipay"][0]
    assert got["order"].refund(spec_centre, "MPRF-A1", "CASH", cash="7.00")[0]["code"] == 0
    r = spec_ali.call("alipay.trade.refund", {"out_trade_no": got["out_trade_no"], "refund_amount": "7.00",
                                              "out_request_no": "ALRF1"})
    assert r.get("code") == "10000", r
    _book_refund(store, key, pay, "7.00", "ALRF1")
    today = time.strftime("%Y-%m-%d")
    ctl(running, "POST", "/__sim__/bills/close", {"channel": "all", "date": today})
    wx, ali, centre = _product_clients(creds)
    settings = ReconcileSettings(call_retry_seconds=0.1, page_size=2, centre_workers=2)
    rec = Reconciliation(lambda: Store(url), settings,
                         {"mobilepay": MobilePayReconciler(centre, [WeChatBills(wx), AlipayBills(ali)])})
    yield {"store": store, "rec": rec, "made": made, "day": today, "sim": running, "url": url}
    for c in (wx, ali, centre):
        c.close()
    store.close()
    drop()


def _view(store: Store, day: str) -> dict:
    rows = store.query("""SELECT order_key, leg, diff_class, hospital_amount, platform_amount, channel_amount
                            FROM mi_v_reconciliation WHERE recon_day = :d AND platform = 'mobilepay'""", {"d": day})
    q = lambda v: None if v is None else D(str(v)).quantize(D("0.01"))  # noqa: E731
    return {(r[0], r[1]): (r[2], q(r[3]), q(r[4]), q(r[5])) for r in rows}


def test_a_clean_day_balances_against_the_centre_and_both_bills(day):
    result = day["rec"].run(day["day"], "mobilepay")
    assert result.state == "done", result.error
    view = _view(day["store"], day["day"])
    assert {k: v[0] for k, v in view.items() if v[0] != "balanced"} == {}
    orders = [(pay, got) for ch in ("wechat", "alipay") for _, pay, got in day["made"][ch]]
    for pay, got in orders:
        assert {leg for (k, leg) in view if k == pay} == {"total", "fund", "account", "cash", "channel"}
    wx_pay, wx_got = day["made"]["wechat"][0][1:]
    cash = D(wx_got["order"].cash)
    assert view[(wx_pay, "channel")] == ("balanced", cash - D("5.00"), None, cash - D("5.00"))
    assert view[(wx_pay, "cash")][1:3] == (cash - D("5.00"), cash - D("5.00"))    # ordStas 10: partly refunded
    al_pay, al_got = day["made"]["alipay"][0][1:]
    assert view[(al_pay, "channel")][0] == "balanced" and view[(al_pay, "channel")][3] == D(al_got["order"].cash) - 7
    assert result.balanced and result.counts["balanced"] == len(view)
    bills = day["store"].query("SELECT channel, COUNT(*) FROM mi_channel_bill WHERE run_id = :r GROUP BY channel",
                               {"r": result.run_id})
    assert {r[0]: int(r[1]) for r in bills} == {"wechat": 4, "alipay": 3}


def test_bill_mismatches_show_with_their_class(day):
    sim, store = day["sim"], day["store"]
    (_, wx0, g0), (_, wx1, g1), _ = day["made"]["wechat"]
    (_, al1, a1) = day["made"]["alipay"][1]
    for body in ({"channel": "wechat", "kind": "drop", "out_trade_no": g1["out_trade_no"]},
                 {"channel": "wechat", "kind": "amount", "out_trade_no": g0["out_trade_no"], "delta": "0.01"},
                 {"channel": "alipay", "kind": "extra_refund", "out_trade_no": a1["out_trade_no"], "delta": "2.00"}):
        ctl(sim, "POST", "/__sim__/bills/mismatch", dict(body, date=day["day"]))
    result = day["rec"].run(day["day"], "mobilepay")
    assert result.state == "done", result.error
    assert result.balanced is False
    view = _view(store, day["day"])
    diffs = {k: v for k, v in view.items() if v[0] != "balanced"}
    cash0, cash1, cash_a1 = D(g0["order"].cash), D(g1["order"].cash), D(a1["order"].cash)
    assert diffs == {
        (wx1, "channel"): ("hospital_only", cash1, None, None),                       # dropped from the bill
        (wx0, "channel"): ("amount_differs", cash0 - 5, None, cash0 - 5 + D("0.01")),  # paid 0.01 more
        (al1, "channel"): ("amount_differs", cash_a1, None, cash_a1 - 2)}             # a refund nobody asked for
    # Re-running the same day: the same rows, and no second report for the HIS.
    reports = store.query("SELECT COUNT(*) FROM mi_outbox WHERE kind = 'reconciliation.report'")[0][0]
    again = day["rec"].run(day["day"], "mobilepay")
    assert again.state == "done" and not again.reported
    assert _view(store, day["day"]) == view
    assert store.query("SELECT COUNT(*) FROM mi_outbox WHERE kind = 'reconciliation.report'")[0][0] == reports


def test_a_bill_row_the_book_does_not_know_is_only_at_the_channel(day):
    """A payment made in WeChat whose settlement never reached the order book."""
    running, store = day["sim"], day["store"]
    got = wechat_paid_order(running, SpecWeChat(running.client_credentials()["wechatpay"]),
                            SpecCentre(running.url, running.client_credentials()["mobilepay"]), Nowhere(),
                            psn_no=CASH_PSN, total="21.00")
    ctl(running, "POST", "/__sim__/bills/close", {"channel": "wechat", "date": day["day"]})
    result = day["rec"].run(day["day"], "mobilepay")
    assert result.state == "done", result.error
    view = _view(store, day["day"])
    assert view[(got["out_trade_no"], "channel")] == ("channel_only", None, None, D(got["order"].cash))
