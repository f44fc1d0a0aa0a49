"""Usage is checked against the clock (scheduler.services.plausibility): a test that
reports a run's usage first lets the time it claims pass, by moving the run's placement
and its node's first lease read back, as if the run had started that long ago."""

from datetime import timedelta
from typing import Any

from django.db.models import F

from scheduler.models import Assignment


def run_for(assignment: Any, seconds: int) -> None:
    """The assignment (or its id) was placed, and read by its node, `seconds` earlier."""
    assignment_id = getattr(assignment, "pk", assignment)
    back = timedelta(seconds=seconds)
    Assignment.objects.filter(pk=assignment_id).update(created_at=F("created_at") - back)
    Assignment.objects.filter(pk=assignment_id, leased_at__isnull=False).update(
        leased_at=F("leased_at") - back)
