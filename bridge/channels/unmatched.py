"""The ``channels.unmatched`` service: what the callback endpoint does with a verified
callback that matched no open request (bridge/channels/notices.py ``on_unmatched``).

It is called on every delivery (a channel resends until answered, and a callback may come
twice), so it is idempotent: at most one channel.notice_check request per channel number
(bridge/channels/notice_check.py ``check_key``), whatever the number of deliveries or of
callbacks about that number (a mixed order's MEDICAL_INSURANCE.SUCCESS and its cash
TRANSACTION.SUCCESS share one check).  Most late callbacks need no check at all: a payment
the HIS took that names the number, an order without cash; those are only described.

Returns one line for the endpoint's log.  Raises what the database raises: the endpoint
then answers 5xx and the channel sends the callback again (a repeat only counts).
"""
from __future__ import annotations

from typing import Any, Mapping, Optional

from loguru import logger

from .keys import DEFAULT_PREFIX
from .notice_check import KIND_CHANNEL_NOTICE_CHECK, check_key, check_payload, is_reversed, quiet_reason
from .notices import ChannelNotice


class Unmatched:
    """``channels.unmatched``: ``(store, notice, row) -> str``.  ``prefixes``: each channel's
    order_prefix (bridge/channels/settings.py), to read our numbers in a request's record."""

    def __init__(self, prefixes: Mapping[str, str]):
        self.prefixes = dict(prefixes)

    def __call__(self, store: Any, notice: ChannelNotice, row: Optional[dict]) -> str:
        t = notice.target
        if t is None:
            # Not a number mibridge gives (another system on the merchant account, an event
            # type we do not act on): recorded in mi_notice; the day's reconciliation shows
            # money of numbers we never gave.
            return "not one of mibridge's numbers: recorded only"
        payload = check_payload(notice.interface, notice.notice_key, t.what, t.business_key, t.attempt,
                                notice.record)
        if payload is None:
            return "no channel number in the callback: recorded only"
        reversed_ = is_reversed(store.inbox_state, row, t.what)
        prefix = self.prefixes.get(payload["channel"], DEFAULT_PREFIX)
        why = quiet_reason(payload, notice.record, row, reversed_, prefix)
        if why:
            return f"nothing to check: {why}"
        key = check_key(payload["channel"], payload["number"])
        existing = store.find_request((KIND_CHANNEL_NOTICE_CHECK,), key)
        if existing is not None:
            return f"notice check #{existing['id']} exists"
        try:
            oid = store.enqueue(KIND_CHANNEL_NOTICE_CHECK, key, payload, serial_key=key)
        except Exception:
            # Another delivery of a callback about this number enqueued it at the same moment
            # (the unique key refused ours); anything else is the database's to report.
            existing = store.find_request((KIND_CHANNEL_NOTICE_CHECK,), key)
            if existing is None:
                raise
            return f"notice check #{existing['id']} exists"
        logger.warning("{} callback for {} ({} {!r}): notice check #{} enqueued", payload["channel"],
                       payload["number"], t.what, t.business_key, oid)
        return f"notice check #{oid} enqueued"
