"""OfflineClient (bridge/offline) and FacePayClient (bridge/facepay) against the simulator's
Guangdong gateway, real-account extension and face terminal, over HTTP."""
from __future__ import annotations

import json
import time
from dataclasses import replace
from decimal import Decimal

import pytest

from bridge.calls import Outcome
from bridge.facepay import fields as F
from bridge.offline import messages as m

from .conftest import (FAULT_DELAY, LI, SHORT_TIMEOUT, OPERATOR, SUN, WANG, ZHANG, ZHAO, make_facepay,
                       make_offline, sign_in_request)
from .offline_flow import (FACE_REQ, Patient, detail_file, ok, prepare_upload, today)

D = Decimal

# Calls the client marks as moving nothing (effect=False): a gateway refusal of those is
# REJECTED, of the others UNKNOWN (bridge/offline/client.py docstring).
NO_EFFECT = {"9001", "1101", "2206", "2303", "3201", "3202", "fpy001"}
TERMINAL = {"cn.nhsa.ec.auth", "cn.nhsa.auth.check", "cn.nhsa.settle.notify"}
COMMITS = {"business_error": False, "timeout": True, "http500": False, "reset": False,
           "lost_after_commit": True, "garbled": True, "bad_signature": False}


def expected_outcome(interface: str, fault: str) -> Outcome:
    if fault == "business_error":
        return Outcome.REJECTED
    if fault == "bad_signature":
        # offline: the gateway's signature-rejection wrapper; terminal: a code -1 refusal
        if interface in TERMINAL or interface in NO_EFFECT:
            return Outcome.REJECTED
        return Outcome.UNKNOWN
    return Outcome.UNKNOWN


def scenario(interface: str, p: Patient, fp):
    """(prepared, send, ledger kind the call adds or None)."""
    c = p.c
    send = c.send
    if interface == "9001":
        return c.prepare_sign_in(sign_in_request(OPERATOR)), send, None
    if interface == "1101":
        return c.prepare_person_info(p.person_req()), send, None
    if interface == "2201":
        return c.prepare_register(p.register_req()), send, None
    if interface in TERMINAL:
        p.present_face()
        if interface == "cn.nhsa.ec.auth":
            return fp.prepare_face_authorise(FACE_REQ), fp.send_terminal, None
        biz = c.next_msgid()
        auth = ok(fp.face_authorise(FACE_REQ, out_biz_no=biz))
        if interface == "cn.nhsa.auth.check":
            return (fp.prepare_check_authorisation(FACE_REQ, auth_no=auth.authNo, out_biz_no=biz),
                    fp.send_terminal, None)
        s = p.outpatient_ready().settle()
        return fp.prepare_notify_terminal(p.notice(biz, auth.authNo, s)), fp.send_terminal, \
            "terminal.notice"
    if interface == "2260":
        return c.prepare_document_settle(p.document_req("1")), send, "offline.settlement"
    if interface == "2261":
        s = ok(c.document_settle(p.document_req("1")))
        p.settlement = s
        return c.prepare_cancel_document_settle(p.cancel_req(s)), send, "offline.cancellation"
    if interface.startswith("23"):
        if interface == "2301":
            p.admit()
            return (c.prepare_upload_inpatient_fees(p.fee_rows(("300.00",), inpatient=True),
                                                    insuplc_admdvs=p.adm), send, None)
        p.inpatient_ready()
        if interface == "2302":
            req = m.RevokeInpatientFeesRequest(feedetl_sn="0000", mdtrt_id=p.mdtrt_id,
                                               psn_no=p.psn_no, insuplc_admdvs=p.adm)
            return c.prepare_revoke_inpatient_fees(req), send, None
        if interface == "2303":
            return c.prepare_pre_settle_inpatient(p.inpatient_req()), send, None
        if interface == "2304":
            return c.prepare_settle_inpatient(p.inpatient_req()), send, "offline.settlement"
        s = ok(c.settle_inpatient(p.inpatient_req()))
        return c.prepare_cancel_inpatient_settlement(p.cancel_req(s)), send, "offline.cancellation"
    p.register()
    if interface == "2202":
        req = m.CancelRegisterRequest(psn_no=p.psn_no, mdtrt_id=p.mdtrt_id,
                                      ipt_otp_no=p.ipt_otp_no, insuplc_admdvs=p.adm)
        return c.prepare_cancel_register(req), send, None
    if interface == "2203":
        return c.prepare_upload_visit(p.visit_req()), send, None
    ok(c.upload_visit(p.visit_req()))
    if interface == "2204":
        return c.prepare_upload_fee_details(p.fee_rows(), insuplc_admdvs=p.adm), send, None
    p.upload_fees()
    if interface == "2205":
        req = m.RevokeFeeDetailsRequest(mdtrt_id=p.mdtrt_id, chrg_bchno=p.batch, psn_no=p.psn_no,
                                        insuplc_admdvs=p.adm)
        return c.prepare_revoke_fee_details(req), send, None
    if interface == "2206":
        return c.prepare_pre_settle_outpatient(p.settle_req()), send, None
    if interface == "2207":
        return c.prepare_settle_outpatient(p.settle_req()), send, "offline.settlement"
    if interface == "2601":
        settle = c.prepare_settle_outpatient(p.settle_req())
        ok(c.send(settle))
        req = m.ReversalRequest(psn_no=p.psn_no, omsgid=settle.msg_id, oinfno="2207",
                                insuplc_admdvs=p.adm)
        return c.prepare_reverse(req), send, "offline.reversal"
    s = p.settle()
    if interface == "2208":
        return c.prepare_cancel_outpatient_settlement(p.cancel_req()), send, "offline.cancellation"
    if interface == "fpy001":
        return fp.prepare_query_real_account(p.fpy001_req()), send, None
    if interface == "tgdupc004":
        return fp.prepare_refund_personal_account(p.mpc004_req(s.acct_pay)), send, "account.refund"
    if interface == "3201":
        req = m.ReconcileTotalsRequest(insutype=p.insutype, clr_type="11", stmt_begndate=today(),
                                       stmt_enddate=today(), medfee_sumamt=s.medfee_sumamt,
                                       fund_pay_sumamt=s.fund_pay_sumamt, fixmedins_setl_cnt=1,
                                       setl_optins=p.adm, acct_pay=s.acct_pay)
        return c.prepare_reconcile_totals(req), send, None
    assert interface == "3202"
    file_no = ok(c.send(prepare_upload(c, detail_file([s]))))
    req = m.ReconcileDetailsRequest(setl_optins=p.adm, file_qury_no=file_no,
                                    stmt_begndate=today(), stmt_enddate=today(),
                                    medfee_sumamt=s.medfee_sumamt, fund_pay_sumamt=s.fund_pay_sumamt,
                                    cash_payamt=s.psn_cash_pay, fixmedins_setl_cnt=1)
    return c.prepare_reconcile_details(req), send, None


def _details(st: dict) -> int:
    return sum(len(v["details"]) for v in st["visits"].values())


def _visits(st: dict, active: bool = True) -> int:
    return sum(1 for v in st["visits"].values() if v["active"] is active)


# Effects of calls that move no money, read from /__sim__/state "visits": a function of the
# state before and after that says whether the call's effect is there.
VISIT_EFFECTS = {
    "2201": lambda b, a: _visits(a) == _visits(b) + 1,
    "2202": lambda b, a: _visits(a, False) == _visits(b, False) + 1,
    "2204": lambda b, a: _details(a) == _details(b) + 2,
    "2205": lambda b, a: _details(a) == _details(b) - 2,
    "2301": lambda b, a: _details(a) == _details(b) + 1,
    "2302": lambda b, a: _details(a) == _details(b) - 2,
}


INTERFACES = ["9001", "1101", "2201", "2202", "2203", "2204", "2205", "2206", "2207", "2208",
              "2301", "2302", "2303", "2304", "2305", "2260", "2261", "2601", "3201", "3202",
              "fpy001", "tgdupc004", "cn.nhsa.ec.auth", "cn.nhsa.auth.check",
              "cn.nhsa.settle.notify"]


@pytest.mark.parametrize("fault", list(COMMITS))
@pytest.mark.parametrize("interface", INTERFACES)
def test_every_call_under_every_fault(request, sim, off_client, fp_client, interface, fault):
    short = fault == "timeout"
    p = Patient(sim, off_client, ZHANG, fp_client)
    prepared, send, kind = scenario(interface, p, fp_client)
    before_state = sim.state()
    before = before_state["counts"]
    sim.arm(interface, fault, code="-2", message="模拟业务错误")
    if short:   # the same prepared call, sent by a client that gives up sooner
        # (fixtures looked up only here: each httpx client costs an SSL context)
        send = (request.getfixturevalue("fp_short_client").send_terminal if interface in TERMINAL
                else request.getfixturevalue("off_short_client").send)
    res = send(prepared)

    assert res.outcome is expected_outcome(interface, fault), res
    assert {"interface": interface, "fault": fault} in sim.fired()
    if fault == "business_error":
        assert res.code == "-2" and res.message == "模拟业务错误"
    if short:
        time.sleep(FAULT_DELAY - SHORT_TIMEOUT + 0.05)   # let the delayed answer commit first
    if kind is not None:
        st = sim.wait(lambda s: s["counts"][kind] > before[kind], 2.0) if COMMITS[fault] \
            else sim.state()
        assert st["counts"][kind] == before[kind] + COMMITS[fault], (kind, st["counts"])
    effect = VISIT_EFFECTS.get(interface)
    if effect is not None:
        assert effect(before_state, sim.state()) is COMMITS[fault], (interface, fault)
    if interface in TERMINAL:
        return
    # Follow-up: the same message again (same msgid).  The platform answers a repeated msgid
    # from its message log (offline.md §2/§12), so a committed effect is found and NOT
    # repeated, and an uncommitted one happens now: either way exactly one effect.
    again = send(prepared)
    assert again.outcome is Outcome.OK, again
    if kind is not None:
        assert sim.counts()[kind] == before[kind] + 1
    if effect is not None:
        assert effect(before_state, sim.state())


# ------------------------------------------------------------------ lost after commit: 2207

def test_settlement_lost_after_commit_is_found_again(sim, off_client, fp_client):
    p = Patient(sim, off_client, ZHANG, fp_client).outpatient_ready()
    prepared = off_client.prepare_settle_outpatient(p.settle_req())
    sim.arm("2207", "lost_after_commit")
    res = off_client.send(prepared)
    assert res.outcome is Outcome.UNKNOWN, res
    st = sim.state()
    (setl,) = st["settlements"].values()
    assert setl["valid"] and setl["msgid"] == prepared.msg_id and setl["facepay"]
    assert st["persons"][ZHANG] == "970.00"
    # the same msgid answers the stored settlement -> setl_id -> fpy001 finds the deduction
    s = ok(off_client.send(prepared))
    assert s.setl_id == setl["setl_id"] and sim.counts()["offline.settlement"] == 1
    q = ok(fp_client.query_real_account(p.fpy001_req(s)))
    assert q.settlement_valid and q.acct_stas == F.ACCT_STAS_DEDUCTED
    assert q.acct_pay == D("30.00") and q.platform_seq_id
    # the other way out of an unknown settlement: reverse it by its msgid (2601)
    rev = off_client.reverse(m.ReversalRequest(psn_no=p.psn_no, omsgid=prepared.msg_id,
                                               oinfno="2207", insuplc_admdvs=p.adm))
    assert rev.outcome is Outcome.OK, rev
    assert sim.balance(ZHANG) == "1000.00"
    assert not sim.state()["settlements"][s.setl_id]["valid"]


# ------------------------------------------------------------------ business rules

def test_facepay_rules_are_rejected(sim, off_client, msgid_dir):
    # institution not enabled for face-pay
    other_code = [k for k in sim.creds["offline"]["institutions"]
                  if k not in sim.creds["offline"]["facepay_institutions"]][0]
    other = make_offline(sim.creds, msgid_dir, code=other_code)
    try:
        p = Patient(sim, other, ZHANG).outpatient_ready()
        res = other.pre_settle_outpatient(p.settle_req())
        assert res.outcome is Outcome.REJECTED and "未开通" in res.message, res
        # with face-pay switched off the same institution settles the normal way
        assert other.settle_outpatient(p.settle_req(), face_pay=False).ok
    finally:
        other.close()
    # persons without a real account: notional (ZHAO) and none (WANG)
    for psn in (ZHAO, WANG):
        p = Patient(sim, off_client, psn).outpatient_ready()
        res = off_client.pre_settle_outpatient(p.settle_req())
        assert res.outcome is Outcome.REJECTED and res.code == "-1", res
    # UnionPay balance query fails (2206) / deduction fails (2207: no settlement)
    settled_before = len(sim.state()["settlements"])
    p = Patient(sim, off_client, SUN).outpatient_ready()
    sim.arm("unionpay.balance", "fail")
    res = off_client.pre_settle_outpatient(p.settle_req())
    assert res.outcome is Outcome.REJECTED and "银联" in res.message
    sim.arm("unionpay.deduct", "fail")
    res = off_client.settle_outpatient(p.settle_req())
    assert res.outcome is Outcome.REJECTED and "银联" in res.message
    assert len(sim.state()["settlements"]) == settled_before and sim.balance(SUN) == "3000.00"
    # a real account with balance 0 is no error: the account part is simply 0
    p = Patient(sim, off_client, LI).outpatient_ready()
    s = p.settle()
    assert s.acct_pay == 0 and s.psn_cash_pay > 0


def test_offline_business_rules_are_rejected(sim, off_client):
    p = Patient(sim, off_client, ZHANG).outpatient_ready()
    wrong = replace(p.settle_req(), medfee_sumamt=D("99.99"))
    res = off_client.settle_outpatient(wrong)
    assert res.outcome is Outcome.REJECTED and res.code == "-1"
    s = p.settle()
    assert off_client.cancel_outpatient_settlement(p.cancel_req()).ok
    res = off_client.cancel_outpatient_settlement(p.cancel_req(s))     # already cancelled
    assert res.outcome is Outcome.REJECTED and "已撤销" in res.message
    res = off_client.reverse(m.ReversalRequest(psn_no=p.psn_no, omsgid="H" + "0" * 29,
                                               oinfno="2207", insuplc_admdvs=p.adm))
    assert res.outcome is Outcome.REJECTED and "原交易不存在" in res.message


# ------------------------------------------------------------------ tampering

def test_wrong_gateway_secret_is_refused_and_never_ok(sim, msgid_dir):
    good = make_offline(sim.creds, msgid_dir)
    bad = make_offline(sim.creds, msgid_dir, sign_in=False, paas_secret="not-the-secret")
    try:
        bad.signin.accept(OPERATOR.opter, good.signin.current(OPERATOR.opter))
        p = Patient(sim, good, ZHANG).outpatient_ready()
        # The gateway checks the x-tif signature before forwarding (offline.md §1.4): the
        # core never saw either message, a settlement included - not sent, not in doubt.
        res = bad.settle_outpatient(p.settle_req())
        assert res.outcome is Outcome.NOT_SENT and "gateway" in res.message, res
        res = bad.person_info(p.person_req())
        assert res.outcome is Outcome.NOT_SENT and "gateway" in res.message, res
        assert sim.state()["settlements"] == {}
    finally:
        good.close()
        bad.close()


def test_body_altered_before_send_is_refused(sim, off_client):
    p = Patient(sim, off_client, ZHANG).outpatient_ready()
    prepared = off_client.prepare_settle_outpatient(p.settle_req())
    env = json.loads(prepared.body)
    env["infno"] = "2206"                     # no longer matches the URL it is sent to
    res = off_client.send(replace(prepared, body=json.dumps(env).encode()))
    assert res.outcome is Outcome.REJECTED and "不符" in res.message, res
    env = json.loads(prepared.body)
    env["fixmedins_code"] = "H99999999999"
    res = off_client.send(replace(prepared, body=json.dumps(env).encode()))
    assert res.outcome is Outcome.REJECTED, res
    assert sim.state()["settlements"] == {}


# ------------------------------------------------------------------ full face-pay sequence

def test_full_facepay_sequence(sim, off_client, fp_client):
    c, fp = off_client, fp_client
    # 9001
    sign = c.sign_in(sign_in_request(OPERATOR))
    assert sign.ok and sign.data.sign_no and c.signin.current(OPERATOR.opter) == sign.data.sign_no
    # face authorisation at the terminal -> identity -> 1101 by ecToken
    p = Patient(sim, c, SUN, fp)
    p.present_face()
    who = ok(fp.identify_by_face(FACE_REQ))
    assert who.idNo == p.certno and who.userName == p.name and who.ecToken
    info = ok(c.person_info(m.PersonInfoRequest(mdtrt_cert_type="01", mdtrt_cert_no=who.ecToken)))
    assert info.psn_no == SUN and info.insuinfo[0].insuplc_admdvs == who.insuOrg == p.adm
    # 2201 / 2203 / 2204
    p.outpatient_ready(("120.00", "80.00"))
    # 2206 with expContent
    trial_call = c.prepare_pre_settle_outpatient(p.settle_req())
    rec = json.loads(trial_call.body)["input"]["data"]
    assert rec["acct_used_flag"] == "1"
    assert set(F.EXP_CONTENT_REQUIRED) <= set(rec[F.EXP_CONTENT])
    trial = ok(c.send(trial_call))
    assert trial.medfee_sumamt == D("200.00") and trial.setl_id is None
    assert sim.balance(SUN) == "3000.00"
    # 2207 with expContent: fund + real-account deduction + cash
    s = p.settle()
    assert s.setl_id and s.medfee_sumamt == D("200.00")
    assert s.fund_pay_sumamt + s.acct_pay + s.psn_cash_pay == s.medfee_sumamt
    assert (s.fund_pay_sumamt, s.acct_pay) == (trial.fund_pay_sumamt, trial.acct_pay)
    assert s.acct_pay > 0 and sim.balance(SUN) == str(D("3000.00") - s.acct_pay)
    assert s.medins_setl_id == sim.state()["settlements"][s.setl_id]["msgid"]   # offline.md §3
    # tell the terminal (the terminal did not collect the payment)
    biz = c.next_msgid()
    p.present_face()
    auth = ok(fp.face_authorise(FACE_REQ, out_biz_no=biz))
    assert fp.notify_terminal(p.notice(biz, auth.authNo, s)).ok
    assert sim.state()["terminal_notices"][-1]["medicalSettleNo"] == s.setl_id

    # 2208 with the original expContent, UnionPay refund fails -> settlement kept
    sim.arm("unionpay.refund", "fail")
    res = c.cancel_outpatient_settlement(p.cancel_req())
    assert res.outcome is Outcome.REJECTED and "银联" in res.message, res
    assert sim.state()["settlements"][s.setl_id]["valid"]
    assert sim.balance(SUN) == str(D("3000.00") - s.acct_pay)
    # fpy001 shows the deduction (its serial) and the failed refund
    q = ok(fp.query_real_account(p.fpy001_req()))
    assert q.settlement_valid and q.acct_stas == F.ACCT_STAS_REFUND_FAILED
    assert q.acct_pay == s.acct_pay and q.platform_seq_id
    # mpc004 refunds the account; a repeat is idempotent
    r1 = ok(fp.refund_personal_account(p.mpc004_req(s.acct_pay, orig=q.platform_seq_id)))
    assert r1.ref_status == "SUCC" and r1.acct_refd_amt == s.acct_pay and r1.refund_seq_id
    assert sim.balance(SUN) == "3000.00"
    r2 = ok(fp.refund_personal_account(p.mpc004_req(s.acct_pay, orig=q.platform_seq_id)))
    assert r2.refund_seq_id == r1.refund_seq_id and sim.balance(SUN) == "3000.00"
    assert sim.counts()["account.refund"] == 1
    # a wrong amount or serial is refused
    res = fp.refund_personal_account(p.mpc004_req(s.acct_pay + D("0.01"), sn="RF2"))
    assert res.outcome is Outcome.REJECTED
    res = fp.refund_personal_account(p.mpc004_req(s.acct_pay, orig="UP-NOT-OURS", sn="RF3"))
    assert res.outcome is Outcome.REJECTED
    # now cancel the settlement without the extension (facepay.md alternative path)
    cancel = ok(c.cancel_outpatient_settlement(p.cancel_req(), face_pay=False))
    assert cancel.medfee_sumamt == -s.medfee_sumamt
    q = ok(fp.query_real_account(p.fpy001_req()))
    assert not q.settlement_valid and q.acct_stas == F.ACCT_STAS_REFUNDED
    assert q.platform_seq_id == r1.output[F.ORIG_PLATFORM_SEQ_ID]   # always the deduction's
    assert sim.balance(SUN) == "3000.00" and sim.counts()["account.refund"] == 1

    # inpatient: 2401 (generic prepare) 2301 2303 2304 2305
    ip = Patient(sim, c, ZHANG, fp).inpatient_ready(("300.00", "200.00"))
    pre = ok(c.pre_settle_inpatient(ip.inpatient_req()))
    assert pre.medfee_sumamt == D("500.00") and pre.clr_type == "21"
    si = ok(c.settle_inpatient(ip.inpatient_req()))
    assert si.fund_pay_sumamt + si.acct_pay + si.psn_cash_pay == D("500.00")
    assert sim.balance(ZHANG) == str(D("1000.00") - si.acct_pay)
    qi = ok(fp.query_real_account(ip.fpy001_req(si)))
    assert qi.acct_stas == F.ACCT_STAS_DEDUCTED
    ci = ok(c.cancel_inpatient_settlement(ip.cancel_req(si)))
    assert ci.acct_pay == -si.acct_pay and sim.balance(ZHANG) == "1000.00"

    # 2601 reversal of a settlement by its msgid
    rp = Patient(sim, c, ZHANG, fp).outpatient_ready(("45.00",))
    call = c.prepare_settle_outpatient(rp.settle_req())
    rs = ok(c.send(call))
    assert sim.balance(ZHANG) == str(D("1000.00") - rs.acct_pay)
    rev = m.ReversalRequest(psn_no=ZHANG, omsgid=call.msg_id, oinfno="2207", insuplc_admdvs=rp.adm)
    assert c.reverse(rev).ok and c.reverse(rev).ok        # repeated reversal changes nothing
    assert sim.balance(ZHANG) == "1000.00" and sim.counts()["offline.reversal"] == 1

    # 3201: today's net outpatient settlements of SUN's region: none left -> balanced at 0
    # and one still-valid settlement for ZHANG's region -> balanced with its sums
    keep = Patient(sim, c, ZHANG, fp).outpatient_ready(("10.00",))
    ks = keep.settle()
    tot = ok(c.reconcile_totals(m.ReconcileTotalsRequest(
        insutype="310", clr_type="11", stmt_begndate=today(), stmt_enddate=today(),
        medfee_sumamt=ks.medfee_sumamt, fund_pay_sumamt=ks.fund_pay_sumamt,
        fixmedins_setl_cnt=1, setl_optins=keep.adm, acct_pay=ks.acct_pay)))
    assert tot.balanced, tot
    off = ok(c.reconcile_totals(m.ReconcileTotalsRequest(
        insutype="310", clr_type="11", stmt_begndate=today(), stmt_enddate=today(),
        medfee_sumamt=ks.medfee_sumamt + D("1.00"), fund_pay_sumamt=ks.fund_pay_sumamt,
        fixmedins_setl_cnt=1, setl_optins=keep.adm, acct_pay=ks.acct_pay)))
    assert not off.balanced
    zero = ok(c.reconcile_totals(m.ReconcileTotalsRequest(
        insutype="310", clr_type="11", stmt_begndate=today(), stmt_enddate=today(),
        medfee_sumamt=D("0.00"), fund_pay_sumamt=D("0.00"), fixmedins_setl_cnt=0,
        setl_optins=p.adm, acct_pay=D("0.00"))))
    assert zero.balanced
    # every money movement exactly once
    counts = sim.counts()
    assert counts["offline.settlement"] == 4 and counts["offline.cancellation"] == 2, \
        [(e["kind"], e["ref"], e.get("msgid")) for e in sim.state()["events"]]
    # refunds: mpc004 once (its repeat moved nothing), 2305, the 2601 reversal
    assert counts["account.deduction"] == 4 and counts["account.refund"] == 3


def test_document_settlement_2260_2261(sim, off_client, fp_client):
    p = Patient(sim, off_client, ZHANG, fp_client)
    trial = ok(off_client.document_settle(p.document_req("0")))
    assert trial.medfee_sumamt == D("80.00") and sim.counts()["offline.settlement"] == 0
    s = ok(off_client.document_settle(p.document_req("1")))
    assert s.setl_id and s.fund_pay_sumamt + s.acct_pay + s.psn_cash_pay == D("80.00")
    assert (s.fund_pay_sumamt, s.acct_pay) == (trial.fund_pay_sumamt, trial.acct_pay)
    assert ok(fp_client.query_real_account(p.fpy001_req(s))).acct_stas == F.ACCT_STAS_DEDUCTED
    c = ok(off_client.cancel_document_settle(p.cancel_req(s)))
    assert c.medfee_sumamt == D("-80.00") and sim.balance(ZHANG) == "1000.00"


def test_guangzhou_variant_end_to_end(sim, msgid_dir):
    """offline.md §4/§5/§10.1: the Guangzhou build (mdtrtinfo/feeinfo nodes, 9001 under `data`
    with userid + MD5 password, 2601/3201 fields at the top of `input`, clr_optins and
    cash_payamt in 3201) and expContent sent as a JSON string under `exp_content`."""
    from bridge.offline.config import GUANGZHOU_INPUT_NODES
    c = make_offline(sim.creds, msgid_dir, input_nodes=GUANGZHOU_INPUT_NODES,
                     gz_sign_in_userid="gzuser", gz_sign_in_password="pw", infver="1.0.0",
                     recer_sys_code="HIS", recer_admdvs="440100", exp_content_field="exp_content",
                     exp_content_as_string=True)
    fp = make_facepay(c, sim.creds)
    try:
        p = Patient(sim, c, ZHANG, fp).outpatient_ready(("88.00",))
        call = c.prepare_settle_outpatient(p.settle_req())
        body = json.loads(call.body)
        assert set(body["input"]) == {"mdtrtinfo"}
        assert isinstance(body["input"]["mdtrtinfo"]["exp_content"], str)
        s = ok(c.send(call))
        assert s.acct_pay == D("26.40") and sim.state()["settlements"][s.setl_id]["facepay"]
        assert ok(fp.query_real_account(p.fpy001_req(s))).acct_stas == F.ACCT_STAS_DEDUCTED
        tot = ok(c.reconcile_totals(m.ReconcileTotalsRequest(
            insutype="310", clr_type="11", stmt_begndate=today(), stmt_enddate=today(),
            medfee_sumamt=s.medfee_sumamt, fund_pay_sumamt=s.fund_pay_sumamt,
            fixmedins_setl_cnt=1, clr_optins=p.adm, cash_payamt=s.psn_cash_pay)))
        assert tot.balanced, tot
        assert ok(c.cancel_outpatient_settlement(p.cancel_req(s))) is not None
        assert sim.balance(ZHANG) == "1000.00"
        rev = c.reverse(m.ReversalRequest(psn_no=ZHANG, omsgid=call.msg_id, oinfno="2207",
                                          insuplc_admdvs=p.adm))
        assert rev.outcome is Outcome.REJECTED and "已撤销" in rev.message   # nothing to reverse
        ip = Patient(sim, c, ZHANG, fp).inpatient_ready(("100.00",))
        revoke = m.RevokeInpatientFeesRequest(feedetl_sn="0000", mdtrt_id=ip.mdtrt_id,
                                              psn_no=ZHANG, insuplc_admdvs=ip.adm)
        assert json.loads(c.prepare_revoke_inpatient_fees(revoke).body)["input"].keys() == {"feeinfo"}
        si = ok(c.settle_inpatient(ip.inpatient_req()))
        assert ok(c.cancel_inpatient_settlement(ip.cancel_req(si))).acct_pay == -si.acct_pay
    finally:
        fp.close()
        c.close()
