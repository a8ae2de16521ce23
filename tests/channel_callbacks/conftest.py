"""A real daemon per database serving the WeChat Pay and Alipay callback endpoints
([wechatpay] and [alipay] on one listener), the simulator over HTTP as both channels and
the centre, and mibridge's own clients (built from the same config file) placing the
orders whose callbacks the simulator then sends to the daemon."""
from __future__ import annotations

import json
import os
import socket
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Optional

import httpx
import pytest

from bridge.alipay.client import AlipayClient
from bridge.alipay.messages import CHINA, MedicalOrderRequest
from bridge.channels import keys
from bridge.db.store import Store
from bridge.simulator import SimulatorConfig, start_simulator
from bridge.wechatpay.client import WechatPayClient
from bridge.wechatpay.messages import (JsapiPrepayRequest, MedInsOrderRequest, MixPayType, OrderType, Person)
from daemon.config import load
from daemon.platforms_channels import alipay_parts, wechatpay_parts
from tests.conftest import DIALECTS, make_database
from tests.engine.daemonproc import DaemonProcess
from tests.simulator.channel_helpers import CASH_PSN, ORG, CentreOrder
from tests.simulator.spec_client import MobilePayClient

WX_PATH = "/mibridge/wechatpay"
ALI_PATH = "/mibridge/alipay"
HTTP = "\n[http]\nchannel_timeout = 5\nmax_body_bytes = 16384\nthreads = 4\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout: float = 15.0, what: str = "condition"):
    """Poll until predicate() is truthy; the deadline only stops a hang (no timing assertion)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def write_secret(path: Path, text: str, mode: int = 0o600) -> str:
    path.write_text(text)
    os.chmod(path, mode)
    return str(path)


def channel_toml(sim, port: int, keydir: Path, wechat: Optional[dict] = None, alipay: Optional[dict] = None) -> str:
    """[wechatpay] and [alipay] for the simulator, callbacks on 127.0.0.1:port; secrets in
    files only the owner can read."""
    creds = sim.client_credentials()
    wx, ali = creds["wechatpay"], creds["alipay"]
    base = f"http://127.0.0.1:{port}"
    w = dict(mchid=wx["mchid"], appid=wx["appid"], merchant_serial=wx["merchant_serial"],
             merchant_private_key_file=write_secret(keydir / "wx_merchant.pem", wx["merchant_private_key"]),
             apiv3_key_file=write_secret(keydir / "wx_apiv3.key", wx["apiv3_key"]),
             app_secret_file=write_secret(keydir / "wx_app_secret", wx["app_secret"]),
             platform_serial=wx["platform_serial"],
             platform_public_key_file=write_secret(keydir / "wx_platform.pem", wx["platform_public_key"], 0o644),
             base_url=wx["base_url"], message_base_url=wx["api_base_url"],
             notify_url=f"{base}{WX_PATH}/pay", callback_url=f"{base}{WX_PATH}/medins",
             refund_notify_url=f"{base}{WX_PATH}/refund", med_inst_no=ORG, med_inst_name="模拟市第一人民医院",
             city_id="440100", timeout_seconds=5.0, callback_listen=f"127.0.0.1:{port}", callback_path=WX_PATH)
    a = dict(app_id=ali["app_id"], seller_id=ali["pid"],
             app_private_key_file=write_secret(keydir / "ali_app.pem", ali["app_private_key"]),
             alipay_public_key=ali["alipay_public_key"], gateway_url=ali["gateway_url"],
             notify_url=f"{base}{ALI_PATH}/notify", call_url=f"{base}{ALI_PATH}/notify", org_no=ORG,
             org_app_id="ORGAPP1", merchant_name="模拟市第一人民医院", payment_city_code="440100",
             timeout_seconds=5.0, callback_listen=f"127.0.0.1:{port}", callback_path=ALI_PATH)
    w.update(wechat or {})
    a.update(alipay or {})
    lines = ["", "[wechatpay]"] + [f"{k} = {json.dumps(v)}" for k, v in w.items()]
    lines += ["", "[alipay]"] + [f"{k} = {json.dumps(v)}" for k, v in a.items()]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="session")
def csim():
    cfg = SimulatorConfig.generate(timeout_delay=0.6, callback_retry_delay=0.05, channel_callback_retry_delay=0.05,
                                   wechat_refund_settle_seconds=0.05)
    sim = start_simulator(cfg)
    yield sim
    sim.stop()


def ctl(sim, method: str, path: str, body=None) -> dict:
    r = httpx.request(method, sim.url + path, json=body, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


@dataclass
class Bridge:
    """One daemon on one database, and the clients the hospital's flows would use."""

    dialect: str
    store: Store
    daemon: DaemonProcess
    port: int
    sim: object
    wechat: WechatPayClient
    alipay: AlipayClient
    centre: MobilePayClient

    # -- the outbox ---------------------------------------------------------------------
    def request(self, kind: str, key: str, state: str = "pending") -> int:
        """A request the callbacks may be about, due only in an hour (a poke makes it due
        now: the daemon, which runs no flow for it, then holds it UNKNOWN_KIND)."""
        d = self.store.dialect
        self.store.execute(f"""INSERT INTO mi_outbox (kind, business_key, serial_key, payload, next_attempt_at)
                               VALUES (:k, :b, :b, '{{}}', {d.after('s')})""",
                           {"k": kind, "b": key, "s": d.seconds(3600)})
        oid = int(self.store.query("SELECT id FROM mi_outbox WHERE kind = :k AND business_key = :b",
                                   {"k": kind, "b": key})[0][0])
        if state != "pending":
            self.store.execute(f"UPDATE mi_outbox SET state = :s, finished_at = {d.now} WHERE id = :id",
                               {"s": state, "id": oid})
        return oid

    def state(self, oid: int) -> tuple:
        return tuple(self.store.query("SELECT state, last_error_code FROM mi_outbox WHERE id = :id",
                                      {"id": oid})[0])

    def notices(self, business_key: Optional[str] = None) -> list[dict]:
        sql = "SELECT interface, notice_key, business_key, outbox_id, notice_json, received_count FROM mi_notice"
        params = {}
        if business_key is not None:
            sql += " WHERE business_key = :b"
            params = {"b": business_key}
        rows = self.store.query(sql + " ORDER BY id", params)
        return [{"interface": r[0], "notice_key": r[1], "business_key": r[2],
                 "outbox_id": None if r[3] is None else int(r[3]), "notice": json.loads(r[4]),
                 "received_count": int(r[5])} for r in rows]

    def notice_count(self) -> int:
        return int(self.store.query("SELECT COUNT(*) FROM mi_notice")[0][0])

    def log(self) -> str:
        return self.daemon.log.read_text(errors="replace") if self.daemon.log.exists() else ""


def _wait_listening(port: int, daemon: DaemonProcess, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if daemon.proc.poll() is not None:
            raise AssertionError(f"daemon exited ({daemon.proc.returncode}):\n{daemon.tail()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"the callback listener on {port} never opened:\n{daemon.tail()}")


@pytest.fixture(scope="module", params=DIALECTS)
def bridge(request, csim, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(f"chcb-{request.param}")
    url, drop = make_database(request.param, tmp)
    port = free_port()
    toml = channel_toml(csim, port, tmp) + HTTP
    daemon = DaemonProcess(tmp, url, None, name="chcb", workers=2, lease=3.0, extra=toml)
    cfg_path = tmp / "clients.toml"
    cfg_path.write_text('[database]\nurl = "sqlite:///unused.db"\n' + toml)
    cfg = load(cfg_path)
    wx, ali = wechatpay_parts(cfg), alipay_parts(cfg)
    b = Bridge(request.param, Store(url), daemon, port, csim, WechatPayClient(wx.client), AlipayClient(ali.client),
               MobilePayClient(csim.url, csim.client_credentials()["mobilepay"]))
    try:
        _wait_listening(port, daemon)
        yield b
    finally:
        httpx.delete(csim.url + "/__sim__/faults")
        b.wechat.close()
        b.alipay.close()
        try:
            assert daemon.terminate() == 0, daemon.tail()
        finally:
            b.store.close()
            drop()


@pytest.fixture
def sim(csim):
    httpx.delete(csim.url + "/__sim__/faults")
    yield csim
    httpx.delete(csim.url + "/__sim__/faults")


def arm(sim, interface: str, fault: str, **kw) -> None:
    ctl(sim, "POST", "/__sim__/faults", {"interface": interface, "fault": fault, **kw})


def deliveries(sim, key: str) -> list[dict]:
    return [d for d in ctl(sim, "GET", "/__sim__/channels/callbacks")["callbacks"] if d["key"] == key]


def settled(sim, key: str, count: int = 1) -> list[dict]:
    """The simulator's deliveries for `key`, once `count` of them are finished (delivered or
    out of attempts)."""
    def done():
        # Idle first, then the log: a log read after an idle answer has every delivery finished
        # (the other order can read a delivery just before its duplicate is sent).
        if not ctl(sim, "GET", "/__sim__/channels/callbacks")["idle"]:
            return None
        ds = deliveries(sim, key)
        finished = [d for d in ds if d["delivered"] or d["attempts"] >= sim.config.channel_callback_attempts]
        return ds if len(finished) >= count else None
    return wait_for(done, 20, f"callbacks for {key}")


def new_key(prefix: str = "INV") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


# ---------------------------------------------------------------- orders with our clients

@dataclass
class WechatOrder:
    key: str
    out_trade_no: str
    mix_trade_no: str
    prepay_id: Optional[str]
    centre: CentreOrder
    client: WechatPayClient

    def pay(self, sim, outcome: str = "success") -> dict:
        body = {"mix_trade_no": self.mix_trade_no, "outcome": outcome}
        body.update(self.client.cashier_params(mix_trade_no=self.mix_trade_no, prepay_id=self.prepay_id))
        return ctl(sim, "POST", "/__sim__/wechat/pay", body)


def centre_order(b: Bridge, total: str = "100.00", psn_no: str = CASH_PSN) -> CentreOrder:
    """6201/6202 at the centre; its medOrgOrd is the payment's business key, as the
    mobile-pay flows make it."""
    return CentreOrder(b.sim, b.centre, psn_no, total)


def wechat_order(b: Bridge, order: CentreOrder) -> WechatOrder:
    """The JSAPI prepay and the mixed order by mibridge's client, with out_trade_no and
    serial_no from bridge/channels/keys.py."""
    key = order.med_org_ord
    otn = keys.out_trade_no(key)
    cash = Decimal(order.cash)
    prepay_id = None
    if cash > 0:
        r = b.wechat.jsapi_prepay(JsapiPrepayRequest(out_trade_no=otn, description="门诊缴费", amount=cash,
                                                     openid="o-patient-1"))
        assert r.ok, r.message
        prepay_id = r.data.prepay_id
    p = order.person
    r = b.wechat.medins_order(MedInsOrderRequest(
        mix_pay_type=MixPayType.CASH_AND_INSURANCE if cash > 0 else MixPayType.INSURANCE_ONLY,
        order_type=OrderType.DIAG_PAY, openid="o-patient-1", payer=Person(name=p["psn_name"], id_number=p["certno"]),
        out_trade_no=otn, serial_no=keys.serial_no(key), total_fee=order.total, med_ins_gov_fee=Decimal(order.fund),
        med_ins_self_fee=Decimal(order.acct), med_ins_cash_fee=cash, wechat_pay_cash_fee=cash,
        pay_order_id=order.pay_ord_id, pay_auth_no=order.pay_auth_no, geo_location="113.26,23.13",
        med_ins_order_create_time=datetime.now(CHINA), prepay_id=prepay_id,
        passthrough_request_content=json.dumps({"payAuthNo": order.pay_auth_no, "payOrdId": order.pay_ord_id,
                                                "setlLatlnt": "113.26,23.13"})))
    assert r.ok, r.message
    return WechatOrder(key, otn, r.data.mix_trade_no, prepay_id, order, b.wechat)


@dataclass
class AlipayOrder:
    key: str
    out_trade_no: str
    centre: CentreOrder

    def pay(self, sim) -> dict:
        return ctl(sim, "POST", "/__sim__/alipay/pay", {"out_trade_no": self.out_trade_no})


def alipay_order(b: Bridge, order: CentreOrder) -> AlipayOrder:
    key = order.med_org_ord
    otn = keys.out_trade_no(key)
    r = b.alipay.medical_order(MedicalOrderRequest(
        med_org_ord=order.med_org_ord, pay_order_id=order.pay_ord_id, pay_auth_no=order.pay_auth_no,
        out_trade_no=otn, total_amount=order.total, gov_amount=Decimal(order.fund),
        account_amount=Decimal(order.acct), real_amount=Decimal(order.cash), alipay_user_id="2088000000000077",
        gmt_out_create=datetime.now(CHINA)))
    assert r.ok, r.message
    return AlipayOrder(key, otn, order)

