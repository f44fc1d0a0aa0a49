"""Scheduler's domain errors; their codes are in scheduler.error_codes."""

from core.errors import Conflict, DomainError, InvalidInput
from scheduler.error_codes import SchedulerErrorCode


class UnknownGpuClass(InvalidInput):
    code: str = SchedulerErrorCode.UNKNOWN_GPU_CLASS


class NoNodeFits(InvalidInput):
    code: str = SchedulerErrorCode.NO_NODE_FITS


class InvalidSpec(InvalidInput):
    code: str = SchedulerErrorCode.INVALID_SPEC


class NodeBusy(Conflict):
    code: str = SchedulerErrorCode.NODE_BUSY


class StaleSequence(Conflict):
    code: str = SchedulerErrorCode.STALE_SEQUENCE


class AssignmentClosed(Conflict):
    code: str = SchedulerErrorCode.ASSIGNMENT_CLOSED


class JobFinished(Conflict):
    code: str = SchedulerErrorCode.JOB_FINISHED


class NodeNotApproved(DomainError):
    code: str = SchedulerErrorCode.NODE_NOT_APPROVED
    status = 403
