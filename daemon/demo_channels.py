"""`mibridge demo`, the patient's channels: one WeChat Pay 医保 mixed payment and one Alipay
payment, each paid in the channel's cashier with what the `order` row carries, taken by the
HIS, then refunded in full, every leg once.

Two pieces, called by daemon/demo.py:

* ``channel_config(platforms, creds, port)`` adds [wechatpay] and [alipay] pointing at the
  simulator, their callbacks served by the daemon on the 6302 listener (loopback URLs: the
  simulator delivers the channels' callbacks there), secrets through the environment as in
  production;
* ``run_channels_demo_part(store, http)`` plays the HIS and the patients and prints what
  the HIS reads (the cashier, the settlement, the refund) and the simulator's ledger per
  leg.  Returns 1 if a leg was charged or refunded other than once, or a request did not
  end done.  The patient messages these payments and refunds add are printed by
  daemon/demo_messages.py with the others.
"""
from __future__ import annotations

import json
import os
import time
from decimal import Decimal
from typing import Callable

import httpx

from bridge.db.store import Store
from bridge.mobilepay.kinds import KIND_OUTPATIENT, KIND_REFUND
from daemon.tables import table

WX_PATH, ALI_PATH = "/mibridge/wechatpay", "/mibridge/alipay"
# The channel payers (a mini-program openid; an Alipay user id) and their payments.
OPENID = "o-demo-patient-channel"
ALIPAY_USER = "2088000000000078"
WX_KEY, ALI_KEY = "INV-W001", "INV-A001"
FINAL = ("done", "failed", "resolved", "held")


def channel_config(platforms: dict, creds: dict, port: int) -> None:
    """[wechatpay] and [alipay] for the simulator; the callbacks on the daemon's 6302 port."""
    wx, ali = creds["wechatpay"], creds["alipay"]
    for name, value in (("MIBRIDGE_DEMO_WX_KEY", wx["merchant_private_key"]),
                        ("MIBRIDGE_DEMO_WX_APIV3", wx["apiv3_key"]),
                        ("MIBRIDGE_DEMO_WX_SECRET", wx["app_secret"]),
                        ("MIBRIDGE_DEMO_ALI_KEY", ali["app_private_key"])):
        os.environ[name] = value
    base = f"http://127.0.0.1:{port}"
    platforms["wechatpay"] = {
        "mchid": wx["mchid"], "appid": wx["appid"], "merchant_serial": wx["merchant_serial"],
        "merchant_private_key_env": "MIBRIDGE_DEMO_WX_KEY", "apiv3_key_env": "MIBRIDGE_DEMO_WX_APIV3",
        "app_secret_env": "MIBRIDGE_DEMO_WX_SECRET",
        "platform_serial": wx["platform_serial"], "platform_public_key": wx["platform_public_key"],
        "base_url": wx["base_url"], "message_base_url": wx["api_base_url"],
        "notify_url": f"{base}{WX_PATH}/pay", "callback_url": f"{base}{WX_PATH}/medins",
        "refund_notify_url": f"{base}{WX_PATH}/refund",
        "callback_listen": f"127.0.0.1:{port}", "callback_path": WX_PATH,
        "med_inst_no": "H44010600001", "med_inst_name": "演示医院", "city_id": "440100", "timeout_seconds": 2.0}
    platforms["alipay"] = {
        "app_id": ali["app_id"], "seller_id": ali["pid"], "app_private_key_env": "MIBRIDGE_DEMO_ALI_KEY",
        "alipay_public_key": ali["alipay_public_key"], "gateway_url": ali["gateway_url"],
        "notify_url": f"{base}{ALI_PATH}/notify", "call_url": f"{base}{ALI_PATH}/notify",
        "callback_listen": f"127.0.0.1:{port}", "callback_path": ALI_PATH,
        "org_no": "H44010600001", "org_app_id": "DEMOAPP1", "merchant_name": "演示医院",
        "payment_city_code": "440100", "timeout_seconds": 2.0}


def _payload(person: dict, amounts: list[str], **channel) -> dict:
    lines = [{"line_no": i, "item_code": f"Y{i:03d}", "item_name": name, "quantity": "1", "price": a, "amount": a}
             for i, (a, name) in enumerate(zip(amounts, ("诊查费", "血常规", "阿莫西林胶囊")), 1)]
    return {"patient_id": f"P{person['psn_no'][-4:]}", "visit_id": f"MZ{person['psn_no'][-4:]}C",
            "id_no": person["certno"], "user_name": person["psn_name"], "psn_no": person["psn_no"],
            "insutype": person["insutype"], "insuplc_admdvs": person["insuplc_admdvs"],
            "dept_code": "A03", "dept_name": "内科", "caty": "A03",
            "total_amount": str(sum(Decimal(a) for a in amounts)), "lines": lines, **channel}


def _inbox(store: Store, key: str) -> dict[str, dict]:
    out = {}
    for rtype, result, total, fund, acct, cash in store.query(
            """SELECT result_type, result_json, total_amount, fund_amount, account_amount, cash_amount
                 FROM mi_inbox WHERE business_key = :k ORDER BY id""", {"k": key}):
        out[rtype] = {"result": json.loads(result) if result else {}, "total": total, "fund": fund,
                      "account": acct, "cash": cash}
    return out


def _pay_in_cashier(http: httpx.Client, result: dict) -> None:
    """The mini-program opens the cashier with the order row's fields; the patient pays."""
    cashier = result["cashier"]
    if result["channel"] == "wechat":
        # wx.requestMedicalInsurancePay({mixTradeNo, timeStamp, nonceStr, package, signType, paySign}):
        # the simulator checks paySign as WeChat would.
        body = {**cashier, "mix_trade_no": cashier["mixTradeNo"]}
        http.post("/__sim__/wechat/pay", json=body).raise_for_status()
    else:
        # The Alipay cashier page at pay_url, for the order out_trade_no names.
        http.post("/__sim__/alipay/pay", json={"out_trade_no": result["out_trade_no"]}).raise_for_status()


def _states(store: Store, keys: list[str]) -> dict[str, tuple]:
    got = {}
    for key, state, code in store.query("SELECT business_key, state, last_error_code FROM mi_outbox", {}):
        if key in keys:
            got[key] = (state, code)
    return got


def _play_his(store: Store, http: httpx.Client, keys: list[str], timeout: float = 60.0) -> dict[str, tuple]:
    """Pay each order row in its cashier, take each settlement, until every request is final."""
    paid: set[str] = set()
    deadline = time.monotonic() + timeout
    while True:
        for iid, key, rtype, result in store.query(
                "SELECT id, business_key, result_type, result_json FROM mi_inbox WHERE consumed_at IS NULL"):
            if key not in keys:
                continue
            if rtype == "order" and key not in paid:
                _pay_in_cashier(http, json.loads(result))
                paid.add(key)
            store.execute("""UPDATE mi_inbox SET consumed_at = strftime('%Y-%m-%d %H:%M:%f','now'),
                                     his_ack = 'accepted' WHERE id = :id AND consumed_at IS NULL""", {"id": iid})
        states = _states(store, keys)
        if all(states.get(k, ("",))[0] in FINAL for k in keys) or time.monotonic() > deadline:
            return states
        time.sleep(0.1)


def _leg_row(key: str, leg: str, x: dict) -> tuple:
    return (key, leg, f"{x['charged']} ({x['charges']}x)", f"{x['refunded']} ({x['refunds']}x)")


def run_channels_demo_part(store: Store, http: httpx.Client, out: Callable[[str], None] = print) -> int:
    persons = {p["psn_name"]: p for p in http.get("/__sim__/persons").json()["persons"]}
    wang = persons["王小明"]         # resident scheme, no personal account: the fund and cash
    # The patients: one allows the "paid" message in the WeChat mini-program; the other
    # authorised 医保 payment in Alipay once, so the HIS gives no payAuthNo (mibridge asks Alipay).
    http.post("/__sim__/wechat/subscribe", json={"openid": OPENID, "template_id": "TPL-DEMO-OUT", "count": 1})
    http.post("/__sim__/alipay/authorize", json={"alipay_user_id": ALIPAY_USER, "psn_no": wang["psn_no"]})
    auth = http.post("/__sim__/mobilepay/authorize", json={"psn_no": wang["psn_no"]}).json()["payAuthNo"]
    payments = [
        (WX_KEY, _payload(wang, ["20.00", "35.50"], pay_auth_no=auth, channel="wechat", openid=OPENID)),
        (ALI_KEY, _payload(wang, ["30.00", "18.00"], channel="alipay", alipay_user_id=ALIPAY_USER)),
    ]
    out("\nThe patient's channels: the HIS enqueues one WeChat Pay 医保 and one Alipay payment "
        "(the Alipay one without pay_auth_no)")
    for key, doc in payments:
        store.enqueue(KIND_OUTPATIENT, key, doc)
    states = _play_his(store, http, [WX_KEY, ALI_KEY])
    rows = []
    for key, _ in payments:
        order = _inbox(store, key).get("order", {}).get("result", {})
        cashier = order.get("cashier", {})
        shown = ", ".join(f"{k}={(v[:16] + '…') if len(v) > 17 else v}" for k, v in cashier.items())
        rows.append((key, order.get("channel", ""), order.get("out_trade_no", ""), shown))
    out("\nThe `order` rows: what the mini-program opens the cashier with")
    out(table(rows, ["business key", "channel", "out_trade_no", "cashier"], wrap={3: 70}))

    refunds = {"RF-W001": WX_KEY, "RF-A001": ALI_KEY}
    for rkey, pkey in refunds.items():
        if states.get(pkey, ("",))[0] == "done":
            store.enqueue(KIND_REFUND, rkey, {"payment_key": pkey, "reason": "患者取消就诊"}, serial_key=pkey)
    states.update(_play_his(store, http, list(refunds)))

    rows = []
    for key in (WX_KEY, ALI_KEY, *refunds):
        for rtype, r in _inbox(store, key).items():
            if rtype not in ("settlement", "refund"):
                continue
            res = r["result"]
            numbers = " ".join(f"{k}={res[k]}" for k in ("mix_trade_no", "transaction_id", "trade_no",
                                                           "out_refund_no") if res.get(k))
            how = res.get("confirmed_by") or (f"insurance by {res.get('insurance_refunded_by') or '-'}, "
                                              f"cash by {res.get('cash_refunded_by') or '-'}")
            rows.append((key, rtype, res.get("channel", ""), r["total"], r["fund"], r["account"], r["cash"],
                         how, numbers))
    out("\nSettlements and refunds (what the HIS reads back):")
    out(table(rows, ["business key", "type", "channel", "total", "fund", "account", "cash", "how", "channel numbers"],
              align="lllrrrr", wrap={8: 40}))

    legs_all = http.get("/__sim__/legs").json()["by_order"]
    rows, wrong = [], []
    for key, channel in ((WX_KEY, "wechat"), (ALI_KEY, "alipay")):
        settled = _inbox(store, key).get("settlement")
        if settled is None:
            wrong.append(f"{key}: not settled")
            continue
        legs = legs_all.get(settled["result"]["payOrdId"], {})
        for leg, x in (("fund", legs.get("fund")), ("account", legs.get("acct")),
                       (f"cash ({channel})", (legs.get("cash") or {}).get(channel))):
            if x and x["charges"]:
                rows.append(_leg_row(key, leg, x))
                if (x["charges"], x["refunds"]) != (1, 1) or Decimal(x["charged"]) != Decimal(x["refunded"]):
                    wrong.append(f"{key} {leg}: charged {x['charged']} ({x['charges']}x), refunded "
                                 f"{x['refunded']} ({x['refunds']}x)")
    out("\nThe simulator's ledger, leg by leg (each charged once and refunded once):")
    out(table(rows, ["business key", "leg", "charged", "refunded"], align="llrr"))
    mix = (_inbox(store, WX_KEY).get("settlement") or {}).get("result", {}).get("mix_trade_no")
    told = [n for n in http.get("/__sim__/wechat/state").json()["med_refund_notices"] if n["mix_trade_no"] == mix]
    out(f"WeChat told of the insurance refund (/v3/med-ins/refunds/notify): {len(told)} time(s)")
    not_done = {k: v for k, v in states.items() if v[0] != "done"}
    if not_done:
        wrong.append(f"not done: {not_done}")
    if len(told) != 1:
        wrong.append("the WeChat insurance refund notify was not sent once")
    out(f"Channel legs not exactly once: {wrong or 'none'}")
    return 1 if wrong else 0
