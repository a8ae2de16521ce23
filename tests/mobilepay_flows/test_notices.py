"""The 6302 notice endpoint and what a notice may do (issue 10 #1, #2, #6), against
a real daemon on each database, the simulator over HTTP, and sockets over loopback.

* The endpoint is a production server: stalled clients cost no thread and are
  closed, a burst of posts is answered in full, malformed requests get an HTTP
  answer, and every refusal is in the log, none on stderr.
* Only a real settlement notice for us is accepted; a notice never settles a
  payment by itself, 6301 does; a notice 6301 contradicts is held for a person.
* A late notice for a request that already ended alerts only when money may be
  unmatched.

What the payment flow decides from a notice and 6301 (a notice 6301 contradicts, one
whose amounts differ, a stale one) is a unit case in
tests/flows_unit/test_mobilepay_payment.py; here the endpoint and its wiring.
"""
from __future__ import annotations

import socket
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest

from bridge.mobilepay.flows import KIND_OUTPATIENT
from bridge.mobilepay.notice_check import KIND_NOTICE_CHECK
from tests.conftest import DIALECTS

from .conftest import start_bridge
from .harness import NOTICE_PATH, assert_paid_once, new_key, payment, wait_for

D = Decimal
# A short idle timeout (still above how long a busy test machine may take between a
# client's connect and its first bytes) and a small body limit, so the tests are quick.
HTTP = "\n[http]\nchannel_timeout = 5\nmax_body_bytes = 16384\nthreads = 4\n"


@pytest.fixture(scope="module", params=DIALECTS)
def nb(request, mp_sim, tmp_path_factory):
    b, stop = start_bridge(request.param, tmp_path_factory.mktemp(f"notices-{request.param}"), mp_sim,
                           name="notices", more_toml=HTTP)
    # A test that posts at once (alone, or first on an xdist worker) must not race the
    # daemon's start.
    wait_for(lambda: _listening(mp_sim.port), 30, "the notice endpoint to listen")
    yield b
    mp_sim.clear_faults()
    stop()


def _count(b, pay_ord_id: str) -> int:
    r = b.q("SELECT received_count FROM mi_notice WHERE notice_key = :k", {"k": pay_ord_id})
    return int(r[0][0]) if r else 0


def _order(b, sim, key: str) -> dict:
    wait_for(lambda: [r for r in b.inbox(key) if r["type"] == "order"], 15, "order row")
    return sim.orders_for(key)[0]


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def _raw(port: int, data: bytes, timeout: float = 10.0) -> bytes:
    """Send raw bytes, return what the server answers until it closes (or 10 s)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        out = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
                if b"\r\n\r\n" in out and b"Content-Length" in out:
                    head, _, body = out.partition(b"\r\n\r\n")
                    length = int(head.split(b"Content-Length:")[1].split(b"\r\n")[0])
                    if len(body) >= length:
                        break
        except socket.timeout:
            pass
        return out


def _log(b) -> str:
    return b.daemon.log.read_text(errors="replace") if b.daemon.log.exists() else ""


def _stderr(b) -> str:
    path = b.daemon.stderr.name
    return open(path, "rb").read().decode(errors="replace")


# ---------------------------------------------------------------- the server (item 6)

def test_endpoint_survives_stalled_clients_and_answers_every_parallel_post(nb, sim):
    key = new_key()
    nb.enqueue(KIND_OUTPATIENT, key, payment(sim, sim.person("390", "none")))
    assert nb.wait_final(key)[key]["state"] == "done"
    order = assert_paid_once(sim, key)
    body = sim.platform_signed_notice(sim.notice_for(order))
    before = _count(nb, order["payOrdId"])
    stalled = []
    try:
        for i in range(200):
            s = socket.create_connection(("127.0.0.1", sim.port), timeout=30)
            if i % 2:       # half send a request head and then stall inside the body
                s.sendall(f"POST {NOTICE_PATH} HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n{{\"a\":".encode())
            stalled.append(s)

        def post(_):
            r = sim.post_notice(body, headers={"Content-Type": "application/json"})
            return r.status_code, r.json().get("code")
        with ThreadPoolExecutor(max_workers=100) as pool:
            answers = list(pool.map(post, range(100)))
        assert answers == [(200, "0")] * 100
        assert _count(nb, order["payOrdId"]) == before + 100      # one row, every delivery counted
        # Stalled connections are closed by the server (channel_timeout), not kept for ever.
        for s in stalled:
            try:
                assert s.recv(1024) == b""
            except ConnectionResetError:
                pass
    finally:
        for s in stalled:
            s.close()
    assert nb.q("SELECT COUNT(*) FROM mi_outbox WHERE kind = :k AND business_key = :b",
                {"k": KIND_NOTICE_CHECK, "b": key}) == [(0,)]   # done and taken: nothing to check


def test_malformed_requests_get_an_answer_and_a_log_line(nb, sim):
    port = sim.port
    head = f"POST {NOTICE_PATH} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    bad_length = _raw(port, (head + "Content-Length: abc\r\n\r\n{}").encode())
    assert bad_length.startswith(b"HTTP/1.1 400"), bad_length[:200]
    big = b'{"x":"' + b"a" * 20000 + b'"}'
    too_big = _raw(port, (head + f"Content-Length: {len(big)}\r\n\r\n").encode() + big)
    assert too_big.startswith(b"HTTP/1.1 413"), too_big[:200]
    deep = b"[" * 3000 + b"]" * 3000
    nested = _raw(port, (head + f"Content-Length: {len(deep)}\r\n\r\n").encode() + deep)
    assert nested.startswith(b"HTTP/1.1 400") and b"nested" in nested, nested[:300]
    assert _raw(port, f"GET {NOTICE_PATH} HTTP/1.1\r\nHost: x\r\n\r\n".encode()).startswith(b"HTTP/1.1 405")
    assert _raw(port, b"POST /elsewhere HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}").startswith(b"HTTP/1.1 404")
    for answer in (bad_length, too_big, nested):
        assert b"Traceback" not in answer
    wait_for(lambda: all(w in _log(nb) for w in ("Content-Length is invalid", "413", "nested deeper than",
                                                 "POST only", "no such path")), 10, "every refusal logged")
    assert "Traceback" not in _stderr(nb) and "Traceback" not in _log(nb)


# ---------------------------------------------------------------- what a notice may do (item 1)

def test_a_platform_signed_message_that_is_not_a_settlement_notice_settles_nothing(nb, sim):
    key = new_key()
    nb.his.unpaid.add(key)
    nb.enqueue(KIND_OUTPATIENT, key, payment(sim, sim.person("390", "none")))
    order = _order(nb, sim, key)
    # The order's own 6202 answer, signed by the centre, posted to the endpoint.
    answer = {"payOrdId": order["payOrdId"], "ordStas": "2", "feeSumamt": order["feeSumamt"],
              "ownPayAmt": order["ownPayAmt"], "psnAcctPay": order["psnAcctPay"], "fundPay": order["fundPay"],
              "deposit": "0.00", "medOrgOrd": key}
    assert sim.post_notice(sim.platform_signed_notice(answer)).status_code == 400
    # Signed, but another callType, another appId, or a required field missing.
    assert sim.post_notice(sim.platform_signed_notice(sim.notice_for(order, callType="03"))).status_code == 400
    other_app = sim.cfg.app_id[:16] + "Z" * (len(sim.cfg.app_id) - 16)
    assert other_app != sim.cfg.app_id
    assert sim.post_notice(sim.platform_signed_notice(sim.notice_for(order), app_id=other_app)).status_code == 400
    assert sim.post_notice(sim.platform_signed_notice(sim.notice_for(order, traceTime=None))).status_code == 400
    assert _count(nb, order["payOrdId"]) == 0
    row = nb.wait_final(key, timeout=30)[key]
    assert (row["state"], row["code"]) == ("failed", "EXPIRED"), row
    assert [r for r in nb.inbox(key) if r["type"] == "settlement"] == []
    assert assert_paid_once(sim, key) == {}
    wait_for(lambda: "not ours" in _log(nb) and "callType '03'" in _log(nb), 10, "refusals logged")

    # A notice (well formed, signed) for this revoked order: 6301 says revoked, the
    # notice says paid -> a person looks, with both answers.
    assert sim.post_notice(sim.platform_signed_notice(sim.notice_for(order))).status_code == 200
    check = wait_for(lambda: [r for r in nb.inbox(key) if r["type"] == "held"], 20, "notice check held")
    assert check[0]["code"] == "NOTICE_CONTRADICTS_STATUS"
    assert "ordStas 12" in check[0]["message"] and order["feeSumamt"] in check[0]["message"]


# ---------------------------------------------------------------- late notices (item 2)

def test_a_late_notice_after_a_full_refund_is_recorded_quietly(nb, sim):
    key = new_key()
    nb.his.rejects.add(key)
    nb.enqueue(KIND_OUTPATIENT, key, payment(sim, sim.person("390", "none")))
    row = nb.wait_final(key, timeout=30)[key]
    assert (row["state"], row["code"]) == ("failed", "REVERSED"), row
    order = sim.orders_for(key)[0]
    assert order["ordStas"] == "7"
    # The centre's notice of the original payment arrives only now.
    assert sim.post_notice(sim.platform_signed_notice(sim.notice_for(order))).status_code == 200
    check = wait_for(lambda: nb.q("SELECT state FROM mi_outbox WHERE kind = :k AND business_key = :b",
                                  {"k": KIND_NOTICE_CHECK, "b": key}), 15, "notice check enqueued")
    wait_for(lambda: nb.row(key, KIND_NOTICE_CHECK)["state"] in ("done", "held", "failed"), 20, "check final")
    assert nb.row(key, KIND_NOTICE_CHECK)["state"] == "done", (check, nb.row(key, KIND_NOTICE_CHECK))
    assert [r for r in nb.inbox(key) if r["outcome"] == "held"] == []
    assert ("6301", "ok") in nb.calls(key)              # it asked the centre before deciding
    assert len(sim.events("mobilepay.refund", order["payOrdId"])) == 1


def test_a_notice_for_a_request_closed_by_hand_while_payable_alerts_once_6301_shows_it_paid(nb, sim):
    key = new_key()
    nb.his.unpaid.add(key)
    nb.enqueue(KIND_OUTPATIENT, key, payment(sim, sim.person("390", "none")))
    order = _order(nb, sim, key)
    # A person closes the request by hand while the order is still payable ...
    wait_for(lambda: nb.store.execute("""UPDATE mi_outbox SET state = 'resolved'
                                          WHERE business_key = :k AND kind = :kind AND state = 'pending'""",
                                      {"k": key, "kind": KIND_OUTPATIENT}) == 1, 10, "row resolved by hand")
    # ... and the patient pays anyway: the centre's own notice reaches the endpoint.
    sim.pay(order["payOrdId"])
    held = wait_for(lambda: [r for r in nb.inbox(key) if r["type"] == "held"], 20, "alert")
    assert held[0]["code"] == "NOTICE_FOR_CLOSED_PAYMENT"
    assert "refund it by hand unless the HIS billed it" in held[0]["message"]
    assert nb.row(key, KIND_NOTICE_CHECK)["state"] == "held"


def test_a_payment_that_ends_while_its_notice_is_recorded_gets_a_notice_check(tmp_path):
    """Review finding: the endpoint read the payment, then recorded the notice; a flow that
    ended in between (having looked for notices before this one was there) got a poke that
    wakes nothing, and a notice that contradicts it went unchecked.  It reads the payment
    again after recording."""
    import json as _json

    from bridge.db.store import Store
    from bridge.mobilepay.callback import SettlementNotice
    from daemon.notice_endpoint import NoticeEndpoint
    from tests.conftest import make_database

    url, drop = make_database("sqlite", tmp_path)
    store = Store(url)
    try:
        oid = store.enqueue(KIND_OUTPATIENT, "INV-RACE", {"x": 1})
        store.execute("UPDATE mi_outbox SET state = 'pending', step = 'await_payment', flow_data = :fd "
                      "WHERE id = :i", {"fd": _json.dumps({"payOrdId": "PO-RACE"}), "i": oid})
        record = store.record_notice

        def record_then_the_flow_ends(*args, **kw):
            new = record(*args, **kw)
            store.execute("UPDATE mi_outbox SET state = 'failed' WHERE id = :i", {"i": oid})   # EXPIRED meanwhile
            return new
        store.record_notice = record_then_the_flow_ends
        n = SettlementNotice(payOrdId="PO-RACE", callType="02", medOrgOrd="INV-RACE", traceTime="20261201101010",
                             feeSumamt=Decimal("5.00"), ownPayAmt=Decimal("0.00"), psnAcctPay=Decimal("0.00"),
                             fundPay=Decimal("5.00"))
        new, what = NoticeEndpoint(None, lambda: store)._record(store, n)
        assert new and what and what.startswith("notice check #"), what
        assert store.query("SELECT COUNT(*) FROM mi_outbox WHERE kind = :k", {"k": KIND_NOTICE_CHECK}) == [(1,)]
    finally:
        store.close()
        drop()
