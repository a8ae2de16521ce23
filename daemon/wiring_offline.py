"""[offline] (and [facepay], [identity]): the offline gateway client, shared by every
flow that calls an FSI interface (1101 for mobile pay, 22xx for face pay), the 9001
sign-in job, and - when [facepay] or [identity] is present - the FacePayClient service
("facepay") on top of the same offline client, with the face-pay flows ([facepay]) and the
identity and kiosk flows ([identity], daemon/wiring_identity.py).
"""
from __future__ import annotations

from datetime import datetime

from loguru import logger

from daemon.wiring import Wiring
from daemon.config import Config, ConfigError
from daemon.platforms import offline_parts
from daemon.platforms_facepay import facepay_parts
from daemon.wiring_identity import identity_parts
from daemon.wiring_identity import wiring as identity_wiring


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
    ip = identity_parts(cfg)
    w.jobs.append(sign_in_job(client, fp.sign_in_check_seconds if fp else 300.0))
    if fp is not None or ip is not None:
        from bridge.facepay.client import FacePayClient

        # One FacePayClient (the offline client, fpy001/mpc004, the terminal) for face-pay and
        # the identity/kiosk flows alike: the kiosk's settlement runs face-pay's steps.
        w.services["facepay"] = FacePayClient(client, _terminal(client_cfg, fp, ip))
    if fp is not None:
        from bridge.facepay.catalog import every_flow

        if fp.settings.settle_window_seconds <= client_cfg.read_timeout:
            # docs/engine.md rule 7: the core may book a request after our client gave up.
            raise ConfigError(f"[facepay] settle_window_seconds ({fp.settings.settle_window_seconds}) must be "
                              f"longer than [offline] read_timeout ({client_cfg.read_timeout})")
        w.flows += every_flow(fp.settings)
    if ip is not None:
        w.merge(identity_wiring(ip, fp.settings if fp else None, client_cfg.read_timeout))
    return w


def _terminal(client_cfg, fp, ip):
    """The terminal of the e-credential library and the card reader: [identity]'s URLs and
    timeouts where given, else [facepay]'s; None when neither names a URL."""
    from bridge.facepay.client import TerminalConfig

    url = (ip.terminal_url if ip else None) or (fp.terminal_url if fp else None)
    card = ip.card_reader_url if ip else None
    if not url and not card:
        return None
    read = (ip.terminal_read_timeout if ip else None) or (fp.terminal_read_timeout if fp else 120.0)
    connect = (ip.terminal_connect_timeout if ip else None) or (fp.terminal_connect_timeout if fp else 5.0)
    return TerminalConfig(url=url or "", org_id=client_cfg.fixmedins_code, connect_timeout=connect,
                          read_timeout=read, card_reader_url=card)


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
