"""Who pays, and in which channel: the channel part of a mobile-pay payment's payload.

The HIS names the channel the patient pays in (docs/channels.md "For the HIS"):

    "channel": "wechat"     WeChat Pay 医保: mibridge places the JSAPI prepay for the cash part
                            (channels.md §2.1) and the mixed order (§2.2).  Needs the payer's
                            "openid" under the mini-program (appid) of [wechatpay].  Instead
                            of "pay_auth_no" the payload may give "auth_code", which mibridge
                            exchanges (§5, [wechatpay] auth_query_url).
    "channel": "alipay"     Alipay: mibridge places the medical order (§7.2, or the §7.3 trade
                            variant).  Needs the buyer: "alipay_user_id" (2088…) or
                            "alipay_open_id".  Without "pay_auth_no" mibridge asks Alipay for it
                            (alipay.commerce.medical.authinfo.auth.query, §7.1).

A payload without "channel" is paid as before: mibridge places the centre's order only and
the mini-program's back end talks to the channel itself.

Everything is checked here, before any call (BAD_INPUT names the field).  What cannot be
checked from the payload alone (the business key's length as a channel number, a channel
the daemon has no section for) is checked by the payment's first step, still before any
call.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

from bridge.engine.flow import BadInput

WECHAT = "wechat"
ALIPAY = "alipay"
CHANNELS = (WECHAT, ALIPAY)

_OPENID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")            # WeChat openid: 28 characters in practice
_ALIPAY_USER = re.compile(r"^2088\d{12}$")                  # §9: user id 2088 + 12 digits
_ALIPAY_OPEN_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_GEO = re.compile(r"^-?\d{1,3}(\.\d{1,8})?,-?\d{1,2}(\.\d{1,8})?$")   # "lng,lat" (§2.2 geo_location)


@dataclass(frozen=True)
class ChannelPayer:
    channel: str                                # WECHAT or ALIPAY
    openid: Optional[str] = None                # WeChat: the payer under [wechatpay] appid
    alipay_user_id: Optional[str] = None        # Alipay: exactly one of these two
    alipay_open_id: Optional[str] = None
    geo_location: Optional[str] = None          # WeChat "lng,lat"; default [mobilepay] location
    description: Optional[str] = None           # the cash order's description (the bill shows it, §3.3)

    @property
    def recipient(self) -> dict:
        """Who a patient message goes to (bridge/channels/patient_messages.py)."""
        if self.channel == WECHAT:
            return {"openid": self.openid}
        return {"user_id": self.alipay_user_id} if self.alipay_user_id else {"open_id": self.alipay_open_id}


def _text(doc: dict, name: str, pattern: re.Pattern, what: str) -> Optional[str]:
    v = doc.get(name)
    if v in (None, ""):
        return None
    if not isinstance(v, str) or not pattern.match(v):
        raise BadInput(f"payload field {name!r} must be {what}, got {v!r}")
    return v


def parse_payer(doc: dict) -> Optional[ChannelPayer]:
    """The channel part of a payment payload, or None for a payment without one."""
    channel = doc.get("channel")
    if channel in (None, ""):
        for name in ("openid", "alipay_user_id", "alipay_open_id"):
            if doc.get(name) not in (None, ""):
                raise BadInput(f"payload field {name!r} is given without 'channel': name the channel "
                               f"(\"wechat\" or \"alipay\") or leave the field out")
        return None
    if channel not in CHANNELS:
        raise BadInput(f"payload field 'channel' must be \"wechat\" or \"alipay\" (or left out), got {channel!r}")
    description = doc.get("description")
    if description not in (None, "") and (not isinstance(description, str) or len(description) > 127):
        raise BadInput("payload field 'description' must be text of at most 127 characters")
    geo = _text(doc, "geo_location", _GEO, 'a location "lng,lat" such as "113.26,23.13"')
    if channel == WECHAT:
        openid = _text(doc, "openid", _OPENID, "the payer's openid under the mini-program")
        if openid is None:
            raise BadInput("a WeChat payment needs the payer's 'openid' (under the mini-program of [wechatpay])")
        for name in ("alipay_user_id", "alipay_open_id"):
            if doc.get(name) not in (None, ""):
                raise BadInput(f"payload field {name!r} is for \"channel\": \"alipay\"")
        return ChannelPayer(WECHAT, openid=openid, geo_location=geo, description=description or None)
    user = _text(doc, "alipay_user_id", _ALIPAY_USER, "the buyer's Alipay user id (2088 and 12 digits)")
    open_id = _text(doc, "alipay_open_id", _ALIPAY_OPEN_ID, "the buyer's Alipay open_id")
    if bool(user) == bool(open_id):
        raise BadInput("an Alipay payment needs the buyer: exactly one of 'alipay_user_id' and 'alipay_open_id'")
    if doc.get("openid") not in (None, ""):
        raise BadInput("payload field 'openid' is for \"channel\": \"wechat\"")
    return ChannelPayer(ALIPAY, alipay_user_id=user, alipay_open_id=open_id, geo_location=geo,
                        description=description or None)
