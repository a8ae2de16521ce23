"""The channel legs end to end: the simulator over HTTP as the centre AND both channels, a real
daemon with [mobilepay], [wechatpay] and [alipay] on one callback listener, and an "HIS" that
reads the inbox, lets the patient pay each order in the channel's cashier (with exactly what
the `order` row carries), and takes or rejects each settlement."""
from __future__ import annotations

import json
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Optional

import httpx

from bridge.simulator import SimulatorConfig, start_simulator
from tests.channel_callbacks.conftest import ALI_PATH, WX_PATH, channel_toml, write_secret
from tests.mobilepay_flows.harness import (CLIENT_TIMEOUT, FAULT_DELAY, NOTICE_PATH, Bridge, His, MpSim,
                                           free_port, wait_for)

__all__ = ["ChSim", "ChHis", "Bridge", "pay_doc", "wait_for", "WX_PATH", "ALI_PATH", "legs_of", "cash_of"]

OPENID = "o-patient-0001"
ALIPAY_USER = "2088000000000077"


class ChSim(MpSim):
    """MpSim (the centre, its 6302 to the daemon) with both channels, fast channel settings."""

    def __init__(self) -> None:  # noqa: D401 - replaces MpSim's config
        self.port = free_port()
        cfg = SimulatorConfig.generate(
            callback_url=f"http://127.0.0.1:{self.port}{NOTICE_PATH}", timeout_delay=FAULT_DELAY,
            callback_retry_delay=0.1, callback_attempts=3, channel_callback_retry_delay=0.05,
            wechat_refund_settle_seconds=0.05,
            fund_ratios={"310": Decimal("0.70"), "390": Decimal("0.55"), "510": Decimal("1.00"),
                         "399": Decimal("0.00")})
        self.cfg = cfg
        self.running = start_simulator(cfg)
        self.url = self.running.url
        self.creds = self.running.client_credentials()["mobilepay"]
        self.http = httpx.Client(base_url=self.url, timeout=10.0)

    def settings(self, **kw) -> dict:
        return self.control("POST", "/__sim__/channels/settings", kw)

    def legs(self) -> dict:
        return self.control("GET", "/__sim__/legs")

    def callbacks(self) -> dict:
        return self.control("GET", "/__sim__/channels/callbacks")

    def wechat_auth_code(self, openid: str, psn_no: str) -> str:
        """The patient authorises 医保 payment in WeChat: the code the mini-program gets back."""
        return self.control("POST", "/__sim__/wechat/auth_code", {"openid": openid, "psn_no": psn_no})["auth_code"]

    def channel_toml(self, keydir: Path, wechat: Optional[dict] = None, alipay: Optional[dict] = None) -> str:
        wx = self.running.client_credentials()["wechatpay"]
        # The 医保 authorisation exchange (auth code -> payAuthNo, §5) on, as the simulator plays it.
        auth = {"auth_query_url": wx["auth_query_url"], "auth_partner_id": wx["auth_partner_id"],
                "auth_partner_secret_file": write_secret(keydir / "wx_auth_secret", wx["auth_partner_secret"])}
        w = {"timeout_seconds": CLIENT_TIMEOUT, **auth, **(wechat or {})}
        a = {"timeout_seconds": CLIENT_TIMEOUT, **(alipay or {})}
        return channel_toml(self.running, self.port, keydir, w, a)

    # -- the patient --------------------------------------------------------------------
    def pay_in_channel(self, result: dict, outcome: str = "success") -> dict:
        """Pay an order row's cashier as the mini-program would: WeChat with the cashier's
        fields (the simulator checks paySign), Alipay at its pay_url's order."""
        cashier = result["cashier"]
        if result["channel"] == "wechat":
            return self.control("POST", "/__sim__/wechat/pay", {**cashier, "mix_trade_no": cashier["mixTradeNo"],
                                                                "outcome": outcome})
        return self.control("POST", "/__sim__/alipay/pay", {"out_trade_no": result["out_trade_no"],
                                                            "outcome": outcome})


class ChHis(His):
    """The HIS robot: pays channel orders in their cashier (outcomes by business key), else as
    MpSim's His; takes or rejects settlements."""

    def __init__(self, url: str, sim: ChSim):
        super().__init__(url, sim)
        self.outcomes: dict[str, str] = {}      # business key -> the cashier's outcome
        self.cashiers: dict[str, dict] = {}     # business key -> the order row's result

    def _round(self) -> None:
        rows = self.store.query("""SELECT id, business_key, result_type, order_id, result_json FROM mi_inbox
                                    WHERE consumed_at IS NULL ORDER BY id""")
        for row_id, key, rtype, order_id, result in rows:
            if rtype == "order":
                res = json.loads(result) if result else {}
                if key in self.unpaid:
                    self.cashiers.setdefault(key, res)
                    continue
                if key not in self.paid:
                    self.cashiers[key] = res
                    try:
                        if res.get("cashier"):
                            self.sim.pay_in_channel(res, self.outcomes.get(key, "success"))
                        else:
                            self.sim.pay(order_id)
                    except httpx.HTTPStatusError as exc:
                        self.errors.append(f"pay {key}: {exc.response.text}")
                    self.paid[key] = order_id
                self.consume(row_id, "accepted")
            elif rtype == "settlement":
                if key in self.ignores:
                    continue
                self.consume(row_id, "rejected" if key in self.rejects else "accepted")
            else:
                self.consume(row_id, "accepted")


def pay_doc(sim: ChSim, person: dict, amounts=("20.00", "100.00"), channel: Optional[str] = "wechat",
            **extra) -> dict:
    """A payment payload naming its channel (docs/channels.md "For the HIS")."""
    lines = [{"line_no": i + 1, "item_code": f"ITEM{i + 1}", "item_name": f"项目{i + 1}", "quantity": "1",
              "price": a, "amount": a} for i, a in enumerate(amounts)]
    doc = {"patient_id": f"P{person['psn_no'][-6:]}", "visit_id": f"V{uuid.uuid4().hex[:10]}",
           "pay_auth_no": sim.authorize(person["psn_no"]), "id_no": person["certno"],
           "user_name": person["psn_name"], "dept_code": "A03", "dept_name": "内科", "caty": "A03",
           "total_amount": str(sum(Decimal(a) for a in amounts)), "lines": lines,
           "psn_no": person["psn_no"], "insutype": person["insutype"], "insuplc_admdvs": person["insuplc_admdvs"]}
    if channel == "wechat":
        doc.update(channel="wechat", openid=OPENID)
    elif channel == "alipay":
        doc.update(channel="alipay", alipay_user_id=ALIPAY_USER)
    doc.update(extra)
    return {k: v for k, v in doc.items() if v is not None}


def legs_of(sim: ChSim, pay_ord_id: str) -> dict:
    return sim.legs()["by_order"].get(pay_ord_id) or {}


def cash_of(legs: dict, channel: str) -> tuple:
    c = legs["cash"][channel]
    return Decimal(c["charged"]), c["charges"], Decimal(c["refunded"]), c["refunds"]
