"""What a node's agent reports: usage, completion, failure; and what it is told to run."""

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import F, Sum
from django.utils import timezone

from banking.services.transactions import money_transaction
from core.bounds import INTEGER_MAX, bounded_int, bounded_text
from core.database import jsonb_value, server_bound_cursor
from core.errors import InvalidInput, NotFound
from core.sql_names import compose
from scheduler import enqueue
from scheduler.errors import AssignmentClosed, StaleSequence
from scheduler.locks import assignments_lock
from scheduler.models import (
    ACTIVE_ASSIGNMENT_STATES,
    Assignment,
    Job,
    Node,
    UsageRecord,
)
from scheduler.services.job_events import job_ended_emit
from scheduler.services.lease_hints import lease_mark_clear
from scheduler.services.plausibility import implausible_usage_counted, usage_check
from scheduler.services.settlement import job_hold_release, usage_settle

# What an agent may say of a failure (the serializer's bound); the first 500 are kept.
REASON_MAX_CHARS = 2000


@dataclass(frozen=True)
class UsageResult:
    accepted: bool
    action: str
    lease_expires_at: datetime


def _locked_assignment(node_id: int, assignment_id: int) -> Assignment:
    # Look before locking so that another node cannot even take the lock.
    if not Assignment.objects.filter(pk=assignment_id, node_id=node_id).exists():
        raise NotFound("No such assignment on this node.")
    return assignments_lock([assignment_id])[assignment_id]


def _earlier_attempts(job_ids: list[int], exclude: list[int]) -> dict[int, int]:
    """GPU-seconds reported by the jobs' earlier (lost) assignments."""
    return dict(
        Assignment.objects.filter(job_id__in=job_ids).exclude(id__in=exclude)
        .values_list("job_id").annotate(s=Sum("gpu_seconds")).order_by()
    )


def budget_gpu_seconds(a: Assignment) -> int:
    """What this run may bill: gpu_count x max_duration (what the job's hold covers), less
    what earlier runs of the job reported before they were lost. Every attempt together
    never bills more than the buyer agreed to, and no provider runs unpaid."""
    total = a.gpu_count * a.job.max_duration_s
    if a.job.attempts <= 1:
        return total
    return max(0, total - _earlier_attempts([a.job_id], [a.pk]).get(a.job_id, 0))


def _record_usage(a: Assignment, seq: Any, gpu_seconds: Any, ai_tokens: Any,
                  now: datetime) -> bool:
    """Apply a cumulative report; False when it repeats the last sequence number."""
    # Each figure within its column: seq is an integer column, the others bigint.
    seq = bounded_int(seq, field="seq", maximum=INTEGER_MAX)
    gpu_seconds = bounded_int(gpu_seconds, field="gpu_seconds")
    ai_tokens = bounded_int(ai_tokens or 0, field="ai_tokens")
    if seq == 0:
        raise InvalidInput("seq starts at 1.", fields={"seq": ["Starts at 1."]})
    if seq == a.last_seq:
        return False
    if seq < a.last_seq:
        raise StaleSequence(f"Sequence {seq} is older than the last one received ({a.last_seq}).",
                            fields={"seq": [f"Greater than {a.last_seq}."]})
    if gpu_seconds < a.gpu_seconds or ai_tokens < a.ai_tokens:
        raise InvalidInput("Usage is cumulative: it cannot go down.",
                           fields={"gpu_seconds": [f"At least {a.gpu_seconds}."]})
    budget = budget_gpu_seconds(a)
    usage_check(a, gpu_seconds=gpu_seconds, ai_tokens=ai_tokens, budget_gpu_seconds=budget,
                now=now)
    # Never bill past what the buyer agreed to: gpu_count x max_duration over all attempts.
    gpu_seconds = min(gpu_seconds, budget)
    UsageRecord.objects.create(assignment=a, seq=seq, gpu_seconds=gpu_seconds,
                               ai_tokens=ai_tokens)
    a.last_seq, a.gpu_seconds, a.ai_tokens = seq, gpu_seconds, ai_tokens
    return True


def _mark_running(a: Assignment, now: datetime) -> None:
    if a.state == Assignment.State.PLACED:
        a.state = Assignment.State.RUNNING
        a.started_at = now
        Job.objects.filter(pk=a.job_id, state=Job.State.PLACED).update(
            state=Job.State.RUNNING, started_at=now, updated_at=now)


def usage_report(*, node_id: int, assignment_id: int, seq: Any, gpu_seconds: Any,
                 ai_tokens: Any = 0, image: str = "", image_digest: str = "") -> UsageResult:
    """A running assignment's cumulative usage; an implausible one is refused (409
    usage_implausible) and counted against the node (scheduler.services.plausibility)."""
    with implausible_usage_counted(node_id):
        return _usage_report(node_id=node_id, assignment_id=assignment_id, seq=seq,
                             gpu_seconds=gpu_seconds, ai_tokens=ai_tokens, image=image,
                             image_digest=image_digest)


@money_transaction
def _usage_report(*, node_id: int, assignment_id: int, seq: Any, gpu_seconds: Any,
                  ai_tokens: Any, image: str, image_digest: str) -> UsageResult:
    a = _locked_assignment(node_id, assignment_id)
    if a.state not in ACTIVE_ASSIGNMENT_STATES:
        raise AssignmentClosed(f"Assignment {assignment_id} is {a.state}: stop it.")
    if image:  # what the buyer sees ran (checked by the serializer)
        Job.objects.filter(pk=a.job_id).update(image=image, image_digest=image_digest)
    now = timezone.now()
    changed = _record_usage(a, seq, gpu_seconds, ai_tokens, now)
    _mark_running(a, now)
    a.lease_expires_at = now + timedelta(seconds=settings.SCHEDULER_NODE_TIMEOUT_S)
    a.save(update_fields=["state", "started_at", "last_seq", "gpu_seconds", "ai_tokens",
                          "lease_expires_at"])
    if changed:
        enqueue.usage_settle(assignment_id)
    over = a.gpu_seconds >= budget_gpu_seconds(a)
    return UsageResult(accepted=changed, action="stop" if over else "continue",
                       lease_expires_at=a.lease_expires_at)


@money_transaction
def _finish(node_id: int, assignment_id: int, *, succeeded: bool, seq: Any, gpu_seconds: Any,
            ai_tokens: Any, exit_code: Any, reason: str) -> Assignment:
    a = _locked_assignment(node_id, assignment_id)
    target = Assignment.State.COMPLETED if succeeded else Assignment.State.FAILED
    if a.state == target:
        return a  # a repeated report
    if a.state not in ACTIVE_ASSIGNMENT_STATES:
        raise AssignmentClosed(f"Assignment {assignment_id} is already {a.state}.")
    if exit_code is not None:
        exit_code = bounded_int(exit_code, field="exit_code", minimum=-INTEGER_MAX - 1,
                                maximum=INTEGER_MAX)
    reason = bounded_text(reason, field="reason", max_length=REASON_MAX_CHARS)
    now = timezone.now()
    _record_usage(a, seq, gpu_seconds, ai_tokens, now)
    _mark_running(a, now)
    a.state, a.ended_at, a.exit_code, a.reason = target, now, exit_code, reason[:500]
    a.save(update_fields=["state", "started_at", "ended_at", "exit_code", "reason", "last_seq",
                          "gpu_seconds", "ai_tokens"])
    Node.objects.filter(pk=a.node_id).update(free_gpus=F("free_gpus") + a.gpu_count)
    usage_settle(assignment_ids=[a.pk])
    job = Job.objects.get(pk=a.job_id)
    if job.state in (Job.State.PLACED, Job.State.RUNNING):
        job.state = Job.State.SUCCEEDED if succeeded else Job.State.FAILED
        job.failure_reason = "" if succeeded else reason[:500]
        job.finished_at = now
        job.save(update_fields=["state", "failure_reason", "finished_at", "updated_at"])
        job_hold_release(job)
        job_ended_emit(job)
    enqueue.placement_run()
    return a


def assignment_complete(*, node_id: int, assignment_id: int, seq: Any, gpu_seconds: Any,
                        ai_tokens: Any = 0, exit_code: Any = 0) -> Assignment:
    """The run succeeded; its final usage is checked like any report, and an implausible
    one leaves the run as it was."""
    with implausible_usage_counted(node_id):
        return _finish(node_id, assignment_id, succeeded=True, seq=seq,
                       gpu_seconds=gpu_seconds, ai_tokens=ai_tokens, exit_code=exit_code,
                       reason="")


def assignment_fail(*, node_id: int, assignment_id: int, seq: Any, gpu_seconds: Any,
                    ai_tokens: Any = 0, reason: str = "", exit_code: Any = None) -> Assignment:
    with implausible_usage_counted(node_id):
        return _finish(node_id, assignment_id, succeeded=False, seq=seq,
                       gpu_seconds=gpu_seconds, ai_tokens=ai_tokens, exit_code=exit_code,
                       reason=reason or "the workload failed")


@dataclass(frozen=True)
class LeasedRun:
    """An active assignment as its node must run it."""

    id: int
    job_id: int
    gpu_count: int
    spec: Any
    max_duration_s: int  # what the job's budget has left, per GPU
    lease_expires_at: datetime


@dataclass(frozen=True)
class Lease:
    runs: list[LeasedRun]
    kill: list[int]


# One statement, one round trip: after a placement every node that got work reads its
# lease within a beat. A retried job runs for what its earlier attempts left of its
# maximum duration (budget_gpu_seconds, per GPU); the kill orders are the node's runs
# canceled or lost within the last hour.
_LEASE_SQL = compose("""
SELECT a.{Assignment.id}, a.{Assignment.job}, a.{Assignment.gpu_count}, j.{Job.spec},
       GREATEST(0, j.{Job.max_duration_s}::bigint * a.{Assignment.gpu_count}
           - CASE WHEN j.{Job.attempts} > 1 THEN
           (SELECT COALESCE(sum(e.{Assignment.gpu_seconds}), 0)::bigint FROM {Assignment} AS e
            WHERE e.{Assignment.job} = a.{Assignment.job}
              AND e.{Assignment.id} <> a.{Assignment.id})
           ELSE 0 END) / a.{Assignment.gpu_count},
       a.{Assignment.lease_expires_at}, false
FROM {Assignment} AS a JOIN {Job} AS j ON j.{Job.id} = a.{Assignment.job}
WHERE a.{Assignment.node} = %(node)s
  AND a.{Assignment.state} IN ({Assignment.State.PLACED}, {Assignment.State.RUNNING})
UNION ALL
SELECT a.{Assignment.id}, NULL, NULL, NULL, NULL, NULL, true
FROM {Assignment} AS a
WHERE a.{Assignment.node} = %(node)s
  AND a.{Assignment.state} IN ({Assignment.State.CANCELED}, {Assignment.State.LOST})
  AND a.{Assignment.ended_at} >= %(since)s
ORDER BY 1
""", Assignment, Job)


def node_lease(*, node_id: int) -> Lease:
    """Every active assignment of the node (to start or keep running) and the ones it
    must stop: canceled or lost within the last hour."""
    lease_mark_clear(node_id)
    since = timezone.now() - timedelta(hours=1)
    if connection.vendor != "postgresql":
        return _node_lease_orm(node_id, since)
    with server_bound_cursor() as cursor:
        cursor.execute(_LEASE_SQL, {"node": node_id, "since": since}, prepare=True)
        rows = cursor.fetchall()
    _mark_leased(node_id, rows)
    runs, kill = [], []
    for assignment_id, job_id, gpus, spec, seconds, expires, killed in rows:
        if killed:
            kill.append(assignment_id)
        else:
            runs.append(LeasedRun(assignment_id, job_id, gpus, jsonb_value(spec), seconds,
                                  expires))
    return Lease(runs=runs, kill=kill)


def _mark_leased(node_id: int, rows: list[Any]) -> None:
    """Stamp the node's placed runs read for the first time: a write only when the lease
    carries work (most reads of a large fleet's leases carry none)."""
    if any(not row[-1] for row in rows):
        Assignment.objects.filter(
            node_id=node_id, state=Assignment.State.PLACED, leased_at__isnull=True
        ).update(leased_at=timezone.now())


def _node_lease_orm(node_id: int, since: datetime) -> Lease:
    active = list(
        Assignment.objects.filter(node_id=node_id, state__in=ACTIVE_ASSIGNMENT_STATES)
        .select_related("job").order_by("id")
    )
    _mark_leased(node_id, [(a.pk, False) for a in active])
    retried = [a.job_id for a in active if a.job.attempts > 1]
    earlier = _earlier_attempts(retried, [a.pk for a in active]) if retried else {}
    runs = [
        LeasedRun(a.pk, a.job_id, a.gpu_count, a.job.spec,
                  max(0, a.job.max_duration_s * a.gpu_count - earlier.get(a.job_id, 0))
                  // a.gpu_count, a.lease_expires_at)
        for a in active
    ]
    kill = list(
        Assignment.objects.filter(
            node_id=node_id,
            state__in=(Assignment.State.CANCELED, Assignment.State.LOST),
            ended_at__gte=since,
        ).order_by("id").values_list("id", flat=True)
    )
    return Lease(runs=runs, kill=kill)
