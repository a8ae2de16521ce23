"""[offline] (and [facepay]): the offline gateway client, shared by every flow
that calls an FSI interface (1101 for mobile pay, 22xx for face pay)."""
from __future__ import annotations

from daemon.app import Wiring
from daemon.config import Config
from daemon.platforms import offline_parts


def wiring(cfg: Config) -> Wiring:
    from bridge.offline import messages as m
    from bridge.offline.client import OfflineClient

    client_cfg, op = offline_parts(cfg)

    def sign_in_request(operator) -> m.SignInRequest:
        # 9001 input (offline.md §4): the operator plus this machine's registered MAC and IP.
        return m.SignInRequest(opter_no=operator.opter, mac=op.sign_in_mac or "00-00-00-00-00-00",
                               ip=op.sign_in_ip or "127.0.0.1")

    client = OfflineClient(client_cfg, sign_in_request=sign_in_request)
    return Wiring(services={"offline": client})
