"""Payloads, flow_data and platform answers for the identity and kiosk unit tables."""
from __future__ import annotations

import json
from decimal import Decimal

from bridge.engine.testing import FlowScript, ok
from bridge.engine.testing import expect as is_  # noqa: F401 (the identity tables import it from here)
from bridge.identity.settings import IdentitySettings
from bridge.offline import messages as m

D = Decimal
SETTINGS = IdentitySettings(kiosk_operator_id="KIOSK01", kiosk_operator_name="自助机1号")
CERTNO = "440106198502020071"
NOW = "2024-03-01 09:30:00"
WU = "44010000000000000007"
BY_ID = {"certno": CERTNO, "psn_name": "吴十", "insuplc_admdvs": "440100", "his_patient_id": "HIS-7"}
VISIT = {"ipt_otp_no": "OP1", "begntime": NOW, "atddr_no": "D001", "dr_name": "李医生", "dept_code": "NK01",
         "dept_name": "内科", "caty": "A03"}


def regions(port, *codes: str, **kw) -> None:
    """The hospital's region list: these codes, enabled, on every channel."""
    for c in codes:
        port.set_region(c, f"区{c}", **kw)


def insurance(insutype: str, region: str, stas: str = "1", psn_type: str = "11", balc: str = "0.00"):
    return m.Insurance(insutype=insutype, psn_type=psn_type, balc=D(balc), psn_insu_stas=stas, insuplc_admdvs=region)


def person(*insurances, idet: tuple = ()):
    return ok("1101", m.PersonInfo(psn_no=WU, psn_cert_type="01", certno=CERTNO, psn_name="吴十", gend="1",
                                   insuinfo=tuple(insurances),
                                   idetinfo=tuple({"psn_idet_type": t} for t in idet)))


TWO = (insurance("310", "440100", balc="800.00"), insurance("390", "440300", psn_type="14"))


def benefit(*restricted: str):
    rows = [m.BenefitStatus(psn_no=WU, fund_pay_type="310100", trt_enjymnt_flag="1")]
    rows += [m.BenefitStatus(psn_no=WU, fund_pay_type=f, trt_enjymnt_flag="0", trt_chk_rslt="待遇未激活")
             for f in restricted]
    return ok("2001", m.BenefitCheck(trtinfo=tuple(rows)))


def row(insutype, region, *, selectable=True, status="enjoyed", psn_type="11", balc="0.00", why=None):
    """An insurance as a done lookup keeps it (flow_data.insurances)."""
    return {"insutype": insutype, "psn_type": psn_type, "insuplc_admdvs": region, "region_name": f"区{region}",
            "balc": balc, "psn_insu_stas": "1", "cvlserv_flag": None, "selectable": selectable, "why_not": why,
            "benefit": {"med_type": "11", "restrictions": [], "status": status}}


def lookup_row(port, *, id=30, key="LK-1", state="done", rows=None, secrets=None, payload=None):
    """A done identity.lookup of 吴十 with two usable insurances (unless told otherwise)."""
    rows = rows if rows is not None else [row("310", "440100", balc="800.00"), row("390", "440300", psn_type="14")]
    port.add_request(id=id, kind="identity.lookup", business_key=key, state=state,
                     flow_data={"psn_no": WU, "psn_cert_type": "01", "gend": "1", "certno_masked": "4401**********0071",
                                "psn_name_masked": "吴*", "psn_idet_type": None, "insurances": rows,
                                "route": "id_card", "operator": None},
                     payload=payload if payload is not None else dict(BY_ID),
                     secrets=secrets if secrets is not None else {"certno": CERTNO})


def registration_row(port, *, id=40, key="REG-1", state="done", operator=None):
    port.add_request(id=id, kind="kiosk.register", business_key=key, state=state,
                     flow_data={"registration": {"psn_no": WU, "insutype": "310", "insuplc_admdvs": "440100",
                                                 "mdtrt_cert_type": "02", "mdtrt_id": "MD-9", "ipt_otp_no": "OP1",
                                                 "begntime": NOW, "dr_name": "李医生"},
                                "operator": operator or {"id": "KIOSK01", "name": "自助机1号", "type": "2"}},
                     payload={"lookup_key": "LK-1", "visit": VISIT}, secrets={"mdtrt_cert_no": CERTNO})


def envelope(s: FlowScript, n: int = -1) -> dict:
    """The envelope of the n-th call the last run prepared (its real body)."""
    return json.loads(s.prepared[n].body)


