"""Silent nodes go offline; their leases expire and their jobs go back to the queue."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from banking.services.transactions import money_transaction
from scheduler import enqueue
from scheduler.locks import assignments_lock, jobs_lock
from scheduler.models import ACTIVE_ASSIGNMENT_STATES, Assignment, Job, Node, NodeFault
from scheduler.services.job_events import job_ended_emit
from scheduler.services.lease_hints import leases_changed
from scheduler.services.reliability import node_fault_record
from scheduler.services.settlement import job_hold_release, usage_settle


@dataclass
class LeaseSweep:
    nodes_offline: int = 0
    assignments_lost: int = 0
    requeued: int = 0
    failed: int = 0


def leases_expire(*, now: datetime | None = None) -> LeaseSweep:
    now = now or timezone.now()
    sweep = LeaseSweep()
    cutoff = now - timedelta(seconds=settings.SCHEDULER_NODE_TIMEOUT_S)
    with transaction.atomic():
        silent = list(
            Node.objects.select_for_update(skip_locked=True)
            .filter(status=Node.Status.ONLINE, last_heartbeat_at__lt=cutoff)
            .values_list("id", flat=True)
        )
        Node.objects.filter(id__in=silent).update(status=Node.Status.OFFLINE, updated_at=now)
        for node_id in silent:
            node_fault_record(node_id=node_id, kind=NodeFault.Kind.OFFLINE, now=now)
    sweep.nodes_offline = len(silent)
    expired = list(
        Assignment.objects.filter(state__in=ACTIVE_ASSIGNMENT_STATES, lease_expires_at__lt=now)
        .order_by("id").values_list("id", "job_id")
    )
    for assignment_id, job_id in expired:
        outcome = _lose(assignment_id, job_id, now)
        if outcome:
            sweep.assignments_lost += 1
            sweep.requeued += outcome == "requeued"
            sweep.failed += outcome == "failed"
    if sweep.requeued:
        enqueue.placement_run()
    return sweep


@money_transaction
def _lose(assignment_id: int, job_id: int, now: datetime) -> str | None:
    """The buyer pays for usage reported before the loss, nothing after; the job goes back
    to the queue until it has used its attempts."""
    job = jobs_lock([job_id])[job_id]
    a = assignments_lock([assignment_id])[assignment_id]
    if a.state not in ACTIVE_ASSIGNMENT_STATES or a.lease_expires_at >= now:
        return None
    Assignment.objects.filter(pk=a.pk).update(state=Assignment.State.LOST, ended_at=now,
                                              reason="lease expired: node went silent")
    Node.objects.filter(pk=a.node_id).update(free_gpus=F("free_gpus") + a.gpu_count)
    # Should the node come back, its agent is told to stop the run on its next beat.
    leases_changed([a.node_id])
    node_fault_record(node_id=a.node_id, kind=NodeFault.Kind.LOST, now=now)
    usage_settle(assignment_ids=[a.pk])
    if job.state not in (Job.State.PLACED, Job.State.RUNNING):
        return None
    if job.attempts < job.max_attempts:
        Job.objects.filter(pk=job.pk).update(state=Job.State.QUEUED, node=None, updated_at=now)
        return "requeued"
    job.state = Job.State.FAILED
    job.failure_reason = f"lost its node {job.attempts} times (retry limit reached)"
    job.finished_at = now
    job.save(update_fields=["state", "failure_reason", "finished_at", "updated_at"])
    job_hold_release(job)
    job_ended_emit(job)
    return "failed"


def queued_jobs_expire(*, now: datetime | None = None) -> int:
    """A job that waited in the queue past its hold's life is failed and its hold
    released, before the hold expires under it."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.SCHEDULER_QUEUE_TTL_S)
    stale = list(Job.objects.filter(state=Job.State.QUEUED, created_at__lt=cutoff)
                 .values_list("id", flat=True)[:500])
    for job_id in stale:
        _expire_queued(job_id, now)
    return len(stale)


@money_transaction
def _expire_queued(job_id: int, now: datetime) -> None:
    job = jobs_lock([job_id])[job_id]
    if job.state != Job.State.QUEUED:
        return
    job.state = Job.State.FAILED
    job.failure_reason = "no capacity became available in time"
    job.finished_at = now
    job.save(update_fields=["state", "failure_reason", "finished_at", "updated_at"])
    job_hold_release(job)
    job_ended_emit(job)
