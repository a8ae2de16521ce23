"""Fault injection, armed per test over HTTP (POST /__sim__/faults, DELETE /__sim__/faults).

A fault targets one interface ("6202", "2207", "fpy001", "tgdupc004", "cn.nhsa.auth.check",
the callback "6302", or a UnionPay leg "unionpay.balance" / "unionpay.deduct" /
"unionpay.refund") and fires for the next `times` calls.

Transport faults, and whether the platform commits the effect:

| fault             | effect committed? | what the client sees                                   |
|-------------------|-------------------|--------------------------------------------------------|
| timeout           | yes               | the answer, but only after config.timeout_delay (or `delay`) |
| http500           | no                | HTTP 500, empty-ish body                               |
| reset             | no                | connection reset before any answer                     |
| lost_after_commit | yes               | connection reset after the platform committed          |
| garbled           | yes               | HTTP 200 whose body is not JSON                        |
| bad_signature     | mobile pay: yes; offline/terminal: no | mobile pay: a response whose signData does not verify; offline: the gateway's signature-rejection wrapper |
| business_error    | no                | the platform's error shape with `code` / `message`     |
| refund_exp        | yes (6203 only)   | refStatus "EXP" although the refund went through       |

On a UnionPay leg the only meaningful fault is "fail" (any kind is treated as a failure of
that leg); on 6302 any fault makes that delivery attempt fail without being sent.

The channels (WeChat Pay, Alipay) take the transport kinds above on their interfaces
("wechat.refund", "alipay.trade.refund", ...; see channel_fronts.py), and add:
    bad_signature / wrong_serial / skew / probe   WeChat: the answer's signature is bad, names
                         an unknown key, is 10 minutes old, or is a SIGNTEST probe (effect committed);
                         Alipay: bad_signature = the answer's sign does not verify
    unsigned_error       Alipay: an unsigned error_response, nothing done
    hash_mismatch        WeChat bill apply: hash_value does not match the file
    refund_processing    WeChat refund: stays PROCESSING for `code` queries (default 2), then SUCCESS
    refund_abnormal      ... then ABNORMAL (REFUND.ABNORMAL callback); refund_closed: then CLOSED
and, on the callback interfaces (channel_callbacks.py): drop, duplicate, out_of_order and the
defective copies bad_signature, wrong_serial, skew, probe, wrong_key, empty_aad, tampered.
"""
from __future__ import annotations

import threading
from dataclasses import asdict, dataclass
from typing import Optional

KINDS = ("timeout", "http500", "reset", "lost_after_commit", "garbled", "bad_signature",
         "business_error", "refund_exp", "fail",
         # the channels (see the module note)
         "wrong_serial", "skew", "probe", "unsigned_error", "hash_mismatch", "refund_processing",
         "refund_abnormal", "refund_closed", "drop", "duplicate", "out_of_order", "wrong_key",
         "empty_aad", "tampered")


class FaultError(ValueError):
    pass


@dataclass
class Fault:
    interface: str
    fault: str
    times: int = 1
    code: Optional[str] = None
    message: Optional[str] = None
    delay: Optional[float] = None

    def public(self) -> dict:
        d = asdict(self)
        d["delay"] = None if self.delay is None else str(self.delay)
        return d


class Faults:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._armed: list[Fault] = []
        self.fired: list[dict] = []

    def arm(self, spec: dict) -> Fault:
        kind = spec.get("fault")
        if kind not in KINDS:
            raise FaultError(f"fault must be one of {KINDS}")
        if not spec.get("interface"):
            raise FaultError("interface is required")
        times = int(spec.get("times", 1))
        if times < 1:
            raise FaultError("times must be >= 1")
        delay = spec.get("delay")
        f = Fault(str(spec["interface"]), kind, times,
                  None if spec.get("code") is None else str(spec["code"]), spec.get("message"),
                  None if delay is None else float(delay))
        with self._lock:
            self._armed.append(f)
        return f

    def take(self, interface: str) -> Optional[Fault]:
        """The next armed fault for this interface, consuming one of its `times`."""
        with self._lock:
            for f in self._armed:
                if f.interface == interface:
                    f.times -= 1
                    if f.times == 0:
                        self._armed.remove(f)
                    self.fired.append({"interface": interface, "fault": f.fault})
                    return Fault(f.interface, f.fault, 1, f.code, f.message, f.delay)
        return None

    def clear(self) -> None:
        with self._lock:
            self._armed.clear()
            self.fired.clear()

    def armed(self) -> list[dict]:
        with self._lock:
            return [f.public() for f in self._armed]
