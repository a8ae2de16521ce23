"""[identity]: the identity and kiosk kinds (issue 13, docs/identity.md).  Its presence
enables identity.lookup, identity.choose and the kiosk.* kinds; they need [offline] (1101,
2001, 22xx), and wiring_offline.py wires them on the same offline client and terminal as
face-pay.

    [identity]
    benefit_check = true                # 2001 for each insurance a lookup finds
    med_type = "11"                     # the benefit checked unless the lookup names one
    require_listed_region = true        # the region must be in mi_insured_region ([regions])
    whole_identity_on_terminal = true   # a QR/card lookup gives the HIS the ID number and name whole
    terminal_url = "http://127.0.0.1:9000/nationec/trans"   # the e-credential library (QR); else [facepay]'s
    card_reader_url = "http://127.0.0.1:9000/heasec/readcardbas"   # the card reader's agent
    kiosk_operator_id = "KIOSK01"       # the kiosk's operator when a request names none (type 2)
    kiosk_operator_name = "1号自助机"
    registration_query = "5201"         # how a lost 2201 answer is resolved; "none" where 5201 is not offered
    registration_window_seconds = 120   # after a lost 2201, "not listed" means "not yet" for this long

Every other key of bridge/identity/settings.py IdentitySettings may be set too.  The kiosk's
settlement uses [facepay]'s settings when that section is present (then the real personal
account works at the kiosk too), else its own settle_window_seconds, his_ack_timeout_seconds
... from here, plain settlement only.  Nothing here is secret.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

from pydantic import Field

from daemon.config import Config, ConfigError, register_section, validate_section
from daemon.platforms import _values, section_model
from daemon.wiring import Wiring

_EXTRA = {"terminal_url": (Optional[str], None), "card_reader_url": (Optional[str], None),
          "terminal_read_timeout": (Optional[float], Field(None, gt=0)),
          "terminal_connect_timeout": (Optional[float], Field(None, gt=0))}


@dataclasses.dataclass(frozen=True)
class IdentityParts:
    settings: object                   # IdentitySettings
    terminal_url: Optional[str]
    card_reader_url: Optional[str]
    terminal_read_timeout: Optional[float]
    terminal_connect_timeout: Optional[float]


def _identity_model():
    from bridge.identity.settings import IdentitySettings

    return section_model("identity", [(IdentitySettings, ())], extra=_EXTRA)


register_section("identity", _identity_model())


def identity_parts(cfg: Config) -> Optional[IdentityParts]:
    raw = cfg.platforms.get("identity")
    if raw is None:
        return None
    from bridge.identity.settings import REGISTRATION_QUERIES, IdentitySettings
    from bridge.terminal.messages import QR_TRANS_TYPES

    m = validate_section("identity", raw)
    try:
        settings = IdentitySettings(**_values(m, IdentitySettings))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"[identity]: {exc}") from None
    if settings.qr_trans_type not in QR_TRANS_TYPES:
        raise ConfigError(f"[identity] qr_trans_type must be one of {', '.join(QR_TRANS_TYPES)}")
    if settings.settle_window_seconds <= 0:
        raise ConfigError("[identity] settle_window_seconds must be positive")
    if settings.registration_query not in REGISTRATION_QUERIES:
        raise ConfigError(f"[identity] registration_query must be one of {', '.join(REGISTRATION_QUERIES)}")
    return IdentityParts(settings=settings, terminal_url=m.terminal_url, card_reader_url=m.card_reader_url,
                         terminal_read_timeout=m.terminal_read_timeout,
                         terminal_connect_timeout=m.terminal_connect_timeout)


def wiring(parts: IdentityParts, facepay_settings, read_timeout: float) -> Wiring:
    """The identity and kiosk flows; `facepay_settings`: [facepay]'s, or None."""
    from bridge.identity.flows import all_flows

    money = parts.settings.kiosk_settlement(facepay_settings)
    if money.settle_window_seconds <= read_timeout:
        # docs/engine.md rule 7: the core may book a request after our client gave up.
        raise ConfigError(f"[identity] settle_window_seconds ({money.settle_window_seconds}) must be longer "
                          f"than [offline] read_timeout ({read_timeout})")
    if parts.settings.registration_window_seconds <= read_timeout:
        # The same rule for a lost 2201: the core may register it after our client gave up.
        raise ConfigError(f"[identity] registration_window_seconds ({parts.settings.registration_window_seconds}) "
                          f"must be longer than [offline] read_timeout ({read_timeout})")
    return Wiring(flows=all_flows(parts.settings, facepay_settings))
