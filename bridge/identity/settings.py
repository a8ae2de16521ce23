"""[identity] settings of the identity and kiosk flows (daemon/wiring_identity.py reads
them from the config; docs/identity.md "Configuration")."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from bridge.facepay.settings import FacePaySettings
from bridge.terminal.messages import EC_QUERY

# IdentitySettings.registration_query values.
QUERY_5201, NO_QUERY = "5201", "none"
REGISTRATION_QUERIES = (QUERY_5201, NO_QUERY)


@dataclass(frozen=True)
class IdentitySettings:
    # 2001 人员待遇享受检查 for each insurance a lookup finds (bridge/offline/messages.py has
    # its sources); false where the platform does not offer it: every benefit "not_checked".
    benefit_check: bool = True
    # The medical type the benefit is checked for unless the lookup names one (offline.md §6:
    # 11 ordinary outpatient).
    med_type: str = "11"
    # The patient's region must be listed in mi_insured_region, enabled, offered on the
    # lookup's channel and accepting the insurance type (docs/identity.md).  false: any region.
    require_listed_region: bool = True
    # A QR or card read at a kiosk is the only way the HIS learns who stands there: the
    # `identity` row of such a lookup carries the ID number and name whole, so that the HIS
    # can find or open the patient's record (OUR CHOICE, docs/identity.md "Masking").  false:
    # masked like every other row.
    whole_identity_on_terminal: bool = True
    # The e-credential QR read: ec.query (kiosks, deviceType SelfService) or cn.nhsa.qrcode.get.
    qr_trans_type: str = EC_QUERY
    business_type: str = "01101"      # the only usage code seen (offline.md §13 #5)
    office_id: str = ""
    office_name: str = ""
    # How a lost 2201 answer is resolved (bridge/identity/registration.py): "5201" (就诊信息
    # 查询: the person's visits around the visit's day; the one with our ipt_otp_no is ours) or
    # "none" where the centre does not offer 5201 (then, once registration_window_seconds have
    # passed, registered again and the lost message named in the registration row).
    registration_query: str = "5201"
    # After a lost 2201, how long (database clock) "5201 does not list it" means "not yet"
    # rather than "never registered" (docs/engine.md rule 7).
    registration_window_seconds: float = 120.0
    # The kiosk's operator when a request names none (envelope opter/opter_name; opter_type
    # is always 2, a self-service terminal).
    kiosk_operator_id: Optional[str] = None
    kiosk_operator_name: Optional[str] = None
    # The kiosk settlement's timings when there is no [facepay] section (with one, its own
    # apply; face-pay's real account then works at the kiosk too).
    settle_window_seconds: float = 120.0
    resolve_retry_seconds: float = 10.0
    max_reversals: int = 2
    his_ack_timeout_seconds: float = 900.0
    his_ack_poll_seconds: float = 2.0

    def kiosk_settlement(self, facepay: Optional[FacePaySettings]) -> FacePaySettings:
        """The settings of the kiosk's settlement steps: [facepay]'s when configured (then
        a kiosk can pay with the real personal account), else the plain settlement only."""
        if facepay is not None:
            return facepay
        return FacePaySettings(enabled=False, notify_terminal=False,
                               settle_window_seconds=self.settle_window_seconds,
                               resolve_retry_seconds=self.resolve_retry_seconds,
                               max_reversals=self.max_reversals,
                               his_ack_timeout_seconds=self.his_ack_timeout_seconds,
                               his_ack_poll_seconds=self.his_ack_poll_seconds)
