"""Scheduler's error codes: nodes', jobs', placement's and the agents'."""

from enum import StrEnum


class SchedulerErrorCode(StrEnum):
    UNKNOWN_GPU_CLASS = "unknown_gpu_class"
    NO_NODE_FITS = "no_node_fits"
    INVALID_SPEC = "invalid_spec"
    NODE_BUSY = "node_busy"
    NODE_NOT_APPROVED = "node_not_approved"
    STALE_SEQUENCE = "stale_sequence"
    ASSIGNMENT_CLOSED = "assignment_closed"
    USAGE_IMPLAUSIBLE = "usage_implausible"
    JOB_FINISHED = "job_finished"
    RESERVATION_UNUSABLE = "reservation_unusable"
    LEASE_PUSH_UNAVAILABLE = "lease_push_unavailable"
    NO_ISOLATED_NODE = "no_isolated_node"
    QUEUE_FULL = "queue_full"
    BLOCK_QUEUE_FULL = "block_queue_full"


class LogErrorCode(StrEnum):
    LOG_OFFSET_GAP = "log_offset_gap"
    LOG_CAP_EXCEEDED = "log_cap_exceeded"
    LOG_CLOSED = "log_closed"
    LOG_CHUNK_TOO_LARGE = "log_chunk_too_large"
    OUTPUT_CAP_EXCEEDED = "output_cap_exceeded"
    OUTPUT_URL_INVALID = "output_url_invalid"
    OUTPUT_MISMATCH = "output_mismatch"
