import json
from decimal import Decimal

import pytest

from bridge.calls import Outcome
from bridge.facepay.client import (FaceAuthRequest, FacePayClient, PersonalAccountRefund,
                                   RealAccountQuery, SettleNotice, TerminalConfig)
from bridge.facepay.expcontent import FacePayTerms
from bridge.offline.client import OfflineClient
from bridge.offline.config import OfflineConfig, Operator

from .facepay_stub import SECRET

CODE = "H44010600001"
PSN = "44030000000001112535"


def env(output, infcode=0, err=None):
    return (200, json.dumps({"infcode": infcode, "err_msg": err, "output": output}).encode())


def terminal(data, code=0, message="成功"):
    # the library answers `data` as a JSON *string* (offline.md §7.1)
    return (200, json.dumps({"code": code, "message": message, "orgId": CODE,
                             "data": json.dumps(data, ensure_ascii=False)}).encode())


@pytest.fixture
def client(stub, tmp_path):
    cfg = OfflineConfig(base_url=stub.root + "/ebus/gdyb_inf/poc/hsa/hgs/", paas_id="paas1",
                        paas_secret=SECRET, fixmedins_code=CODE, mdtrtarea_admvs="440300",
                        default_operator=Operator("0001", "李收费"), require_sign_no=False,
                        union_refund_url=stub.root + "/ebus/gdyb_inf/poc_hos_unionRefund",
                        msgid_lock_dir=str(tmp_path), read_timeout=0.4)
    off = OfflineClient(cfg, face_pay=FacePayTerms("M", "T", "123456", "A02"))
    fp = FacePayClient(off, TerminalConfig(url=stub.root + "/nation-ec", org_id=CODE,
                                           read_timeout=0.4))
    yield fp
    fp.close()
    off.close()


def refund(**kw):
    base = dict(setl_id="S1", mdtrt_id="M1", psn_no=PSN, psn_acct_refd_amt=Decimal("20.00"),
                app_refd_sn="R1", app_refd_time="20260102100000")
    base.update(kw)
    return PersonalAccountRefund(**base)


def test_fpy001_goes_through_the_offline_envelope(stub, client):
    # Output shape: our choice in bridge/facepay/fields.py (shared with the simulator).
    rec = {"setl_id": "S1", "setl_stas": "1", "acct_stas": "1", "acct_pay": 20.00,
           "platformSeqId": "UP1", "other": "kept whole"}
    stub.replies["fpy001"] = env({"data": rec})
    res = client.query_real_account(RealAccountQuery(setl_id="S1", mdtrt_id="M1", psn_no=PSN))
    assert res.ok and res.data.output["other"] == "kept whole"
    assert res.data.settlement_valid and res.data.acct_stas == "1"
    assert res.data.acct_pay == Decimal("20.00") and res.data.platform_seq_id == "UP1"
    path, _, body = stub.requests[-1]
    assert path == "/ebus/gdyb_inf/poc/hsa/hgs/fpy001"
    assert body["infno"] == "fpy001" and body["msgid"] == res.msg_id
    assert body["input"] == {"data": {"setl_id": "S1", "mdtrt_id": "M1", "psn_no": PSN}}
    assert "expContent" not in json.dumps(body)
    stub.replies["fpy001"] = env(None, infcode=-1, err="无此结算")
    res = client.query_real_account(RealAccountQuery(setl_id="S1", mdtrt_id="M1", psn_no=PSN))
    assert res.outcome is Outcome.REJECTED and res.message == "无此结算"


@pytest.mark.parametrize("reply,outcome,code", [
    (env({"data": {"refStatus": "SUCC"}}), Outcome.OK, "0"),
    (env({"data": {"refStatus": "FAIL"}}), Outcome.REJECTED, "FAIL"),
    (env({"data": {"refStatus": "EXP"}}), Outcome.UNKNOWN, "EXP"),
    (env({"refStatus": "SUCC"}), Outcome.UNKNOWN, "0"),     # not under output.data
    (env({"data": {}}), Outcome.UNKNOWN, "0"),              # no refStatus
    (env(None, infcode=-1, err="收单行无退款权限"), Outcome.REJECTED, "-1"),
    ((502, b"bad gateway"), Outcome.UNKNOWN, None),
    ("timeout", Outcome.UNKNOWN, None),
])
def test_mpc004_refund(stub, client, reply, outcome, code):
    stub.replies["tgdupc004"] = reply
    res = client.refund_personal_account(refund(orig_platform_seq_id="UP123"))
    assert res.outcome is outcome and res.code == code
    path, _, body = stub.requests[-1]
    assert path == "/ebus/gdyb_inf/poc_hos_unionRefund" and body["infno"] == "tgdupc004"
    rec = body["input"]["data"]
    assert rec["origPlatformSeqId"] == "UP123" and rec["psnAcctRefdAmt"] == Decimal("20.00")
    assert rec["appRefdSn"] == "R1"


def test_mpc004_without_serial_and_amount_rules(client):
    p = client.prepare_refund_personal_account(refund())
    assert "origPlatformSeqId" not in json.loads(p.body)["input"]["data"]
    assert p.keys["appRefdSn"] == "R1" and p.keys["setl_id"] == "S1"
    with pytest.raises(ValueError):
        client.prepare_refund_personal_account(refund(psn_acct_refd_amt=Decimal("0")))


AUTH = FaceAuthRequest(businessType="01101", operatorId="0001", operatorName="李收费",
                       officeId="D1", officeName="内科")


def test_face_auth_to_identity(stub, client):
    stub.replies["cn.nhsa.ec.auth"] = terminal({"authNo": "ano372868", "outBizNo": "x"})
    stub.replies["cn.nhsa.auth.check"] = terminal({
        "authNo": "ano372868", "idNo": "440106199001011234", "idType": "01",
        "userName": "张三丰", "ecToken": "440300ec7ioq", "insuOrg": "440300"})
    res = client.identify_by_face(AUTH)
    assert res.ok and res.interface == "cn.nhsa.auth.check"
    assert res.data.idNo == "440106199001011234" and res.data.insuOrg == "440300"
    assert "440106199001011234" not in res.response_text and "440300ec7ioq" not in res.response_text
    (_, _, a), (_, _, b) = stub.requests[-2:]
    assert a["transType"] == "cn.nhsa.ec.auth" and a["orgId"] == CODE
    assert b["data"]["authNo"] == "ano372868"
    assert a["data"]["outBizNo"] == b["data"]["outBizNo"] and len(a["data"]["outBizNo"]) == 30


@pytest.mark.parametrize("reply,outcome", [
    (terminal({}, code=-1, message="用户取消"), Outcome.REJECTED),
    ((200, b"not json"), Outcome.UNKNOWN),
    (terminal({"noAuthNo": 1}), Outcome.UNKNOWN),
    ("timeout", Outcome.UNKNOWN),
])
def test_face_auth_failures(stub, client, reply, outcome):
    stub.replies["cn.nhsa.ec.auth"] = reply
    res = client.identify_by_face(AUTH)
    assert res.outcome is outcome and res.interface == "cn.nhsa.ec.auth"


def test_terminal_unreachable_is_not_sent(client):
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    fp = FacePayClient(client.offline, TerminalConfig(url=f"http://127.0.0.1:{port}/x",
                                                      org_id=CODE))
    res = fp.face_authorise(AUTH)
    fp.close()
    assert res.outcome is Outcome.NOT_SENT and res.try_again


def test_settlement_notice(stub, client):
    stub.replies["cn.nhsa.settle.notify"] = terminal({"outBizNo": "B1"})
    notice = SettleNotice(outBizNo="B1", medicalSettleState="SUCCESS", authNo="ano1",
                          operatorId="0001", operatorName="李收费", totalFee=Decimal("100.00"),
                          bizType="settle", idNo="440106199001011234", userName="张三丰",
                          setlTime="2026-01-02 10:00:00", hospitalName="测试医院",
                          officeId="D1", officeName="内科", doctorName="王医生",
                          medicalSettleNo="300014497225", acctAmt=Decimal("20.00"),
                          hifAmt=Decimal("60.00"))
    res = client.notify_terminal(notice)
    assert res.ok
    data = stub.requests[-1][2]["data"]
    assert data["totalFee"] == Decimal("100.00") and data["medicalSettleNo"] == "300014497225"
    assert "ownAmt" not in data and data["orgId"] == CODE
    with pytest.raises(ValueError):
        SettleNotice(**{**notice.__dict__, "medicalSettleNo": None}).to_data()
