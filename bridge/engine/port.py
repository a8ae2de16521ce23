"""FlowPort: all a flow may ask of the database beyond its own row.

A step or resolver sees its own row through the context (ctx.row, ctx.payload,
ctx.data, ctx.secret) and changes it only by the transition it returns.  What it
needs of OTHER rows - the payment a refund names, the HIS's handling of an inbox
row, a recorded platform notice, the age of a journalled call - it reads here, and
the two writes a flow may make outside its transition are here too:

* poke(kinds, key)         make a waiting request due now (a revoke wakes its payment);
* withdraw_inbox_row(id)   take back a settlement the HIS left past its window
                           (bridge/engine/handover.py: one conditional UPDATE, so the
                           HIS cannot accept what is being reversed).

Nothing else: no SQL, no transactions, no other row's state.  The daemon gives flows
a StorePort over its Store (below); unit tests give them bridge/engine/testing.py's
ScriptedPort, dict-backed.  A flow that needs a new read adds it to FlowPort, to
Store, to StorePort and to ScriptedPort - and says why in its docstring.
"""
from __future__ import annotations

from typing import Iterable, Optional, Protocol


class FlowPort(Protocol):
    # -- reads ------------------------------------------------------------------
    def find_request(self, kinds: Iterable[str], business_key: str) -> Optional[dict]:
        """The oldest request of one of `kinds` with this business key:
        {"id", "kind", "state", "step", "flow_data", "payload"} (payload as the HIS wrote it)."""

    def count_requests(self, kind: str, serial_key: str, states: Iterable[str],
                       exclude_id: Optional[int] = None) -> int:
        """How many requests of `kind` under `serial_key` are in one of `states`."""

    def inbox_state(self, outbox_id: int, result_type: str) -> Optional[dict]:
        """The newest inbox row of that type of a request: {"id", "consumed", "his_ack",
        "age_seconds"} (age on the database clock), or None."""

    def inbox_sums(self, result_type: str, order_id: str) -> dict:
        """Sums of the successful inbox rows of one type for one platform order:
        {"total", "fund", "account", "cash" (Decimal), "count"}."""

    def notice(self, interface: str, notice_key: str) -> Optional[dict]:
        """A verified platform notice as recorded (mi_notice), or None."""

    def notice_age_seconds(self, interface: str, notice_key: str) -> Optional[float]:
        """Seconds since that notice first arrived (database clock), or None."""

    def secrets(self, outbox_id: int) -> dict[str, str]:
        """The mi_secret values of a request (a refund reads its payment's payToken).
        A flow reads its OWN secrets with ctx.secret(name)."""

    def call_age_seconds(self, msg_id: str) -> Optional[float]:
        """Seconds since a journalled call started (database clock), or None."""

    def insured_region(self, admdvs: str) -> Optional[dict]:
        """A row of the insured-region list (mi_insured_region), enabled or not:
        {"admdvs", "name", "enabled", "channels", "insutypes" (None = every type)}, or None
        when the code is not listed.  The identity flows check the patient's region with it."""

    def chosen_identity(self, his_patient_id: str) -> Optional[dict]:
        """The identity written back for an HIS patient (mi_identity): {"psn_no", "insutype",
        "insuplc_admdvs", "chosen" (bool: the patient chose it), "source_kind"}, or None.
        Mobile pay runs under the insurance the patient chose (identity.choose) when the
        payment names none (docs/identity.md "Mobile pay and the choice")."""

    # -- the only writes outside a transition -----------------------------------
    def poke(self, kinds: Iterable[str], business_key: str) -> int:
        """Make the waiting requests of `kinds` with this key due now; how many."""

    def withdraw_inbox_row(self, inbox_id: int) -> bool:
        """Mark an unconsumed inbox row consumed-and-rejected; False when the HIS
        consumed it first."""


class StorePort:
    """The daemon's FlowPort: the Store's methods of the same names, and no others
    (a flow holding it cannot reach the Store's SQL, claims or writes)."""

    __slots__ = ("_store",)

    def __init__(self, store) -> None:
        self._store = store

    def find_request(self, kinds, business_key):
        return self._store.find_request(kinds, business_key)

    def count_requests(self, kind, serial_key, states, exclude_id=None):
        return self._store.count_requests(kind, serial_key, states, exclude_id=exclude_id)

    def inbox_state(self, outbox_id, result_type):
        return self._store.inbox_state(outbox_id, result_type)

    def inbox_sums(self, result_type, order_id):
        return self._store.inbox_sums(result_type, order_id)

    def notice(self, interface, notice_key):
        return self._store.notice(interface, notice_key)

    def notice_age_seconds(self, interface, notice_key):
        return self._store.notice_age_seconds(interface, notice_key)

    def secrets(self, outbox_id):
        return self._store.secrets(outbox_id)

    def call_age_seconds(self, msg_id):
        return self._store.call_age_seconds(msg_id)

    def insured_region(self, admdvs):
        return self._store.insured_region(admdvs)

    def chosen_identity(self, his_patient_id):
        return self._store.chosen_identity(his_patient_id)

    def poke(self, kinds, business_key):
        return self._store.poke(kinds, business_key)

    def withdraw_inbox_row(self, inbox_id):
        return self._store.withdraw_inbox_row(inbox_id)
