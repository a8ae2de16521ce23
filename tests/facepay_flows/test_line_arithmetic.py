"""Face-pay fee lines (2204/2301/2260): det_item_fee_sumamt must be cnt x pric, rounded
half-up to the fen, at most one fen apart (issue 10 item 5; bridge/engine/flow.py
check_line_amount).  Refused as BAD_INPUT when the payload is parsed, before any call."""
from __future__ import annotations

import pytest

from bridge.engine.flow import BadInput
from bridge.facepay.flows import DOC, INP, OUT, parse_presettle

from .conftest import document_payload, visit_payload

PERSON = {"psn_no": "44010000000000000001", "insutype": "310", "insuplc_admdvs": "440100",
          "mdtrt_cert_type": "02", "mdtrt_cert_no": "440106199001010011"}


def _doc(setting: str, cnt: str, pric: str, amount: str) -> dict:
    doc = (document_payload if setting == DOC else visit_payload)(person=PERSON, amounts=(amount,))
    doc["fees"][0].update(cnt=cnt, pric=pric)
    if setting == INP:
        doc = {"mdtrt_id": "310000000001", "person": PERSON, "fees": doc["fees"], "total_amount": amount}
    return doc


@pytest.mark.parametrize("setting", [OUT, INP, DOC])
def test_fee_line_arithmetic(setting):
    assert parse_presettle(_doc(setting, "2", "20.00", "40.00"), setting).total == 40
    assert parse_presettle(_doc(setting, "3", "3.333333", "10.00"), setting).total == 10
    with pytest.raises(BadInput, match="det_item_fee_sumamt 30.00 is not cnt x pric"):
        parse_presettle(_doc(setting, "2", "20.00", "30.00"), setting)
