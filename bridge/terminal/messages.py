"""Typed requests and answers of the terminal libraries; attribute names are the wire names.

E-credential library NationECCode.dll, `NationEcTrans(url, inJson, outBuf)` (offline.md §7.1-§7.2;
newtouch-cloud/openhis @ b4fe7065 WinServiceAPI/NeiMengGuYiBaoApp/Models/{Input,Output}/NationECCodeDll/*.cs):

| transType            | input model      | output model       |
|----------------------|------------------|--------------------|
| cn.nhsa.ec.auth      | FaceAuthRequest  | FaceAuthorisation  |
| cn.nhsa.auth.check   | FaceAuthRequest  | InsuredIdentity    |
| ec.query             | QrQueryRequest (deviceType "SelfService" on kiosks, EcQueryInput.cs) | InsuredIdentity |
| cn.nhsa.qrcode.get   | QrQueryRequest (no deviceType, QrCodeInput.cs)                       | InsuredIdentity |
| cn.nhsa.settle.notify| SettleNotice     | (outBizNo, extData) |

Social-security card reader HeaSecReadInfo.dll `ReadCardBas(pCardInfo, pBusiCardInfo)`: the
card's basic data as one '|'-separated line of 11 fields (CardBasics, below; same repository,
Service/DllHelper.cs CallReadCardBasAndSaveLog and Models/Output/HeaSecReadInfo/ReadCardBas.cs;
the same layout, with 4 more trailing fields, in a Shenzhen clinic's YBReadCard.cs reading
SSCardDriver_SZ.dll iReadCardBas, index id 11802262230).  1101 then takes
mdtrt_cert_type "03", mdtrt_cert_no = the card number, card_sn = the card identification code
(DllHelper's caller in the same repository; offline.md §5.1 "card_sn C when type 03").
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Mapping, Optional

FACE_AUTH = "cn.nhsa.ec.auth"
AUTH_CHECK = "cn.nhsa.auth.check"
EC_QUERY = "ec.query"
QRCODE_GET = "cn.nhsa.qrcode.get"
SETTLE_NOTIFY = "cn.nhsa.settle.notify"
QR_TRANS_TYPES = (EC_QUERY, QRCODE_GET)
# Name of the card read in the call journal; the reader is a library function, not a transType.
CARD_READ = "ReadCardBas"

SELF_SERVICE = "SelfService"          # deviceType of a kiosk (EcQueryInput.cs)


@dataclass(frozen=True)
class FaceAuthRequest:            # cn.nhsa.ec.auth / cn.nhsa.auth.check input (offline.md §7.2)
    businessType: str             # 5-char usage code, e.g. 01101
    operatorId: str
    operatorName: str
    officeId: str
    officeName: str
    extData: Optional[Mapping[str, Any]] = None

    def to_data(self) -> dict[str, Any]:
        data = {"businessType": self.businessType, "operatorId": self.operatorId,
                "operatorName": self.operatorName, "officeId": self.officeId,
                "officeName": self.officeName}
        if self.extData is not None:
            data["extData"] = dict(self.extData)
        return data


@dataclass(frozen=True)
class QrQueryRequest:
    """ec.query / cn.nhsa.qrcode.get input (offline.md §7.2; EcQueryInput.cs, QrCodeInput.cs).
    Neither carries an outBizNo in the models; the library reads the QR itself."""

    businessType: str
    operatorId: str
    operatorName: str
    officeId: str
    officeName: str
    deviceType: Optional[str] = None   # ec.query only: SELF_SERVICE on a kiosk

    def to_data(self, trans_type: str) -> dict[str, Any]:
        data = {"businessType": self.businessType, "operatorId": self.operatorId,
                "operatorName": self.operatorName, "officeId": self.officeId,
                "officeName": self.officeName}
        if self.deviceType and trans_type == EC_QUERY:
            data["deviceType"] = self.deviceType
        return data


@dataclass(frozen=True)
class FaceAuthorisation:
    authNo: str
    outBizNo: Optional[str] = None


@dataclass(frozen=True)
class InsuredIdentity:
    """auth.check / ec.query / qrcode.get output (offline.md §7.2).  `insuOrg` is the insured
    division -> the envelope's insuplc_admdvs (§7.3); `ecToken` -> 1101 mdtrt_cert_type 01."""

    authNo: Optional[str]
    idNo: str
    idType: Optional[str] = None
    userName: Optional[str] = None
    ecToken: Optional[str] = None
    insuOrg: Optional[str] = None
    ecIndexNo: Optional[str] = None
    gender: Optional[str] = None
    birthday: Optional[str] = None
    nationality: Optional[str] = None

    @classmethod
    def from_data(cls, data: Any) -> "InsuredIdentity":
        if not isinstance(data, Mapping) or not data.get("idNo"):
            raise ValueError("identity answer without idNo")
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: data.get(k) for k in known if k in data or k == "authNo"})


def qr_identity(data: Any) -> InsuredIdentity:
    """A QR read must give the token 1101 needs, else the kiosk has nothing to look up with."""
    ident = InsuredIdentity.from_data(data)
    if not ident.ecToken:
        raise ValueError("QR answer without ecToken")
    return ident


def authorisation(data: Any) -> FaceAuthorisation:
    if not isinstance(data, Mapping) or not data.get("authNo"):
        raise ValueError("ec.auth answer without authNo")
    return FaceAuthorisation(authNo=str(data["authNo"]), outBizNo=data.get("outBizNo"))


@dataclass(frozen=True, kw_only=True)
class SettleNotice:
    """cn.nhsa.settle.notify input (offline.md §7.2).  Needed only when the terminal did
    not collect the payment itself.  Amount fields apply to SUCCESS."""

    outBizNo: str                 # the serial of the face authorisation
    medicalSettleState: str       # SUCCESS / FAIL
    authNo: str
    operatorId: str
    operatorName: str
    totalFee: Decimal
    bizType: str                  # register / settle
    idNo: str
    userName: str
    setlTime: str
    hospitalName: str
    officeId: str
    officeName: str
    doctorName: str
    medicalSettleNo: Optional[str] = None
    ownAmt: Optional[Decimal] = None
    hifAmt: Optional[Decimal] = None
    acctAmt: Optional[Decimal] = None
    hifpAmt: Optional[Decimal] = None
    hifmiAmt: Optional[Decimal] = None
    cvlservAmt: Optional[Decimal] = None
    maAmt: Optional[Decimal] = None
    hosPreAmt: Optional[Decimal] = None
    medOverLmtAmt: Optional[Decimal] = None
    mafAmt: Optional[Decimal] = None
    cvlservDedcAmt: Optional[Decimal] = None
    balance: Optional[Decimal] = None
    drugList: Optional[str] = None   # JSON string of items (ITEM_NO, ITEMNAME, ...)
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_data(self) -> dict[str, Any]:
        if self.medicalSettleState not in ("SUCCESS", "FAIL"):
            raise ValueError("medicalSettleState must be SUCCESS or FAIL")
        if self.medicalSettleState == "SUCCESS" and not self.medicalSettleNo:
            raise ValueError("a SUCCESS notice needs medicalSettleNo")
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
               if f.name != "extra" and getattr(self, f.name) is not None}
        out.update(self.extra)
        return out


# ---------------------------------------------------------------- social-security card

# ReadCardBas pCardInfo, in order (DllHelper.cs; ReadCardBas.cs property names in brackets):
CARD_FIELDS = (
    "issuing_area",       # 发卡地区行政区划代码 [IssuingAreaCode] (first 6 chars of card_sn)
    "ssn",                # 社会保障号码 [SocialSecurityNumber] (the resident ID number)
    "card_no",            # 卡号 [CardNumber] -> 1101 mdtrt_cert_no
    "card_sn",            # 卡识别码 [CardIdentificationCode] -> 1101 card_sn
    "name",               # 姓名 [Name]
    "card_reset_info",    # 卡复位信息 [CardResetInfo]
    "spec_version",       # 规范版本 [SpecificationVersion]
    "issue_date",         # 发卡日期 [IssuingDate] yyyyMMdd
    "expiry_date",        # 卡有效期 [ExpirationDate] yyyyMMdd
    "terminal_no",        # 终端机编号 [TerminalNumber]
    "terminal_device_no",  # 终端设备号 [TerminalDeviceNumber]
)


@dataclass(frozen=True)
class CardBasics:
    issuing_area: str
    ssn: str
    card_no: str
    card_sn: str
    name: str
    card_reset_info: str = ""
    spec_version: str = ""
    issue_date: str = ""
    expiry_date: str = ""
    terminal_no: str = ""
    terminal_device_no: str = ""

    @classmethod
    def parse(cls, text: str) -> "CardBasics":
        """One ReadCardBas line.  A trailing '|' is normal (DllHelper trims it); fewer than
        11 fields is refused as DllHelper refuses it ("数据项不足"); later fields (the
        Shenzhen driver adds PSAM chip no., medical certificate no., ...) are ignored."""
        if not isinstance(text, str):
            raise ValueError("card data is not text")
        parts = text.strip().rstrip("|").split("|")
        if len(parts) < len(CARD_FIELDS):
            raise ValueError(f"card data has {len(parts)} fields, {len(CARD_FIELDS)} expected")
        values = dict(zip(CARD_FIELDS, (p.strip() for p in parts)))
        for required in ("card_no", "card_sn"):
            if not values[required]:
                raise ValueError(f"card data without {required}")
        return cls(**values)

    def masked(self) -> dict[str, str]:
        from bridge.masking import mask_id, mask_name
        d = dataclasses.asdict(self)
        d["ssn"] = mask_id(self.ssn)
        d["name"] = mask_name(self.name)
        return d
