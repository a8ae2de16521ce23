"""The region list's fixtures: the REAL simulator over HTTP (its 1901 answers the regions of
its config, which a test may change for the length of the test), a REAL offline client
configured from the simulator's credentials, and the [offline] section of a daemon config."""
from __future__ import annotations

import os
from typing import Any

import pytest

from bridge.offline import messages as m
from bridge.offline.client import OfflineClient
from bridge.offline.config import OfflineConfig, Operator
from bridge.simulator import SimulatorConfig, start_simulator
from tests.simcontrol import SimControl

SECRET_ENV = "MIBRIDGE_TEST_REGIONS_SECRET"
OPERATOR = Operator("op001", "收费员甲")
SIM_REGIONS = {"440100": "广州市", "440300": "深圳市", "440600": "佛山市", "442000": "中山市"}


@pytest.fixture(scope="session")
def running():
    # The daemon signs in (9001) before 1901, as a real gateway may require.
    sim = start_simulator(SimulatorConfig.generate(require_sign_no=True))
    os.environ[SECRET_ENV] = sim.client_credentials()["offline"]["secret"]
    yield sim
    sim.stop()


class Sim(SimControl):
    def set_regions(self, regions: dict[str, str]) -> None:
        """What the platform's 1901 lists from now on (the simulator's config, in process)."""
        self.running.config.insured_regions.clear()
        self.running.config.insured_regions.update(regions)


@pytest.fixture
def sim(running):
    s = Sim(running)
    s.control("POST", "/__sim__/reset")
    s.control("DELETE", "/__sim__/faults")
    s.set_regions(SIM_REGIONS)
    yield s
    s.set_regions(SIM_REGIONS)
    s.http.close()


@pytest.fixture(scope="session")
def msgid_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("msgid"))


def offline_config(creds: dict, msgid_dir: str, **overrides: Any) -> OfflineConfig:
    o = creds["offline"]
    code = o["facepay_institutions"][0]
    values = dict(base_url=o["base_url"], paas_id=o["paasid"], paas_secret=o["secret"], fixmedins_code=code,
                  fixmedins_name=o["institutions"][code], mdtrtarea_admvs=o["mdtrtarea_admvs"],
                  default_operator=OPERATOR, read_timeout=5.0, msgid_lock_dir=msgid_dir,
                  region_dictionary_type="admdvs")
    values.update(overrides)
    return OfflineConfig(**values)


def make_client(creds: dict, msgid_dir: str, **overrides: Any) -> OfflineClient:
    return OfflineClient(offline_config(creds, msgid_dir, **overrides),
                         sign_in_request=lambda op: m.SignInRequest(opter_no=op.opter, mac="00-16-3E-00-00-01",
                                                                    ip="127.0.0.1"))


@pytest.fixture
def client(sim, msgid_dir):
    c = make_client(sim.creds, msgid_dir)
    yield c
    c.close()


def offline_toml(creds: dict, msgid_dir: str, dictionary_type: str | None = "admdvs") -> str:
    o = creds["offline"]
    code = o["facepay_institutions"][0]
    return f"""
[offline]
base_url = "{o['base_url']}"
paas_id = "{o['paasid']}"
paas_secret_env = "{SECRET_ENV}"
fixmedins_code = "{code}"
fixmedins_name = "{o['institutions'][code]}"
mdtrtarea_admvs = "{o['mdtrtarea_admvs']}"
operator = "op001"
operator_name = "收费员甲"
read_timeout = 5.0
connect_timeout = 1.0
msgid_lock_dir = "{msgid_dir}"
""" + (f'region_dictionary_type = "{dictionary_type}"\n' if dictionary_type else "")
