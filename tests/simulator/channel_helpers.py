"""Fixtures and builders for the channel tests: a simulator with fast channel settings, a hospital
that verifies every callback with the spec-written client, and the order builders of channels.md."""
from __future__ import annotations

import json
import threading
import time
import uuid
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Optional

import httpx
import pytest

from bridge.simulator import SimulatorConfig, start_simulator

from .channel_client import AlipayClient, WeChatClient, id_digest
from .spec_client import MobilePayClient

ORG = "H44010600001"
CASH_PSN = "44010000000000000003"    # 王小明, resident scheme, no account: 55% fund, the rest cash
ACCT_PSN = "44010000000000000001"    # 张三, account 1000.00: 70% fund, 30% account, no cash


class ChannelHospital:
    """The hospital's callback endpoints. WeChat paths (/wx/...) verify and decrypt with the spec
    client and answer 204, or 401 {"code":"FAIL"}; /ali/... verifies rsaCheckV1 and answers
    `success` or `fail`; /mpc/... (6302) answers 200. Every request is kept with its verdict."""

    def __init__(self) -> None:
        self.received: list[dict] = []
        self.wx: Optional[WeChatClient] = None
        self.ali: Optional[AlipayClient] = None
        self.fail_next: dict[str, int] = {}     # path -> how many requests to answer 500
        self.lock = threading.Lock()
        outer = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status, answer, entry = outer.judge(self.path, dict(self.headers), body)
                with outer.lock:
                    outer.received.append(entry)
                self.send_response(status)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"

    def judge(self, path: str, headers: dict, body: bytes) -> tuple[int, bytes, dict]:
        entry = {"path": path, "headers": headers, "body": body, "ok": False, "resource": None, "envelope": None}
        if self.fail_next.get(path, 0) > 0:
            self.fail_next[path] -= 1
            return 500, b'{"code":"FAIL","message":"busy"}', dict(entry, error="told to fail")
        if path.startswith("/wx/"):
            try:
                env, res = self.wx.open_callback(headers, body)
            except (ValueError, KeyError) as exc:
                return 401, b'{"code":"FAIL","message":"\xe5\xa4\xb1\xe8\xb4\xa5"}', dict(entry, error=str(exc))
            return 204, b"", dict(entry, ok=True, envelope=env, resource=res)
        if path.startswith("/ali/"):
            ok, fields = self.ali.notify_ok(body)
            return 200, (b"success" if ok else b"fail"), dict(entry, ok=ok, resource=fields)
        return 200, b"", dict(entry, ok=True)

    def genuine(self, path: Optional[str] = None) -> list[dict]:
        with self.lock:
            return [e for e in self.received if e["ok"] and (path is None or e["path"] == path)]

    def refused(self, path: Optional[str] = None) -> list[dict]:
        with self.lock:
            return [e for e in self.received if not e["ok"] and (path is None or e["path"] == path)]


def wait_for(predicate, timeout: float = 5.0):
    """Poll until predicate() is truthy (no timing assertion: the deadline only stops a hang)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.02)


@pytest.fixture(scope="session")
def channel_hospital():
    h = ChannelHospital()
    yield h
    h.server.shutdown()


@pytest.fixture(scope="session")
def channel_running(channel_hospital):
    cfg = SimulatorConfig.generate(callback_url=channel_hospital.base + "/mpc/notice", timeout_delay=0.6,
                                   callback_retry_delay=0.05, channel_callback_retry_delay=0.02,
                                   wechat_refund_settle_seconds=0.05, wechat_token_grace_seconds=0)
    sim = start_simulator(cfg)
    creds = sim.client_credentials()
    channel_hospital.wx = WeChatClient(creds["wechatpay"])
    channel_hospital.ali = AlipayClient(creds["alipay"])
    yield sim
    sim.stop()


@pytest.fixture
def csim(channel_running, channel_hospital):
    httpx.post(channel_running.url + "/__sim__/reset").raise_for_status()
    with channel_hospital.lock:
        channel_hospital.received.clear()
    channel_hospital.fail_next = {}
    return channel_running


@pytest.fixture
def wx(csim):
    return WeChatClient(csim.client_credentials()["wechatpay"])


@pytest.fixture
def ali(csim):
    return AlipayClient(csim.client_credentials()["alipay"])


@pytest.fixture
def centre(csim):
    return MobilePayClient(csim.url, csim.client_credentials()["mobilepay"])


def ctl(sim, method: str, path: str, body=None, status: int = 200) -> dict:
    r = httpx.request(method, sim.url + path, json=body)
    assert r.status_code == status, r.text
    return r.json()


def legs(sim, ref: Optional[str] = None) -> dict:
    got = ctl(sim, "GET", "/__sim__/legs")
    return got["total"] if ref is None else got["by_order"].get(ref, {})


def person(sim, psn_no: str) -> dict:
    return next(p for p in ctl(sim, "GET", "/__sim__/persons")["persons"] if p["psn_no"] == psn_no)


def fen(amount) -> int:
    return int(Decimal(str(amount)) * 100)


def rfc3339_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S+08:00")


class CentreOrder:
    """A centre order after 6201 and 6202 (mobilepay.md §7.1), ready for a channel order."""

    def __init__(self, sim, centre: MobilePayClient, psn_no: str, total: str, pay_auth_no: Optional[str] = None):
        self.person = person(sim, psn_no)
        self.psn_no = psn_no
        self.med_org_ord = "M" + uuid.uuid4().hex[:16]
        auth = pay_auth_no or ctl(sim, "POST", "/__sim__/mobilepay/authorize", {"psn_no": psn_no})["payAuthNo"]
        p = self.person
        self.upload = {
            "orgCodg": ORG, "psnNo": psn_no, "insutype": p["insutype"], "medOrgOrd": self.med_org_ord,
            "begntime": "2026-01-01 09:00:00", "idNo": p["certno"], "userName": p["psn_name"], "idType": "01",
            "payAuthNo": auth, "insuCode": p["insuplc_admdvs"], "iptOtpNo": "MZ0001", "deptCode": "01",
            "deptName": "内科", "caty": "A03", "mdtrtId": "", "medType": "11", "feeType": "01",
            "medfeeSumamt": total, "acctUsedFlag": "1", "psnSetlway": "01",
            "chrgBchno": "B" + uuid.uuid4().hex[:10], "pubHospRfomFlag": "0",
            "feedetailList": [{"feedetlSn": "D1", "detItemFeeSumamt": total, "cnt": "1", "pric": total,
                               "medListCodg": "X001", "medinsListCodg": "H001"}]}
        env, out = centre.call("6201", self.upload)
        assert env["code"] == 0, env
        self.pay_ord_id, self.pay_token = out["payOrdId"], out["payToken"]
        self.pay_auth_no = pay_auth_no or ctl(sim, "POST", "/__sim__/mobilepay/authorize",
                                              {"psn_no": psn_no})["payAuthNo"]
        env, split = centre.call("6202", {
            "payAuthNo": self.pay_auth_no, "payOrdId": self.pay_ord_id, "payToken": self.pay_token,
            "orgCodg": ORG, "orgBizSer": "BIZ" + str(time.time_ns()), "mdtrtId": out["mdtrtId"],
            "chrgBchno": self.upload["chrgBchno"], "feeType": "01", "acctUsedFlag": "1"})
        assert env["code"] == 0, env
        self.split = split
        self.fund, self.acct, self.cash = split["fundPay"], split["psnAcctPay"], split["ownPayAmt"]
        self.total = Decimal(total)

    def query(self, centre: MobilePayClient) -> dict:
        return centre.call("6301", {"payOrdId": self.pay_ord_id, "orgCodg": ORG, "payToken": self.pay_token,
                                    "idNo": self.person["certno"], "userName": self.person["psn_name"],
                                    "idType": "01"})[1]

    def refund(self, centre: MobilePayClient, sn: str, kind: str, fund="0.00", acct="0.00", cash="0.00"):
        total = str(Decimal(fund) + Decimal(acct) + Decimal(cash))
        return centre.call("6203", {"payOrdId": self.pay_ord_id, "appRefdSn": sn, "appRefdTime": "20260101120000",
                                    "totlRefdAmt": total, "psnAcctRefdAmt": acct, "fundRefdAmt": fund,
                                    "cashRefdAmt": cash, "payAuthNo": "AUTHX", "refdType": kind})


def prepay(wx: WeChatClient, out_trade_no: str, total_fen: int, openid: str, notify_url: str) -> str:
    status, body = wx.call("POST", "/v3/pay/transactions/jsapi", {
        "appid": wx.c["appid"], "mchid": wx.c["mchid"], "description": "门诊缴费", "out_trade_no": out_trade_no,
        "notify_url": notify_url, "amount": {"total": total_fen, "currency": "CNY"}, "payer": {"openid": openid}})
    assert status == 200, body
    return body["prepay_id"]


def mixed_body(wx: WeChatClient, order: Optional[CentreOrder], out_trade_no: str, callback_url: str,
               prepay_id: Optional[str] = None, mix_type: Optional[str] = None, openid: str = "o-patient-1") -> dict:
    """mobilepay.md §10 / channels.md §2.2 create-order body for a centre order."""
    cash = fen(order.cash) if order else 0
    if mix_type is None:
        mix_type = "CASH_AND_INSURANCE" if cash else "INSURANCE_ONLY"
    body = {"mix_pay_type": mix_type, "order_type": "DIAG_PAY", "appid": wx.c["appid"], "openid": openid,
            "out_trade_no": out_trade_no, "callback_url": callback_url}
    if order is not None:
        p = order.person
        body.update({
            "payer": {"name": wx.encrypt(p["psn_name"]), "id_digest": wx.encrypt(id_digest(p["certno"])),
                      "card_type": "ID_CARD"},
            "pay_for_relatives": False, "serial_no": order.med_org_ord, "pay_order_id": order.pay_ord_id,
            "pay_auth_no": order.pay_auth_no, "geo_location": "113.26,23.13", "city_id": "440100",
            "med_inst_name": "模拟市第一人民医院", "med_inst_no": ORG, "med_ins_order_create_time": rfc3339_now(),
            "total_fee": fen(order.total), "med_ins_gov_fee": fen(order.fund), "med_ins_self_fee": fen(order.acct),
            "med_ins_other_fee": 0, "med_ins_cash_fee": cash, "wechat_pay_cash_fee": cash,
            "passthrough_request_content": json.dumps({"payAuthNo": order.pay_auth_no, "payOrdId": order.pay_ord_id,
                                                       "setlLatlnt": "113.26,23.13"})})
    if prepay_id:
        body["prepay_id"] = prepay_id
    return body


def medins_error_number(r: httpx.Response) -> str:
    return r.headers.get("Request-ID", "").rsplit("-", 1)[-1]


def wechat_paid_order(sim, wx: WeChatClient, centre: MobilePayClient, hospital: ChannelHospital,
                      psn_no: str = CASH_PSN, total: str = "100.00", pay: bool = True) -> dict:
    """A CASH_AND_INSURANCE (or INSURANCE_ONLY) order, created and (optionally) paid."""
    order = CentreOrder(sim, centre, psn_no, total)
    otn = "WX" + uuid.uuid4().hex[:20]
    prepay_id = None
    if order.cash:
        prepay_id = prepay(wx, otn, fen(order.cash), "o-patient-1", hospital.base + "/wx/pay")
    status, mix = wx.call("POST", "/v3/med-ins/orders",
                          mixed_body(wx, order, otn, hospital.base + "/wx/medins", prepay_id),
                          extra_headers={"Wechatpay-Serial": wx.c["platform_serial"]})
    assert status == 200, mix
    if pay:
        cashier = {"mix_trade_no": mix["mix_trade_no"]}
        if prepay_id:
            cashier.update(wx.pay_sign(prepay_id))
        ctl(sim, "POST", "/__sim__/wechat/pay", cashier)
    return {"order": order, "out_trade_no": otn, "mix": mix, "prepay_id": prepay_id}
