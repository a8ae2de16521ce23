"""The simulated WeChat 医保 authorisation exchange (channels.md §5, §10.1 "auth_codes"), driven
with plain HTTP and hmac as the public hospital code sends it (docs/platform-choices.md "WeChat
payAuthNo exchange"), not with mibridge's client: a code is exchanged once, by its own patient,
for a payAuthNo the centre takes; a request whose HMAC does not verify gets 401."""
from __future__ import annotations

import hashlib
import hmac
import secrets
import time

import httpx

from .channel_helpers import ACCT_PSN, channel_hospital, channel_running, csim, ctl  # noqa: F401


def exchange(sim, code: str, openid: str, secret: str = None, partner: str = None, ts: str = None) -> httpx.Response:
    c = sim.client_credentials()["wechatpay"]
    partner = partner or c["auth_partner_id"]
    ts = ts or str(int(time.time() * 1000))
    sig = hmac.new((secret or c["auth_partner_secret"]).encode(), (partner + ts).encode(), hashlib.sha256).hexdigest()
    return httpx.post(f"{sim.url}/api/mipuserquery/userQuery/{partner}", json={"qrcode": code, "openid": openid},
                      headers={"god-portal-timestamp": ts, "god-portal-signature": sig,
                               "god-portal-request-id": secrets.token_hex(16)})


def test_an_auth_code_is_exchanged_once_for_a_pay_auth_no_the_centre_takes(csim):
    code = ctl(csim, "POST", "/__sim__/wechat/auth_code", {"openid": "o-a1", "psn_no": ACCT_PSN})["auth_code"]
    assert exchange(csim, code, "o-other").json()["code"] == 1004          # another patient's code
    r = exchange(csim, code, "o-a1")
    assert r.status_code == 200 and r.json()["code"] == 0
    grant = r.json()["data"]["pay_auth_no"]
    assert grant.startswith("AUTH")
    again = exchange(csim, code, "o-a1").json()
    assert again["code"] == 1002 and "data" not in again                   # single use
    assert exchange(csim, "AC-never-issued", "o-a1").json()["code"] == 1001
    # the payAuthNo is the centre's own: the same kind of token /__sim__/mobilepay/authorize issues
    assert ctl(csim, "GET", "/__sim__/wechat/state")["auth"]["exchanges"][-1]["psn_no"] == ACCT_PSN


def test_a_relatives_authorisation_is_family_pay_auth_no(csim):
    code = ctl(csim, "POST", "/__sim__/wechat/auth_code", {"openid": "o-f1", "psn_no": ACCT_PSN,
                                                            "family": True})["auth_code"]
    data = exchange(csim, code, "o-f1").json()["data"]
    assert list(data) == ["family_pay_auth_no"] and data["family_pay_auth_no"].startswith("AUTH")


def test_a_request_whose_signature_does_not_verify_is_refused_and_the_code_stays_usable(csim):
    code = ctl(csim, "POST", "/__sim__/wechat/auth_code", {"openid": "o-s1", "psn_no": ACCT_PSN})["auth_code"]
    for bad in (dict(secret="wrong-secret"), dict(ts=str(int(time.time() * 1000) - 3_600_000)),
                dict(partner="99999999")):
        r = exchange(csim, code, "o-s1", **bad)
        assert r.status_code == 401 and r.json()["code"] == "SIGN_FAIL", (bad, r.text)
    assert exchange(csim, code, "o-s1").json()["code"] == 0
