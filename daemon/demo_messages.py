"""`mibridge demo`, patient messages: the success messages the channels sent, and the ones
they did not.

Two pieces, called by daemon/demo.py:

* ``message_config(platforms, creds)`` adds the message templates (and, when the demo has
  no channel section yet, a minimal [wechatpay] / [alipay] pointing at the simulator, its
  secrets through the environment as in production);
* ``run_messages_demo_part(store, sim_url, out)`` plays the patients (one subscribes to the
  registration message in the mini-program, one does not), makes sure each demo event has
  its patient.message request (a payment flow adds them when the HIS takes a settlement or
  a refund completes; the demo adds the ones its payments did not, with the same builder,
  twice, as a repeated transition would), waits until they are final, and prints what
  mibridge did and what the simulator recorded.  Returns 1 if an event was messaged twice.
"""
from __future__ import annotations

import json
import os
import time
from typing import Callable

import httpx

from bridge.channels.patient_messages import KIND_MESSAGE, message_request
from bridge.db.store import Store
from bridge.masking import mask_name
from daemon.tables import table

OPENID_YES, OPENID_NO = "o-demo-patient-wang", "o-demo-patient-sun"
ALIPAY_USER = "2088000000000077"
TEMPLATES = {
    "wechatpay": {
        "registration_paid": {"template_id": "TPL-DEMO-REG", "page": "pages/registration/detail",
                              "fields": {"thing1": "patient_name", "thing2": "dept_name", "amount3": "amount",
                                         "time4": "paid_time"}},
        "outpatient_paid": {"template_id": "TPL-DEMO-OUT", "page": "pages/bill/detail",
                            "fields": {"thing1": "patient_name", "amount2": "amount", "time3": "paid_time"}},
    },
    "alipay": {
        "outpatient_paid": {"template_id": "ATPL-DEMO-OUT", "page": "pages/bill/detail",
                            "fields": {"keyword1": "patient_name", "keyword2": "amount", "keyword3": "paid_time"}},
        "refund_done": {"template_id": "ATPL-DEMO-REF", "page": "pages/refund/detail",
                        "fields": {"keyword1": "patient_name", "keyword2": "amount", "keyword3": "refund_time"}},
    },
}


def message_config(platforms: dict, creds: dict) -> None:
    """The demo's message templates, in the channel sections (created when missing)."""
    wx, ali = creds["wechatpay"], creds["alipay"]
    if "wechatpay" not in platforms:
        for name, value in (("MIBRIDGE_DEMO_WX_KEY", wx["merchant_private_key"]),
                            ("MIBRIDGE_DEMO_WX_APIV3", wx["apiv3_key"]),
                            ("MIBRIDGE_DEMO_WX_SECRET", wx["app_secret"])):
            os.environ[name] = value
        platforms["wechatpay"] = {
            "mchid": wx["mchid"], "appid": wx["appid"], "merchant_serial": wx["merchant_serial"],
            "merchant_private_key_env": "MIBRIDGE_DEMO_WX_KEY", "apiv3_key_env": "MIBRIDGE_DEMO_WX_APIV3",
            "platform_serial": wx["platform_serial"], "platform_public_key": wx["platform_public_key"],
            "base_url": wx["base_url"], "message_base_url": wx["api_base_url"],
            "notify_url": "https://pay-notify.demo.invalid/wx/pay",
            "callback_url": "https://pay-notify.demo.invalid/wx/medins",
            "refund_notify_url": "https://pay-notify.demo.invalid/wx/refund",
            "med_inst_no": "H44010600001", "med_inst_name": "演示医院", "city_id": "440100", "timeout_seconds": 2.0}
    if "alipay" not in platforms:
        os.environ["MIBRIDGE_DEMO_ALI_KEY"] = ali["app_private_key"]
        platforms["alipay"] = {
            "app_id": ali["app_id"], "app_private_key_env": "MIBRIDGE_DEMO_ALI_KEY",
            "alipay_public_key": ali["alipay_public_key"], "gateway_url": ali["gateway_url"],
            "notify_url": "https://pay-notify.demo.invalid/alipay",
            "call_url": "https://pay-notify.demo.invalid/alipay",
            "org_no": "H44010600001", "timeout_seconds": 2.0}
    if not platforms["wechatpay"].get("app_secret_env") and not platforms["wechatpay"].get("app_secret_file"):
        os.environ["MIBRIDGE_DEMO_WX_SECRET"] = wx["app_secret"]
        platforms["wechatpay"]["app_secret_env"] = "MIBRIDGE_DEMO_WX_SECRET"
    for section, templates in TEMPLATES.items():
        platforms[section].setdefault("templates", {}).update(templates)


def _add(store: Store, req) -> None:
    """As a transition's enqueue=[...] adds it: nothing when the event has its request."""
    for sql, params in store._enqueue_statements([req]):
        store.execute(sql, params)


def _source(store: Store, key: str):
    rows = store.query("SELECT id, kind FROM mi_outbox WHERE business_key = :k ORDER BY id", {"k": key})
    return (int(rows[0][0]), rows[0][1]) if rows else (None, None)


def run_messages_demo_part(store: Store, sim_url: str, out: Callable[[str], None] = print) -> int:
    http = httpx.Client(base_url=sim_url, timeout=10)
    try:
        # The patient ticks "always allow" in the mini-program's subscribe dialog (the demo's
        # second patient never subscribed).
        http.post("/__sim__/wechat/subscribe", json={"openid": OPENID_YES, "template_id": "TPL-DEMO-REG",
                                                     "count": -1})
        values = {"patient_name": "王小明", "dept_name": "内科", "amount": "12.00", "paid_time": "2026-01-05 09:30"}
        wanted = [  # (source business key, event, channel, recipient)
            ("REG-2001", "registration_paid", "wechat", {"openid": OPENID_YES}),
            ("INV-1001", "outpatient_paid", "alipay", {"user_id": ALIPAY_USER}),
            ("INV-1003", "outpatient_paid", "wechat", {"openid": OPENID_NO}),
            ("RF-3001", "refund_done", "wechat", {"openid": OPENID_YES}),       # no template configured
        ]
        for key, event, channel, recipient in wanted:
            oid, kind = _source(store, key)
            if oid is None:
                continue
            req = message_request(event, channel=channel, source_kind=kind, source_key=key, source_outbox_id=oid,
                                  recipient=recipient, values=values)
            _add(store, req)
            _add(store, req)                     # the event's transition again: nothing new
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and store.query(
                "SELECT COUNT(*) FROM mi_outbox WHERE kind = :k AND state NOT IN ('done', 'failed', 'resolved', "
                "'held')", {"k": KIND_MESSAGE})[0][0]:
            time.sleep(0.1)

        out("\nPatient messages (patient.message: one request per event; sent at most once):")
        rows = []
        for oid, key, state, fd, payload in store.query(
                "SELECT id, business_key, state, flow_data, payload FROM mi_outbox WHERE kind = :k ORDER BY id",
                {"k": KIND_MESSAGE}):
            data, p = json.loads(fd or "{}"), json.loads(payload)
            inbox = store.query("SELECT outcome, error_code FROM mi_inbox WHERE outbox_id = :i", {"i": oid})
            rows.append((oid, key, p["channel"], p["source_key"], state, data.get("outcome", ""),
                         " ".join(f"{o}{'/' + c if c else ''}" for o, c in inbox) or "(none)"))
        out(table(rows, ["outbox id", "business key", "channel", "for", "state", "outcome", "HIS inbox row"],
                  align="r"))
        wechat = http.get("/__sim__/wechat/messages").json()["sent"]
        alipay = http.get("/__sim__/alipay/state").json()["sent_messages"]
        sent = [("wechat", m["touser"], m["template_id"], _shown(m["data"])) for m in wechat] + \
               [("alipay", m["to_user_id"], m["user_template_id"], _shown(m["data"])) for m in alipay]
        out("\nMessages the channels delivered (the simulator's record; names masked here):")
        out(table(sent, ["channel", "to", "template", "fields"], wrap={3: 60}))
        per_event: dict = {}
        for _, touser, template, _ in sent:
            per_event[(touser, template)] = per_event.get((touser, template), 0) + 1
        twice = {k: n for k, n in per_event.items() if n > 1}
        out(f"\nMessages sent twice: {twice or 'none'}")
        return 1 if twice else 0
    finally:
        http.close()


# The template keys that carry the patient's name (masked when printed).
NAME_KEYS = {k for section in TEMPLATES.values() for t in section.values() for k, v in t["fields"].items()
             if v == "patient_name"}


def _shown(data: dict) -> str:
    return ", ".join(f"{k}={mask_name(v['value']) if k in NAME_KEYS else v['value']}"
                     for k, v in (data or {}).items())
