"""Mobile-pay centre: envelope, signatures, order life cycle, refunds, revokes, 6302."""
from __future__ import annotations

import base64
import time
import uuid
from decimal import Decimal

from bridge.crypto import sm2

from .conftest import control, state
from .spec_client import MobilePayClient

ORG = "H44010600001"


def person(sim, psn_no):
    for p in control(sim, "GET", "/__sim__/persons")["persons"]:
        if p["psn_no"] == psn_no:
            return p
    raise KeyError(psn_no)


def upload(mpc, sim, psn_no="44010000000000000001", total="100.00", med_org_ord=None, items=None):
    p = person(sim, psn_no)
    auth = control(sim, "POST", "/__sim__/mobilepay/authorize", {"psn_no": psn_no})["payAuthNo"]
    items = items or [total]
    data = {
        "orgCodg": ORG, "psnNo": psn_no, "insutype": p["insutype"], "medOrgOrd": med_org_ord or uuid.uuid4().hex,
        "begntime": "2026-01-01 09:00:00", "idNo": p["certno"], "userName": p["psn_name"], "idType": "01",
        "payAuthNo": auth, "insuCode": p["insuplc_admdvs"], "iptOtpNo": "MZ0001", "deptCode": "01",
        "deptName": "内科", "caty": "A03", "mdtrtId": "", "medType": "11", "feeType": "01",
        "medfeeSumamt": total, "acctUsedFlag": "1", "psnSetlway": "01", "chrgBchno": "B" + uuid.uuid4().hex[:10],
        "pubHospRfomFlag": "0",
        "feedetailList": [{"feedetlSn": f"D{i}", "detItemFeeSumamt": amt, "cnt": "1", "pric": amt,
                           "medListCodg": "X001", "medinsListCodg": "H001"} for i, amt in enumerate(items)],
    }
    env, out = mpc.call("6201", data)
    return data, env, out


def place(mpc, sim, data, out, acct="1"):
    auth = control(sim, "POST", "/__sim__/mobilepay/authorize", {"psn_no": data["psnNo"]})["payAuthNo"]
    req = {"payAuthNo": auth, "payOrdId": out["payOrdId"], "payToken": out["payToken"], "orgCodg": ORG,
           "orgBizSer": "BIZ" + str(time.time_ns()), "mdtrtId": out["mdtrtId"], "chrgBchno": data["chrgBchno"],
           "feeType": "01", "acctUsedFlag": acct}
    return mpc.call("6202", req)


def identity(data):
    return {"idNo": data["idNo"], "userName": data["userName"], "idType": "01"}


def paid_order(mpc, sim, total="100.00", psn_no="44010000000000000001"):
    data, _, out = upload(mpc, sim, psn_no, total)
    _, split = place(mpc, sim, data, out)
    control(sim, "POST", "/__sim__/mobilepay/pay", {"payOrdId": out["payOrdId"]})
    return data, out, split


def refund(mpc, data, out, sn, kind, fund="0.00", acct="0.00", cash="0.00"):
    total = str(Decimal(fund) + Decimal(acct) + Decimal(cash))
    return mpc.call("6203", {"payOrdId": out["payOrdId"], "appRefdSn": sn, "appRefdTime": "20260101120000",
                             "totlRefdAmt": total, "psnAcctRefdAmt": acct, "fundRefdAmt": fund,
                             "cashRefdAmt": cash, "payAuthNo": "AUTHX", "refdType": kind})


def test_happy_path_split_pay_notify_query(mpc, sim, hospital):
    data, env, out = upload(mpc, sim, total="100.00", items=["60.50", "39.50"])
    assert env["code"] == 0 and out["payOrdId"].startswith("ORD440100")
    env, split = place(mpc, sim, data, out)
    # 310 -> 70% fund; account 1000 covers the rest; no cash -> ordStas 1
    assert (split["fundPay"], split["psnAcctPay"], split["ownPayAmt"]) == (
        Decimal("70.00"), Decimal("30.00"), Decimal("0.00"))
    assert split["ordStas"] == "1"
    assert split["extData"]["preSetl"]["balc"] == Decimal("970.00")
    q = dict(payOrdId=out["payOrdId"], orgCodg=ORG, payToken=out["payToken"], **identity(data))
    assert mpc.call("6301", q)[1] == {"payOrdId": out["payOrdId"], "ordStas": "1"}
    assert state(sim)["persons"]["44010000000000000001"] == "1000.00"   # nothing taken before paying
    control(sim, "POST", "/__sim__/mobilepay/pay", {"payOrdId": out["payOrdId"]})
    assert hospital.event.wait(5)
    _, notice = mpc.open(hospital.received[0])   # enveloped and signed like a response
    assert notice["callType"] == "02" and notice["payOrdId"] == out["payOrdId"]
    assert notice["fundPay"] + notice["psnAcctPay"] + notice["ownPayAmt"] == notice["feeSumamt"]
    _, q_out = mpc.call("6301", q)
    assert q_out["ordStas"] == "6" and q_out["setlType"] == "HI" and q_out["revsToken"]
    st = state(sim)
    assert st["counts"]["mobilepay.charge"] == 1
    assert st["persons"]["44010000000000000001"] == "970.00"


def test_cash_part_and_no_account(mpc, sim):
    data, _, out = upload(mpc, sim, "44010000000000000003", "33.33")   # resident, no account
    _, split = place(mpc, sim, data, out)
    assert split["fundPay"] == Decimal("18.33")                         # 55% of 33.33, half-up
    assert split["psnAcctPay"] == Decimal("0.00") and split["ownPayAmt"] == Decimal("15.00")
    assert split["ordStas"] == "2"


def test_bad_signature_is_rejected(mpc, sim):
    env = mpc.envelope({"payOrdId": "x"})
    sig = bytearray(base64.b64decode(env["signData"]))
    sig[0] ^= 1
    env["signData"] = base64.b64encode(bytes(sig)).decode()
    r, _ = mpc.open(mpc.post_raw("6301", env).content)
    assert r["code"] != 0 and "验签" in r["message"]


def test_wrong_key_and_tampered_field_rejected(mpc, sim):
    other = sm2.generate_private_key()
    forger = MobilePayClient(sim.url, {**mpc.c, "institution_private_key": other.to_base64()})
    r, _ = mpc.open(forger.post_raw("6301", forger.envelope({"payOrdId": "x"})).content)
    assert r["code"] != 0
    env = mpc.envelope({"payOrdId": "x"})
    env["timestamp"] = str(int(env["timestamp"]) + 1)   # the timestamp is covered by the signature
    r, _ = mpc.open(mpc.post_raw("6301", env).content)
    assert r["message"] == "验签失败"


def test_accepts_appsecret_uid_lower_hex_and_14_digit_timestamp(mpc, sim):
    alt = MobilePayClient(sim.url, mpc.c, uid=mpc.c["app_secret"].encode(), lower_hex=True)
    data, _, out = upload(mpc, sim)
    q = dict(payOrdId=out["payOrdId"], orgCodg=ORG, payToken=out["payToken"], **identity(data))
    r = alt.post_raw("6301", alt.envelope(q, timestamp="20260101120000"))
    env, body = mpc.open(r.content)
    assert env["code"] == 0 and body["ordStas"] == "0"


def test_detail_sum_must_match(mpc, sim):
    _, env, out = upload(mpc, sim, total="10.00", items=["4.00", "5.00"])
    assert env["code"] != 0 and out is None and "明细" in env["message"]


def test_6401_only_before_payment(mpc, sim):
    data, _, out = upload(mpc, sim)
    q = dict(payOrdId=out["payOrdId"], orgCodg=ORG, payToken=out["payToken"], **identity(data))
    env, body = mpc.call("6401", q)
    assert env["success"] is True and body["ordStas"] == "12"
    data, out, _ = paid_order(mpc, sim)
    q = dict(payOrdId=out["payOrdId"], orgCodg=ORG, payToken=out["payToken"], **identity(data))
    env, body = mpc.call("6401", q)
    assert env["success"] is False and env["code"] != 0 and body is None
    assert mpc.call("6301", q)[1]["ordStas"] == "6"


def test_refund_cap_and_idempotency(mpc, sim):
    data, out, split = paid_order(mpc, sim, total="50.00", psn_no="44010000000000000003")  # 22.50 cash
    assert split["ownPayAmt"] == Decimal("22.50")
    env, r1 = refund(mpc, data, out, "R1", "CASH", cash="20.00")
    assert r1["refStatus"] == "SUCC" and "hiRefdSn" not in r1
    env, again = refund(mpc, data, out, "R1", "CASH", cash="20.00")    # same serial: same answer
    assert again == r1
    env, _ = refund(mpc, data, out, "R2", "CASH", cash="2.51")        # beyond what is left
    assert env["code"] != 0
    env, _ = refund(mpc, data, out, "R1", "CASH", cash="2.50")        # serial reuse, other amount
    assert env["code"] != 0
    env, r3 = refund(mpc, data, out, "R3", "CASH", cash="2.50")
    assert r3["refStatus"] == "SUCC"
    counts = state(sim)["counts"]
    assert counts["mobilepay.refund"] == 2 and counts["mobilepay.charge"] == 1
    q = dict(payOrdId=out["payOrdId"], orgCodg=ORG, payToken=out["payToken"], **identity(data))
    assert mpc.call("6301", q)[1]["ordStas"] == "9"


def test_refund_all_restores_account(mpc, sim):
    data, out, split = paid_order(mpc, sim, total="100.00")
    assert state(sim)["persons"][data["psnNo"]] == "970.00"
    env, _ = refund(mpc, data, out, "P1", "ALL", fund="70.00", acct="20.00")  # ALL must be whole
    assert env["code"] != 0
    env, r = refund(mpc, data, out, "P2", "ALL", fund="70.00", acct="30.00")
    assert r["refStatus"] == "SUCC" and r["hiRefdSn"]
    assert state(sim)["persons"][data["psnNo"]] == "1000.00"
    env, _ = refund(mpc, data, out, "P3", "HI", fund="70.00", acct="30.00")   # nothing left
    assert env["code"] != 0


def test_refund_before_payment_rejected(mpc, sim):
    data, _, out = upload(mpc, sim)
    env, _ = refund(mpc, data, out, "E1", "CASH", cash="1.00")
    assert env["code"] != 0


def test_pay_auth_is_single_use_and_bound_to_person(mpc, sim):
    data, _, out = upload(mpc, sim)
    auth = control(sim, "POST", "/__sim__/mobilepay/authorize", {"psn_no": data["psnNo"]})["payAuthNo"]
    req = {"payAuthNo": auth, "payOrdId": out["payOrdId"], "payToken": out["payToken"], "orgCodg": ORG,
           "orgBizSer": "BIZ1", "mdtrtId": out["mdtrtId"], "chrgBchno": data["chrgBchno"], "feeType": "01"}
    assert mpc.call("6202", req)[0]["code"] == 0
    env, _ = mpc.call("6202", {**req, "orgBizSer": "BIZ2"})
    assert env["code"] != 0
    other_auth = control(sim, "POST", "/__sim__/mobilepay/authorize",
                         {"psn_no": "44030000000000000002"})["payAuthNo"]
    data2, _, out2 = upload(mpc, sim)
    env, _ = mpc.call("6202", {**req, "payAuthNo": other_auth, "payOrdId": out2["payOrdId"],
                               "payToken": out2["payToken"], "chrgBchno": data2["chrgBchno"]})
    assert env["code"] != 0 and "PAY_AUTH_NO" in env["message"]


def test_uninsured_person_rejected(mpc, sim):
    _, env, out = upload(mpc, sim, "44010000000000000005")
    assert env["code"] != 0 and out is None and "参保" in env["message"]


def test_duplicate_medorgord_returns_same_order(mpc, sim):
    data, _, out = upload(mpc, sim, med_org_ord="M-1")
    _, _, out2 = upload(mpc, sim, med_org_ord="M-1")
    assert out2["payOrdId"] == out["payOrdId"]


def test_callback_retried_until_accepted(mpc, sim, hospital):
    hospital.status = 500
    data, out, _ = paid_order(mpc, sim)
    deadline = time.time() + 5
    while time.time() < deadline:
        cb = state(sim)["callbacks"]
        # The attempt counter moves before the POST lands: wait for both.
        if cb and cb[0]["attempts"] == 3 and len(hospital.received) == 3:
            break
        time.sleep(0.05)
    assert len(hospital.received) == 3
    assert cb[0]["delivered"] is False


def test_direct_settle_mode_settles_zero_cash_orders_in_6202(hospital):
    from bridge.simulator import SimulatorConfig, start_simulator
    cfg = SimulatorConfig.generate(direct_settle_zero_cash=True, callback_url=hospital.url)
    with start_simulator(cfg) as other:
        hospital.event.clear()
        client = MobilePayClient(other.url, other.client_credentials()["mobilepay"])
        data, _, out = upload(client, other, total="10.00")         # 7.00 fund + 3.00 account
        _, split = place(client, other, data, out)
        assert split["ordStas"] == "6" and split["ownPayAmt"] == Decimal("0.00")
        assert state(other)["counts"]["mobilepay.charge"] == 1
        assert hospital.event.wait(5)
        data, _, out = upload(client, other, "44010000000000000003", "10.00")   # cash due: stays unpaid
        assert place(client, other, data, out)[1]["ordStas"] == "2"
