"""Patient messages and the access_token cache (channels.md §4)."""
from __future__ import annotations

import json
import threading
from urllib.parse import parse_qs, urlsplit

import pytest

from bridge.calls import Outcome
from bridge.wechatpay import outcomes as oc
from bridge.wechatpay.config import MessageTemplate
from bridge.wechatpay.messenger import PatientMessage, WechatMessenger
from bridge.wechatpay.token import AccessTokenCache, Token, TokenUnavailable

from .loopback import Canned


# ---------------------------------------------------------------- the cache

class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_refreshes_margin_seconds_before_expiry():
    clock, calls = Clock(), []

    def fetch(force):
        calls.append(force)
        return Token(f"T{len(calls)}", 7200)
    cache = AccessTokenCache(fetch, margin_seconds=300, clock=clock)
    assert cache.get() == "T1"
    clock.now += 6899
    assert cache.get() == "T1" and len(calls) == 1
    clock.now += 2                              # 6901 s: inside the 300 s margin
    assert cache.get() == "T2" and calls == [False, False]


def test_a_failed_refresh_keeps_a_still_valid_token_but_not_an_expired_one():
    clock, results = Clock(), [Token("T1", 7200)]

    def fetch(force):
        if results:
            return results.pop()
        raise TokenUnavailable("down", code="-1")
    cache = AccessTokenCache(fetch, margin_seconds=300, clock=clock)
    assert cache.get() == "T1"
    clock.now += 7000                           # in the margin: refresh fails, old token still valid
    assert cache.get() == "T1"
    clock.now += 300                            # expired
    with pytest.raises(TokenUnavailable):
        cache.get()


def test_invalidate_forces_the_next_fetch_once():
    calls = []

    def fetch(force):
        calls.append(force)
        return Token(f"T{len(calls)}", 7200)
    cache = AccessTokenCache(fetch, clock=Clock())
    first = cache.get()
    cache.invalidate("someone else's old token")
    assert cache.get() == first and calls == [False]
    cache.invalidate(first)
    assert cache.get() == "T2" and calls == [False, True]
    assert cache.get() == "T2"


def test_one_refresh_at_a_time_across_threads():
    entered, release, calls = threading.Event(), threading.Event(), []

    def fetch(force):
        calls.append(force)
        entered.set()
        release.wait(5)
        return Token("T", 7200)
    cache = AccessTokenCache(fetch)
    results = []
    threads = [threading.Thread(target=lambda: results.append(cache.get())) for _ in range(8)]
    for t in threads:
        t.start()
    entered.wait(5)
    release.set()
    for t in threads:
        t.join(5)
    assert results == ["T"] * 8 and len(calls) == 1


# ---------------------------------------------------------------- sending

TEMPLATES = {
    "outpatient_paid": MessageTemplate(template_id="TPL-SUB-1", page="pages/order/detail",
                                       fields={"thing1": "patient_name", "amount2": "amount", "time3": "paid_time"}),
    "refund_done": MessageTemplate(template_id="TPL-OA-1", kind="official", page="pages/refund",
                                   fields={"keyword1": "patient_name", "keyword2": "amount"}),
}
VALUES = {"patient_name": "张三丰", "amount": "30.00元", "paid_time": "2024-01-01 10:00"}


@pytest.fixture
def messenger(server, make_config):
    config = make_config(message_base_url=server.url, app_secret="S" * 32, official_appid="wx00000000000000aa",
                         official_app_secret="O" * 32, templates=TEMPLATES)
    m = WechatMessenger(config)
    yield m
    m.close()


def script(server, sends):
    """Answer token requests with T1, T2 ... and message sends from ``sends`` in order."""
    tokens = []

    def answer(seen):
        if seen.path.startswith("/cgi-bin/stable_token"):
            tokens.append(json.loads(seen.body))
            return Canned(200, {"Content-Type": "application/json"},
                          json.dumps({"access_token": f"T{len(tokens)}", "expires_in": 7200}).encode())
        status, body = sends.pop(0)
        return Canned(status, {"Content-Type": "application/json"}, json.dumps(body).encode())
    server.answer = answer
    return tokens


def test_subscribe_message_is_rendered_from_config_and_sent_with_the_token(server, messenger):
    script(server, [(200, {"errcode": 0, "errmsg": "ok", "msgid": 123})])
    prepared = messenger.prepare_message(PatientMessage(event="outpatient_paid", touser="o-user", values=VALUES))
    assert "张三丰" not in prepared.masked_request and "T1" not in prepared.url
    result = messenger.send(prepared)
    assert result.ok and result.data.msgid == "123"
    token_req, send = server.seen
    assert parse_qs(urlsplit(send.path).query) == {"access_token": ["T1"]}
    body = json.loads(send.body)
    assert body == {"touser": "o-user", "template_id": "TPL-SUB-1", "page": "pages/order/detail",
                    "miniprogram_state": "formal", "lang": "zh_CN",
                    "data": {"thing1": {"value": "张三丰"}, "amount2": {"value": "30.00元"},
                             "time3": {"value": "2024-01-01 10:00"}}}
    assert json.loads(token_req.body)["force_refresh"] is False


def test_official_account_template_message(server, messenger):
    script(server, [(200, {"errcode": 0, "errmsg": "ok", "msgid": 9})])
    result = messenger.send(messenger.prepare_message(PatientMessage(event="refund_done", touser="oa-user",
                                                                     values=VALUES)))
    assert result.ok
    body = json.loads(server.seen[-1].body)
    assert server.seen[-1].path.startswith("/cgi-bin/message/template/send?")
    assert body["miniprogram"] == {"appid": "wx0123456789abcdef", "pagepath": "pages/refund"}
    assert json.loads(server.seen[0].body)["appid"] == "wx00000000000000aa"


def test_an_invalid_token_is_refreshed_once_then_sent(server, messenger):
    tokens = script(server, [(200, {"errcode": 40001, "errmsg": "invalid credential"}),
                             (200, {"errcode": 0, "errmsg": "ok"})])
    result = messenger.send(messenger.prepare_message(PatientMessage(event="outpatient_paid", touser="o",
                                                                     values=VALUES)))
    assert result.ok
    assert [t["force_refresh"] for t in tokens] == [False, True]


@pytest.mark.parametrize("errcode,outcome,transient", [
    (43101, Outcome.REJECTED, False),      # the user refused: final not-sent
    (47003, Outcome.REJECTED, False),
    (45009, Outcome.REJECTED, True),
    (-1, Outcome.UNKNOWN, True),
    (42001, Outcome.REJECTED, False),      # still expired after one refresh
])
def test_message_errcodes(server, messenger, errcode, outcome, transient):
    script(server, [(200, {"errcode": errcode, "errmsg": "x"}), (200, {"errcode": errcode, "errmsg": "x"})])
    result = messenger.send(messenger.prepare_message(PatientMessage(event="outpatient_paid", touser="o",
                                                                     values=VALUES)))
    assert (result.outcome, result.code) == (outcome, str(errcode))
    # transient is a property of refusals only (bridge/calls.py); the table keeps WeChat's advice for -1.
    assert result.transient is (outcome is Outcome.REJECTED and transient)
    assert oc.classify(result.interface, result.code).transient is transient


def test_no_token_means_not_sent(server, messenger):
    server.answer = lambda seen: Canned(200, {}, json.dumps({"errcode": 40013, "errmsg": "invalid appid"}).encode())
    result = messenger.send(messenger.prepare_message(PatientMessage(event="outpatient_paid", touser="o",
                                                                     values=VALUES)))
    assert result.outcome is Outcome.NOT_SENT and result.code == oc.NOT_SENT and result.try_again
    assert len(server.seen) == 1                   # only the token request


def test_missing_value_and_unknown_event_are_refused_before_sending(messenger):
    with pytest.raises(ValueError, match="paid_time"):
        messenger.prepare_message(PatientMessage(event="outpatient_paid", touser="o",
                                                 values={"patient_name": "x", "amount": "1"}))
    with pytest.raises(ValueError, match="no message template"):
        messenger.prepare_message(PatientMessage(event="nope", touser="o", values={}))
