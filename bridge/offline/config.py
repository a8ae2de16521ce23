"""Configuration of the offline two-designated (线下两定) client, Guangdong gateway.

Every place where the public sources disagree is a field here, with the default
we chose and the section of ../shared/spec/offline.md (the digest) behind it.
"""
from __future__ import annotations

import codecs
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping, Optional

# Name of the node inside `input` that carries the business record, per infno
# (digest §5 table).  "" means the fields sit directly in `input`.
# Calls whose input has several fixed nodes (2203, 2204, 2301, 2260) are not listed:
# their node names are the same in every source.
NATIONAL_INPUT_NODES: Mapping[str, str] = MappingProxyType({
    "9001": "signIn", "1101": "data", "2201": "data", "2202": "data", "2205": "data",
    "2206": "data", "2207": "data", "2208": "data", "2302": "data", "2303": "data",
    "2304": "data", "2305": "data", "2261": "mdtrtinfo", "2601": "data",
    "3201": "data", "3202": "data", "2001": "data", "1901": "data",
    # fpy001 / tgdupc004: the tender (facepay.md) says "sent like an offline interface"
    # without naming the node; `data` is the national default.
    "fpy001": "data", "tgdupc004": "data",
})

# Guangzhou build (digest §5 table, source GZ Models/Request/*.cs).
GUANGZHOU_INPUT_NODES: Mapping[str, str] = MappingProxyType({
    **NATIONAL_INPUT_NODES,
    "9001": "data", "2201": "mdtrtinfo", "2202": "mdtrtinfo", "2206": "mdtrtinfo",
    "2207": "mdtrtinfo", "2208": "mdtrtinfo", "2302": "feeinfo", "2304": "mdtrtinfo",
    "2305": "mdtrtinfo", "2601": "", "3201": "", "3202": "",
})


# Envelope opter_type values (digest §2 #11, §6).
OPTER_STAFF, OPTER_KIOSK, OPTER_MOBILE = "1", "2", "3"


@dataclass(frozen=True)
class Operator:
    """Who performs a call: envelope `opter`, `opter_name`, `opter_type` (digest §2 #11-13).
    A self-service kiosk is `Operator(<terminal id>, <terminal name>, OPTER_KIOSK)`."""

    opter: str
    opter_name: str
    opter_type: str = "1"   # 1 staff, 2 self-service terminal, 3 mobile terminal


@dataclass(frozen=True)
class OfflineConfig:
    # Gateway: URL = base_url + infno (digest §1.1, GZ/SZ/ZS), e.g.
    # "https://host/ebus/gdyb_inf/poc/hsa/hgs/".
    base_url: str
    paas_id: str                                  # x-tif-paasid (§1.2)
    paas_secret: str = field(repr=False)          # enters x-tif-signature only; never logged
    fixmedins_code: str = ""                      # ≤12 chars (§2 #15); first part of msgid
    fixmedins_name: str = ""
    mdtrtarea_admvs: str = ""                     # 6-digit treatment-area division (§2 #3)
    default_operator: Optional[Operator] = None
    # §2 #5: the spec remark says YBXT for normal business; GD code sends other values
    # and is apparently not checked, so the spec value is the default.
    recer_sys_code: str = "YBXT"
    infver: str = "V1.0"                          # §2 #10: "V1.0" (CQ, SZ) vs "1.0.0" (GZ)
    # §1.3: signtype/cainfo are not validated by the platform in practice; we send
    # them empty rather than a meaningless hash.
    signtype: str = ""
    dev_no: str = ""
    dev_safe_info: str = ""
    # §2: receiver division is optional and spelled `recer_admdvs` (GZ) or `recer_admvs`
    # (ZS).  None = do not send it.
    recer_admdvs: Optional[str] = None
    recer_admdvs_field: str = "recer_admdvs"
    # Guangzhou wraps most inputs under `mdtrtinfo` (§5); pass GUANGZHOU_INPUT_NODES there.
    input_nodes: Mapping[str, str] = field(default_factory=lambda: NATIONAL_INPUT_NODES)
    # The extension carrier is spelled `expContent` (facepay.md, CQ 1101 output, the
    # C# model of §5.8) or `exp_content` (CQ/J2207).  facepay.md calls it an extension
    # *object*; daxiaochengzi/YiBinActive Model/Dto/YiHai/OutpatientCancelSettlementInputdataDto.cs
    # also types `expContent` as an object, while CQ 2204 sends a JSON string.
    exp_content_field: str = "expContent"
    exp_content_as_string: bool = False
    # 9001: the sign-in is per operator per day; GZ additionally renews after one hour
    # (§4).  None = only the day boundary.
    sign_in_max_age_seconds: Optional[int] = None
    # ZS sends sign_no empty (§4: "some GD gateways don't enforce it").  With True the
    # client refuses to prepare a call before 9001 has succeeded for the operator.
    require_sign_no: bool = True
    # Words in err_msg that mean "sign in again".  The platform's code for an invalid
    # sign-in is not in any public source (§13 #5); 签到 = "sign-in".
    sign_in_invalid_markers: tuple[str, ...] = ("签到", "sign_no")
    # GZ 9001 variant (§4): userid + password (sent as MD5(currenttime + password)).
    gz_sign_in_userid: Optional[str] = None
    gz_sign_in_password: Optional[str] = field(default=None, repr=False)
    # Personal-account refund mpc004 (infno tgdupc004) has its own path (facepay.md):
    # test "…/ebus/gdyb_inf/poc_hos_unionRefund", prod "…/ebus/gdyb_api/prd_hos_unionRefund".
    union_refund_url: Optional[str] = None
    # msgid uniqueness across processes (see envelope.MsgIdGenerator): a digit 0-9 per
    # daemon, claimed through a lock file in msgid_lock_dir.  None = first free digit.
    msgid_node: Optional[int] = None
    msgid_lock_dir: Optional[str] = None
    # 9101 `in` (the file bytes) in JSON: "base64" (.NET Convert.ToBase64String, NMG
    # YiBaoController.FsUploadIn_9101) or "signed_array" (a Java byte[] as numbers -128..127,
    # ZS ZsrmQGService).  The Guangdong gateway's choice is unknown (offline.md §10.2, §13 #7).
    upload_bytes_form: str = "base64"
    # Text encoding of the 3202 detail and result files: UTF-8 in ZS (§10.2); GBK for a
    # gateway that wants the DLL channel's encoding (§1.1).
    recon_file_encoding: str = "utf-8"
    # 9102 `fixmedins_code`: the institution code by default; the catalogue downloads of
    # SZ/NMG/ZS send the fixed "plc" instead (SZ Down9102.cs remark).
    download_fixmedins_code: Optional[str] = None
    # 1901 dictionary type that lists the insured regions (参保地).  No public source names
    # it (docs/platform-choices.md); None = the region dictionary is not fetched.
    region_dictionary_type: Optional[str] = None
    # Timeouts in seconds.  Settlement can take long at the core; 60 s read is what the
    # GD code bases use as a generous upper bound (no source states a platform limit).
    connect_timeout: float = 5.0
    read_timeout: float = 60.0
    write_timeout: float = 10.0
    pool_timeout: float = 5.0
    max_connections: int = 10

    def __post_init__(self) -> None:
        if len(self.fixmedins_code) > 12 or not self.fixmedins_code:
            # msgid = code(12) + time(14) + seq(4) must fit str 30 (§2 #2).
            raise ValueError("fixmedins_code must be 1-12 characters")
        if self.msgid_node is not None and not 0 <= self.msgid_node <= 9:
            raise ValueError("msgid_node must be a digit 0-9")
        if self.recer_admdvs_field not in ("recer_admdvs", "recer_admvs"):
            raise ValueError("recer_admdvs_field must be recer_admdvs or recer_admvs")
        if self.exp_content_field not in ("expContent", "exp_content"):
            raise ValueError("exp_content_field must be expContent or exp_content")
        if self.upload_bytes_form not in ("base64", "signed_array"):
            raise ValueError("upload_bytes_form must be base64 or signed_array")
        try:
            codecs.lookup(self.recon_file_encoding)
        except LookupError:
            raise ValueError(f"unknown recon_file_encoding {self.recon_file_encoding!r}") from None

    def url_for(self, infno: str) -> str:
        return self.base_url.rstrip("/") + "/" + infno

    def node_for(self, infno: str) -> str:
        return self.input_nodes.get(infno, "data")
