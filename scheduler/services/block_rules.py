"""A block is a right to N GPUs during its window, no more (DESIGN §3):

- its jobs together never hold more than N GPUs at a time: placement counts the GPUs of
  the block's placed and running jobs (`block_gpus_in_use`) and reads, per block, only as
  many queued jobs as could still fit; the rest wait in the block's queue, which is
  bounded (SCHEDULER_BLOCK_QUEUE_MAX) at submission;
- a block job's `max_duration_s` is capped at submission to what is left of the window,
  and whatever still runs at the window's end is stopped (`block_jobs_stop`), the agent
  told through its lease, the job finished with that reason;
- during the window its GPUs are kept for it: on-demand work on bank nodes of the class
  is preempted (`block_preempt`, requeued and charged only what it used, the agent told
  through its lease) when the block's queued jobs cannot get GPUs otherwise, and
  placement withholds the block's unused GPUs from on-demand jobs (never placed there).

Block jobs hold nothing and are charged nothing: they cannot use more GPUs or time than
the block was paid for."""

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime

from django.db.models import F, Sum
from django.utils import timezone

from banking.services.transactions import money_transaction
from scheduler.locks import assignments_lock, jobs_lock
from scheduler.models import (
    ACTIVE_ASSIGNMENT_STATES,
    Assignment,
    Job,
    Node,
    Reservation,
)
from scheduler.services.lease_hints import leases_changed
from scheduler.services.settlement import usage_settle
from scheduler.standing import node_may_work

PREEMPTED = "preempted: the bank's GPUs are reserved for a block during its window"
BLOCK_ENDED = "stopped at the end of its block's window"


def active_blocks(gpu_class_ids: Iterable[int], now: datetime) -> list[tuple[int, int, int]]:
    """(reservation, class, GPUs) of every block inside its window now."""
    return list(Reservation.objects.filter(
        gpu_class_id__in=list(gpu_class_ids), status=Reservation.Status.ACTIVE,
        start__lte=now, end__gt=now).order_by("id").values_list("id", "gpu_class_id",
                                                                 "gpu_count"))


def block_gpus_in_use(reservation_ids: Iterable[int]) -> dict[int, int]:
    """GPUs held now by each block's placed and running jobs."""
    rows = (Assignment.objects.filter(job__reservation_id__in=list(reservation_ids),
                                      state__in=ACTIVE_ASSIGNMENT_STATES)
            .values("job__reservation_id").annotate(gpus=Sum("gpu_count"))
            .values_list("job__reservation_id", "gpus"))
    return dict(rows)


def block_queue_head(reservation_id: int, gpus_left: int) -> list[int]:
    """The ids of the block's queued jobs placement may look at: at most as many as GPUs
    are left to it (every job takes at least one)."""
    if gpus_left <= 0:
        return []
    return list(Job.objects.filter(reservation_id=reservation_id, state=Job.State.QUEUED)
                .order_by("-priority", "id").values_list("id", flat=True)[:gpus_left])


def block_preempt(*, now: datetime | None = None) -> int:
    """Free bank GPUs for blocks whose queued jobs cannot get theirs: on-demand
    assignments on the class's bank nodes are preempted, newest first, until the bank's
    free GPUs of the class cover what the blocks still need. Returns assignments
    preempted."""
    now = now or timezone.now()
    blocks = active_blocks(Reservation.objects.filter(
        status=Reservation.Status.ACTIVE, start__lte=now, end__gt=now,
        jobs__state=Job.State.QUEUED).values_list("gpu_class_id", flat=True).distinct(), now)
    if not blocks:
        return 0
    in_use = block_gpus_in_use(r for r, _, _ in blocks)
    need: dict[int, int] = defaultdict(int)
    for rid, cls, gpus in blocks:
        left = gpus - in_use.get(rid, 0)
        queued = (Job.objects.filter(pk__in=block_queue_head(rid, left))
                  .aggregate(g=Sum("gpu_count"))["g"] or 0)
        need[cls] += min(left, queued)
    preempted = 0
    for cls, wanted in need.items():
        bank = Node.objects.filter(node_may_work(), gpu_class_id=cls, mode=Node.Mode.BANK,
                                   status=Node.Status.ONLINE, is_approved=True)
        free = bank.aggregate(f=Sum("free_gpus"))["f"] or 0
        if free >= wanted:
            continue
        victims = (Assignment.objects.filter(node__in=bank, state__in=ACTIVE_ASSIGNMENT_STATES,
                                             job__reservation__isnull=True)
                   .order_by("-id").values_list("id", "job_id", "gpu_count"))
        for assignment_id, job_id, gpus in victims:
            if free >= wanted:
                break
            if _preempt(assignment_id, job_id, now):
                free += gpus
                preempted += 1
    return preempted


@money_transaction
def _preempt(assignment_id: int, job_id: int, now: datetime) -> bool:
    """Stop one on-demand run for a block: the buyer pays what it reported, the job goes
    back to the queue (the attempt does not count against it)."""
    job = jobs_lock([job_id])[job_id]
    a = assignments_lock([assignment_id])[assignment_id]
    if a.state not in ACTIVE_ASSIGNMENT_STATES:
        return False
    Assignment.objects.filter(pk=a.pk).update(state=Assignment.State.CANCELED, ended_at=now,
                                              reason=PREEMPTED)
    Node.objects.filter(pk=a.node_id).update(free_gpus=F("free_gpus") + a.gpu_count)
    leases_changed([a.node_id])  # the agent is told to stop the run on its next beat
    usage_settle(assignment_ids=[a.pk])
    if job.state in (Job.State.PLACED, Job.State.RUNNING):
        Job.objects.filter(pk=job.pk).update(
            state=Job.State.QUEUED, node=None, attempts=F("attempts") - 1,
            failure_reason=PREEMPTED, updated_at=now)
    return True


def block_jobs_stop(*, now: datetime | None = None, limit: int = 1000) -> int:
    """Stop every block job still placed, running or queued once its block's window has
    ended (or the block was canceled). Returns jobs stopped; safe to run twice."""
    now = now or timezone.now()
    ids = list(Job.objects.filter(
        state__in=(Job.State.QUEUED, Job.State.PLACED, Job.State.RUNNING),
        reservation__isnull=False, reservation__end__lte=now,
    ).order_by("id").values_list("id", flat=True)[:limit])
    ids += list(Job.objects.filter(
        state__in=(Job.State.QUEUED, Job.State.PLACED, Job.State.RUNNING),
        reservation__status=Reservation.Status.CANCELED,
    ).exclude(pk__in=ids).order_by("id").values_list("id", flat=True)[:limit])
    return sum(_stop(job_id, now) for job_id in ids)


@money_transaction
def _stop(job_id: int, now: datetime) -> bool:
    job = jobs_lock([job_id])[job_id]
    if job.state not in (Job.State.QUEUED, Job.State.PLACED, Job.State.RUNNING):
        return False
    active = list(Assignment.objects.filter(job=job, state__in=ACTIVE_ASSIGNMENT_STATES)
                  .values_list("id", flat=True))
    for a in assignments_lock(active).values():
        Assignment.objects.filter(pk=a.pk).update(state=Assignment.State.CANCELED,
                                                  ended_at=now, reason=BLOCK_ENDED)
        Node.objects.filter(pk=a.node_id).update(free_gpus=F("free_gpus") + a.gpu_count)
        leases_changed([a.node_id])
    usage_settle(assignment_ids=active)
    Job.objects.filter(pk=job.pk).update(state=Job.State.CANCELED, finished_at=now,
                                         failure_reason=BLOCK_ENDED, updated_at=now)
    return True
