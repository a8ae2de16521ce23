"""Every decision of patient.message (bridge/channels/message_flow.py): each answer of each
send (ok, the patient refused, another refusal, not sent, a transient refusal, unknown),
on each channel and template kind; a crashed send never resent; nothing configured; the
builder's checks (bridge/channels/patient_messages.py)."""
from __future__ import annotations

import json
from decimal import Decimal

import pytest

from bridge.alipay import outcomes as ali
from bridge.channels.message_flow import MessageFlow
from bridge.channels.patient_messages import KIND_MESSAGE, message_request
from bridge.db.rows import ClaimedRow
from bridge.masking import mask_name
from bridge.engine import testing
from bridge.engine.flow import BadInput, Fail, Finish, Retry
from bridge.engine.testing import FlowScript, not_sent, ok, unknown
from bridge.wechatpay import outcomes as wx
from bridge.wechatpay.messenger import MessageSent

from .ch_messages import PATIENT, ali_answer, ch_clients, wx_answer  # noqa: F401 (fixture)

VALUES = {"patient_name": PATIENT, "amount": Decimal("12.5"), "paid_time": "2026-01-05 09:30"}


def doc(event="registration_paid", channel="wechat", recipient=None, values=None) -> dict:
    recipient = recipient or ({"openid": "o-mini-1"} if channel == "wechat" else {"user_id": "2088000000000077"})
    return message_request(event, channel=channel, source_kind="mobilepay.registration", source_key="REG-1",
                           source_outbox_id=41, recipient=recipient, values=values or VALUES).payload


@pytest.fixture
def s(ch_clients):
    return FlowScript(MessageFlow(), services=ch_clients, business_key="msg:registration_paid:41")


@pytest.fixture
def last_attempt(monkeypatch):
    """The row is on its last attempt (attempts == max_attempts)."""
    monkeypatch.setattr(testing, "ClaimedRow", lambda **kw: ClaimedRow(**{**kw, "attempts": 10}))


def _is(t, kind, code=None):
    assert isinstance(t, kind), t
    if code is not None:
        assert getattr(t, "code", None) == code or (isinstance(t, Finish) and t.inbox and
                                                    t.inbox[0].error_code == code), t
    return t


def _row(t):
    (row,) = t.inbox
    assert row.result_type == "message"
    assert row.result["source_key"] == "REG-1" and row.result["source_outbox_id"] == 41
    assert PATIENT not in json.dumps(row.result, ensure_ascii=False)     # no value in the HIS's row
    return row


SUB, OA, ALI = wx.SUBSCRIBE_MESSAGE, wx.TEMPLATE_MESSAGE, ali.TEMPLATE_MESSAGE_CALL
CASES = {   # channel, event, recipient, the interface sent
    "wechat-subscribe": ("wechat", "registration_paid", {"openid": "o-mini-1"}, SUB),
    "wechat-official": ("wechat", "refund_done", {"openid": "o-mini-1", "official_openid": "o-oa-1"}, OA),
    "alipay": ("alipay", "outpatient_paid", {"user_id": "2088000000000077"}, ALI),
}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("answer, state, outcome, code", [
    ("ok", Finish, "ok", None),
    ("not_sent", Retry, None, "NOT_SENT"),
    ("transient", Retry, None, "BUSY"),
    ("unknown", Finish, "failed", "SEND_UNKNOWN"),
    ("refused", Fail, "failed", "MESSAGE_REFUSED"),
])
def test_each_answer_of_each_send(s, case, answer, state, outcome, code):
    channel, event, recipient, iface = CASES[case]
    answers = {
        "ok": ok(iface, MessageSent("778899") if channel == "wechat" else {"code": "10000"}),
        "not_sent": not_sent(iface),
        # the channels' own transient refusals: a WeChat quota, Alipay's refused signature
        "transient": wx_answer(iface, "45009") if channel == "wechat" else ali_answer(iface, "isv.invalid-signature"),
        "unknown": unknown(iface),
        "refused": wx_answer(iface, "40037", "invalid template_id") if channel == "wechat" else
        ali_answer(iface, "40004", "业务处理失败"),
    }
    s.answer(iface, answers[answer])
    t = _is(s.step("send", doc(event, channel, recipient)), state, code)
    assert s.sent == [iface]
    if outcome is None:
        return
    row = _row(t)
    assert row.outcome == outcome and row.error_code == code
    assert row.result["sent"] is {"ok": True, "unknown": None}.get(answer, False)
    if answer == "ok" and channel == "wechat":
        assert row.result["msgid"] == "778899" and t.data == {"outcome": "sent", "msgid": "778899"}
    if answer == "unknown":
        assert t.data["outcome"] == "unknown" and "not sent again" in row.error_message


@pytest.mark.parametrize("code", ["43101"])
def test_the_patient_refused_is_a_final_not_sent_and_no_error(s, code):
    s.answer(SUB, wx_answer(SUB, code, "user refuse to accept the msg"))
    t = _is(s.step("send", doc()), Finish)
    row = _row(t)
    assert (row.outcome, row.error_code, row.result["sent"]) == ("failed", "USER_REFUSED", False)
    assert t.data == {"outcome": "refused", "code": code}


def test_wechat_system_busy_is_unknown_and_not_resent(s):
    # errcode -1 is UNKNOWN in the client's table: WeChat does not say nothing was sent.
    s.answer(SUB, wx_answer(SUB, "-1", "system error"))
    t = _is(s.step("send", doc()), Finish)
    assert _row(t).error_code == "SEND_UNKNOWN"


@pytest.mark.parametrize("answer", ["not_sent", "transient"])
def test_on_the_last_attempt_a_retry_becomes_a_failure_never_a_hold(s, last_attempt, answer):
    s.answer(SUB, not_sent(SUB) if answer == "not_sent" else wx_answer(SUB, "45011"))
    t = _is(s.step("send", doc()), Fail, "SEND_FAILED")
    assert "gave up after 10 attempts" in t.message and _row(t).result["sent"] is False


def test_a_send_whose_answer_was_never_written_is_not_sent_again(s):
    t = _is(s.step("send", doc(), current_call="wechat.message.subscribe-abc"), Finish)
    assert s.sent == []
    row = _row(t)
    assert (row.error_code, row.result["sent"]) == ("SEND_UNKNOWN", None)


@pytest.mark.parametrize("event, channel, services", [
    ("outpatient_paid", "wechat", None),          # WeChat has no template for it
    ("registration_paid", "alipay", None),        # nor Alipay for this one
    ("registration_paid", "wechat", {}),          # no [wechatpay] at all
    ("outpatient_paid", "alipay", {}),
])
def test_no_template_finishes_quietly_without_a_call(ch_clients, event, channel, services):
    s = FlowScript(MessageFlow(), services=ch_clients if services is None else services)
    t = _is(s.step("send", doc(event, channel)), Finish)
    assert s.sent == [] and t.inbox == [] and t.data["outcome"] == "no_template"
    assert f"templates.{event}" in t.data["why"]


@pytest.mark.parametrize("event, channel, recipient, values, code", [
    # an official-account template needs the 公众号 openid, not the mini-program's
    ("refund_done", "wechat", {"openid": "o-mini-1"}, VALUES, "NO_RECIPIENT"),
    ("registration_paid", "wechat", {"official_openid": "o-oa-1"}, VALUES, "NO_RECIPIENT"),
    ("outpatient_paid", "alipay", {"open_id": "0123abc"}, VALUES, "NO_RECIPIENT"),      # [alipay] sends to user_id
    ("registration_paid", "wechat", None, {"patient_name": PATIENT}, "MESSAGE_INCOMPLETE"),   # amount missing
    ("outpatient_paid", "alipay", None, {"amount": "3.00"}, "MESSAGE_INCOMPLETE"),
])
def test_a_message_that_cannot_be_built_fails_before_anything_is_sent(s, event, channel, recipient, values, code):
    t = _is(s.step("send", doc(event, channel, recipient, values)), Fail, code)
    assert s.sent == [] and _row(t).result["sent"] is False


@pytest.mark.parametrize("case", CASES)
def test_the_journal_sees_the_patients_name_masked(s, case):
    channel, event, recipient, iface = CASES[case]
    s.answer(iface, ok(iface, MessageSent(None) if channel == "wechat" else {}))
    s.step("send", doc(event, channel, recipient))
    (prepared,) = s.prepared
    assert PATIENT not in prepared.masked_request and mask_name(PATIENT) in prepared.masked_request
    assert PATIENT in prepared.body.decode("utf-8") or PATIENT in _form_data(prepared.body)


def _form_data(body: bytes) -> str:
    from urllib.parse import parse_qsl
    return json.dumps(dict(parse_qsl(body.decode())), ensure_ascii=False)


# ---------------------------------------------------------------- the builder

def test_the_builder_names_one_request_per_event_and_source():
    a = message_request("refund_done", channel="wechat", source_kind="mobilepay.refund", source_key="RF-1",
                        source_outbox_id=7, recipient={"openid": "o1"}, values={"amount": Decimal("3")})
    b = message_request("refund_done", channel="wechat", source_kind="mobilepay.refund", source_key="RF-1",
                        source_outbox_id=7, recipient={"openid": "o1"}, values={"amount": Decimal("3.00")})
    assert a == b                          # the same event twice is the same request: added once
    assert (a.kind, a.business_key, a.serial_key) == (KIND_MESSAGE, "msg:refund_done:7", "msg:refund_done:7")
    assert a.payload["values"] == {"amount": "3.00"}
    # With the template's fields, only the values it shows are kept in the outbox row.
    c = message_request(event="refund_done", channel="wechat", source_kind="mobilepay.refund", source_key="RF-1",
                        source_outbox_id=7, recipient={"openid": "o1"}, fields={"keyword2": "amount"},
                        values={"amount": Decimal("3"), "patient_name": PATIENT, "dept_name": None})
    assert c == a


@pytest.mark.parametrize("change, words", [
    ({"event": "paid"}, "event must be one of"),
    ({"values": {"patient": "x"}}, "unknown value name"),
    ({"values": {"amount": 3.5}}, "must be text"),
    ({"channel": "unionpay"}, "channel must be one of"),
    ({"recipient": {"user_id": "2088"}}, "takes openid, official_openid"),
    ({"recipient": None}, "recipient must be an object"),
    ({"source_outbox_id": 0}, "source_outbox_id"),
    ({"source_key": ""}, "source_key"),
])
def test_the_builder_refuses_what_the_flow_could_not_send(change, words):
    kw = dict(event="outpatient_paid", channel="wechat", source_kind="mobilepay.outpatient", source_key="INV-1",
              source_outbox_id=3, recipient={"openid": "o1"}, values={"amount": "1.00"})
    kw.update(change)
    event = kw.pop("event")
    with pytest.raises(ValueError, match=words):
        message_request(event, **kw)


def test_the_patients_data_never_stops_the_builder_the_message_fails_on_its_own(s):
    # Inside a payment's transition: no openid, an overlong value - the payment goes on.
    no_one = message_request("registration_paid", channel="wechat", source_kind="mobilepay.registration",
                             source_key="REG-1", source_outbox_id=41, recipient={"openid": None}, values=VALUES)
    t = _is(s.step("send", no_one.payload), Fail, "NO_RECIPIENT")
    assert s.sent == [] and _row(t).result["sent"] is False
    long = message_request("registration_paid", channel="wechat", source_kind="mobilepay.registration",
                           source_key="REG-1", source_outbox_id=41, recipient={"openid": "o1"},
                           values=dict(VALUES, dept_name="科" * 300))
    with pytest.raises(BadInput, match="longer than 200"):
        s.step("send", long.payload)


def test_a_payload_edited_by_hand_is_bad_input(s):
    bad = dict(doc(), values={"nope": "1"})
    with pytest.raises(BadInput, match="unknown value name"):
        s.step("send", bad)


def test_every_alipay_call_id_fits_the_journal():
    # mi_journal.msg_id / mi_outbox.current_call are VARCHAR(64): a longer id is refused by
    # PostgreSQL and MariaDB before the call is journalled, so the call is never sent.
    from bridge.alipay.client import message_id
    methods = [v for k, v in vars(ali).items() if k.isupper() and isinstance(v, str) and v.startswith("alipay.")]
    assert ali.TEMPLATE_MESSAGE in methods and len(methods) >= 10
    assert len(ali.TEMPLATE_MESSAGE_CALL) <= 40           # mi_journal.interface
    for m in methods:
        assert len(message_id(m)) <= 64, m
    assert message_id(ali.REFUND) != message_id(ali.REFUND)
