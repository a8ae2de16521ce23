"""The channels' business clock: the time stamped on payments and refunds, and so their bill day.

By default it is the local wall clock. A test that needs "a day" of traffic in the past sets a
date (POST /__sim__/channels/date {"date": "2026-01-05"} or {"date": null}); events then carry
that date with the current time of day, and that day's bills exist at once (channel_bills.py).
"""
from __future__ import annotations

import threading
from datetime import date, datetime
from typing import Optional


class ChannelClock:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._day: Optional[date] = None

    def set_day(self, value: Optional[str]) -> Optional[str]:
        day = None if value in (None, "") else date.fromisoformat(str(value))
        with self._lock:
            self._day = day
        return None if day is None else day.isoformat()

    def now(self) -> datetime:
        wall = datetime.now()
        with self._lock:
            day = self._day
        return wall if day is None else datetime.combine(day, wall.time())

    def today(self) -> date:
        return datetime.now().date()

    def reset(self) -> None:
        self.set_day(None)


def text(moment: datetime) -> str:
    """yyyy-MM-dd HH:mm:ss (the bills' and Alipay's time format)."""
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def rfc3339(moment: datetime) -> str:
    """WeChat's time format (channels.md §1.1), with the local (China) offset."""
    offset = moment.astimezone().strftime("%z")
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + offset[:3] + ":" + offset[3:]
