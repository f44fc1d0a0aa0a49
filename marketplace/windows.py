"""Time windows of the bank's products: whole hours, UTC."""

from datetime import datetime, timedelta

from django.utils import timezone

from core.errors import InvalidInput
from marketplace.errors import InvalidWindow, WindowTooFarAhead, WindowTooLong

HOUR = timedelta(hours=1)


def window_check(start: datetime, end: datetime, *, allow_past: bool = False) -> int:
    """Validate `[start, end)` and return its length in whole hours."""
    if start.tzinfo is None or end.tzinfo is None:
        raise InvalidWindow("start and end need a time zone (ISO 8601 with Z or an offset).")
    if end <= start:
        raise InvalidWindow("end must be after start.", fields={"end": ["After start."]})
    if not allow_past and start < timezone.now() - timedelta(minutes=1):
        raise InvalidWindow("The window starts in the past.", fields={"start": ["In the past."]})
    for name, t in (("start", start), ("end", end)):
        if t.minute or t.second or t.microsecond:
            raise InvalidWindow(f"{name} must be on a whole hour.",
                                fields={name: ["On a whole hour (e.g. 14:00)."]})
    return int((end - start) / HOUR)


def window_span_check(start: datetime, end: datetime, *, max_ahead_days: int, max_days: int,
                      what: str = "A window",
                      too_far: type[InvalidInput] = WindowTooFarAhead,
                      too_long: type[InvalidInput] = WindowTooLong) -> None:
    """Refuse a window that starts more than max_ahead_days from now or lasts more than
    max_days, before anything is read or done per hour of it (a window over years 1 to
    9999 is some 87 million hours)."""
    if start.tzinfo is None or end.tzinfo is None:
        raise InvalidWindow("start and end need a time zone (ISO 8601 with Z or an offset).")
    if start - timezone.now() > timedelta(days=max_ahead_days):
        raise too_far(f"{what} starts within {max_ahead_days} days.",
                      fields={"start": [f"Within {max_ahead_days} days from now."]})
    if end - start > timedelta(days=max_days):
        raise too_long(f"{what} lasts at most {max_days} days.",
                       fields={"end": [f"At most {max_days} days after start."]})


def hour_slots(start: datetime, end: datetime) -> list[datetime]:
    slots = []
    t = start
    while t < end:
        slots.append(t)
        t += HOUR
    return slots
