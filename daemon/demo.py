"""`mibridge demo`: mibridge end to end on the embedded default, in one process.

Creates a SQLite database file, installs the mi_ tables from
sql/sqlite/install.sql, starts the built-in platform simulator (mobile-pay
centre, offline gateway, face terminal) and the daemon, and plays the HIS:

  * mobile pay: an outpatient bill and a registration fee paid in the
    "mini-program"; one bill whose 6202 answer is lost after the centre booked
    it (the daemon must find it by 6301, not order twice); a bill whose lines do
    not add up (refused, nothing sent); a settlement the HIS rejects (refunded in
    full: 单边账 repair); a partial refund;
  * the patient's channels (daemon/demo_channels.py): one WeChat Pay 医保 mixed payment and
    one Alipay payment paid in the channel's cashier from the `order` row, each refunded in
    full, every leg (fund, cash) once, on the simulator's ledger per leg;
  * face pay: one outpatient settlement with the real personal account;
  * patient messages: the success messages on WeChat and Alipay, one per event
    (daemon/demo_messages.py);
  * before the payment (daemon/demo_identity.py): the region list, a lookup with two
    insurances, the patient's choice written back to mi_identity, a kiosk registration.

Then it prints the inbox, the call journal, the state counts and the
simulator's ledger, and fails if anything was charged twice.
"""
from __future__ import annotations

import json
import os
import socket
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import httpx

from bridge.db.store import Store
from bridge.mobilepay.kinds import KIND_OUTPATIENT, KIND_REFUND, KIND_REGISTRATION
from bridge.simulator import SimulatorConfig, start_simulator
from daemon import dbadmin, logs
from daemon.app import build_daemon
from daemon.config import Config
from daemon.tables import table

NOTICE_PATH = "/mibridge/mobilepay/notify"


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _config(url: str, sim, port: int, msgid_dir: str) -> Config:
    creds = sim.client_credentials()
    mp, off = creds["mobilepay"], creds["offline"]
    # Demo-only secrets, through the environment exactly as in production.
    os.environ["MIBRIDGE_DEMO_MP_SECRET"] = mp["app_secret"]
    os.environ["MIBRIDGE_DEMO_MP_KEY"] = mp["institution_private_key"]
    os.environ["MIBRIDGE_DEMO_GW_SECRET"] = off["secret"]
    code = off["facepay_institutions"][0]
    cfg = Config()
    cfg.database.url = url
    cfg.daemon.workers = 4
    cfg.daemon.poll_interval = 0.1
    cfg.daemon.lease_seconds = 5
    cfg.daemon.recovery_interval = 0.5
    cfg.daemon.retry_base_seconds = 0.2
    cfg.daemon.retry_cap_seconds = 1.0
    cfg.platforms = {
        "mobilepay": {
            "base_url": mp["base_url"], "app_id": mp["app_id"], "app_secret_env": "MIBRIDGE_DEMO_MP_SECRET",
            "org_private_key_env": "MIBRIDGE_DEMO_MP_KEY", "platform_public_key": mp["platform_public_key"],
            "org_codg": mp["org_codes"][0], "timeout_seconds": 1.0, "callback_listen": f"127.0.0.1:{port}",
            "callback_path": NOTICE_PATH, "poll_first_seconds": 0.2, "poll_cap_seconds": 0.5,
            "settle_seconds": 1.6, "his_take_window_seconds": 30, "his_poll_seconds": 0.2},
        "offline": {
            "base_url": off["base_url"], "paas_id": off["paasid"], "paas_secret_env": "MIBRIDGE_DEMO_GW_SECRET",
            "fixmedins_code": code, "fixmedins_name": off["institutions"][code],
            "mdtrtarea_admvs": off["mdtrtarea_admvs"], "union_refund_url": off["unionrefund_url"],
            "operator": "op001", "operator_name": "收费员甲", "read_timeout": 1.0, "connect_timeout": 1.0,
            "msgid_lock_dir": msgid_dir},
        "facepay": {
            "merchant_no": "102440100000004", "terminal_no": "00000143", "isv_no": "123456", "acct_type": "A02",
            "terminal_url": creds["terminal"]["url"], "office_id": "MZ01", "office_name": "门诊收费处",
            "settle_window_seconds": 1.6, "resolve_retry_seconds": 0.3, "his_ack_timeout_seconds": 30,
            "his_ack_poll_seconds": 0.2},
    }
    from daemon.demo_channels import channel_config
    from daemon.demo_identity import identity_config
    from daemon.demo_messages import message_config
    channel_config(cfg.platforms, creds, port)
    message_config(cfg.platforms, creds)
    cfg.platforms.update(identity_config(creds))
    return cfg


def _payment(sim_http: httpx.Client, person: dict, amounts: list[str], **extra) -> dict:
    auth = sim_http.post("/__sim__/mobilepay/authorize", json={"psn_no": person["psn_no"]}).json()["payAuthNo"]
    lines = [{"line_no": i, "item_code": f"Y{i:03d}", "item_name": name, "quantity": "1", "price": a, "amount": a}
             for i, (a, name) in enumerate(zip(amounts, ("诊查费", "血常规", "阿莫西林胶囊")), 1)]
    doc = {"patient_id": f"P{person['psn_no'][-4:]}", "visit_id": f"MZ{person['psn_no'][-4:]}",
           "pay_auth_no": auth, "id_no": person["certno"], "user_name": person["psn_name"],
           "psn_no": person["psn_no"], "insutype": person["insutype"], "insuplc_admdvs": person["insuplc_admdvs"],
           "dept_code": "A03", "dept_name": "内科", "caty": "A03",
           "total_amount": str(sum(Decimal(a) for a in amounts)), "lines": lines}
    doc.update(extra)
    return doc


def run_demo(db_path: str = "mibridge-demo.db", verbose: bool = False) -> int:
    # The daemon's log goes to a file beside the database, so that its warnings (the
    # lost 6202 answer is one, on purpose) stay out of the tables; -v shows it here.
    log_path = str(Path(db_path).with_suffix(".log"))
    Path(log_path).unlink(missing_ok=True)
    logs.setup("INFO", "" if verbose else log_path)
    for suffix in ("", "-wal", "-shm"):
        Path(db_path + suffix).unlink(missing_ok=True)
    url = f"sqlite:///{db_path}"
    print(dbadmin.run("install", url))

    port = _free_port()
    sim = start_simulator(SimulatorConfig.generate(callback_url=f"http://127.0.0.1:{port}{NOTICE_PATH}",
                                                   timeout_delay=1.5, callback_retry_delay=0.1))
    msgid_dir = tempfile.mkdtemp(prefix="mibridge-demo-msgid-")
    daemon = build_daemon(_config(url, sim, port, msgid_dir))
    daemon.start()
    store = Store(url)
    http = httpx.Client(base_url=sim.url, timeout=10)
    try:
        persons = {p["psn_name"]: p for p in http.get("/__sim__/persons").json()["persons"]}
        zhang, wang, sun = persons["张三"], persons["王小明"], persons["孙八"]
        # The centre books the first 6202 it gets and then drops the connection.
        http.post("/__sim__/faults", json={"interface": "6202", "fault": "lost_after_commit", "times": 1})
        requests = [
            (KIND_OUTPATIENT, "INV-1001", None, _payment(http, zhang, ["20.00", "35.50", "64.50"])),
            (KIND_REGISTRATION, "REG-2001", None, _payment(http, wang, ["12.00"])),
            (KIND_OUTPATIENT, "INV-1003", None, _payment(http, sun, ["88.00"])),
            (KIND_OUTPATIENT, "INV-1004", None, {**_payment(http, zhang, ["10.00"]), "total_amount": "11.00"}),
            (KIND_OUTPATIENT, "INV-1005", None, _payment(http, wang, ["40.00", "20.00"])),
            (KIND_REFUND, "RF-3001", "REG-2001", {"payment_key": "REG-2001", "amount": "3.00",
                                                  "reason": "退一项检查"}),
        ]
        print("\nMobile pay: the HIS enqueues")
        enqueued = []
        for kind, key, serial, payload in requests:
            oid = store.enqueue(kind, key, payload, serial_key=serial)
            shown = {k: payload[k] for k in ("total_amount", "payment_key", "amount") if k in payload}
            enqueued.append((oid, kind, key, json.dumps(shown, ensure_ascii=False)))
        print(table(enqueued, ["outbox id", "kind", "business key", "payload (amounts)"], align="r"))
        print("(the first 6202 answer will be lost after the centre booked it; INV-1004's lines do not "
              "add up; the HIS will reject INV-1005's settlement)")

        # The patients pay in the mini-program as their orders appear; the HIS takes
        # each settlement, except INV-1005's, which it rejects.
        paid: set[str] = set()
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            for iid, key, rtype, order_id in store.query(
                    "SELECT id, business_key, result_type, order_id FROM mi_inbox WHERE consumed_at IS NULL"):
                if rtype == "order" and key not in paid:
                    http.post("/__sim__/mobilepay/pay", json={"payOrdId": order_id})
                    paid.add(key)
                ack = "rejected" if (rtype == "settlement" and key == "INV-1005") else "accepted"
                store.execute("""UPDATE mi_inbox SET consumed_at = strftime('%Y-%m-%d %H:%M:%f','now'),
                                         his_ack = :ack WHERE id = :id AND consumed_at IS NULL""",
                              {"id": iid, "ack": ack})
            open_rows = store.query("""SELECT COUNT(*) FROM mi_outbox WHERE kind LIKE 'mobilepay.%'
                                         AND state NOT IN ('done','failed','resolved','held')""")[0][0]
            if open_rows == 0:
                break
            time.sleep(0.1)

        from daemon.demo_channels import run_channels_demo_part
        channels_rc = run_channels_demo_part(store, http)

        from bridge.facepay.demo import run_facepay_demo_part
        print("\nFace-pay: the patient scans their face on the terminal; the HIS enqueues identify, "
              "pre-settle and settle")
        face_rc = run_facepay_demo_part(store, sim.url, out=lambda _line: None)
        # The face-pay table under its own heading, before the next part prints anything.
        rows = store.query("""SELECT i.id, i.outbox_id, o.kind, i.business_key, i.result_type, i.outcome,
                                     i.settlement_id, i.total_amount, i.fund_amount, i.account_amount,
                                     i.cash_amount, i.error_code
                                FROM mi_inbox i JOIN mi_outbox o ON o.id = i.outbox_id
                               WHERE o.kind LIKE 'facepay.%' ORDER BY i.id""")
        print(table(rows, ["inbox id", "outbox id", "kind", "business key", "type", "outcome", "settlement id",
                           "total", "fund", "account", "cash", "error"], align="rr" + "l" * 5 + "rrrr"))
        from daemon.demo_messages import run_messages_demo_part
        messages_rc = run_messages_demo_part(store, sim.url)

        from daemon.demo_identity import run_identity_demo_part
        print("\nBefore the payment: the region list, a lookup with two insurances, the patient's choice "
              "written back, and a kiosk registration")
        identity_rc = run_identity_demo_part(store, http)

        print("\nInbox (what the HIS reads back):")
        rows = store.query("""SELECT i.id, i.outbox_id, i.business_key, i.result_type, i.outcome, i.total_amount,
                                     i.fund_amount, i.account_amount, i.cash_amount, i.error_code,
                                     COALESCE(i.error_message, '')
                                FROM mi_inbox i ORDER BY i.id""")
        print(table(rows, ["inbox id", "outbox id", "business key", "type", "outcome", "total", "fund", "account",
                           "cash", "error", "message"], align="rrlllrrrr", wrap={10: 48}))
        print("\nCall journal (calls per request):")
        rows = store.query("""SELECT o.id, o.business_key, group_concat(j.interface || ':' || COALESCE(j.outcome, '?'), ' ')
                                FROM mi_journal j JOIN mi_outbox o ON o.id = j.outbox_id
                               GROUP BY o.id ORDER BY o.id""")
        print(table(rows, ["outbox id", "business key", "calls (interface:outcome)"], align="r", wrap={2: 70}))
        st = store.status()
        print("\nStates:")
        print(table([(k, st["counts"].get(k, 0)) for k in ("pending", "running", "in_doubt", "held", "done",
                                                            "failed", "resolved")], ["state", "requests"], align="lr"))
        state = http.get("/__sim__/state").json()
        print("\nSimulator ledger:")
        print(table(sorted((k, v) for k, v in state["counts"].items() if v), ["event", "count"], align="lr"))
        charges: dict[str, int] = {}
        for order in state["orders"].values():
            n = sum(1 for e in state["events"] if e["kind"] == "mobilepay.charge" and e["ref"] == order["payOrdId"])
            if n:
                charges[order["medOrgOrd"]] = charges.get(order["medOrgOrd"], 0) + n
        doubles = {k: v for k, v in charges.items() if v != 1}
        print("\nMobile-pay charges per bill:")
        print(table(sorted(charges.items()), ["business key", "charges"], align="lr"))
        print("\nDouble charges:", doubles or "none")
        if not verbose:
            print(f"(the daemon's log: {log_path})")
        unfinished = st["counts"].get("pending") or st["counts"].get("running") or st["counts"].get("in_doubt")
        return 1 if doubles or unfinished or face_rc or messages_rc or identity_rc or channels_rc else 0
    finally:
        daemon.stop()
        store.close()
        http.close()
        sim.stop()
