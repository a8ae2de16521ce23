"""Settings of one institution's connection to a mobile-payment centre.

Every point where the public sources disagree (spec digest mobilepay.md §12 and
README "known gaps") is a field here, defaulting to what the digest recommends,
so that a region can be accommodated by configuration instead of code.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal, Mapping

# 2.0 paths relative to the region's base URL (digest §0 "2.0 endpoint paths").
DEFAULT_PATHS: Mapping[str, str] = MappingProxyType({
    "6201": "/org/local/api/hos/uldFeeInfo",
    "6202": "/org/local/api/hos/pay_order",
    "6203": "/org/local/api/hos/refund_Order",   # capital O as the source writes it
    "6301": "/org/local/api/hos/query_order_info",
    "6401": "/org/local/api/hos/revoke_order",
})

Sm2UidMode = Literal["default", "appSecret"]
TimestampStyle = Literal["ms", "yyyyMMddHHmmss"]
HexCase = Literal["upper", "lower"]


@dataclass(frozen=True)
class MobilePayConfig:
    base_url: str
    app_id: str
    # Secrets are kept out of repr() so that a logged config never leaks them.
    app_secret: str = field(repr=False)
    org_private_key: str = field(repr=False)   # institution SM2 key: hex, Base64 or PEM
    platform_public_key: str                   # centre SM2 public key: hex, Base64 or PEM
    org_codg: str                              # 定点机构编码, sent as orgCodg (6201/6202/6301/6401)
    org_id: str = ""                           # 电子凭证机构号, sent as orgId in 6201 when set
    timeout_seconds: float = 30.0              # read/write/pool timeout of one call
    connect_timeout_seconds: float = 5.0
    # §3.3: the SDK passes appSecret as the SM2 user id but every util read ignores it,
    # so the effective id is the GM/T 0009 default 1234567812345678.
    sm2_uid_mode: Sm2UidMode = "default"
    # §2.3: SDK code sends epoch milliseconds as a string; one spec excerpt shows 14 digits.
    timestamp_style: TimestampStyle = "ms"
    # §4: the decompiled Java SDK emits upper case, the C# port lower; we accept both on decode.
    hex_case: HexCase = "upper"
    version: str = "2.0.1"
    paths: Mapping[str, str] = field(default_factory=dict)  # per-interface overrides of DEFAULT_PATHS

    def __post_init__(self) -> None:
        if len(self.app_id.encode("utf-8")) < 16:
            # §4 step 1 takes the first 16 characters of appId as the SM4 key.
            raise ValueError("app_id must be at least 16 characters (it seeds the SM4 key)")
        if not self.app_secret:
            raise ValueError("app_secret is required")
        if not self.org_codg:
            raise ValueError("org_codg is required")
        if self.sm2_uid_mode not in ("default", "appSecret"):
            raise ValueError(f"sm2_uid_mode must be 'default' or 'appSecret', not {self.sm2_uid_mode!r}")
        if self.timestamp_style not in ("ms", "yyyyMMddHHmmss"):
            raise ValueError(f"timestamp_style must be 'ms' or 'yyyyMMddHHmmss', not {self.timestamp_style!r}")
        if self.hex_case not in ("upper", "lower"):
            raise ValueError(f"hex_case must be 'upper' or 'lower', not {self.hex_case!r}")
        unknown = set(self.paths) - set(DEFAULT_PATHS)
        if unknown:
            raise ValueError(f"paths given for unknown interfaces: {sorted(unknown)}")
        if self.timeout_seconds <= 0 or self.connect_timeout_seconds <= 0:
            raise ValueError("timeouts must be positive")

    def url(self, interface: str) -> str:
        path = self.paths.get(interface) or DEFAULT_PATHS[interface]
        return self.base_url.rstrip("/") + "/" + path.lstrip("/")
