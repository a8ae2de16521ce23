"""The visit a pre-settlement prepares and its settlement sends again: the 2206/2207,
2303/2304 or 2260 request of it (settle_request), the one-shot document (document_of),
the face-pay terms as expContent (exp_content, terms_dict)."""
from __future__ import annotations

from decimal import Decimal

from bridge.facepay.expcontent import FacePayTerms
from bridge.offline import messages as m
from bridge.offline.client import OfflineClient

from .kinds import DOC, OUT
from .payloads import PresettleRequest


def exp_content(client: OfflineClient, terms: dict) -> dict:
    t = FacePayTerms(merchant_no=terms["merchant_no"], terminal_no=terms["terminal_no"],
                     isv_no=terms["isv_no"], acct_type=terms["acct_type"],
                     down_payment=Decimal(str(terms.get("down_payment", "0.00"))))
    return {client.config.exp_content_field: t.exp_content(as_string=client.config.exp_content_as_string)}


def terms_dict(t: FacePayTerms) -> dict:
    return {"merchant_no": t.merchant_no, "terminal_no": t.terminal_no, "isv_no": t.isv_no,
            "acct_type": t.acct_type, "down_payment": str(t.down_payment)}


def settle_request(setting: str, visit: dict, face_pay: bool, client: OfflineClient, setl_flag: str):
    """The 2206/2207 (outpatient), 2303/2304 (inpatient) or 2260 (one-shot) request of a
    visit: `setl_flag` "0" the trial, "1" the settlement (2260 only; the others differ by
    infno).  With face-pay the expContent terms and acct_used_flag 1 (facepay.md)."""
    acct = "1" if face_pay else "0"
    extra = exp_content(client, visit["terms"]) if face_pay else {}
    if setting == DOC:
        d = visit["document"]
        return m.DocumentSettleRequest(
            psn_no=visit["psn_no"], mdtrt_cert_type=visit["mdtrt_cert_type"],
            mdtrt_cert_no=visit["mdtrt_cert_no"], setl_flag=setl_flag, insutype=visit["insutype"],
            med_type=visit["med_type"], begntime=d["begntime"], clnc_flag="0",
            # facepay.md step 2 sets it to "1"; the GZ 2260 model has no such field, so
            # the plain one-shot settlement leaves it out.
            acct_used_flag="1" if face_pay else None,
            diseinfo=tuple(d["diseinfo"]), feedetail_rows=tuple(d["feedetail"]),
            insuplc_admdvs=visit["insuplc_admdvs"], extra=dict(d["mdtrtinfo"], **extra))
    common = dict(psn_no=visit["psn_no"], mdtrt_cert_type=visit["mdtrt_cert_type"],
                  mdtrt_cert_no=visit["mdtrt_cert_no"], medfee_sumamt=Decimal(visit["total"]),
                  psn_setlway=visit["psn_setlway"], mdtrt_id=visit["mdtrt_id"],
                  acct_used_flag=acct, insutype=visit["insutype"],
                  insuplc_admdvs=visit["insuplc_admdvs"], extra=extra)
    if setting == OUT:
        return m.OutpatientSettleRequest(med_type=visit["med_type"], chrg_bchno=visit["chrg_bchno"],
                                         **common)
    return m.InpatientSettleRequest(mid_setl_flag=visit["mid_setl_flag"], **common)


def document_of(p: PresettleRequest) -> dict:
    """What 2260 needs besides the person (offline.md §5.11), kept JSON-safe in flow_data:
    the settlement (setl_flag 1) sends the whole document again.  Field names follow the
    Guangdong model (IBORN_HIS_ALL API.GZSI RequestGzsiModel2260.cs): diagnoses as dise_*,
    fee lines with rx_drord_no / fee_ocur_date / medins_milist_codg."""
    v = p.visit
    main = sorted(v["diagnoses"], key=lambda d: d["diag_srt_no"])[0]
    mdtrtinfo = {"ipt_op_no": v["ipt_otp_no"], "adm_dept_code": v["dept_code"], "adm_dept_name": v["dept_name"],
                 "dscg_maindiag_code": main["diag_code"], "dscg_maindiag_name": main["diag_name"]}
    if v.get("main_cond_dscr"):
        mdtrtinfo["main_cond_desc"] = v["main_cond_dscr"]
    diseinfo = [{"dise_type": d["diag_type"], "dise_srt_no": d["diag_srt_no"], "dise_code": d["diag_code"],
                 "dise_name": d["diag_name"], "dise_dept": d["diag_dept"], "dise_dor_no": d["dise_dor_no"],
                 "dise_dor_name": d["dise_dor_name"], "dise_time": d["diag_time"]} for d in v["diagnoses"]]
    renamed = {"rxno": "rx_drord_no", "fee_ocur_time": "fee_ocur_date", "medins_list_codg": "medins_milist_codg"}
    feedetail = [{renamed.get(k, k): (str(val) if isinstance(val, Decimal) else val) for k, val in f.items()
                  if k not in ("med_type", "chrg_bchno", "rx_circ_flag", "init_feedetl_sn")} for f in p.fees]
    return {"begntime": v["begntime"], "mdtrtinfo": mdtrtinfo, "diseinfo": diseinfo, "feedetail": feedetail}
