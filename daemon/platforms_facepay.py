"""[facepay] section: the face-pay flow settings and the face terminal.

    [facepay]
    enabled = true                      # false: every request settles the plain way
    merchant_no = "102440100000004"     # default expContent terms (a request may name its own)
    terminal_no = "00000143"
    isv_no = "123456"
    acct_type = "A02"
    terminal_url = "http://127.0.0.1:9000/nationec/trans"   # the e-credential library's URL
    terminal_read_timeout = 120         # a person at a kiosk
    office_id = "MZ01"
    office_name = "门诊收费处"
    settle_window_seconds = 120         # > [offline] read_timeout: "not found" is final after it
    refund_retry_delays = [60, 300, 900, 3600]
    his_ack_timeout_seconds = 900       # 单边账: settlement not taken by the HIS -> cancelled
    fetch_references = true             # fpy001 after a real-account settlement: refNo, termSeqNo
    references_wait_seconds = 10        # ... asked again for at most this long, then "unavailable"
    sign_in_check_seconds = 300         # how often the 9001 job checks the operator's sign-in

Every other key of bridge/facepay/flows.py FacePaySettings may be set too.  Nothing here
is secret (the gateway secret lives in [offline] as paas_secret_env / _file).
"""
from __future__ import annotations

import dataclasses
from typing import Optional

from pydantic import Field

from daemon.config import Config, ConfigError, register_section, validate_section
from daemon.platforms import _values, section_model

# Keys of [facepay] that are not FacePaySettings fields.
_EXTRA = {"terminal_url": (Optional[str], None), "terminal_read_timeout": (float, Field(120.0, gt=0)),
          "terminal_connect_timeout": (float, Field(5.0, gt=0)), "sign_in_check_seconds": (float, Field(300.0, gt=0))}


@dataclasses.dataclass(frozen=True)
class FacePayParts:
    settings: object                   # FacePaySettings
    terminal_url: Optional[str]
    terminal_read_timeout: float
    terminal_connect_timeout: float
    sign_in_check_seconds: float


def _facepay_model():
    from bridge.facepay.settings import FacePaySettings

    return section_model("facepay", [(FacePaySettings, ())], extra=_EXTRA)


register_section("facepay", _facepay_model())


def facepay_parts(cfg: Config) -> Optional[FacePayParts]:
    raw = cfg.platforms.get("facepay")
    if raw is None:
        return None
    from bridge.facepay.settings import FacePaySettings

    m = validate_section("facepay", raw)
    try:
        settings = FacePaySettings(**_values(m, FacePaySettings))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"[facepay]: {exc}") from None
    if settings.settle_window_seconds <= 0:
        raise ConfigError("[facepay] settle_window_seconds must be positive")
    if settings.references_wait_seconds < 0:
        raise ConfigError("[facepay] references_wait_seconds must not be negative (0 = one try only)")
    return FacePayParts(settings=settings, terminal_url=m.terminal_url,
                        terminal_read_timeout=m.terminal_read_timeout,
                        terminal_connect_timeout=m.terminal_connect_timeout,
                        sign_in_check_seconds=m.sign_in_check_seconds)
