"""Time windows of the bank's products: whole hours, UTC."""

from datetime import datetime, timedelta

from django.utils import timezone

from marketplace.errors import InvalidWindow

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


def hour_slots(start: datetime, end: datetime) -> list[datetime]:
    slots = []
    t = start
    while t < end:
        slots.append(t)
        t += HOUR
    return slots
