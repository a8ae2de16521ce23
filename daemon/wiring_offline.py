"""[offline] (and [facepay]): the offline gateway client, shared by every flow
that calls an FSI interface (1101 for mobile pay, 22xx for face pay), the 9001
sign-in job, and - when [facepay] is present - the face-pay flows with their
FacePayClient service ("facepay") on top of the same offline client.
"""
from __future__ import annotations

from datetime import datetime

from loguru import logger

from daemon.wiring import Wiring
from daemon.config import Config, ConfigError
from daemon.platforms import offline_parts
from daemon.platforms_facepay import facepay_parts


def wiring(cfg: Config) -> Wiring:
    from bridge.offline import messages as m
    from bridge.offline.client import OfflineClient

    client_cfg, op = offline_parts(cfg)

    def sign_in_request(operator) -> m.SignInRequest:
        # 9001 input (offline.md §4): the operator plus this machine's registered MAC and IP.
        return m.SignInRequest(opter_no=operator.opter, mac=op.sign_in_mac or "00-00-00-00-00-00",
                               ip=op.sign_in_ip or "127.0.0.1")

    client = OfflineClient(client_cfg, sign_in_request=sign_in_request)
    w = Wiring(services={"offline": client})
    fp = facepay_parts(cfg)
    w.jobs.append(sign_in_job(client, fp.sign_in_check_seconds if fp else 300.0))
    if fp is not None:
        from bridge.facepay.client import FacePayClient, TerminalConfig
        from bridge.facepay.catalog import every_flow

        if fp.settings.settle_window_seconds <= client_cfg.read_timeout:
            # docs/engine.md rule 7: the core may book a request after our client gave up.
            raise ConfigError(f"[facepay] settle_window_seconds ({fp.settings.settle_window_seconds}) must be "
                              f"longer than [offline] read_timeout ({client_cfg.read_timeout})")
        terminal = None
        if fp.terminal_url:
            terminal = TerminalConfig(url=fp.terminal_url, org_id=client_cfg.fixmedins_code,
                                      connect_timeout=fp.terminal_connect_timeout,
                                      read_timeout=fp.terminal_read_timeout)
        w.services["facepay"] = FacePayClient(client, terminal)
        w.flows += every_flow(fp.settings)
    return w


def sign_in_job(client, every_seconds: float):
    """9001 once per operator and day (offline.md §4): at start, then every
    `every_seconds` the job checks the held sign_no and renews it when the day changed
    or the platform declared it invalid (the flows drop it then).  Flows also sign in
    on demand, so a failed round only costs a later retry."""

    def ensure() -> None:
        # The daemon's [offline] operator, and every operator a request named since start
        # (counter staff, kiosks): each keeps its own sign_no for the day.
        for op in client.operators():
            failure = client.ensure_signed_in(op)
            if failure is not None:
                logger.warning("9001 sign-in for operator {} failed: {} {}", op.opter,
                               getattr(failure, "code", ""), getattr(failure, "message", ""))

    def add(scheduler, daemon) -> None:
        scheduler.add_job(ensure, "interval", seconds=every_seconds, next_run_time=datetime.now(),
                          id="offline-sign-in", name="9001 sign-in")
        # Just after midnight: the new day's sign-in before the first counter opens.
        scheduler.add_job(ensure, "cron", hour=0, minute=0, second=30, id="offline-sign-in-daily",
                          name="9001 daily sign-in")
    return add
