"""MobilePayClient (bridge/mobilepay) against the simulator's mobile-pay centre, over HTTP.

Every call (6201 6202 6203 6301 6401) x every injected fault, the business rules, tampered
requests, and the full sequence with a real 6302 callback receiver.
"""
from __future__ import annotations

import json
import time
import uuid
from dataclasses import replace
from decimal import Decimal

import pytest

from bridge.calls import Outcome
from bridge.crypto import sm2
from bridge.mobilepay.client import MobilePayClient
from bridge.mobilepay.messages import (FeeDetail, OrdStas, PayOrderRequest, QueryOrderRequest,
                                       RefStatus, RefundRequest, RevokeOrderRequest, SetlType,
                                       UploadFeeRequest)

from .conftest import WANG, ZHANG, mobilepay_config

D = Decimal


class Patient:
    def __init__(self, sim, psn_no: str):
        p = sim.person(psn_no)
        self.psn_no, self.certno, self.name, self.insutype = (p["psn_no"], p["certno"],
                                                              p["psn_name"], p["insutype"])


class Order:
    """One patient's way through the centre, driven by the real client."""

    def __init__(self, sim, client: MobilePayClient, psn_no: str = ZHANG,
                 amounts: tuple[str, ...] = ("60.00", "40.00"), acct: str = "1"):
        self.sim, self.client, self.p = sim, client, Patient(sim, psn_no)
        self.auth = sim.control("POST", "/__sim__/mobilepay/authorize",
                                {"psn_no": psn_no})["payAuthNo"]
        details = [FeeDetail(feedetlSn=f"F{i}", detItemFeeSumamt=D(a), medListCodg="XJ01",
                             cnt=D("1"), pric=D(a)) for i, a in enumerate(amounts, 1)]
        self.total = sum((D(a) for a in amounts), D("0"))
        self.acct = acct
        self.upload_req = UploadFeeRequest(
            psnNo=self.p.psn_no, insutype=self.p.insutype, medOrgOrd="MO" + uuid.uuid4().hex[:16],
            begntime="2024-03-01 09:30:00", idNo=self.p.certno, userName=self.p.name, idType="01",
            insuCode="440100", iptOtpNo="OP" + uuid.uuid4().hex[:8], deptCode="NK01",
            deptName="内科", caty="A03", medType="11", feeType="01", medfeeSumamt=self.total,
            psnSetlway="01", chrgBchno="B" + uuid.uuid4().hex[:10], pubHospRfomFlag="0",
            feedetailList=details, payAuthNo=self.auth, acctUsedFlag=acct)
        self.pay_ord_id = self.pay_token = self.mdtrt_id = None

    def upload(self):
        res = self.client.upload_fee(self.upload_req)
        assert res.outcome is Outcome.OK, res
        self.pay_ord_id, self.pay_token = res.data.payOrdId, res.data.payToken
        self.mdtrt_id = res.data.mdtrtId or "M" + uuid.uuid4().hex[:10]
        return res

    def pay_order_req(self) -> PayOrderRequest:
        return PayOrderRequest(payAuthNo=self.auth, payOrdId=self.pay_ord_id,
                               payToken=self.pay_token, orgBizSer="BIZ" + uuid.uuid4().hex[:12],
                               mdtrtId=self.mdtrt_id, chrgBchno=self.upload_req.chrgBchno,
                               feeType="01", acctUsedFlag=self.acct)

    def order(self):
        res = self.client.pay_order(self.pay_order_req())
        assert res.outcome is Outcome.OK, res
        self.split = res.data
        return res

    def pay(self) -> dict:
        return self.sim.control("POST", "/__sim__/mobilepay/pay", {"payOrdId": self.pay_ord_id})

    def query_req(self) -> QueryOrderRequest:
        return QueryOrderRequest(payOrdId=self.pay_ord_id, payToken=self.pay_token,
                                 idNo=self.p.certno, userName=self.p.name, idType="01")

    def query(self):
        res = self.client.query_order(self.query_req())
        assert res.outcome is Outcome.OK, res
        return res.data

    def revoke_req(self) -> RevokeOrderRequest:
        return RevokeOrderRequest(payOrdId=self.pay_ord_id, payToken=self.pay_token,
                                  idNo=self.p.certno, userName=self.p.name, idType="01")

    def refund_req(self, fund="0.00", acct="0.00", cash="0.00", kind=SetlType.ALL,
                   sn=None) -> RefundRequest:
        total = D(fund) + D(acct) + D(cash)
        return RefundRequest(payOrdId=self.pay_ord_id, appRefdSn=sn or "R" + uuid.uuid4().hex[:12],
                             appRefdTime=time.strftime("%Y%m%d%H%M%S"), totlRefdAmt=total,
                             cashRefdAmt=D(cash), psnAcctRefdAmt=D(acct), fundRefdAmt=D(fund),
                             refdType=kind, payAuthNo=self.auth)

    def state(self) -> dict:
        return self.sim.state()["orders"].get(self.pay_ord_id, {})


# ------------------------------------------------------------------ fault matrix

# fault -> (outcome, effect committed at the platform?)  (bridge/simulator/faults.py table)
FAULTS = {
    "business_error": (Outcome.REJECTED, False),
    "timeout": (Outcome.UNKNOWN, True),
    "http500": (Outcome.UNKNOWN, False),
    "reset": (Outcome.UNKNOWN, False),
    "lost_after_commit": (Outcome.UNKNOWN, True),
    "garbled": (Outcome.UNKNOWN, True),
    "bad_signature": (Outcome.UNKNOWN, True),
}


def _scenario(interface: str, o: Order):
    """(prepared call, committed(state)->bool, follow_up()->bool) for one interface.

    follow_up uses the client's own query path and says whether the effect is visible."""
    c = o.client
    if interface == "6201":
        def committed(st):
            return any(x["medOrgOrd"] == o.upload_req.medOrgOrd for x in st["orders"].values())

        def follow_up():
            # 6301 needs payOrdId, which only 6201 gives: the same medOrgOrd again answers
            # the existing order (simulator duplicate_medorgord "return_same", §9).
            res = c.upload_fee(o.upload_req)
            assert res.ok, res
            ids = [k for k, x in o.sim.state()["orders"].items()
                   if x["medOrgOrd"] == o.upload_req.medOrgOrd]
            return ids == [res.data.payOrdId]
        return c.prepare_upload_fee(o.upload_req), committed, follow_up
    o.upload()
    if interface == "6202":
        return (c.prepare_pay_order(o.pay_order_req()),
                lambda st: st["orders"][o.pay_ord_id]["ordStas"] in ("1", "2"),
                lambda: o.query().ordStas in (OrdStas.PRE_SETTLED, OrdStas.AWAITING_PAYMENT))
    if interface == "6401":
        return (c.prepare_revoke_order(o.revoke_req()),
                lambda st: st["orders"][o.pay_ord_id]["ordStas"] == "12",
                lambda: o.query().ordStas is OrdStas.REVOKED)
    o.order()
    o.pay()
    if interface == "6301":
        return c.prepare_query_order(o.query_req()), None, None
    assert interface == "6203"
    req = o.refund_req(fund=str(o.split.fundPay), acct=str(o.split.psnAcctPay),
                       cash=str(o.split.ownPayAmt))
    return (c.prepare_refund(req),
            lambda st: st["orders"][o.pay_ord_id]["refunds"] == 1,
            lambda: o.query().ordStas is OrdStas.REFUNDED)


@pytest.mark.parametrize("fault", list(FAULTS))
@pytest.mark.parametrize("interface", ["6201", "6202", "6203", "6301", "6401"])
def test_every_call_under_every_fault(request, sim, mp_client, interface, fault):
    client = mp_client
    o = Order(sim, client)
    prepared, committed, follow_up = _scenario(interface, o)
    before = sim.state()
    sim.arm(interface, fault, code="2001", message="模拟业务错误")
    # a timeout is sent by a client that gives up sooner (any client can send a prepared call)
    res = (request.getfixturevalue("mp_short_client") if fault == "timeout" else client).send(prepared)

    expected, effect = FAULTS[fault]
    assert res.outcome is expected, res
    assert {"interface": interface, "fault": fault} in sim.fired()
    if fault == "business_error":
        assert res.code == "2001" and res.message == "模拟业务错误"
    if committed is None:                       # 6301 changes nothing
        assert sim.state()["counts"] == before["counts"]
        return
    if effect:
        st = sim.wait(committed)                # the timeout fault commits after its delay
        assert committed(st), f"{interface}/{fault}: the platform should have committed"
        assert follow_up(), f"{interface}/{fault}: the follow-up query does not find the effect"
    else:
        assert not committed(sim.state()), f"{interface}/{fault}: nothing should have happened"
        if interface != "6201":       # 6201's follow-up is another 6201, not a query
            assert not follow_up()
        # Nothing happened, so the very same prepared call may go again and succeed.
        assert client.send(prepared).outcome is Outcome.OK


# ------------------------------------------------------------------ tampering

def test_request_signed_with_the_wrong_key_is_refused(sim, mp_client):
    o = Order(sim, mp_client)
    wrong = mobilepay_config(sim.creds, org_private_key=sm2.generate_private_key().to_base64())
    with MobilePayClient(wrong) as bad:
        res = bad.upload_fee(o.upload_req)
    assert res.outcome is Outcome.REJECTED and res.code not in (None, "0"), res
    assert "验签" in (res.message or "")
    assert sim.state()["orders"] == {}


@pytest.mark.parametrize("field,value", [("encData", None), ("timestamp", "1700000000000"),
                                         ("appId", None)])
def test_body_altered_after_signing_is_refused(sim, mp_client, field, value):
    o = Order(sim, mp_client)
    prepared = mp_client.prepare_upload_fee(o.upload_req)
    env = json.loads(prepared.body)
    if field == "encData":
        # Re-encrypt a different amount under the right key: decrypts fine, signature breaks.
        from bridge.mobilepay.envelope import compact_json, derive_sm4_key, encrypt_data, loads
        from bridge.mobilepay.envelope import decrypt_data
        key = derive_sm4_key(o.client._config.app_id, o.client._config.app_secret)
        data = loads(decrypt_data(key, env["encData"]))
        data["medfeeSumamt"] = "1.00"
        data["feedetailList"] = [dict(data["feedetailList"][0], detItemFeeSumamt="1.00")]
        env["encData"] = encrypt_data(key, compact_json(data))
    elif field == "appId":
        env["appId"] = env["appId"][::-1]
    else:
        env[field] = value
    res = mp_client.send(replace(prepared, body=json.dumps(env).encode()))
    assert res.outcome in (Outcome.REJECTED, Outcome.UNKNOWN) and res.outcome is not Outcome.OK
    if field != "appId":     # a wrong appId cannot even be answered under our key
        assert res.outcome is Outcome.REJECTED and res.code == "-1", res
    assert sim.state()["orders"] == {}


def test_response_signed_by_someone_else_is_never_ok(sim, mp_client):
    """A client holding the wrong platform public key must not trust any answer."""
    o = Order(sim, mp_client)
    cfg = mobilepay_config(sim.creds, platform_public_key=sm2.generate_private_key()
                           .public_key().to_base64())
    with MobilePayClient(cfg) as c:
        res = c.upload_fee(o.upload_req)
    assert res.outcome is Outcome.UNKNOWN and "signature" in res.message


# ------------------------------------------------------------------ business rules

def test_business_rules_are_rejected_with_the_platform_code(sim, mp_client):
    # 6201 with a payAuthNo issued to someone else
    o = Order(sim, mp_client)
    other = sim.control("POST", "/__sim__/mobilepay/authorize", {"psn_no": WANG})["payAuthNo"]
    res = mp_client.upload_fee(replace(o.upload_req, payAuthNo=other))
    assert res.outcome is Outcome.REJECTED and res.code == "-1" and "授权" in res.message
    # 6202 twice with the single-use payAuthNo
    o.upload()
    o.order()
    res = mp_client.pay_order(o.pay_order_req())
    assert res.outcome is Outcome.REJECTED and res.code == "-1"
    # 6301 with the wrong payToken
    res = mp_client.query_order(replace(o.query_req(), payToken="0" * 32))
    assert res.outcome is Outcome.REJECTED and "payToken" in res.message
    # 6203 before payment
    res = mp_client.refund(o.refund_req(cash="1.00", kind=SetlType.CASH))
    assert res.outcome is Outcome.REJECTED and "不允许退款" in res.message


# ------------------------------------------------------------------ the full sequence

def test_full_mobile_pay_sequence_with_callback(sim, mp_client, receiver):
    # 6401 before payment works
    early = Order(sim, mp_client)
    early.upload()
    res = mp_client.revoke_order(early.revoke_req())
    assert res.outcome is Outcome.OK and res.data.success
    assert early.query().ordStas is OrdStas.REVOKED

    # authorize -> 6201 -> 6202 (no account: cash part remains)
    o = Order(sim, mp_client, psn_no=ZHANG, amounts=("80.00", "70.00", "50.00"), acct="0")
    o.upload()
    pre = o.order().data
    assert pre.ordStas is OrdStas.AWAITING_PAYMENT
    assert pre.feeSumamt == D("200.00") and pre.fundPay + pre.psnAcctPay + pre.ownPayAmt == D("200.00")
    assert pre.ownPayAmt > 0 and pre.psnAcctPay == 0
    assert o.query().ordStas is OrdStas.AWAITING_PAYMENT
    assert sim.counts()["mobilepay.charge"] == 0

    # the patient pays in the channel -> 6302 reaches our receiver and verifies
    o.pay()
    assert receiver.wait_for(lambda r: r.notices or r.refused)
    assert receiver.refused == []
    (notice,) = receiver.notices
    assert notice.payOrdId == o.pay_ord_id and notice.medOrgOrd == o.upload_req.medOrgOrd
    assert (notice.feeSumamt, notice.fundPay, notice.psnAcctPay, notice.ownPayAmt) == \
        (pre.feeSumamt, pre.fundPay, pre.psnAcctPay, pre.ownPayAmt)
    assert notice.amounts_consistent() and notice.setlType is SetlType.ALL
    deliveries = sim.wait(lambda st: any(d["delivered"] for d in st["callbacks"]))["callbacks"]
    assert [d["delivered"] for d in deliveries] == [True]     # our signed ack was accepted

    # a forged copy of the notice (one byte of the signature changed) is refused
    env = json.loads(receiver.bodies[0])
    sig = bytearray(env["signData"], "ascii")
    sig[10] = ord("A") if sig[10] != ord("A") else ord("B")
    env["signData"] = sig.decode()
    from bridge.mobilepay.callback import ForgedNotification
    with pytest.raises(ForgedNotification):
        receiver.parser.parse(json.dumps(env).encode())

    # 6301 shows it settled
    q = o.query()
    assert q.ordStas is OrdStas.SETTLED and q.fundPay == pre.fundPay and q.revsToken

    # 6401 after payment: REJECTED
    res = mp_client.revoke_order(o.revoke_req())
    assert res.outcome is Outcome.REJECTED, res

    # partial refund of the cash part, then the rest, then beyond what was paid
    part = (pre.ownPayAmt / 2).quantize(D("0.01"))
    r1 = mp_client.refund(o.refund_req(cash=str(part), kind=SetlType.CASH))
    assert r1.outcome is Outcome.OK and r1.data.refStatus is RefStatus.SUCC, r1
    assert o.query().ordStas is OrdStas.SELF_PAY_PARTLY_REFUNDED_ONLY
    rest = o.refund_req(fund=str(pre.fundPay), cash=str(pre.ownPayAmt - part), kind=SetlType.ALL)
    r2 = mp_client.refund(rest)
    assert r2.outcome is Outcome.OK and r2.data.refStatus is RefStatus.SUCC and r2.data.hiRefdSn
    assert o.query().ordStas is OrdStas.REFUNDED
    again = mp_client.refund(rest)                     # same appRefdSn: idempotent
    assert again.outcome is Outcome.OK and again.data.refdSn == r2.data.refdSn
    beyond = mp_client.refund(o.refund_req(cash="0.01", kind=SetlType.CASH))
    assert beyond.outcome is Outcome.REJECTED and beyond.code == "-1", beyond

    counts = sim.counts()
    assert counts["mobilepay.charge"] == 1 and counts["mobilepay.refund"] == 2
    assert counts["mobilepay.revoke"] == 1
    ledger = [e for e in sim.state()["events"] if e["kind"] == "mobilepay.refund"]
    assert sum(D(e["amount"]) for e in ledger) == pre.feeSumamt


def test_account_part_is_debited_once_and_refunded(sim, mp_client, receiver):
    o = Order(sim, mp_client, psn_no=ZHANG, amounts=("100.00",), acct="1")
    o.upload()
    pre = o.order().data
    assert pre.psnAcctPay == D("30.00") and pre.ownPayAmt == 0
    o.pay()
    assert receiver.wait_for(lambda r: r.notices)
    assert sim.balance(ZHANG) == "970.00"
    # the centre retries nothing once acknowledged; exactly one charge
    assert sim.counts()["mobilepay.charge"] == 1
    res = mp_client.refund(o.refund_req(fund="70.00", acct="30.00", kind=SetlType.HI))
    assert res.ok and sim.balance(ZHANG) == "1000.00"
    assert o.query().ordStas is OrdStas.REFUNDED


def test_refund_exp_is_unknown_and_6301_settles_it(sim, mp_client):
    o = Order(sim, mp_client, amounts=("100.00",), acct="1")
    o.upload()
    o.order()
    o.pay()
    req = o.refund_req(fund="70.00", acct="30.00", kind=SetlType.HI)
    sim.arm("6203", "refund_exp")
    res = mp_client.refund(req)
    assert res.outcome is Outcome.UNKNOWN and res.code == "EXP", res
    assert o.state()["refunds"] == 1 and sim.balance(ZHANG) == "1000.00"   # it did happen
    assert o.query().ordStas is OrdStas.REFUNDED
    again = mp_client.refund(req)                       # same appRefdSn: the stored SUCC
    assert again.outcome is Outcome.OK and again.data.refStatus is RefStatus.SUCC
    assert sim.counts()["mobilepay.refund"] == 1


def test_the_other_side_of_every_known_gap(receiver, tmp_path):
    """A centre that uses the other choice at each [U] point of mobilepay.md (lower-case hex,
    string code, 14-digit timestamps, SM2 user id = appSecret) and a client configured the
    same way still understand each other."""
    from bridge.mobilepay.callback import SettlementCallback
    from bridge.simulator import SimulatorConfig, start_simulator

    from .conftest import Sim
    cfg = SimulatorConfig.generate(enc_hex_upper=False, code_as_string=True, timestamp_style="14",
                                   response_uid_mode="appSecret", direct_settle_zero_cash=True,
                                   callback_url=receiver.url, callback_retry_delay=0.05)
    with start_simulator(cfg) as running:
        other = Sim(running)
        client_cfg = mobilepay_config(other.creds, hex_case="lower", sm2_uid_mode="appSecret",
                                      timestamp_style="yyyyMMddHHmmss")
        receiver.parser = SettlementCallback(client_cfg)
        receiver.clear()
        with MobilePayClient(client_cfg) as client:
            o = Order(other, client, amounts=("100.00",), acct="1")
            o.upload()
            body = json.loads(client.prepare_query_order(o.query_req()).body)
            assert len(body["timestamp"]) == 14 and body["encData"] == body["encData"].lower()
            res = o.order()                             # zero cash: settles in 6202 (§5.2)
            assert res.data.ordStas is OrdStas.SETTLED and res.code == "0"
            assert receiver.wait_for(lambda r: r.notices or r.refused)
            assert receiver.refused == [] and receiver.notices[0].payOrdId == o.pay_ord_id
            assert o.query().ordStas is OrdStas.SETTLED
            bad = client.revoke_order(o.revoke_req())
            assert bad.outcome is Outcome.REJECTED and bad.code == "-1"
        other.http.close()


def test_nested_empties_sign_the_same_on_both_sides(sim, mp_client):
    """§3.2 empty-value removal at the edges: null/"" keys, empty arrays as values, empty
    objects as array elements and values, 0 and "0" - in 6201's free-form extData.  (Arrays
    of anything but objects cannot be signed the SDK's way and are refused before sending:
    tests/mobilepay/test_envelope.py.)"""
    o = Order(sim, mp_client)
    ext = {"a": None, "b": "", "c": [], "d": [{}, {"e": None}, {"x": "y"}], "f": {},
           "g": 0, "h": "0", "i": [{"n": None}], "j": {"k": {"l": ""}}}
    res = mp_client.upload_fee(replace(o.upload_req, extData=ext))
    assert res.outcome is Outcome.OK, res


def test_a_lost_6302_delivery_is_retried_and_arrives_once(sim, mp_client, receiver):
    o = Order(sim, mp_client, amounts=("100.00",), acct="0")
    o.upload()
    o.order()
    sim.arm("6302", "timeout")                 # the first delivery attempt is not sent
    o.pay()
    assert receiver.wait_for(lambda r: r.notices)
    (delivery,) = sim.wait(lambda st: st["callbacks"] and st["callbacks"][0]["delivered"])["callbacks"]
    assert delivery["delivered"] and delivery["attempts"] == 2
    assert [n.payOrdId for n in receiver.notices] == [o.pay_ord_id]
    assert sim.counts()["mobilepay.charge"] == 1
