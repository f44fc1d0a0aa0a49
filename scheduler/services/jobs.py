"""Buyers' jobs: submission with a hold at the locked rate, cancellation."""

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Max, Q
from django.utils import timezone

from banking.errors import IdempotencyConflict
from banking.services.holds import hold_place
from banking.services.standing import Act, organization_assert_may_act
from banking.services.transactions import money_transaction
from core.errors import InvalidInput, NotFound
from scheduler import enqueue
from scheduler.error_codes import SchedulerErrorCode
from scheduler.errors import InvalidSpec, JobFinished, NoIsolatedNode, NoNodeFits, QueueFull
from scheduler.fees import platform_fee_bps
from scheduler.locks import assignments_lock, jobs_lock
from scheduler.models import (
    ACTIVE_ASSIGNMENT_STATES,
    Assignment,
    Job,
    Node,
    Reservation,
)
from scheduler.pricing import charge_for
from scheduler.services.classes import gpu_class_by_name
from scheduler.services.job_events import job_ended_emit
from scheduler.services.lease_hints import leases_changed
from scheduler.services.settlement import job_hold_release, usage_settle
from scheduler.standing import node_may_work
from suanli_agent.workload_spec import SpecError, spec_check, spec_network, spec_runs_command


def _whole(value: Any, name: str, *, minimum: int, maximum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise InvalidInput(f"{name} must be a whole number from {minimum} to {maximum}.",
                           fields={name: [f"A whole number from {minimum} to {maximum}."]})
    return value


def spec_workload(spec: dict[str, Any]) -> str:
    """What a checked spec needs of a node (``Job.workload``)."""
    if not spec_runs_command(spec):
        return Job.Workload.SIMULATED
    if spec_network(spec) == "internet":
        return Job.Workload.INTERNET
    return Job.Workload.ISOLATED


def nodes_for_workload(organization_id: int, workload: str) -> Q:
    """The nodes that may run a job of ``workload`` for this organization: any for a
    simulated run; for a command, container nodes (offering the internet if it is asked
    for), or the organization's own nodes whose provider allowed host execution."""
    if workload == Job.Workload.SIMULATED:
        return Q()
    contained = Q(isolation=Node.Isolation.CONTAINER)
    if workload == Job.Workload.INTERNET:
        contained &= Q(network=Node.Network.INTERNET)
    own_host = Q(isolation=Node.Isolation.NONE, host_execution=True, provider_id=organization_id)
    return contained | own_host


def spec_validate(spec: Any) -> dict[str, Any]:
    """A spec runs a command in a container (see ``suanli_agent.workload_spec``) or simulates
    a run of N seconds; a bad one is refused naming its field, before anything is held."""
    try:
        spec_check(spec)
    except SpecError as error:
        raise InvalidSpec(error.message, fields={error.field: [error.message]}) from error
    assert isinstance(spec, dict)
    return spec


@money_transaction
def job_submit(
    *,
    organization_id: int,
    spec: Any,
    gpu_class: Any,
    gpu_count: Any,
    max_duration_s: Any,
    min_vram_gb: Any = 0,
    regions: Any = None,
    max_price_per_gpu_hour: Any = None,
    priority: Any = 0,
    reservation_id: int | None = None,
    idempotency_key: str | None = None,
) -> Job:
    """Queue a job. The on-demand rate is locked and a hold of the most the job can cost
    (gpu_count x max_duration at that rate) placed; without the tokens, nothing is created.
    A job that names a reservation draws on it instead and holds nothing.

    A repeated idempotency key returns the first job; the same key for another job is a
    conflict."""
    spec = spec_validate(spec)
    workload = spec_workload(spec)
    cls = gpu_class_by_name(gpu_class)
    gpu_count = _whole(gpu_count, "gpu_count", minimum=1, maximum=64)
    max_duration_s = _whole(max_duration_s, "max_duration_s", minimum=1, maximum=30 * 86400)
    min_vram_gb = _whole(min_vram_gb or 0, "min_vram_gb", minimum=0, maximum=4096)
    priority = _whole(priority or 0, "priority", minimum=-100, maximum=100)
    if regions is None:
        regions = []
    if not isinstance(regions, list) or not all(isinstance(r, str) and r for r in regions):
        raise InvalidInput("regions must be a list of region names.",
                           fields={"regions": ["A list of strings."]})
    if max_price_per_gpu_hour is not None:
        max_price_per_gpu_hour = _whole(max_price_per_gpu_hour, "max_price_per_gpu_hour",
                                        minimum=1, maximum=10**12)
    request = {"spec": spec, "gpu_class_id": cls.pk, "gpu_count": gpu_count,
               "max_duration_s": max_duration_s, "min_vram_gb": min_vram_gb,
               "regions": regions, "max_price_per_gpu_hour": max_price_per_gpu_hour,
               "priority": priority, "reservation_id": reservation_id}
    if idempotency_key:
        existing = Job.objects.filter(idempotency_key=idempotency_key).first()
        if existing is not None:
            return _replayed(existing, organization_id, request)
    organization_assert_may_act(organization_id, Act.SUBMIT)
    usable = Node.objects.filter(node_may_work(), gpu_class=cls, is_approved=True).exclude(
        status=Node.Status.DISABLED)
    if workload != Job.Workload.SIMULATED and not usable.filter(
            nodes_for_workload(organization_id, workload)).exists():
        raise NoIsolatedNode(
            f"No {cls.name} node runs commands in containers"
            + (" with internet access" if workload == Job.Workload.INTERNET else "")
            + "; a buyer's command never runs on a provider's host.",
            fields={"spec": ["No isolated node for this command."]},
        )
    largest = usable.aggregate(m=Max("gpu_count"))["m"] or 0
    if gpu_count > largest:
        raise NoNodeFits(
            f"No {cls.name} node has {gpu_count} GPUs (the largest has {largest}).",
            fields={"gpu_count": [f"At most {largest} for {cls.name}."]},
        )
    reservation = None
    if reservation_id is not None:
        reservation = _usable_reservation(organization_id, reservation_id, cls.pk, gpu_count)
        # No run of a block job outlives its block's window.
        remaining = int((reservation.end - max(timezone.now(), reservation.start))
                        .total_seconds())
        max_duration_s = max(1, min(max_duration_s, remaining))
        queued = Job.objects.filter(reservation=reservation, state=Job.State.QUEUED).count()
        if queued >= settings.SCHEDULER_BLOCK_QUEUE_MAX:
            raise QueueFull(
                f"This block already has {queued} jobs waiting (at most "
                f"{settings.SCHEDULER_BLOCK_QUEUE_MAX}); wait for some to finish.",
                code=SchedulerErrorCode.BLOCK_QUEUE_FULL,
                fields={"block": [f"At most {settings.SCHEDULER_BLOCK_QUEUE_MAX} queued."]})
    queued_org = Job.objects.filter(organization_id=organization_id,
                                    state=Job.State.QUEUED).count()
    if queued_org >= settings.SCHEDULER_ORG_QUEUED_MAX:
        raise QueueFull(
            f"This organization already has {queued_org} jobs queued (at most "
            f"{settings.SCHEDULER_ORG_QUEUED_MAX}); wait for some to be placed.",
            code=SchedulerErrorCode.QUEUE_FULL,
            fields={"queued": queued_org})
    rate = cls.on_demand_rate
    cap = min(rate, max_price_per_gpu_hour or rate)
    hold_amount = 0 if reservation else charge_for(gpu_count * max_duration_s, cap)
    try:
        with transaction.atomic():
            job = Job.objects.create(
                organization_id=organization_id,
                spec=spec,
                workload=workload,
                gpu_class=cls,
                gpu_count=gpu_count,
                min_vram_gb=min_vram_gb,
                regions=regions,
                max_duration_s=max_duration_s,
                max_price_per_gpu_hour=max_price_per_gpu_hour,
                priority=priority,
                turn=_turn(organization_id, cls.pk, priority),
                reservation=reservation,
                rate_per_gpu_hour=rate,
                fee_bps=platform_fee_bps(cls.pk),
                hold_amount=hold_amount,
                max_attempts=settings.SCHEDULER_MAX_ATTEMPTS,
                idempotency_key=idempotency_key,
            )
    except IntegrityError:
        raced = Job.objects.filter(idempotency_key=idempotency_key).first()
        if raced is not None:
            return _replayed(raced, organization_id, request)
        raise
    if hold_amount:
        hold = hold_place(
            organization_id=organization_id,
            amount=hold_amount,
            reference=f"job:{job.pk}",
            idempotency_key=f"job-hold:{job.pk}",
            expires_at=timezone.now()
            + timedelta(seconds=max_duration_s + settings.SCHEDULER_QUEUE_TTL_S),
        )
        Job.objects.filter(pk=job.pk).update(hold=hold)
        job.hold = hold
    enqueue.placement_run()
    return job


def _replayed(job: Job, organization_id: int, request: dict[str, Any]) -> Job:
    """The job a repeated idempotency key names, if it was submitted with the same body."""
    def differs(name: str, value: Any) -> bool:
        if name == "max_duration_s" and job.reservation_id is not None:
            return job.max_duration_s > value  # capped to the block's window at submission
        return bool(getattr(job, name) != value)

    if job.organization_id != organization_id or any(
        differs(name, value) for name, value in request.items()
    ):
        raise IdempotencyConflict(
            "This Idempotency-Key was already used for a different job; use a new key.",
            fields={"Idempotency-Key": ["Already used for a different job."]},
        )
    return job


def _turn(organization_id: int, gpu_class_id: int, priority: int) -> int:
    """Start-time fair queueing: a job's turn is one after its organization's last queued
    job of the same class and priority, and never before the head of that queue. A buyer
    with a thousand jobs queued then takes turns with one who just arrived, instead of
    being served first for all of them."""
    queued = Job.objects.filter(state=Job.State.QUEUED, gpu_class_id=gpu_class_id,
                                priority=priority)
    head = queued.order_by("turn").values_list("turn", flat=True).first() or 0
    last = (queued.filter(organization_id=organization_id).order_by("-turn")
            .values_list("turn", flat=True).first() or 0)
    return max(last + 1, head)


def _usable_reservation(organization_id: int, reservation_id: int, gpu_class_id: int,
                        gpu_count: int) -> Reservation:
    r = Reservation.objects.filter(pk=reservation_id, organization_id=organization_id).first()
    if r is None:
        raise NotFound("Reservation not found.", fields={"block": ["Not found."]})
    problem = None
    if r.status != Reservation.Status.ACTIVE:
        problem = "is not active"
    elif r.end <= timezone.now():
        problem = "has ended"
    elif r.gpu_class_id != gpu_class_id:
        problem = "is for another GPU class"
    elif gpu_count > r.gpu_count:
        problem = f"has {r.gpu_count} GPUs"
    if problem:
        raise InvalidInput(f"That block {problem}.", code=SchedulerErrorCode.RESERVATION_UNUSABLE,
                           fields={"block": [problem]})
    return r


@money_transaction
def job_cancel(*, organization_id: int, job_id: int) -> Job:
    """Stop a job: a running one is told to stop, its usage so far is charged, and the
    rest of its hold is released."""
    job = Job.objects.filter(pk=job_id, organization_id=organization_id).first()
    if job is None:
        raise NotFound("Job not found.")
    job = jobs_lock([job_id])[job_id]
    if job.state == Job.State.CANCELED:
        return job
    if job.state in (Job.State.SUCCEEDED, Job.State.FAILED):
        raise JobFinished(f"Job {job_id} has already {job.state}.")
    active = list(
        Assignment.objects.filter(job=job, state__in=ACTIVE_ASSIGNMENT_STATES)
        .values_list("id", flat=True)
    )
    now = timezone.now()
    for a in assignments_lock(active).values():
        Assignment.objects.filter(pk=a.pk).update(state=Assignment.State.CANCELED, ended_at=now,
                                                  reason="canceled by the buyer")
        Node.objects.filter(pk=a.node_id).update(free_gpus=F("free_gpus") + a.gpu_count)
        leases_changed([a.node_id])  # the node is told to stop
    usage_settle(assignment_ids=active)
    job.state = Job.State.CANCELED
    job.finished_at = now
    job.failure_reason = "canceled by the buyer"
    job.save(update_fields=["state", "finished_at", "failure_reason", "updated_at"])
    job_hold_release(job)
    job_ended_emit(job)
    if active:
        enqueue.placement_run()
    return job
