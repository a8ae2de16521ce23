"""Payloads, flow_data and platform answers for the face-pay unit tables."""
from __future__ import annotations

from decimal import Decimal

from bridge.engine.testing import FlowScript, ok
from bridge.facepay.client import RealAccountStatus, RefundResult
from bridge.facepay.fields import ACCT_STAS_DEDUCTED, ACCT_STAS_REFUND_FAILED, ACCT_STAS_REFUNDED  # noqa: F401
from bridge.facepay.settings import FacePaySettings
from bridge.offline import messages as m

D = Decimal
# The shipped timings (120 s settle window, asked every 10 s, 2 reversals) with face-pay terms.
SETTINGS = FacePaySettings(merchant_no="102440100000004", terminal_no="00000143", isv_no="123456")
INSIDE, PAST = 10.0, SETTINGS.settle_window_seconds + 1.0
NOW = "2024-03-01 09:30:00"
ID_NO = "440106199001011234"
PERSON = {"psn_no": "PSN-1", "insutype": "310", "insuplc_admdvs": "440100", "mdtrt_cert_type": "02",
          "mdtrt_cert_no": ID_NO}
TERMS = {"merchant_no": "102440100000004", "terminal_no": "00000143", "isv_no": "123456", "acct_type": "A02",
         "down_payment": "0.00"}
SPLIT = {"total": "100.00", "fund": "70.00", "account": "30.00", "cash": "0.00", "hosp_part": "0.00",
         "balc": "970.00"}
DIAG = {"diag_type": "1", "diag_srt_no": "1", "diag_code": "J06.900", "diag_name": "上呼吸道感染",
        "diag_dept": "内科", "dise_dor_no": "D001", "dise_dor_name": "李医生", "diag_time": NOW, "vali_flag": "1"}


def fees(*amounts: str, batch: str = "B1") -> list[dict]:
    return [{"feedetl_sn": f"{batch}-{i}", "fee_ocur_time": NOW, "med_list_codg": "XJ01",
             "medins_list_codg": "H-XJ01", "det_item_fee_sumamt": a, "cnt": "1", "pric": a,
             "bilg_dept_codg": "NK01", "bilg_dept_name": "内科", "bilg_dr_codg": "D001",
             "bilg_dr_name": "李医生"} for i, a in enumerate(amounts, 1)]


def visit_doc(**kw) -> dict:
    doc = {"chrg_bchno": "B1", "fees": fees("60.00", "40.00"), "total_amount": "100.00",
           "visit": {"ipt_otp_no": "OP1", "begntime": NOW, "atddr_no": "D001", "dr_name": "李医生",
                     "dept_code": "NK01", "dept_name": "内科", "caty": "A03", "diagnoses": [DIAG]}}
    doc.update(kw)
    return doc


def settlement(setl_id: str = "SETL-1", account: str = "30.00", cash: str = "0.00", fund: str = "70.00"):
    return m.Settlement(mdtrt_id="MD-1", setl_id=setl_id, psn_no="PSN-1", medfee_sumamt=D("100.00"),
                        fund_pay_sumamt=D(fund), acct_pay=D(account), psn_cash_pay=D(cash), hosp_part_amt=D("0.00"),
                        balc=D("970.00"), setl_time="2024-03-01 10:00:00", medins_setl_id="MS-1")


def settled(infno: str, **kw):
    return ok(infno, settlement(**kw))


def account(setl: str, acct: str, seq: str = "UP-1", refund_seq=None, ref_no=None, term_seq_no=None):
    """An fpy001 answer: the settlement valid ("1") or cancelled ("0"), the account state."""
    return ok("fpy001", RealAccountStatus(output={}, setl_stas=setl, acct_stas=acct, acct_pay=D("30.00"),
                                          platform_seq_id=seq, refund_seq_id=refund_seq, ref_no=ref_no,
                                          term_seq_no=term_seq_no))


def account_refunded(seq: str = "RF-SEQ-1"):
    return ok("tgdupc004", RefundResult(ref_status="1", output={}, acct_refd_amt=D("30.00"), refund_seq_id=seq))


# A visit as its pre-settlement keeps it (flow_data: no credential, no face identity).
VISIT = {"psn_no": "PSN-1", "insutype": "310", "insuplc_admdvs": "440100", "mdtrt_cert_type": "02",
         "total": "100.00", "chrg_bchno": "B1", "med_type": "11", "psn_setlway": "01", "mid_setl_flag": "0",
         "terms": TERMS, "mdtrt_id": "MD-1", "face": None, "dr_name": "李医生", "operator": None,
         "face_pay": True, "presettle_split": SPLIT}
VISIT_SECRETS = {"mdtrt_cert_no": ID_NO}
FACE = {"out_biz_no": "OB-1", "office": {"id": "MZ01", "name": "门诊"}}
FACE_SECRETS = {"mdtrt_cert_no": ID_NO, "face.auth_no": "AUTH-1", "face.id_no": ID_NO, "face.user_name": "张三"}


def target(infno: str = "2207", face_pay: bool = True) -> dict:
    return {"setl_id": "SETL-1", "mdtrt_id": "MD-1", "psn_no": "PSN-1", "insuplc_admdvs": "440100",
            "face_pay": face_pay, "terms": TERMS if face_pay else None, "split": SPLIT,
            "setl_time": "2024-03-01 10:00:00", "infno": infno, "medins_setl_id": "MS-1", "operator": None}


def script(flow, facepay, **kw) -> FlowScript:
    return FlowScript(flow, services={"facepay": facepay}, **kw)


def identify_row(port, *, id: int = 20, key: str = "F1", state: str = "done", insured: bool = True,
                 secrets: dict | None = None) -> None:
    port.add_request(id=id, kind="facepay.identify", business_key=key, state=state,
                     flow_data={"out_biz_no": "OB-1", "id_type": "01", "insu_org": "440100",
                                "office": {"id": "MZ01", "name": "门诊"}, "psn_no": "PSN-1", "insutype": "310",
                                "insuplc_admdvs": "440100", "psn_cert_type": "01", "insured": insured},
                     payload={"his_patient_id": "HIS-1"},
                     secrets=secrets if secrets is not None else {"auth_no": "AUTH-1", "id_no": ID_NO,
                                                                  "user_name": "张三", "ec_token": "EC-1"})
