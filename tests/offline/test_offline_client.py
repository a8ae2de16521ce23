import json
import threading
from datetime import datetime, timedelta
from decimal import Decimal

import pytest

from bridge.calls import Outcome
from bridge.facepay.expcontent import FacePayTerms
from bridge.offline import messages as m
from bridge.offline.client import OfflineClient, SignInRequired
from bridge.offline.config import GUANGZHOU_INPUT_NODES, OfflineConfig, Operator
from bridge.offline.signin import SignIn

from .offline_stub import CODE, SECRET, tif_ok

OP = Operator("0001", "李收费")
TERMS = FacePayTerms(merchant_no="102440100000004", terminal_no="00000143", isv_no="123456",
                     acct_type="A02", down_payment=Decimal("0.00"))
PSN = "44030000000001112535"


@pytest.fixture
def make_client(stub, tmp_path):
    clients = []

    def make(face_pay=None, **kw):
        cfg = dict(base_url=stub.base_url, paas_id="paas1", paas_secret=SECRET,
                   fixmedins_code=CODE, fixmedins_name="测试医院", mdtrtarea_admvs="440300",
                   default_operator=OP, msgid_lock_dir=str(tmp_path), read_timeout=0.5)
        cfg.update(kw)
        c = OfflineClient(OfflineConfig(**cfg), face_pay=face_pay,
                          sign_in_request=lambda op: m.SignInRequest(opter_no=op.opter,
                                                                     mac="00-11", ip="10.0.0.1"))
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.close()


def settle_req(**kw):
    base = dict(psn_no=PSN, mdtrt_cert_type="02", mdtrt_cert_no="440106199001011234",
                med_type="11", medfee_sumamt=Decimal("100.00"), psn_setlway="01",
                mdtrt_id="310003327436", chrg_bchno="B1", acct_used_flag="1", insutype="310",
                insuplc_admdvs="440300")
    base.update(kw)
    return m.OutpatientSettleRequest(**base)


def inpatient_req():
    return m.InpatientSettleRequest(psn_no=PSN, mdtrt_cert_type="02", mdtrt_cert_no="X",
                                    medfee_sumamt=Decimal("100.00"), psn_setlway="01",
                                    mdtrt_id="M1", acct_used_flag="1", insutype="310",
                                    mid_setl_flag="0")


def cancel_req():
    return m.CancelSettlementRequest(setl_id="300014497225", mdtrt_id="310003327436", psn_no=PSN)


def doc_req(flag):
    return m.DocumentSettleRequest(psn_no=PSN, mdtrt_cert_type="02", mdtrt_cert_no="X",
                                   setl_flag=flag, insutype="310", med_type="11",
                                   begntime="2026-01-02 09:00:00", clnc_flag="0",
                                   feedetail_rows=({"feedetl_sn": "1"},))


def fee(sn):
    return m.FeeDetail(feedetl_sn=sn, mdtrt_id="310003327436", psn_no=PSN,
                       fee_ocur_time="2026-01-02 09:00:00", med_list_codg="X01",
                       medins_list_codg="H01", det_item_fee_sumamt=Decimal("12.34"),
                       cnt=Decimal("2"), pric=Decimal("6.17"), bilg_dept_codg="D1",
                       bilg_dept_name="内科", bilg_dr_codg="DR1", bilg_dr_name="王医生",
                       chrg_bchno="B1", rx_circ_flag="0")


def last_request(stub, infno):
    return [r for r in stub.requests if r[2]["infno"] == infno][-1]


def test_sign_in_then_envelope_and_headers(stub, make_client):
    c = make_client()
    with pytest.raises(SignInRequired):
        c.prepare_person_info(m.PersonInfoRequest(mdtrt_cert_type="02", mdtrt_cert_no="X"))
    res = c.sign_in(m.SignInRequest(opter_no="0001", mac="00-11", ip="10.0.0.1"))
    assert res.ok and res.data.sign_no == "SN000001"
    path, headers, body = last_request(stub, "9001")
    assert path.endswith("/hsa/hgs/9001") and tif_ok(headers)
    assert body["input"] == {"signIn": {"opter_no": "0001", "mac": "00-11", "ip": "10.0.0.1"}}
    assert body["msgid"] == res.msg_id and len(body["msgid"]) == 30

    p = c.prepare_person_info(m.PersonInfoRequest(mdtrt_cert_type="02",
                                                  mdtrt_cert_no="440106199001011234"))
    assert json.loads(p.body)["sign_no"] == "SN000001"
    assert "440106199001011234" not in p.masked_request and SECRET not in p.masked_request
    r = c.send(p)
    assert r.ok and r.data.psn_no == PSN and r.data.insuinfo[0].balc == Decimal("500.00")
    assert "440106199001011234" not in r.response_text and "张三丰" not in r.response_text
    assert r.raw["output"]["baseinfo"]["certno"] == "440106199001011234"


def test_outpatient_happy_path_money_is_decimal(stub, make_client):
    c = make_client()
    reg = c.register(m.RegisterRequest(psn_no=PSN, insutype="310", begntime="2026-01-02 09:00:00",
                                       mdtrt_cert_type="02", mdtrt_cert_no="X", ipt_otp_no="MZ1",
                                       atddr_no="DR1", dr_name="王医生", dept_code="D1",
                                       dept_name="内科", caty="A03", insuplc_admdvs="440300"))
    assert reg.ok and reg.data.mdtrt_id == "310003327436"
    assert last_request(stub, "2201")[2]["insuplc_admdvs"] == "440300"
    visit = c.upload_visit(m.VisitRequest(mdtrt_id="310003327436", psn_no=PSN, med_type="11",
                                          begntime="2026-01-02 09:00:00", diseinfo=(
        m.Diagnosis(diag_type="1", diag_srt_no="1", diag_code="J00", diag_name="感冒",
                    diag_dept="内科", dise_dor_no="DR1", dise_dor_name="王医生",
                    diag_time="2026-01-02 09:00:00", vali_flag="1"),)))
    assert visit.ok
    body = last_request(stub, "2203")[2]["input"]
    assert set(body) == {"mdtrtinfo", "diseinfo"} and body["diseinfo"][0]["diag_code"] == "J00"
    fees = c.upload_fee_details([fee("1"), fee("2")])
    assert fees.ok and fees.data[0].det_item_fee_sumamt == Decimal("12.34")
    assert last_request(stub, "2204")[2]["input"]["feedetail"][0]["pric"] == Decimal("6.17")
    pre = c.pre_settle_outpatient(settle_req())
    assert pre.ok and pre.data.setl_id is None
    st = c.settle_outpatient(settle_req())
    assert st.ok
    assert st.data.setl_id == "300014497225" and st.data.medins_setl_id == st.msg_id
    assert isinstance(st.data.acct_pay, Decimal) and st.data.acct_pay == Decimal("20")
    assert st.data.setldetail[0].fund_payamt == Decimal("50")
    assert stub.sign_count == 1                     # one automatic sign-in for the day
    cancel = c.cancel_outpatient_settlement(cancel_req())
    assert cancel.ok and cancel.data.medfee_sumamt == Decimal("-100")


def test_gateway_headers_are_fresh_at_send_time(stub, make_client):
    c = make_client(require_sign_no=False)
    p = c.prepare_pre_settle_outpatient(settle_req())
    assert c.send(p).ok
    _, headers, body = last_request(stub, "2206")
    assert tif_ok(headers) and headers["x-tif-nonce"] != p.headers["x-tif-nonce"]
    assert body["msgid"] == p.msg_id


def test_keys_and_masking_on_prepare(make_client):
    c = make_client(require_sign_no=False)
    p = c.prepare_settle_outpatient(settle_req())
    assert p.keys == {"psn_no": PSN, "mdtrt_id": "310003327436", "chrg_bchno": "B1"}
    assert p.interface == "2207" and p.url.endswith("/2207")
    assert "440106199001011234" not in p.masked_request


@pytest.mark.parametrize("mode,outcome,code", [
    ("error", Outcome.REJECTED, "-1"),
    ("500", Outcome.UNKNOWN, None),
    ("garbage", Outcome.UNKNOWN, None),
    ("timeout", Outcome.UNKNOWN, None),
    ("reset", Outcome.UNKNOWN, None),
    ("gateway_error", Outcome.UNKNOWN, "-2"),       # state-changing call: cannot tell
    ("bad_sum", Outcome.UNKNOWN, "SUM_MISMATCH"),
    ("missing_field", Outcome.UNKNOWN, "SUM_MISMATCH"),
    ("in_progress", Outcome.UNKNOWN, "-1"),       # "being processed": may still be booked
])
def test_settlement_classification(stub, make_client, mode, outcome, code):
    c = make_client()
    stub.modes["2207"] = mode
    res = c.settle_outpatient(settle_req())
    assert res.outcome is outcome, res.message
    assert res.code == code
    assert res.interface == "2207" and res.msg_id
    if mode == "error":
        assert res.message == "人员信息不存在"
    if mode == "bad_sum":
        assert "psn_part_amt" in res.message and res.data.setl_id == "300014497225"
    if outcome is Outcome.UNKNOWN:
        assert res.message


@pytest.mark.parametrize("mode,outcome", [
    ("gateway_error", Outcome.REJECTED),      # read-only call: nothing can have happened
    ("bad_sum", Outcome.REJECTED),            # trial moved no money
    ("500", Outcome.UNKNOWN),
    ("ok_string_infcode", Outcome.OK),
    ("wrapped_ok", Outcome.OK),
])
def test_trial_and_wrapper_classification(stub, make_client, mode, outcome):
    c = make_client()
    stub.modes["2206"] = mode
    res = c.pre_settle_outpatient(settle_req())
    assert res.outcome is outcome, res.message


@pytest.mark.parametrize("infno,call", [("2207", "settle"), ("2261", "cancel"), ("1101", "person"),
                                        ("9001", "sign_in")])
@pytest.mark.parametrize("mode,outcome,transient", [
    # The gateway checks the x-tif signature before it forwards anything (offline.md §1.4,
    # bridge/refusals.py): the core never saw the message, whatever the call.
    ("gateway_signature", Outcome.NOT_SENT, False),
    ("429", Outcome.NOT_SENT, False),
    # The core answered "busy": not a verdict on the request.
    ("busy", Outcome.REJECTED, True),
    # A verdict.
    ("error", Outcome.REJECTED, False),
])
def test_transient_refusals_are_told_from_verdicts(stub, make_client, infno, call, mode, outcome, transient):
    c = make_client()
    if infno != "9001":
        assert c.sign_in(m.SignInRequest(opter_no="op1", mac="00", ip="127.0.0.1")).ok
    stub.modes[infno] = mode
    res = {"settle": lambda: c.settle_outpatient(settle_req()),
           "cancel": lambda: c.cancel_document_settle(m.CancelSettlementRequest(
               setl_id="300000000009", mdtrt_id="310003327436", psn_no=PSN)),
           "person": lambda: c.person_info(m.PersonInfoRequest(mdtrt_cert_type="02", mdtrt_cert_no="X")),
           "sign_in": lambda: c.sign_in(m.SignInRequest(opter_no="op1", mac="00", ip="127.0.0.1"))}[call]()
    assert res.outcome is outcome, (res.outcome, res.message)
    assert res.transient is transient
    assert res.try_again is (outcome is Outcome.NOT_SENT or transient)
    assert res.refused is (mode == "error")


def test_transient_table():
    from bridge.refusals import is_transient, refused_before_forwarding
    assert is_transient("系统繁忙，请稍后再试") and is_transient("请求过于频繁") and is_transient("验签失败")
    # "being processed, query later" may still be booked: never resent on that answer.
    assert not is_transient("交易处理中，请稍后查询结算结果") and not is_transient("系统繁忙，交易结果未知")
    # A timeout behind the refusal: the deduction may have gone through (review finding).
    assert not is_transient("银联扣款超时，请稍后再试") and not is_transient("upstream timed out, try again later")
    assert not is_transient("核心系统响应超时") and not is_transient("处理结果不确定，请稍后重试")
    assert not is_transient("人员信息不存在") and not is_transient(None)
    assert refused_before_forwarding("x-tif-signature签名校验失败") and refused_before_forwarding("paasid不存在")
    assert not refused_before_forwarding("后端服务调用超时")     # may come after forwarding


def test_connection_refused_is_not_sent(make_client, free_port):
    c = make_client(base_url=f"http://127.0.0.1:{free_port}/x/", require_sign_no=False)
    res = c.send(c.prepare_settle_outpatient(settle_req()))
    assert res.outcome is Outcome.NOT_SENT and res.try_again


def test_failed_sign_in_means_call_not_sent(stub, make_client):
    c = make_client()
    stub.modes["9001"] = "500"
    res = c.settle_outpatient(settle_req())
    assert res.outcome is Outcome.NOT_SENT and res.try_again
    assert not [r for r in stub.requests if r[2]["infno"] == "2207"]


def test_invalid_sign_in_is_renewed_and_call_retried(stub, make_client):
    c = make_client()
    stub.modes["2201"] = ["signin_invalid", "ok"]
    res = c.register(m.RegisterRequest(psn_no=PSN, insutype="310", begntime="t",
                                       mdtrt_cert_type="02", mdtrt_cert_no="X", ipt_otp_no="MZ1",
                                       atddr_no="DR1", dr_name="n", dept_code="D1",
                                       dept_name="d", caty="A03"))
    assert res.ok
    assert stub.sign_count == 2
    sent = [r[2]["sign_no"] for r in stub.requests if r[2]["infno"] == "2201"]
    assert sent == ["SN000001", "SN000002"]


def test_reverse_and_reconcile(stub, make_client):
    c = make_client()
    res = c.reverse(m.ReversalRequest(psn_no=PSN, omsgid=CODE + "202601021000000001",
                                      oinfno="2207"))
    assert res.ok and res.data is None
    assert last_request(stub, "2601")[2]["input"] == {
        "data": {"psn_no": PSN, "omsgid": CODE + "202601021000000001", "oinfno": "2207"}}
    tot = c.reconcile_totals(m.ReconcileTotalsRequest(
        insutype="310", clr_type="11", setl_optins="440300", stmt_begndate="2026-01-02",
        stmt_enddate="2026-01-02", medfee_sumamt=Decimal("100.00"),
        fund_pay_sumamt=Decimal("60.00"), acct_pay=Decimal("20.00"), fixmedins_setl_cnt=1))
    assert tot.ok and tot.data.balanced
    with pytest.raises(ValueError):
        c.prepare_reconcile_totals(m.ReconcileTotalsRequest(
            insutype="310", clr_type="11", stmt_begndate="d", stmt_enddate="d",
            medfee_sumamt=Decimal(1), fund_pay_sumamt=Decimal(1), acct_pay=Decimal(0),
            fixmedins_setl_cnt=1))
    det = c.reconcile_details(m.ReconcileDetailsRequest(
        setl_optins="440300", file_qury_no="F1", stmt_begndate="d", stmt_enddate="d",
        medfee_sumamt=Decimal(1), fund_pay_sumamt=Decimal(1), cash_payamt=Decimal(0),
        fixmedins_setl_cnt=1))
    assert det.ok and det.data.file_qury_no == "F1"


def test_inpatient_and_document_settlement(stub, make_client):
    c = make_client()
    assert c.upload_inpatient_fees([m.FeeDetail(**{**fee("1").__dict__, "med_type": "21",
                                                   "chrg_bchno": None})]).ok
    with pytest.raises(ValueError):
        c.prepare_upload_inpatient_fees([fee("1")])          # 2301 needs med_type
    assert c.revoke_inpatient_fees(m.RevokeInpatientFeesRequest(
        feedetl_sn="0000", mdtrt_id="M1", psn_no=PSN)).ok
    assert c.pre_settle_inpatient(inpatient_req()).ok
    assert c.settle_inpatient(inpatient_req()).ok
    assert c.cancel_inpatient_settlement(cancel_req()).ok
    trial = c.document_settle(doc_req("0"))
    assert trial.ok and trial.data.setl_id is None
    done = c.document_settle(doc_req("1"))
    assert done.ok and done.data.setl_id == "300000000009"
    body = last_request(stub, "2260")[2]["input"]
    assert body["feedetail"] == {"rows": [{"feedetl_sn": "1"}]} and "mdtrtinfo" in body
    assert c.cancel_document_settle(cancel_req()).ok
    assert "mdtrtinfo" in last_request(stub, "2261")[2]["input"]


def _all_exp_calls(c):
    c.pre_settle_outpatient(settle_req())
    c.settle_outpatient(settle_req())
    c.cancel_outpatient_settlement(cancel_req())
    c.pre_settle_inpatient(inpatient_req())
    c.settle_inpatient(inpatient_req())
    c.cancel_inpatient_settlement(cancel_req())
    c.document_settle(doc_req("0"))
    c.cancel_document_settle(cancel_req())
    c.person_info(m.PersonInfoRequest(mdtrt_cert_type="02", mdtrt_cert_no="X"))
    c.upload_fee_details([fee("1")])
    c.revoke_fee_details(m.RevokeFeeDetailsRequest(mdtrt_id="M", chrg_bchno="0000", psn_no=PSN))
    c.reverse(m.ReversalRequest(psn_no=PSN, omsgid="x", oinfno="2207"))


def _record(body):
    inp = body["input"]
    return inp.get("data") or inp.get("mdtrtinfo") or inp


def test_exp_content_exactly_on_the_face_pay_calls(stub, make_client):
    c = make_client(face_pay=TERMS)
    _all_exp_calls(c)
    carrying = {"2206", "2207", "2208", "2303", "2304", "2305", "2260", "2261"}
    seen = set()
    for _, _, body in stub.requests:
        rec = _record(body)
        if body["infno"] in carrying:
            seen.add(body["infno"])
            assert rec["expContent"] == {"merchantNo": "102440100000004",
                                         "terminalNo": "00000143", "isvNo": "123456",
                                         "acctType": "A02", "down_payment": Decimal("0.00")}
            if body["infno"] in {"2206", "2207", "2303", "2304", "2260"}:
                assert rec["acct_used_flag"] == "1"
        else:
            assert "expContent" not in json.dumps(body, default=str)
    assert seen == carrying


def test_exp_content_absent_when_face_pay_off(stub, make_client):
    c = make_client()                                   # no terms: mode off
    _all_exp_calls(c)
    c2 = make_client(face_pay=TERMS)
    c2.settle_outpatient(settle_req(acct_used_flag="0"), face_pay=False)   # cashier switch
    for _, _, body in stub.requests:
        assert "expContent" not in json.dumps(body, default=str)
        assert "exp_content" not in json.dumps(body, default=str)
    with pytest.raises(ValueError):
        c2.prepare_settle_outpatient(settle_req(acct_used_flag="0"))


def test_exp_content_string_form_and_snake_name(make_client):
    c = make_client(face_pay=TERMS, require_sign_no=False, exp_content_field="exp_content",
                    exp_content_as_string=True)
    rec = json.loads(c.prepare_settle_outpatient(settle_req()).body)["input"]["data"]
    assert json.loads(rec["exp_content"])["acctType"] == "A02"
    assert json.loads(rec["exp_content"], parse_float=Decimal)["down_payment"] == Decimal("0.00")


def test_guangzhou_nodes(make_client):
    c = make_client(input_nodes=GUANGZHOU_INPUT_NODES, require_sign_no=False)
    body = json.loads(c.prepare_settle_outpatient(settle_req()).body)
    assert list(body["input"]) == ["mdtrtinfo"]
    body = json.loads(c.prepare_reverse(m.ReversalRequest(psn_no=PSN, omsgid="x",
                                                          oinfno="2207")).body)
    assert body["input"] == {"psn_no": PSN, "omsgid": "x", "oinfno": "2207"}


def test_settlement_violations_rules():
    good = m.Settlement(medfee_sumamt=Decimal("4.52"), fulamt_ownpay_amt=Decimal(0),
                        overlmt_selfpay=Decimal(0), preselfpay_amt=Decimal(0),
                        inscp_scp_amt=Decimal("4.52"), fund_pay_sumamt=Decimal(0),
                        psn_part_amt=Decimal("4.52"), hosp_part_amt=Decimal(0),
                        acct_pay=Decimal("4.52"), psn_cash_pay=Decimal(0),
                        hifp_pay=Decimal(0), cvlserv_pay=Decimal(0), hifes_pay=Decimal(0),
                        hifmi_pay=Decimal(0), hifob_pay=Decimal(0), maf_pay=Decimal(0),
                        oth_pay=Decimal(0))
    assert m.settlement_violations(good, cancellation=False) == []
    with_dm = m.Settlement(**{**good.__dict__, "hifdm_pay": Decimal("0.01")})
    assert m.settlement_violations(with_dm, cancellation=False)
    partial = m.Settlement(**{**good.__dict__, "psn_part_amt": None, "hosp_part_amt": None})
    assert m.settlement_violations(partial, cancellation=True) == []
    assert m.settlement_violations(partial, cancellation=False)
    # alias spellings seen in sources
    s = m.Settlement.from_output({"setlinfo": {"psn_part_am": "1.00", "pdn_cash_pay": 1}})
    assert s.psn_part_amt == Decimal("1.00") and s.psn_cash_pay == Decimal(1)


def test_sign_in_holder_day_change_and_threads():
    calls = []
    now = [datetime(2026, 1, 2, 23, 59)]

    class R:
        ok = True

        def __init__(self, n):
            self.data = m.SignInResult(sign_no=f"S{n}")

    lock = threading.Lock()

    def sign(opter):
        with lock:
            calls.append(opter)
            return R(len(calls))

    holder = SignIn(sign, clock=lambda: now[0])
    results = []
    threads = [threading.Thread(target=lambda: results.append(holder.ensure("A")[0]))
               for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == ["A"] and set(results) == {"S1"}
    now[0] += timedelta(minutes=2)                      # next day
    assert holder.current("A") is None
    assert holder.ensure("A")[0] == "S2"
    holder.invalidate("A", "S1")                        # stale invalidation is ignored
    assert holder.current("A") == "S2"
    holder.invalidate("A", "S2")
    assert holder.current("A") is None
    aged = SignIn(sign, clock=lambda: now[0], max_age_seconds=3600)
    aged.ensure("B")
    now[0] += timedelta(hours=1)
    assert aged.current("B") is None



def test_a_timeout_refusal_of_a_money_call_is_unknown_not_transient(stub, make_client):
    """2207 refused with "deduction timed out, try again later" may have deducted the
    account: it is resolved by query (UNKNOWN), never resent as a transient refusal."""
    c = make_client()
    assert c.sign_in(m.SignInRequest(opter_no="op1", mac="00", ip="127.0.0.1")).ok
    stub.modes["2207"] = "timeout_refusal"
    res = c.settle_outpatient(settle_req())
    assert res.outcome is Outcome.UNKNOWN and not res.transient, (res.outcome, res.message)
