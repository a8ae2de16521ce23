"""Line arithmetic (issue 10 item 5): quantity x price must be the line amount, rounded
half-up to the fen, at most one fen apart (bridge/engine/flow.py check_line_amount).
Decisions only; the end-to-end refusal (failed BAD_INPUT, nothing sent) is in
test_payments.py::test_bad_input_is_refused_with_a_clear_error_and_nothing_is_sent."""
from __future__ import annotations

from decimal import Decimal

import pytest

from bridge.engine.flow import BadInput
from bridge.mobilepay.flows import parse_lines

D = Decimal


def _lines(*rows):
    return {"lines": [{"line_no": i, "item_code": "X", "item_name": "x", "quantity": q, "price": p, "amount": a}
                      for i, (q, p, a) in enumerate(rows, 1)]}


@pytest.mark.parametrize("q,p,a", [
    ("1", "20.00", "20.00"),
    ("2", "50.00", "100.00"),
    ("3", "3.333", "10.00"),        # 9.999 -> 10.00 half-up
    ("0.5", "0.05", "0.03"),        # 0.025 -> 0.03 half-up
    ("0.5", "0.05", "0.02"),        # a half-even HIS: one fen apart, accepted
    ("3", "3.333", "9.99"),         # a truncating HIS: one fen apart, accepted
])
def test_consistent_lines_pass(q, p, a):
    assert parse_lines(_lines((q, p, a)), D(a))[0].amount == D(a)


@pytest.mark.parametrize("q,p,a", [
    ("2", "50.00", "50.00"),        # the price of one, billed as two
    ("1", "20.00", "20.02"),        # two fen apart
    ("3", "3.333", "10.02"),
])
def test_inconsistent_lines_are_bad_input(q, p, a):
    with pytest.raises(BadInput, match="is not quantity x price"):
        parse_lines(_lines((q, p, a)), D(a))
