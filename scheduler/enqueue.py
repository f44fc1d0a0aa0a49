"""The tasks scheduler's services start, sent by name after commit (core.enqueue). Both
are also run by beat, which catches up with what a broker outage left unsent."""

from core.enqueue import after_commit


def placement_run() -> None:
    """Ask for a placement cycle soon: capacity was freed or a job is waiting."""
    after_commit("scheduler.placement_run")


def usage_settle(assignment_id: int) -> None:
    """Settle an assignment's newly reported usage soon."""
    after_commit("scheduler.usage_settle", assignment_id)
