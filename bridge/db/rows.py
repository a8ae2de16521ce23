"""The rows the engine hands around: a claimed outbox row, and the inbox and identity
rows a transition writes.  Plain data, no database code: flows and the engine's context
use them without importing the Store (bridge/db/store.py), which writes them."""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Optional


@dataclass
class ClaimedRow:
    id: int
    kind: str
    business_key: str
    serial_key: str
    payload: str
    was_state: str          # 'pending' or 'in_doubt'
    step: Optional[str]
    flow_data: dict
    current_call: Optional[str]
    attempts: int           # tries of the current step, including this one
    max_attempts: int


@dataclass
class InboxRow:
    result_type: str                     # e.g. 'charge', 'order', 'settlement', 'error'
    outcome: str                         # 'ok' | 'failed' | 'held' | 'resolved'
    error_code: Optional[str] = None
    error_message: Optional[str] = None
    order_id: Optional[str] = None
    settlement_id: Optional[str] = None
    total_amount: Optional[Decimal] = None
    fund_amount: Optional[Decimal] = None
    account_amount: Optional[Decimal] = None
    cash_amount: Optional[Decimal] = None
    result: dict = field(default_factory=dict)


@dataclass
class IdentityRow:
    his_patient_id: str
    psn_no: str
    insuplc_admdvs: Optional[str] = None
    insutype: Optional[str] = None
    benefit: Optional[str] = None
    psn_cert_type: Optional[str] = None
    # Migration 007 (docs/identity.md "mi_identity"): the chosen insurance's person type and
    # benefit check, the ID number and name MASKED (never whole: bridge/identity/masking.py),
    # and whether the patient chose the insurance (identity.choose) - 1 - or mibridge took
    # the only one there was - 0.  source_kind is the writing request's kind.
    psn_type: Optional[str] = None
    med_type: Optional[str] = None
    benefit_status: Optional[str] = None
    certno_masked: Optional[str] = None
    psn_name_masked: Optional[str] = None
    gend: Optional[str] = None
    chosen: bool = False


@dataclass(frozen=True)
class NewRequest:
    """A request a flow adds to the outbox in the same transaction as one of its
    transitions (e.g. the patient's message after the HIS took a settlement).  It is
    inserted only if no request of that kind and business key exists, so a repeated
    transition adds nothing: the business key names the event ("at most once")."""

    kind: str
    business_key: str
    payload: dict = field(default_factory=dict)
    serial_key: Optional[str] = None
