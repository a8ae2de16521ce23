"""Patient messages end to end: a real daemon per database, the simulator over HTTP.

* a message is sent once for an event, even when the event's transition is repeated (the
  same NewRequest added again, before and after it was sent);
* a patient who never subscribed (43101) gets nothing, and the row is done, not failed;
* no template for an event: done quietly, no call;
* the official-account template message and Alipay's template message;
* an access_token WeChat expired is refreshed once, and the message goes;
* a lost answer (the channel recorded the message, the connection died) is never resent."""
from __future__ import annotations

import uuid

from bridge.masking import mask_name

from .conftest import (PATIENT, TPL_REG, add, alipay_sent, ctl, final, inbox, journal, message, subscribe,
                       wechat_sent)


def _ids(prefix: str) -> tuple[str, int]:
    return f"{prefix}-{uuid.uuid4().hex[:10]}", int(uuid.uuid4().int % 10**9) + 1


def test_each_event_messaged_once_refused_unconfigured_and_both_channels(mbridge):
    b, sim = mbridge, mbridge.sim
    subscribed, _ = _ids("o-sub")
    refusing, _ = _ids("o-never")
    oa_user, _ = _ids("o-oa")
    ali_user = "2088" + str(uuid.uuid4().int)[:12]
    subscribe(sim, subscribed)          # 5 one-off subscriptions: a second send would go through
    reg = message("registration_paid", _ids("x")[1], openid=subscribed)
    no = message("registration_paid", _ids("x")[1], openid=refusing)
    unset = message("refund_done", _ids("x")[1], openid=subscribed)          # no template configured
    oa = message("outpatient_paid", _ids("x")[1], openid="o-mini", official_openid=oa_user)
    ali = message("outpatient_paid", _ids("x")[1], channel="alipay", user_id=ali_user)
    for r in (reg, reg, no, unset, oa, ali, ali):                  # the event's transition repeated
        add(b.store, r)
    got = final(b.store, [r.business_key for r in (reg, no, unset, oa, ali)])
    add(b.store, reg)                                              # ... and again after it was sent
    assert len([k for k in b.store.query("SELECT business_key FROM mi_outbox WHERE business_key = :k",
                                         {"k": reg.business_key})]) == 1

    assert got[reg.business_key]["state"] == "done" and got[reg.business_key]["data"]["outcome"] == "sent"
    [sent] = wechat_sent(sim, subscribed)
    assert sent["template_id"] == TPL_REG and sent["data"]["thing1"]["value"] == PATIENT
    assert sent["data"]["amount2"]["value"] == "36.50" and sent["page"] == "pages/reg/detail"
    [(rtype, outcome, code, result)] = inbox(b.store, got[reg.business_key]["id"])
    assert (rtype, outcome, code, result["sent"], result["msgid"]) == ("message", "ok", None, True,
                                                                      str(sent["msgid"]))
    [(iface, jout, request)] = journal(b.store, got[reg.business_key]["id"])
    assert (iface, jout) == ("wechat.message.subscribe", "ok")
    assert PATIENT not in request and mask_name(PATIENT) in request          # masked in the journal

    assert (got[no.business_key]["state"], got[no.business_key]["data"]["outcome"]) == ("done", "refused")
    assert wechat_sent(sim, refusing) == []
    assert [(t, o, c) for t, o, c, _ in inbox(b.store, got[no.business_key]["id"])] == \
        [("message", "failed", "USER_REFUSED")]

    assert (got[unset.business_key]["state"], got[unset.business_key]["data"]["outcome"]) == ("done", "no_template")
    assert journal(b.store, got[unset.business_key]["id"]) == [] and inbox(b.store, got[unset.business_key]["id"]) == []

    [oa_sent] = wechat_sent(sim, oa_user)
    assert oa_sent["kind"] == "template" and oa_sent["miniprogram"]["pagepath"] == "pages/bill/detail"
    assert got[oa.business_key]["state"] == "done"
    [ali_sent] = alipay_sent(sim, ali_user)
    assert ali_sent["user_template_id"] == "ATPL-OUT-1" and ali_sent["data"]["keyword1"]["value"] == PATIENT
    assert got[ali.business_key]["state"] == "done"
    assert wechat_sent(sim, subscribed) == [sent]                  # still once


def test_an_expired_access_token_is_refreshed_once(mbridge):
    b, sim = mbridge, mbridge.sim
    user, _ = _ids("o-tok")
    subscribe(sim, user)
    first = message("registration_paid", _ids("x")[1], openid=user)
    add(b.store, first)
    final(b.store, [first.business_key])                           # the daemon holds a token now
    tokens = ctl(sim, "GET", "/__sim__/wechat/messages")["tokens"]
    ctl(sim, "POST", "/__sim__/wechat/expire_tokens")              # the next send gets 42001
    second = message("registration_paid", _ids("x")[1], openid=user)
    add(b.store, second)
    got = final(b.store, [second.business_key])
    assert got[second.business_key]["data"]["outcome"] == "sent"
    assert len(wechat_sent(sim, user)) == 2
    assert ctl(sim, "GET", "/__sim__/wechat/messages")["tokens"] == tokens + 1      # one refresh
    assert [j[:2] for j in journal(b.store, got[second.business_key]["id"])] == [("wechat.message.subscribe", "ok")]


def test_a_lost_answer_is_never_resent(mbridge):
    b, sim = mbridge, mbridge.sim
    user, _ = _ids("o-lost")
    subscribe(sim, user)
    # The simulator records the message, then drops the connection before answering.
    ctl(sim, "POST", "/__sim__/faults", {"interface": "wechat.subscribe_send", "fault": "lost_after_commit"})
    m = message("registration_paid", _ids("x")[1], openid=user)
    add(b.store, m)
    got = final(b.store, [m.business_key])
    assert (got[m.business_key]["state"], got[m.business_key]["data"]["outcome"]) == ("done", "unknown")
    assert len(wechat_sent(sim, user)) == 1
    [(iface, jout, _)] = journal(b.store, got[m.business_key]["id"])
    assert (iface, jout) == ("wechat.message.subscribe", "unknown")
    [(_, outcome, code, result)] = inbox(b.store, got[m.business_key]["id"])
    assert (outcome, code, result["sent"]) == ("failed", "SEND_UNKNOWN", None)
