from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from bridge.simulator import SimulatorConfig, start_simulator

from .spec_client import MobilePayClient, OfflineClient


class Hospital:
    """A stand-in for the hospital's 6302 callback endpoint."""

    def __init__(self) -> None:
        self.received: list[bytes] = []
        self.status = 200
        self.event = threading.Event()
        outer = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n)
                outer.received.append(body)
                self.send_response(outer.status)
                self.send_header("Content-Length", "0")
                self.end_headers()
                outer.event.set()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/pmc/api/hos/seltSucCallback"


@pytest.fixture(scope="session")
def hospital():
    h = Hospital()
    yield h
    h.server.shutdown()


@pytest.fixture(scope="session")
def running(hospital):
    cfg = SimulatorConfig.generate(callback_url=hospital.url, timeout_delay=0.6,
                                   callback_retry_delay=0.05)
    sim = start_simulator(cfg)
    yield sim
    sim.stop()


@pytest.fixture
def sim(running, hospital):
    httpx.post(running.url + "/__sim__/reset").raise_for_status()
    hospital.received.clear()
    hospital.status = 200
    hospital.event.clear()
    return running


@pytest.fixture
def mpc(sim):
    creds = sim.client_credentials()["mobilepay"]
    return MobilePayClient(sim.url, creds)


@pytest.fixture
def gw(sim):
    creds = sim.client_credentials()["offline"]
    return OfflineClient(creds, "H44010600001")


def control(sim, method: str, path: str, body=None) -> dict:
    r = httpx.request(method, sim.url + path, json=body)
    assert r.status_code == 200, r.text
    return r.json()


def state(sim) -> dict:
    return control(sim, "GET", "/__sim__/state")
