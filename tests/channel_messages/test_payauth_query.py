"""The WeChat 医保 authorisation exchange (auth code -> payAuthNo, bridge/wechatpay/authquery.py)
against a loopback server: the request as public hospital code sends it (body, the
god-portal HMAC headers, checked here with hmac directly), every kind of answer, and nothing
secret in the journal.  (Not a channel stand-in: the endpoint is not in channels.md, so the
simulator does not play it.)"""
from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json

import pytest

from bridge.calls import Outcome
from bridge.wechatpay.authquery import AUTH_QUERY, PayAuthQuery
from tests.channel_wechatpay.loopback import Canned, Loopback
from tests.flows_unit.ch_messages import ch_clients  # noqa: F401 (fixture)

PARTNER, SECRET = "50010828", "partner-secret-0123456789"


@pytest.fixture(scope="module")
def server():
    s = Loopback()
    yield s
    s.close()


@pytest.fixture
def query(ch_clients, server):
    server.reset()
    cfg = dataclasses.replace(ch_clients["wechatpay"].config,
                              auth_query_url=f"{server.url}/api/mipuserquery/userQuery/{PARTNER}",
                              auth_partner_id=PARTNER, auth_partner_secret=SECRET)
    q = PayAuthQuery(cfg, clock=lambda: 1767225600.123)
    yield q
    q.close()


def _json(status: int, body) -> Canned:
    return Canned(status, {"Content-Type": "application/json"}, json.dumps(body).encode())


@pytest.mark.parametrize("answer, outcome, code, family", [
    (_json(200, {"code": 0, "message": "ok", "data": {"pay_auth_no": "AUTH440100X1", "user_name": "张三"}}),
     Outcome.OK, "0", False),
    (_json(200, {"code": 0, "data": {"family_pay_auth_no": "AUTH440100F2", "certno": "440106199001011234"}}),
     Outcome.OK, "0", True),
    (_json(200, {"auth_no": "AUTH9"}), Outcome.OK, None, False),
    (_json(200, {"code": 0, "data": {"pay_auth_no": "AUTH1", "family_pay_auth_no": "AUTH2"}}),
     Outcome.REJECTED, "BOTH_GRANTS", None),
    (_json(200, {"code": 40001, "message": "授权码已失效"}), Outcome.REJECTED, "40001", None),
    (_json(200, {"data": {"pay_auth_no": "X123"}}), Outcome.REJECTED, "NOT_AN_AUTH_NO", None),
    (_json(401, {"code": "SIGN_FAIL", "message": "signature"}), Outcome.REJECTED, "SIGN_FAIL", None),
    (_json(502, {"message": "bad gateway"}), Outcome.UNKNOWN, "HTTP_ERROR", None),
    (Canned(200, {}, b"<html>"), Outcome.UNKNOWN, "BAD_RESPONSE", None),
    (Canned(reset=True), Outcome.UNKNOWN, "TRANSPORT_ERROR", None),
])
def test_each_answer(query, server, answer, outcome, code, family):
    server.answer = answer
    prepared = query.prepare("AC-CODE-123", "o-user-1")
    r = query.send(prepared)
    assert (r.outcome, r.code, r.interface) == (outcome, code, AUTH_QUERY)
    if outcome is Outcome.OK:
        assert r.data.family is family and r.data.pay_auth_no.startswith("AUTH")
        assert r.data.pay_auth_no not in repr(r.data)
    (seen,) = server.seen
    assert seen.path == f"/api/mipuserquery/userQuery/{PARTNER}" and seen.method == "POST"
    assert json.loads(seen.body) == {"qrcode": "AC-CODE-123", "openid": "o-user-1"}
    h = {k.lower(): v for k, v in seen.headers.items()}
    assert h["god-portal-timestamp"] == "1767225600123"
    want = hmac.new(SECRET.encode(), (PARTNER + "1767225600123").encode(), hashlib.sha256).hexdigest()
    assert h["god-portal-signature"] == want and len(h["god-portal-request-id"]) == 32
    # nothing secret for the journal: the auth code, the grant, the relative's name and ID
    assert "AC-CODE-123" not in prepared.masked_request
    for secret in ("AUTH440100X1", "AUTH440100F2", "AUTH9", "张三", "440106199001011234"):
        assert secret not in (r.response_text or "")


def test_no_connection_is_not_sent(query):
    closed = dataclasses.replace(query.config, auth_query_url="http://127.0.0.1:9/api/mipuserquery/userQuery/1")
    q = PayAuthQuery(closed)
    try:
        assert q.send(q.prepare("A", "o")).outcome is Outcome.NOT_SENT
    finally:
        q.close()


def test_the_exchange_is_configured_whole_or_not_at_all(ch_clients):
    base = ch_clients["wechatpay"].config
    with pytest.raises(ValueError, match="auth_partner_id and auth_partner_secret"):
        dataclasses.replace(base, auth_query_url="https://receiver.example/api/mipuserquery/userQuery/1")
    with pytest.raises(ValueError, match="must be https"):
        dataclasses.replace(base, auth_query_url="http://receiver.example/x", auth_partner_id="1",
                            auth_partner_secret="s")
    with pytest.raises(ValueError, match="not configured"):
        PayAuthQuery(base)
