"""Scheduler's domain errors; their codes are in scheduler.error_codes."""

from core.errors import Conflict, DomainError, InvalidInput
from scheduler.error_codes import LogErrorCode, SchedulerErrorCode


class UnknownGpuClass(InvalidInput):
    code: str = SchedulerErrorCode.UNKNOWN_GPU_CLASS


class NoNodeFits(InvalidInput):
    code: str = SchedulerErrorCode.NO_NODE_FITS


class NoIsolatedNode(InvalidInput):
    """A command job with no node that may run it: none runs containers (with the network
    it asks for), and the buyer has no host-execution node of its own."""

    code: str = SchedulerErrorCode.NO_ISOLATED_NODE


class InvalidSpec(InvalidInput):
    code: str = SchedulerErrorCode.INVALID_SPEC


class NodeBusy(Conflict):
    code: str = SchedulerErrorCode.NODE_BUSY


class StaleSequence(Conflict):
    code: str = SchedulerErrorCode.STALE_SEQUENCE


class AssignmentClosed(Conflict):
    code: str = SchedulerErrorCode.ASSIGNMENT_CLOSED


class UsageImplausible(Conflict):
    """A usage report the clock or the run's budget rules out (scheduler.services.
    plausibility); `fields` says what was claimed and what was possible."""

    code: str = SchedulerErrorCode.USAGE_IMPLAUSIBLE


class JobFinished(Conflict):
    code: str = SchedulerErrorCode.JOB_FINISHED


class NodeNotApproved(DomainError):
    code: str = SchedulerErrorCode.NODE_NOT_APPROVED
    status = 403


class QueueFull(DomainError):
    """Bounded queues: per organization and per block (settings)."""

    code: str = SchedulerErrorCode.QUEUE_FULL
    status = 429


class LogOffsetGap(Conflict):
    """The chunk starts past the log's end; `fields.offset` says where to resend from."""

    code: str = LogErrorCode.LOG_OFFSET_GAP


class LogCapExceeded(DomainError):
    code: str = LogErrorCode.LOG_CAP_EXCEEDED
    status = 413


class LogChunkTooLarge(DomainError):
    code: str = LogErrorCode.LOG_CHUNK_TOO_LARGE
    status = 413


class LogClosed(Conflict):
    code: str = LogErrorCode.LOG_CLOSED


class OutputCapExceeded(DomainError):
    code: str = LogErrorCode.OUTPUT_CAP_EXCEEDED
    status = 413


class OutputUrlInvalid(DomainError):
    code: str = LogErrorCode.OUTPUT_URL_INVALID
    status = 403


class OutputMismatch(Conflict):
    code: str = LogErrorCode.OUTPUT_MISMATCH
