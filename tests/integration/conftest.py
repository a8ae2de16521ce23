"""Integration fixtures: the REAL simulator on 127.0.0.1 and the REAL clients, over HTTP.

One simulator per session (starting it generates SM2 keys); every test starts from
POST /__sim__/reset (seed persons, no orders, no faults).  Clients are configured only from
`client_credentials()`, as a hospital would be from the platform's onboarding letter.
"""
from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Optional

import pytest

from bridge.facepay.client import FacePayClient, TerminalConfig
from bridge.facepay.expcontent import FacePayTerms
from bridge.mobilepay.callback import SettlementCallback, NotificationRefused
from bridge.mobilepay.client import MobilePayClient
from bridge.mobilepay.config import MobilePayConfig
from bridge.offline import messages as m
from bridge.offline.client import OfflineClient
from bridge.offline.config import OfflineConfig, Operator
from bridge.simulator import SimulatorConfig, start_simulator
from tests.simcontrol import SimControl

# The "timeout" fault makes the simulator answer after FAULT_DELAY seconds; the *_short
# clients give up after SHORT_TIMEOUT.  Tests prepare with the normal client (NORMAL_TIMEOUT)
# and only send the faulted call through a short one (send() works for any prepared call).
FAULT_DELAY = 0.35
SHORT_TIMEOUT = 0.15
NORMAL_TIMEOUT = 5.0

ZHANG = "44010000000000000001"   # real account 1000.00, 440100
LI = "44030000000000000002"      # real account 0.00, 440300
WANG = "44010000000000000003"    # no personal account (resident scheme)
ZHAO = "44060000000000000004"    # notional account 500.00 (not 实账)
SUN = "44200000000000000006"     # real account 3000.00, 442000

FACEPAY_TERMS = FacePayTerms(merchant_no="102440100000004", terminal_no="00000143",
                             isv_no="123456", acct_type="A02")


class CallbackReceiver:
    """The hospital's 6302 endpoint: verifies each notice with bridge/mobilepay/callback.py."""

    def __init__(self) -> None:
        self.parser: Optional[SettlementCallback] = None
        self.notices: list = []
        self.refused: list[str] = []
        self.bodies: list[bytes] = []
        self.cond = threading.Condition()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    notice = outer.parser.parse(body)
                except NotificationRefused as exc:
                    ack = outer.parser.acknowledge(None, accepted=False, message=str(exc))
                    with outer.cond:
                        outer.refused.append(str(exc))
                        outer.bodies.append(body)
                        outer.cond.notify_all()
                else:
                    ack = outer.parser.acknowledge(notice.payOrdId)
                    with outer.cond:
                        outer.notices.append(notice)
                        outer.bodies.append(body)
                        outer.cond.notify_all()
                self.send_response(ack.status)
                for k, v in ack.headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(ack.body)))
                self.end_headers()
                self.wfile.write(ack.body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/pmc/api/hos/seltSucCallback"

    def clear(self) -> None:
        with self.cond:
            self.notices.clear()
            self.refused.clear()
            self.bodies.clear()

    def wait_for(self, pred: Callable[["CallbackReceiver"], bool], timeout: float = 5.0) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: pred(self), timeout)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="session")
def receiver():
    r = CallbackReceiver()
    yield r
    r.stop()


@pytest.fixture(scope="session")
def running(receiver):
    cfg = SimulatorConfig.generate(callback_url=receiver.url, timeout_delay=FAULT_DELAY,
                                   callback_retry_delay=0.05)
    sim = start_simulator(cfg)
    yield sim
    sim.stop()


class Sim(SimControl):
    """The simulator's control endpoints, with the reads these tests need."""

    def counts(self) -> dict:
        return self.state()["counts"]

    def fired(self) -> list:
        return self.control("GET", "/__sim__/faults")["fired"]

    def balance(self, psn_no: str) -> str:
        return self.state()["persons"][psn_no]

    def wait(self, pred: Callable[[dict], bool], timeout: float = 5.0) -> dict:
        """Poll /__sim__/state until pred holds (a timeout fault commits after its delay)."""
        end = time.monotonic() + timeout
        while True:
            st = self.state()
            if pred(st) or time.monotonic() > end:
                return st
            time.sleep(0.05)


@pytest.fixture
def sim(running, receiver):
    s = Sim(running)
    s.control("POST", "/__sim__/reset")
    receiver.clear()
    yield s
    s.http.close()


# ------------------------------------------------------------------ mobile pay

def mobilepay_config(creds: dict, **overrides: Any) -> MobilePayConfig:
    mp = creds["mobilepay"]
    values = dict(base_url=mp["base_url"], app_id=mp["app_id"], app_secret=mp["app_secret"],
                  org_private_key=mp["institution_private_key"],
                  platform_public_key=mp["platform_public_key"], org_codg=mp["org_codes"][0],
                  timeout_seconds=NORMAL_TIMEOUT)
    values.update(overrides)
    return MobilePayConfig(**values)


@pytest.fixture
def mp_config(sim, receiver) -> MobilePayConfig:
    cfg = mobilepay_config(sim.creds)
    receiver.parser = SettlementCallback(cfg)
    return cfg


@pytest.fixture
def mp_client(mp_config):
    with MobilePayClient(mp_config) as c:
        yield c


@pytest.fixture
def mp_short_client(sim):
    with MobilePayClient(mobilepay_config(sim.creds, timeout_seconds=SHORT_TIMEOUT)) as c:
        yield c


# ------------------------------------------------------------------ offline / face pay

OPERATOR = Operator("op001", "收费员甲")


@pytest.fixture(scope="session")
def msgid_dir(tmp_path_factory):
    # One lock directory for the session: each new client takes the node digit over from
    # the last and starts strictly after its last second, so msgids never repeat.
    return str(tmp_path_factory.mktemp("msgid"))


def offline_config(creds: dict, msgid_dir: str, *, code: Optional[str] = None,
                   **overrides: Any) -> OfflineConfig:
    o = creds["offline"]
    code = code or o["facepay_institutions"][0]
    values = dict(base_url=o["base_url"], paas_id=o["paasid"], paas_secret=o["secret"],
                  fixmedins_code=code, fixmedins_name=o["institutions"][code],
                  mdtrtarea_admvs=o["mdtrtarea_admvs"], default_operator=OPERATOR,
                  union_refund_url=o["unionrefund_url"], read_timeout=NORMAL_TIMEOUT,
                  msgid_lock_dir=msgid_dir)
    values.update(overrides)
    return OfflineConfig(**values)


def sign_in_request(op: Operator) -> m.SignInRequest:
    return m.SignInRequest(opter_no=op.opter, mac="00-16-3E-00-00-01", ip="127.0.0.1")


def make_offline(creds: dict, msgid_dir: str, *, face_pay: bool = True, sign_in: bool = True,
                 **overrides: Any) -> OfflineClient:
    client = OfflineClient(offline_config(creds, msgid_dir, **overrides),
                           face_pay=FACEPAY_TERMS if face_pay else None)
    if sign_in:
        res = client.sign_in(sign_in_request(OPERATOR))
        assert res.ok, res
    return client


@pytest.fixture
def off_client(sim, msgid_dir):
    c = make_offline(sim.creds, msgid_dir)
    yield c
    c.close()


@pytest.fixture
def off_short_client(sim, msgid_dir):
    c = make_offline(sim.creds, msgid_dir, read_timeout=SHORT_TIMEOUT, sign_in=False)
    yield c
    c.close()


def make_facepay(offline: OfflineClient, creds: dict, **kw: Any) -> FacePayClient:
    return FacePayClient(offline, TerminalConfig(url=creds["terminal"]["url"],
                                                 org_id=offline.config.fixmedins_code, **kw))


@pytest.fixture
def fp_client(off_client, sim):
    c = make_facepay(off_client, sim.creds)
    yield c
    c.close()


@pytest.fixture
def fp_short_client(off_client, sim):
    c = make_facepay(off_client, sim.creds, read_timeout=SHORT_TIMEOUT)
    yield c
    c.close()
