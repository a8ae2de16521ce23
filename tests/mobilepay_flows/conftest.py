from __future__ import annotations

import pytest

from tests.conftest import DIALECTS, make_database
from tests.engine.daemonproc import DaemonProcess

from .harness import Bridge, His, MpSim


@pytest.fixture(scope="session")
def mp_sim():
    sim = MpSim()
    yield sim
    sim.stop()


def start_bridge(dialect: str, tmp_path, sim: MpSim, name: str = "mp", more_toml: str = "", **settings):
    url, drop = make_database(dialect, tmp_path)
    extra, env = sim.daemon_toml(**settings)
    extra += more_toml
    daemon = DaemonProcess(tmp_path, url, None, name=name, workers=4, lease=3.0, extra=extra, env=env)
    his = His(url, sim)
    his.start()
    bridge = Bridge(dialect, url, sim, daemon, his)

    def stop():
        his.stop()
        try:
            rc = daemon.terminate()
            assert rc == 0, daemon.tail()
        finally:
            bridge.store.close()
            drop()
    return bridge, stop


@pytest.fixture(scope="module", params=DIALECTS)
def bridge(request, mp_sim, tmp_path_factory):
    b, stop = start_bridge(request.param, tmp_path_factory.mktemp(f"mp-{request.param}"), mp_sim)
    yield b
    mp_sim.clear_faults()
    stop()


@pytest.fixture
def sim(mp_sim):
    mp_sim.clear_faults()
    yield mp_sim
    mp_sim.clear_faults()
