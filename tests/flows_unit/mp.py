"""Payloads, flow_data and centre answers for the mobile-pay unit tables."""
from __future__ import annotations

from decimal import Decimal
from typing import Optional

from bridge.engine.testing import FlowScript, ok
from bridge.mobilepay.kinds import KIND_OUTPATIENT
from bridge.mobilepay.messages import (OrdStas, PayOrderResponse, QueryOrderResponse, RefStatus, RefundResponse,
                                       RevokeOrderResponse, SetlType, UploadFeeResponse)
from bridge.mobilepay.settings import MobilePaySettings

D = Decimal
SHIPPED = MobilePaySettings()           # settle window 60 s, deadline 1800 s, HIS window 900 s
INSIDE, PAST = 10.0, SHIPPED.settle_seconds + 1.0     # a lost call's age against the settle window
ORDER = "ORD-1"
TOKEN = "TOKEN-1"
ORDER_MSG = "MSG-6202"
SPLIT = {"total": "120.00", "fund": "84.00", "account": "36.00", "cash": "0.00"}
PATIENT_SECRETS = {"payToken": TOKEN, "id_no": "440106199001011234", "user_name": "张三", "id_type": "01"}


def payment_doc(**kw) -> dict:
    lines = [{"line_no": 1, "item_code": "I1", "item_name": "挂号", "quantity": "1", "price": "20.00", "amount": "20.00"},
             {"line_no": 2, "item_code": "I2", "item_name": "检查", "quantity": "2", "price": "50.00",
              "amount": "100.00"}]
    doc = {"patient_id": "P1", "visit_id": "V1", "pay_auth_no": "AUTH-1", "id_no": "440106199001011234",
           "user_name": "张三", "dept_code": "A03", "dept_name": "内科", "caty": "A03", "total_amount": "120.00",
           "lines": lines, "psn_no": "PSN-1", "insutype": "310", "insuplc_admdvs": "440100"}
    doc.update(kw)
    return {k: v for k, v in doc.items() if v is not None}


IDENTITY = {"psn_no": "PSN-1", "insutype": "310", "insuplc_admdvs": "440100"}
PLACED = dict(IDENTITY, payOrdId=ORDER, mdtrtId="V1", chrgBchno="PAY-1")          # after 6201
ORDERED = dict(PLACED, order_msg=ORDER_MSG, split=SPLIT, polls=0)                  # after 6202
SETTLED = dict(ORDERED, settled={"payOrdId": ORDER, **SPLIT, "traceTime": "20260101120000", "setlType": "ALL",
                                 "setlId": None})


def services(client, settings: MobilePaySettings = SHIPPED, **more) -> dict:
    return {"mobilepay": client, "mobilepay.settings": settings, **more}


def script(flow, client, settings: MobilePaySettings = SHIPPED, key: str = "PAY-1", **kw) -> FlowScript:
    return FlowScript(flow, services=services(client, settings, **kw.pop("more", {})), business_key=key, **kw)


def query(stas: OrdStas, total: Optional[str] = "120.00", fund="84.00", account="36.00", cash="0.00"):
    return ok("6301", QueryOrderResponse(
        payOrdId=ORDER, ordStas=stas, feeSumamt=None if total is None else D(total), fundPay=D(fund),
        psnAcctPay=D(account), ownPayAmt=D(cash), setlType=SetlType.ALL, traceTime="20260101120000"))


def ordered(stas: OrdStas = OrdStas.AWAITING_PAYMENT):
    return ok("6202", PayOrderResponse(payOrdId=ORDER, ordStas=stas, feeSumamt=D("120.00"), fundPay=D("84.00"),
                                       psnAcctPay=D("36.00"), ownPayAmt=D("0.00"),
                                       extData={"preSetl": {"psn_no": "PSN-1", "insutype": "310"}}))


def uploaded():
    return ok("6201", UploadFeeResponse(payOrdId=ORDER, payToken=TOKEN, mdtrtId="MD-1"))


def refunded(sn: str = "RSN-1"):
    return ok("6203", RefundResponse(refStatus=RefStatus.SUCC, refdSn=sn, hiRefdSn="HI-1"))


def revoked():
    return ok("6401", RevokeOrderResponse(success=True))


def notice(**kw) -> dict:
    n = {"callType": "02", "payOrdId": ORDER, "medOrgOrd": "PAY-1", "traceTime": "20260101120000",
         "feeSumamt": "120.00", "fundPay": "84.00", "psnAcctPay": "36.00", "ownPayAmt": "0.00", "setlType": "ALL",
         "setlId": "SETL-9"}
    n.update(kw)
    return n


def add_payment(port, *, id: int = 50, key: str = "PAY-1", state: str = "done", step: Optional[str] = "await_his",
                kind: str = KIND_OUTPATIENT, flow_data: Optional[dict] = None, token: Optional[str] = TOKEN,
                serial_key: Optional[str] = None) -> dict:
    """A payment request another flow reads (refund, revoke, notice check)."""
    return port.add_request(id=id, kind=kind, business_key=key, state=state, step=step,
                            flow_data=SETTLED if flow_data is None else flow_data, payload=payment_doc(),
                            serial_key=serial_key, secrets={"payToken": token} if token else None)
