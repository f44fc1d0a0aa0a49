from enum import StrEnum

from core.errors import Conflict, DomainError, InvalidInput


class SchedulerErrorCode(StrEnum):
    UNKNOWN_GPU_CLASS = "unknown_gpu_class"
    NO_NODE_FITS = "no_node_fits"
    INVALID_SPEC = "invalid_spec"
    NODE_BUSY = "node_busy"
    NODE_NOT_APPROVED = "node_not_approved"
    STALE_SEQUENCE = "stale_sequence"
    ASSIGNMENT_CLOSED = "assignment_closed"
    JOB_FINISHED = "job_finished"
    RESERVATION_UNUSABLE = "reservation_unusable"
    QUEUE_FULL = "queue_full"
    BLOCK_QUEUE_FULL = "block_queue_full"


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


class QueueFull(DomainError):
    """Bounded queues: per organization and per block (settings)."""

    code: str = SchedulerErrorCode.QUEUE_FULL
    status = 429
