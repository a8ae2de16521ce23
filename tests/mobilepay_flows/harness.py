"""Mobile pay end to end: the simulator over HTTP, a real daemon process on a real
database, and an "HIS" that behaves like the hospital's system: it reads the
inbox, lets the patient pay each order (the simulator's cashier), and takes or
rejects each settlement."""
from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from decimal import Decimal
from typing import Callable, Optional

import httpx

from bridge.db.store import Store
from bridge.mobilepay.config import MobilePayConfig
from bridge.mobilepay.envelope import Envelope, compact_json
from bridge.simulator import SimulatorConfig, start_simulator

NOTICE_PATH = "/mibridge/mobilepay/notify"
CLIENT_TIMEOUT = 1.0      # the daemon's read timeout towards the centre
FAULT_DELAY = 1.5         # the simulator's "timeout" fault answers after this (effect committed)
SETTLE = 1.8              # > FAULT_DELAY: after this a lost call that did not show up never happened
DEADLINE = 4.0            # unpaid orders are revoked after this
HIS_WINDOW = 4.0          # the HIS must take a settlement within this

FAST = dict(poll_first_seconds=0.2, poll_cap_seconds=0.5, his_take_window_seconds=HIS_WINDOW,
            his_poll_seconds=0.2, settle_seconds=SETTLE, payment_deadline_seconds=DEADLINE,
            revoke_wait_seconds=20)


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_for(pred: Callable[[], object], timeout: float, what: str = "condition", step: float = 0.1):
    end = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(step)


class MpSim:
    """The simulator plus its control endpoints."""

    def __init__(self) -> None:
        self.port = free_port()     # where the daemon under test listens for 6302
        cfg = SimulatorConfig.generate(
            callback_url=f"http://127.0.0.1:{self.port}{NOTICE_PATH}", timeout_delay=FAULT_DELAY,
            callback_retry_delay=0.1, callback_attempts=3,
            fund_ratios={"310": Decimal("0.70"), "390": Decimal("0.55"), "510": Decimal("1.00"),
                         "399": Decimal("0.00")})
        self.cfg = cfg
        self.running = start_simulator(cfg)
        self.url = self.running.url
        self.creds = self.running.client_credentials()["mobilepay"]
        self.http = httpx.Client(base_url=self.url, timeout=10.0)

    def stop(self) -> None:
        self.http.close()
        self.running.stop()

    def control(self, method: str, path: str, body: Optional[dict] = None):
        r = self.http.request(method, path, json=body)
        r.raise_for_status()
        return r.json()

    def state(self) -> dict:
        return self.control("GET", "/__sim__/state")

    def arm(self, interface: str, fault: str, **kw) -> None:
        self.control("POST", "/__sim__/faults", {"interface": interface, "fault": fault, **kw})

    def clear_faults(self) -> None:
        self.control("DELETE", "/__sim__/faults")

    def person(self, insutype: str = "310", account: str = "real", balc: str = "5000.00") -> dict:
        n = uuid.uuid4().int % 10 ** 16
        p = {"psn_no": f"4401{n:016d}", "certno": f"44010619{n % 10 ** 10:010d}", "psn_name": f"测试{n % 10000}",
             "insutype": insutype, "insuplc_admdvs": "440100", "account": account,
             "balc": balc if account != "none" else "0.00"}
        self.control("POST", "/__sim__/persons", p)
        return p

    def authorize(self, psn_no: str) -> str:
        return self.control("POST", "/__sim__/mobilepay/authorize", {"psn_no": psn_no})["payAuthNo"]

    def pay(self, pay_ord_id: str) -> dict:
        return self.control("POST", "/__sim__/mobilepay/pay", {"payOrdId": pay_ord_id})

    def orders_for(self, key: str, state: Optional[dict] = None) -> list[dict]:
        st = state or self.state()
        return [o for o in st["orders"].values() if o["medOrgOrd"] == key]

    def events(self, kind: str, ref: str, state: Optional[dict] = None) -> list[dict]:
        st = state or self.state()
        return [e for e in st["events"] if e["kind"] == kind and e["ref"] == ref]

    def platform_signed_notice(self, data: dict, *, app_id: Optional[str] = None,
                               timestamp: Optional[str] = None) -> bytes:
        """A 6302 notice sealed with the platform's own key (what the centre sends).
        `app_id`: another appId in the envelope (one that keeps our first 16
        characters still decrypts with our key); `timestamp`: the envelope's."""
        as_platform = MobilePayConfig(
            base_url=self.url, app_id=app_id or self.cfg.app_id, app_secret=self.cfg.app_secret,
            org_private_key=self.cfg.platform_private_key,
            platform_public_key=self.cfg.institution_public_key, org_codg="x")
        envelope = Envelope(as_platform)
        if timestamp is not None:
            envelope.timestamp = lambda: timestamp
        return compact_json(envelope.seal(data)).encode()

    def notice_for(self, order: dict, **changes) -> dict:
        """The 6302 fields the centre sends for a paid order (§5.6)."""
        n = {"callType": "02", "payOrdId": order["payOrdId"], "medOrgOrd": order["medOrgOrd"],
             "traceTime": time.strftime("%Y%m%d%H%M%S"), "feeSumamt": order["feeSumamt"],
             "fundPay": order["fundPay"], "psnAcctPay": order["psnAcctPay"], "ownPayAmt": order["ownPayAmt"],
             "setlType": "ALL"}
        n.update(changes)
        return {k: v for k, v in n.items() if v is not None}

    def post_notice(self, body: bytes, **kw) -> httpx.Response:
        return httpx.post(f"http://127.0.0.1:{self.port}{NOTICE_PATH}", content=body, timeout=10.0, **kw)

    def forged_notice(self, data: dict) -> bytes:
        """The same notice signed by someone else's key."""
        from bridge.crypto import sm2
        as_forger = MobilePayConfig(
            base_url=self.url, app_id=self.cfg.app_id, app_secret=self.cfg.app_secret,
            org_private_key=sm2.generate_private_key().to_base64(),
            platform_public_key=self.cfg.institution_public_key, org_codg="x")
        return compact_json(Envelope(as_forger).seal(data)).encode()

    def daemon_toml(self, **settings) -> tuple[str, dict]:
        """[mobilepay] for the daemon under test, secrets through the environment."""
        values = dict(base_url=self.creds["base_url"], app_id=self.creds["app_id"],
                      app_secret_env="MIBRIDGE_TEST_MP_SECRET", org_private_key_env="MIBRIDGE_TEST_MP_KEY",
                      platform_public_key=self.creds["platform_public_key"], org_codg=self.creds["org_codes"][0],
                      timeout_seconds=CLIENT_TIMEOUT, callback_listen=f"127.0.0.1:{self.port}", **FAST)
        values.update(settings)
        lines = ["", "[mobilepay]"] + [f"{k} = {json.dumps(v)}" for k, v in values.items()]
        env = {"MIBRIDGE_TEST_MP_SECRET": self.creds["app_secret"],
               "MIBRIDGE_TEST_MP_KEY": self.creds["institution_private_key"]}
        return "\n".join(lines) + "\n", env


def payment(sim: MpSim, person: dict, amounts=("20.00", "100.00"), *, patient_id: Optional[str] = None,
            with_identity: bool = True, **extra) -> dict:
    """A payment payload as an HIS would write it."""
    lines = [{"line_no": i + 1, "item_code": f"ITEM{i + 1}", "item_name": f"项目{i + 1}", "quantity": "1",
              "price": a, "amount": a} for i, a in enumerate(amounts)]
    doc = {"patient_id": patient_id or f"P{person['psn_no'][-6:]}", "visit_id": f"V{uuid.uuid4().hex[:10]}",
           "pay_auth_no": sim.authorize(person["psn_no"]), "id_no": person["certno"],
           "user_name": person["psn_name"], "dept_code": "A03", "dept_name": "内科", "caty": "A03",
           "total_amount": str(sum(Decimal(a) for a in amounts)), "lines": lines}
    if with_identity:
        doc.update(psn_no=person["psn_no"], insutype=person["insutype"], insuplc_admdvs=person["insuplc_admdvs"])
    doc.update(extra)
    return doc


def new_key(prefix: str = "INV") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


class His(threading.Thread):
    """The hospital side: pays orders (unless told not to) and takes settlements
    (or rejects them, or leaves them)."""

    def __init__(self, url: str, sim: MpSim):
        super().__init__(daemon=True, name="his-robot")
        self.store = Store(url)
        self.sim = sim
        self.unpaid: set[str] = set()       # business keys whose patient never pays
        self.rejects: set[str] = set()      # settlements the HIS rejects
        self.ignores: set[str] = set()      # settlements the HIS never takes
        self.paid: dict[str, str] = {}
        self._halt = threading.Event()
        self.errors: list[str] = []

    def stop(self) -> None:
        self._halt.set()
        self.join(5)
        self.store.close()

    def run(self) -> None:
        while not self._halt.is_set():
            try:
                self._round()
            except Exception as exc:   # a database restart in a test: keep going
                self.errors.append(f"{type(exc).__name__}: {exc}")
                self.store.close()
            self._halt.wait(0.05)

    def _round(self) -> None:
        rows = self.store.query("""SELECT id, business_key, result_type, order_id FROM mi_inbox
                                    WHERE consumed_at IS NULL ORDER BY id""")
        for row_id, key, rtype, order_id in rows:
            if rtype == "order":
                if key in self.unpaid:
                    continue
                if key not in self.paid:
                    try:
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

    def consume(self, inbox_id: int, ack: str) -> None:
        self.store.execute("""UPDATE mi_inbox SET consumed_at = CURRENT_TIMESTAMP, his_ack = :ack
                               WHERE id = :id AND consumed_at IS NULL""", {"id": inbox_id, "ack": ack})


class Bridge:
    """One database with a running daemon and the HIS robot."""

    def __init__(self, dialect: str, url: str, sim: MpSim, daemon, his: His):
        self.dialect, self.url, self.sim, self.daemon, self.his = dialect, url, sim, daemon, his
        self.store = Store(url)

    def enqueue(self, kind: str, key: str, payload: dict, serial_key: Optional[str] = None) -> int:
        return self.store.enqueue(kind, key, payload, serial_key=serial_key)

    def enqueue_as_his(self, kind: str, key: str, payload: dict, serial_key: Optional[str] = None) -> int:
        """The way docs/mobilepay.md tells the HIS to enqueue: mi_enqueue where the
        database has procedures, a plain INSERT on SQLite."""
        from tests.his_sql import his_enqueue

        text = json.dumps(payload, ensure_ascii=False)
        if self.dialect == "sqlite":
            return self.store.enqueue(kind, key, text, serial_key=serial_key)
        return his_enqueue(self.store, kind, key, serial_key, text)

    def q(self, sql: str, params: Optional[dict] = None) -> list[tuple]:
        """A query as a list of tuples on every driver."""
        return [tuple(r) for r in self.store.query(sql, params)]

    def row(self, key: str, kind: Optional[str] = None) -> dict:
        sql = "SELECT id, kind, state, step, last_error_code, last_error_message FROM mi_outbox WHERE business_key = :k"
        params = {"k": key}
        if kind:
            sql += " AND kind = :kind"
            params["kind"] = kind
        r = self.store.query(sql + " ORDER BY id", params)[0]      # the request, before any notice check
        return dict(zip(("id", "kind", "state", "step", "code", "message"), r))

    def _row_or_none(self, key: str) -> Optional[dict]:
        try:
            return self.row(key)
        except IndexError:
            return None

    def wait_final(self, *keys: str, timeout: float = 30.0) -> dict[str, dict]:
        """Until every key's request is final.  A key not enqueued yet (a fixture's thread
        enqueues it when its moment comes) is waited for like one still running."""
        def done():
            rows = {k: self._row_or_none(k) for k in keys}
            return rows if all(r is not None and r["state"] in ("done", "failed", "resolved", "held")
                               for r in rows.values()) else None
        try:
            return wait_for(done, timeout, f"{keys} final")
        except AssertionError:
            raise AssertionError(f"not final: {[self._row_or_none(k) for k in keys]}\n{self.daemon.tail(60)}") from None

    def inbox(self, key: str) -> list[dict]:
        rows = self.store.query("""SELECT result_type, outcome, error_code, error_message, order_id, settlement_id,
                                          total_amount, fund_amount, account_amount, cash_amount, result_json
                                     FROM mi_inbox WHERE business_key = :k ORDER BY id""", {"k": key})
        names = ("type", "outcome", "code", "message", "order_id", "settlement_id", "total", "fund", "account",
                 "cash", "result")
        out = []
        for r in rows:
            d = dict(zip(names, r))
            for m in ("total", "fund", "account", "cash"):
                d[m] = None if d[m] is None else Decimal(str(d[m])).quantize(Decimal("0.01"))
            d["result"] = json.loads(d["result"]) if d["result"] else {}
            out.append(d)
        return out

    def calls(self, key: str, interface: Optional[str] = None) -> list[tuple]:
        sql = """SELECT j.interface, j.outcome FROM mi_journal j JOIN mi_outbox o ON o.id = j.outbox_id
                  WHERE o.business_key = :k"""
        params = {"k": key}
        if interface:
            sql += " AND j.interface = :i"
            params["i"] = interface
        return self.q(sql + " ORDER BY j.id", params)


def assert_paid_once(sim: MpSim, key: str, state: Optional[dict] = None) -> dict:
    """At most one order per business key was ever charged, and only once."""
    st = state or sim.state()
    orders = sim.orders_for(key, st)
    charged = [o for o in orders if sim.events("mobilepay.charge", o["payOrdId"], st)]
    assert len(charged) <= 1, f"{key}: {len(charged)} orders charged"
    for o in charged:
        assert len(sim.events("mobilepay.charge", o["payOrdId"], st)) == 1, f"{key} charged twice"
    return charged[0] if charged else {}


def assert_refunds_within_paid(sim: MpSim, st: Optional[dict] = None) -> None:
    """No appRefdSn refunded twice, and no order refunded beyond what was paid."""
    st = st or sim.state()
    sns = [e.get("appRefdSn") for e in st["events"] if e["kind"] == "mobilepay.refund"]
    assert len(sns) == len(set(sns)), f"a refund serial was refunded twice: {sns}"
    for o in st["orders"].values():
        for part, paid in (("fund", "fundPay"), ("acct", "psnAcctPay"), ("cash", "ownPayAmt")):
            assert Decimal(o["refunded"][part]) <= Decimal(o[paid]), o
