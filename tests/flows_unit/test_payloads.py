"""Bad input is refused before anything is sent, with a clear reason: the payload rules
of each kind (bridge/mobilepay/payloads.py, bridge/facepay/payloads.py), checked on the
flow's own parse.  One end-to-end case per database shows the runner turns BadInput
into a failed row with nothing sent (tests/mobilepay_flows/test_payments.py)."""
from __future__ import annotations

import json

import pytest

from bridge.engine.flow import BadInput, parse_json_object
from bridge.facepay.admission import AdmitFlow
from bridge.facepay.presettle import OutpatientPresettleFlow
from bridge.mobilepay.kinds import KIND_OUTPATIENT
from bridge.mobilepay.payment import PaymentFlow

from .fp import PERSON, SETTINGS, visit_doc
from .mp import SHIPPED, payment_doc
from .test_facepay_admission import STAY


def _parse(flow, doc):
    return flow.parse(parse_json_object(json.dumps(doc)))


@pytest.mark.parametrize("change, message", [
    (lambda p: p.pop("pay_auth_no"), "pay_auth_no"),
    (lambda p: p.update(total_amount="121.00"), "sum to 120.00"),
    (lambda p: p["lines"][0].update(amount="-20.00"), "non-negative"),
    (lambda p: p["lines"][0].update(amount="abc"), "not a number"),
    (lambda p: p["lines"][1].update(line_no=1), "duplicate line_no"),
    (lambda p: p["lines"][0].update(quantity="two"), "not a number"),
    (lambda p: p.update(lines=[]), "non-empty list"),
    (lambda p: p["lines"][1].update(quantity="3"), "is not quantity x price"),
    (lambda p: p.update(visit_time="2026/01/01"), "visit_time"),
    (lambda p: p.pop("insutype"), "with psn_no, also give insutype"),
    (lambda p: p.update(use_personal_account="yes"), "use_personal_account"),
], ids=["no-payauthno", "lines-vs-total", "negative", "non-numeric", "duplicate-line", "bad-quantity", "no-lines",
        "line-arithmetic", "visit-time", "half-identity", "acct-flag"])
def test_a_mobile_payment_payload_is_refused_with_the_reason(change, message):
    doc = payment_doc()
    change(doc)
    with pytest.raises(BadInput) as e:
        _parse(PaymentFlow(KIND_OUTPATIENT, SHIPPED), doc)
    assert message in str(e.value) and e.value.code == "BAD_INPUT"


@pytest.mark.parametrize("change, message", [
    (lambda d: d.update(total_amount="99.00"), "sum of the fee lines"),
    (lambda d: d.update(facepay=False), "unknown payload field(s) facepay"),
    (lambda d: d.pop("chrg_bchno"), "chrg_bchno"),
    (lambda d: d.update(identify_key="F1"), "exactly one of"),
])
def test_a_face_pay_presettlement_payload_is_refused_with_the_reason(change, message):
    doc = visit_doc(person=PERSON)
    change(doc)
    with pytest.raises(BadInput) as e:
        _parse(OutpatientPresettleFlow(SETTINGS), doc)
    assert message in str(e.value)


@pytest.mark.parametrize("change, message", [
    (lambda d: d["stay"].pop("adm_bed"), "adm_bed"),
    (lambda d: d.update(face_pay=False), "face_pay"),
    (lambda d: d["stay"].update(begntime="yesterday"), "stay.begntime"),
    (lambda d: d["stay"].update(diagnoses=[]), "stay.diagnoses is required"),
])
def test_an_admission_payload_is_refused_with_the_reason(change, message):
    doc = json.loads(json.dumps({"person": PERSON, "stay": STAY}))
    change(doc)
    with pytest.raises(BadInput) as e:
        _parse(AdmitFlow(SETTINGS), doc)
    assert message in str(e.value)
