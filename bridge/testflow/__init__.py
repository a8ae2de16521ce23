"""A built-in test flow and the small counting platform it talks to.

It exists to prove the engine: `test.charge` makes one call that is NOT safe
to repeat (a charge: the test platform books a new charge on every request,
exactly like a buggy resend would double-charge a patient) and one that is
(a notification the platform de-duplicates).  `test.noop` makes no call and
measures the engine alone (bench/outbox.py).
"""
