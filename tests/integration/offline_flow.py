"""Drives one patient through the offline interfaces with the real OfflineClient."""
from __future__ import annotations

import base64
import io
import time
import uuid
import zipfile
from decimal import Decimal
from typing import Optional

from bridge.calls import Outcome
from bridge.facepay.client import (FaceAuthRequest, FacePayClient, PersonalAccountRefund,
                                   RealAccountQuery, SettleNotice)
from bridge.offline import messages as m
from bridge.offline.client import OfflineClient

D = Decimal
NOW = "2024-03-01 09:30:00"
FACE_REQ = FaceAuthRequest(businessType="01101", operatorId="op001", operatorName="收费员甲",
                           officeId="NK01", officeName="内科")


def ok(res):
    assert res.outcome is Outcome.OK, res
    return res.data


class Patient:
    def __init__(self, sim, client: OfflineClient, psn_no: str, fp: Optional[FacePayClient] = None):
        self.sim, self.c, self.fp = sim, client, fp
        p = sim.person(psn_no)
        self.psn_no, self.certno, self.name = p["psn_no"], p["certno"], p["psn_name"]
        self.insutype, self.adm = p["insutype"], p["insuplc_admdvs"]
        self.mdtrt_id: Optional[str] = None
        self.batch = "B" + uuid.uuid4().hex[:10]
        self.settlement: Optional[m.Settlement] = None
        self.sn = 0

    # ---- outpatient
    def person_req(self) -> m.PersonInfoRequest:
        return m.PersonInfoRequest(mdtrt_cert_type="02", mdtrt_cert_no=self.certno,
                                   psn_cert_type="01", certno=self.certno, psn_name=self.name)

    def register_req(self) -> m.RegisterRequest:
        return m.RegisterRequest(psn_no=self.psn_no, insutype=self.insutype, begntime=NOW,
                                 mdtrt_cert_type="02", mdtrt_cert_no=self.certno,
                                 ipt_otp_no="OP" + uuid.uuid4().hex[:8], atddr_no="D001",
                                 dr_name="李医生", dept_code="NK01", dept_name="内科", caty="A03",
                                 insuplc_admdvs=self.adm)

    def register(self) -> str:
        reg = ok(self.c.register(self.register_req()))
        self.mdtrt_id, self.ipt_otp_no = reg.mdtrt_id, reg.ipt_otp_no
        return self.mdtrt_id

    def visit_req(self) -> m.VisitRequest:
        dx = m.Diagnosis(diag_type="1", diag_srt_no="1", diag_code="J06.900", diag_name="上呼吸道感染",
                         diag_dept="内科", dise_dor_no="D001", dise_dor_name="李医生",
                         diag_time=NOW, vali_flag="1")
        return m.VisitRequest(mdtrt_id=self.mdtrt_id, psn_no=self.psn_no, med_type="11",
                              begntime=NOW, insuplc_admdvs=self.adm, diseinfo=(dx,))

    def fee_rows(self, amounts=("60.00", "40.00"), inpatient=False) -> list[m.FeeDetail]:
        rows = []
        for a in amounts:
            self.sn += 1
            rows.append(m.FeeDetail(
                feedetl_sn=f"{self.batch}-{self.sn}", mdtrt_id=self.mdtrt_id, psn_no=self.psn_no,
                fee_ocur_time=NOW, med_list_codg="XJ01", medins_list_codg="H-XJ01",
                det_item_fee_sumamt=D(a), cnt=D("1"), pric=D(a), bilg_dept_codg="NK01",
                bilg_dept_name="内科", bilg_dr_codg="D001", bilg_dr_name="李医生",
                chrg_bchno=None if inpatient else self.batch,
                rx_circ_flag=None if inpatient else "0", med_type="21" if inpatient else None))
        self.total = sum((D(a) for a in amounts), D("0"))
        return rows

    def upload_fees(self, amounts=("60.00", "40.00")):
        return ok(self.c.upload_fee_details(self.fee_rows(amounts), insuplc_admdvs=self.adm))

    def settle_req(self, acct: str = "1") -> m.OutpatientSettleRequest:
        return m.OutpatientSettleRequest(
            psn_no=self.psn_no, mdtrt_cert_type="02", mdtrt_cert_no=self.certno, med_type="11",
            medfee_sumamt=self.total, psn_setlway="01", mdtrt_id=self.mdtrt_id,
            chrg_bchno=self.batch, acct_used_flag=acct, insutype=self.insutype,
            insuplc_admdvs=self.adm)

    def outpatient_ready(self, amounts=("60.00", "40.00")) -> "Patient":
        self.register()
        ok(self.c.upload_visit(self.visit_req()))
        self.upload_fees(amounts)
        return self

    def settle(self, **kw) -> m.Settlement:
        self.settlement = ok(self.c.settle_outpatient(self.settle_req(), **kw))
        return self.settlement

    def cancel_req(self, s: Optional[m.Settlement] = None) -> m.CancelSettlementRequest:
        s = s or self.settlement
        return m.CancelSettlementRequest(setl_id=s.setl_id, mdtrt_id=s.mdtrt_id, psn_no=self.psn_no,
                                         insuplc_admdvs=self.adm)

    # ---- inpatient (2401 admission is not in OfflineClient: sent through its generic prepare)
    def prepare_admit(self):
        node = {"psn_no": self.psn_no, "insutype": self.insutype, "begntime": NOW, "med_type": "21",
                "ipt_no": "ZY" + uuid.uuid4().hex[:8], "atddr_no": "D001", "chfpdr_name": "李医生",
                "adm_diag_dscr": "肺炎", "adm_dept_codg": "NK01", "adm_dept_name": "内科",
                "adm_bed": "12", "dscg_maindiag_code": "J18.900", "dscg_maindiag_name": "肺炎"}
        return self.c.prepare("2401", {"mdtrtinfo": node},
                              parse=lambda out: str(out["result"]["mdtrt_id"]),
                              insuplc_admdvs=self.adm, keys_from=node)

    def admit(self) -> str:
        self.mdtrt_id = ok(self.c.send(self.prepare_admit()))
        return self.mdtrt_id

    def inpatient_req(self, acct: str = "1") -> m.InpatientSettleRequest:
        return m.InpatientSettleRequest(
            psn_no=self.psn_no, mdtrt_cert_type="02", mdtrt_cert_no=self.certno,
            medfee_sumamt=self.total, psn_setlway="01", mdtrt_id=self.mdtrt_id,
            acct_used_flag=acct, insutype=self.insutype, mid_setl_flag="0",
            insuplc_admdvs=self.adm)

    def inpatient_ready(self, amounts=("300.00", "200.00")) -> "Patient":
        self.admit()
        ok(self.c.upload_inpatient_fees(self.fee_rows(amounts, inpatient=True),
                                        insuplc_admdvs=self.adm))
        return self

    # ---- 2260 Guangdong one-shot
    def document_req(self, flag: str, amounts=("50.00", "30.00")) -> m.DocumentSettleRequest:
        rows = tuple({"feedetl_sn": f"DS{i}", "det_item_fee_sumamt": D(a), "cnt": D("1"),
                      "pric": D(a), "med_list_codg": "XJ01", "fee_ocur_time": NOW}
                     for i, a in enumerate(amounts, 1))
        return m.DocumentSettleRequest(
            psn_no=self.psn_no, mdtrt_cert_type="02", mdtrt_cert_no=self.certno, setl_flag=flag,
            insutype=self.insutype, med_type="11", begntime=NOW, clnc_flag="0",
            acct_used_flag="1", feedetail_rows=rows,
            extra={"ipt_op_no": "GD" + uuid.uuid4().hex[:8]}, insuplc_admdvs=self.adm)

    # ---- face pay
    def fpy001_req(self, s: Optional[m.Settlement] = None) -> RealAccountQuery:
        s = s or self.settlement
        return RealAccountQuery(setl_id=s.setl_id, mdtrt_id=s.mdtrt_id, psn_no=self.psn_no,
                                insuplc_admdvs=self.adm)

    def mpc004_req(self, amount: Decimal, orig: Optional[str] = None, sn: str = "RF1",
                   s: Optional[m.Settlement] = None) -> PersonalAccountRefund:
        s = s or self.settlement
        return PersonalAccountRefund(setl_id=s.setl_id, mdtrt_id=s.mdtrt_id, psn_no=self.psn_no,
                                     psn_acct_refd_amt=amount, app_refd_sn=sn,
                                     app_refd_time=time.strftime("%Y%m%d%H%M%S"),
                                     orig_platform_seq_id=orig, insuplc_admdvs=self.adm)

    def present_face(self) -> None:
        self.sim.control("POST", "/__sim__/face/present", {"psn_no": self.psn_no})

    def notice(self, out_biz_no: str, auth_no: str, s: m.Settlement) -> SettleNotice:
        return SettleNotice(
            outBizNo=out_biz_no, medicalSettleState="SUCCESS", authNo=auth_no,
            operatorId="op001", operatorName="收费员甲", totalFee=s.medfee_sumamt,
            bizType="settle", idNo=self.certno, userName=self.name, setlTime=s.setl_time or NOW,
            hospitalName="模拟市第一人民医院", officeId="NK01", officeName="内科", doctorName="李医生",
            medicalSettleNo=s.setl_id, ownAmt=s.psn_cash_pay, hifAmt=s.fund_pay_sumamt,
            acctAmt=s.acct_pay, balance=s.balc)


def detail_file(settlements: list[m.Settlement]) -> str:
    """3202's TAB-separated detail file, zipped, Base64 (offline.md §10.2)."""
    lines = ["\t".join([s.setl_id, s.mdtrt_id, s.psn_no, str(s.medfee_sumamt),
                        str(s.fund_pay_sumamt), str(s.acct_pay), "0"]) for s in settlements]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("detail.txt", "\n".join(lines))
    return base64.b64encode(buf.getvalue()).decode("ascii")


def prepare_upload(c: OfflineClient, blob_b64: str):
    """9101 is not in OfflineClient either: its generic prepare carries it (offline.md §10.2)."""
    node = {"in": blob_b64, "filename": "detail.zip", "fixmedins_code": c.config.fixmedins_code}
    return c.prepare("9101", {"fsUploadIn": node}, parse=lambda out: str(out["file_qury_no"]),
                     effect=False)


def today() -> str:
    return time.strftime("%Y-%m-%d")
