"""[mobilepay] settings of the flows: deadlines, polls, the settle window, the HIS's take
window (the client's connection settings are bridge/mobilepay/config.py)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass
class MobilePaySettings:
    """[mobilepay] settings of the flows (the client's are in config.py)."""

    # §7.3: WeChat suggests cancelling an unpaid mixed order after about 30 minutes.
    payment_deadline_seconds: float = 1800.0
    on_deadline: Literal["revoke", "hold"] = "revoke"   # 6401, or a person decides
    poll_first_seconds: float = 2.0        # 6301 polls: 2, 4, 8 ... seconds apart
    poll_cap_seconds: float = 30.0
    # 单边账: how long the HIS has to take a settlement before it is refunded.
    his_take_window_seconds: float = 900.0
    his_poll_seconds: float = 5.0
    # After a lost 6202/6203/6401, how long the centre may still book it; only
    # after this is "status unchanged" taken to mean "never happened".
    settle_seconds: float = 60.0
    # How long a revoke waits for its payment to reach the centre (6202 done).
    revoke_wait_seconds: float = 600.0
    # ordStas 17 (退款中, §6.1 [U]) after a lost 6203: the centre is still refunding.  Waiting,
    # not failing (no attempt used), asked again every refund_progress_poll_seconds, until this
    # long after the 6203 (database clock); then held for a person.  OUR CHOICE: no source says
    # how long the centre may take (a channel's refund takes 1-3 working days, channels.md §2.6).
    refund_progress_wait_seconds: float = 86400.0
    refund_progress_poll_seconds: float = 300.0
    use_personal_account: bool = True      # acctUsedFlag, unless the payload says otherwise
    fee_type: str = "01"                   # §6.2: "01" in every sample
    psn_setlway: str = "01"                # §6.2: 01 按项目结算
    pub_hosp_rfom_flag: str = "0"
    default_id_type: str = "01"            # §6.2: 01 居民身份证
    # The 6302 notice endpoint ("host:port"; empty: rely on 6301 polling alone).
    callback_listen: str = ""
    callback_path: str = "/mibridge/mobilepay/notify"
    # The callType values that are settlement notices (§5.6/§6.2: "02" = payment
    # success; others are unknown [U]); anything else is refused.
    notice_call_types: tuple[str, ...] = ("02",)
    # A notice whose envelope timestamp is further than this from our clock (either
    # way) is recorded as stale and never acted on; 0 = no check.  §2.3: the centre's
    # freshness rules are unknown; 10 minutes covers its retries of one notice.
    notice_max_age_seconds: float = 600.0
    # The settlement location "lng,lat" a WeChat mixed order sends when the payload gives
    # none (§2.2 geo_location, and setlLatlnt in passthrough_request_content, mobilepay.md
    # §10).  mobilepay.md §5.1: Shanxi sends "0,0" or a fixed hospital coordinate; give the
    # hospital's.
    geo_location: str = "0,0"

    def __post_init__(self) -> None:
        if self.on_deadline not in ("revoke", "hold"):
            raise ValueError("on_deadline must be \"revoke\" or \"hold\"")
        for name in ("payment_deadline_seconds", "poll_first_seconds", "poll_cap_seconds",
                     "his_take_window_seconds", "his_poll_seconds", "revoke_wait_seconds",
                     "refund_progress_wait_seconds", "refund_progress_poll_seconds"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if self.settle_seconds < 0:
            raise ValueError("settle_seconds must not be negative")
        if not self.notice_call_types:
            raise ValueError("notice_call_types must name at least one callType")
        if self.notice_max_age_seconds < 0:
            raise ValueError("notice_max_age_seconds must not be negative")
        lng, _, lat = self.geo_location.partition(",")
        try:
            float(lng), float(lat)
        except ValueError:
            raise ValueError(f"geo_location must be \"lng,lat\" (e.g. \"113.26,23.13\"), not {self.geo_location!r}") from None
