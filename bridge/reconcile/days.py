"""Days as the platforms count them: China time (UTC+8, no daylight saving), yyyy-MM-dd.
The order book stores such days; a database timestamp (UTC) is compared through the UTC
bounds of a day, bound the way each driver needs."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

CHINA = timezone(timedelta(hours=8))


def parse_day(text: str) -> str:
    try:
        return date.fromisoformat(str(text)).isoformat()
    except ValueError:
        raise ValueError(f"not a day (yyyy-MM-dd): {text!r}") from None


def today() -> str:
    return datetime.now(CHINA).date().isoformat()


def days_before(day: str, n: int) -> str:
    return (date.fromisoformat(day) - timedelta(days=n)).isoformat()


def utc_bounds(day: str) -> tuple[datetime, datetime]:
    """[start, end) of the China day in UTC, as aware datetimes."""
    start = datetime.combine(date.fromisoformat(day), datetime.min.time(), CHINA).astimezone(timezone.utc)
    return start, start + timedelta(days=1)


def ts_param(dialect: str, name: str, value: datetime) -> tuple[str, object]:
    """(SQL for a bound UTC instant compared with the dialect's timestamp columns, the value)."""
    v = value.astimezone(timezone.utc)
    if dialect == "postgresql":
        return f":{name}", v
    if dialect == "sqlite":
        return f":{name}", v.strftime("%Y-%m-%d %H:%M:%S.000")
    if dialect == "oracle":
        return f"TO_TIMESTAMP_TZ(:{name}, 'YYYY-MM-DD HH24:MI:SS TZH:TZM')", v.strftime("%Y-%m-%d %H:%M:%S +00:00")
    return f":{name}", v.replace(tzinfo=None)        # MariaDB DATETIME / SQL Server DATETIME2 hold UTC
