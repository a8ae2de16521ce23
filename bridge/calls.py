"""The contract between platform clients and the flows that use them.

Every remote call goes through two steps so that the engine can write its
call-journal row *before* anything leaves the machine:

    prepared = client.prepare_pay_order(request)   # builds, signs, encrypts; no I/O
    journal.insert(prepared.msg_id, prepared.interface, prepared.masked_request)
    result = client.send(prepared)                 # the only step that does I/O

`send` never raises for remote trouble: it classifies every answer as

* ``OK``       - the platform accepted the call and the response verified;
* ``REJECTED`` - the platform answered with an error (code, message): nothing
                 happened remotely.  Either a business verdict (the flow records
                 the failure) or, when ``transient`` is set, a refusal that says
                 nothing about the request itself (busy, rate-limited, a
                 signature or gateway error): ask again later, with backoff;
* ``NOT_SENT`` - the request never reached the platform: the connection could
                 not be opened, or a gateway refused it before forwarding it.
                 Nothing happened remotely; sending it again is a first send;
* ``UNKNOWN``  - timeout, connection reset after sending, HTTP 5xx, a body we
                 cannot parse or decrypt, or a response whose signature does
                 not verify.  The remote effect may or may not have happened;
                 the flow must query before it sends anything again.

Which refusals are transient is decided by each client from one table
(bridge/refusals.py), never by the flows.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Callable, Generic, Optional, TypeVar

T = TypeVar("T")


class Outcome(str, enum.Enum):
    OK = "ok"
    REJECTED = "rejected"
    NOT_SENT = "not_sent"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class PreparedCall:
    """A fully built request, ready to send, with what the journal needs."""

    interface: str                 # "6202", "2207", "fpy001", "face.auth", ...
    msg_id: str                    # unique per message; the platform's msgid where it has one
    url: str
    body: bytes
    headers: dict[str, str]
    masked_request: str            # JSON text with ID numbers, names, phones masked; no secrets
    # Turns the raw HTTP answer into a typed CallResult; set by the client and called by
    # the client's own send(): decode(status, body), or decode(status, body, headers) for
    # a client that must see the response headers (WeChat Pay verifies its
    # Wechatpay-Signature headers; the others take two arguments).
    decode: Callable[..., "CallResult[Any]"] = field(repr=False, compare=False)
    # Correlation keys worth keeping in the journal (medOrgOrd, payOrdId, setl_id ...).
    keys: dict[str, str] = field(default_factory=dict)
    # The HTTP method send() uses (the signed string of a REST API includes it; WeChat
    # Pay queries are GETs).  The gateway clients post everything.
    method: str = "POST"


@dataclass(frozen=True)
class CallResult(Generic[T]):
    outcome: Outcome
    interface: str
    msg_id: str
    data: Optional[T] = None        # the typed response (set when OK)
    code: Optional[str] = None      # the platform's code, as a string
    message: Optional[str] = None   # the platform's message, or why we classified UNKNOWN
    http_status: Optional[int] = None
    response_text: Optional[str] = None  # masked, for the journal
    raw: Optional[dict] = None      # the decoded, verified business object (unmasked; never logged)
    # REJECTED only: busy, rate-limited, a signature or gateway error - not a verdict
    # on the request (bridge/refusals.py).  NOT_SENT is always worth another try.
    transient: bool = False

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.OK

    @property
    def refused(self) -> bool:
        """A business verdict: the platform saw the request and said no (nothing happened)."""
        return self.outcome is Outcome.REJECTED and not self.transient

    @property
    def try_again(self) -> bool:
        """Nothing happened and asking again later may succeed: not sent, or refused
        for a transient reason.  Safe to resend even on a step that moves money."""
        return self.outcome is Outcome.NOT_SENT or (self.outcome is Outcome.REJECTED and self.transient)
