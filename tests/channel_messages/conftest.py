"""A real daemon per database with [wechatpay] and [alipay] (message templates, the callback
endpoints), the simulator over HTTP as both channels and the centre; the HIS side adds the
patient.message requests exactly as a payment flow's transition does (the same INSERT ...
WHERE NOT EXISTS, bridge/db/store.py), and reads what the simulator recorded."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import httpx
import pytest

from bridge.alipay.client import AlipayClient
from bridge.channels.patient_messages import KIND_MESSAGE, message_request
from bridge.db.rows import NewRequest
from bridge.db.store import Store
from bridge.simulator import SimulatorConfig, start_simulator
from bridge.wechatpay.client import WechatPayClient
from daemon.config import load
from daemon.platforms_channels import alipay_parts, wechatpay_parts
from tests.channel_callbacks.conftest import HTTP, Bridge, _wait_listening, channel_toml, ctl, free_port, wait_for
from tests.conftest import DIALECTS, make_database
from tests.engine.daemonproc import DaemonProcess
from tests.simulator.spec_client import MobilePayClient

PATIENT = "欧阳娜娜"
TPL_REG, TPL_OUT, ATPL_OUT = "TPL-REG-1", "TPL-OA-OUT-1", "ATPL-OUT-1"
FINAL = ("done", "failed", "held", "resolved")


def templates_toml(sim, keydir: Path) -> dict:
    """registration_paid: a mini-program subscribe message; outpatient_paid: an official-account
    template message on WeChat and a template message on Alipay; refund_done: none."""
    from tests.channel_callbacks.conftest import write_secret

    wx = sim.client_credentials()["wechatpay"]
    return {"official_appid": wx["oa_appid"],
            "official_app_secret_file": write_secret(keydir / "wx_oa_secret", wx["oa_secret"])}


TEMPLATES = """
[wechatpay.templates.registration_paid]
template_id = "TPL-REG-1"
page = "pages/reg/detail"
fields = { thing1 = "patient_name", amount2 = "amount", time3 = "paid_time" }

[wechatpay.templates.outpatient_paid]
template_id = "TPL-OA-OUT-1"
kind = "official"
page = "pages/bill/detail"
fields = { keyword1 = "patient_name", keyword2 = "amount" }

[alipay.templates.outpatient_paid]
template_id = "ATPL-OUT-1"
page = "pages/bill/detail"
fields = { keyword1 = "patient_name", keyword2 = "amount" }
"""


@pytest.fixture(scope="session")
def msim():
    cfg = SimulatorConfig.generate(timeout_delay=0.6, callback_retry_delay=0.05, channel_callback_retry_delay=0.05,
                                   wechat_refund_settle_seconds=0.05)
    sim = start_simulator(cfg)
    yield sim
    sim.stop()


def daemon_toml(sim, port: int, tmp: Path) -> str:
    return channel_toml(sim, port, tmp, wechat=templates_toml(sim, tmp)) + TEMPLATES + HTTP


def start_bridge(dialect: str, sim, tmp: Path, url: str, name: str = "msg", crash_at: Optional[str] = None,
                 port: Optional[int] = None) -> Bridge:
    port = port or free_port()
    toml = daemon_toml(sim, port, tmp)
    daemon = DaemonProcess(tmp, url, None, name=name, workers=2, lease=3.0, extra=toml, crash_at=crash_at)
    cfg_path = tmp / f"{name}-clients.toml"
    cfg_path.write_text('[database]\nurl = "sqlite:///unused.db"\n' + toml)
    cfg = load(cfg_path)
    wx, ali = wechatpay_parts(cfg), alipay_parts(cfg)
    b = Bridge(dialect, Store(url), daemon, port, sim, WechatPayClient(wx.client), AlipayClient(ali.client),
               MobilePayClient(sim.url, sim.client_credentials()["mobilepay"]))
    if crash_at is None:
        _wait_listening(port, daemon)
    return b


def stop_bridge(b: Bridge, expect_rc: Optional[int] = 0) -> None:
    b.wechat.close()
    b.alipay.close()
    rc = b.daemon.terminate() if b.daemon.proc.poll() is None else b.daemon.proc.returncode
    b.store.close()
    if expect_rc is not None:
        assert rc == expect_rc, b.daemon.tail()


# One daemon per database for the whole package (starting one costs seconds).
@pytest.fixture(scope="package", params=DIALECTS)
def mbridge(request, msim, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(f"msg-{request.param}")
    url, drop = make_database(request.param, tmp)
    b = start_bridge(request.param, msim, tmp, url)
    try:
        yield b
    finally:
        httpx.delete(msim.url + "/__sim__/faults")
        try:
            stop_bridge(b)
        finally:
            drop()


# ---------------------------------------------------------------- the HIS side

def add(store: Store, req: NewRequest) -> None:
    """Add a request exactly as a transition's ``enqueue=[...]`` does (one statement per
    request; nothing is added when one of that kind and business key exists)."""
    for sql, params in store._enqueue_statements([req]):
        store.execute(sql, params)


def message(event: str, source_outbox_id: int, channel: str = "wechat", **recipient) -> NewRequest:
    recipient = recipient or ({"openid": "o-unused"} if channel == "wechat" else {"user_id": "2088000000000001"})
    return message_request(event, channel=channel, source_kind="mobilepay.outpatient",
                           source_key=f"INV-{source_outbox_id}",
                           source_outbox_id=source_outbox_id, recipient=recipient,
                           values={"patient_name": PATIENT, "amount": "36.50", "paid_time": "2026-01-05 09:30"})


def subscribe(sim, openid: str, template_id: str = TPL_REG, count: int = 5) -> None:
    ctl(sim, "POST", "/__sim__/wechat/subscribe", {"openid": openid, "template_id": template_id, "count": count})


def wechat_sent(sim, touser: str) -> list[dict]:
    return [m for m in ctl(sim, "GET", "/__sim__/wechat/messages")["sent"] if m["touser"] == touser]


def alipay_sent(sim, user_id: str) -> list[dict]:
    return [m for m in ctl(sim, "GET", "/__sim__/alipay/state")["sent_messages"] if m["to_user_id"] == user_id]


def rows(store: Store, kind: str = KIND_MESSAGE) -> dict[str, dict]:
    out = {}
    for key, state, code, fd, oid in store.query(
            "SELECT business_key, state, last_error_code, flow_data, id FROM mi_outbox WHERE kind = :k", {"k": kind}):
        out[key] = {"state": state, "code": code, "data": json.loads(fd) if fd else {}, "id": int(oid)}
    return out


def final(store: Store, keys: list[str], kind: str = KIND_MESSAGE, timeout: float = 20.0) -> dict[str, dict]:
    def done():
        got = rows(store, kind)
        return got if all(k in got and got[k]["state"] in FINAL for k in keys) else None
    return wait_for(done, timeout, f"{kind} rows {keys} final")


def inbox(store: Store, outbox_id: int) -> list[tuple]:
    return [(r[0], r[1], r[2], json.loads(r[3]) if r[3] else {}) for r in store.query(
        "SELECT result_type, outcome, error_code, result_json FROM mi_inbox WHERE outbox_id = :i ORDER BY id",
        {"i": outbox_id})]


def journal(store: Store, outbox_id: int) -> list[tuple]:
    return [tuple(r) for r in store.query(
        "SELECT interface, outcome, request_masked FROM mi_journal WHERE outbox_id = :i ORDER BY id", {"i": outbox_id})]
