"""Agents' usage reports checked against the clock (DESIGN §9): a node cannot bill more
GPU-seconds than its run could have used since it could first have started it.

For an assignment of g GPUs whose node first read it in a lease at t0 (placement, when
that read left no stamp), at time `now`, with S = SCHEDULER_USAGE_SLACK_S:

    gpu_seconds <= min(g * (now - t0 + S), budget + g * S)
    ai_tokens   <= SCHEDULER_AI_TOKENS_PER_GPU_S * that same bound

t0 rather than the run's `started_at`: `started_at` is stamped by the first report that
arrives, and a run whose first reports were lost in an outage really ran before it. The
slack covers the second an agent rounds up and the grace a container is given to stop at
its maximum duration; what a run overruns its budget by is never billed (the budget
clamp in scheduler.services.agent), only tolerated.

A report past the bound is refused whole (409 usage_implausible, nothing recorded) and
counted against the node as an IMPLAUSIBLE fault; a node refused
SCHEDULER_IMPLAUSIBLE_DISABLE_AFTER times within the reliability window is disabled (its
token stops working, its runs' leases lapse and their jobs are placed elsewhere) and
flagged for an operator."""

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from scheduler.errors import UsageImplausible
from scheduler.models import Assignment, Node, NodeFault
from scheduler.services.nodes import node_disable
from scheduler.services.reliability import node_fault_record

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class UsageAllowance:
    """The most a run's cumulative report may claim now."""

    gpu_seconds: int
    ai_tokens: int


def usage_allowance(a: Assignment, *, budget_gpu_seconds: int, now: datetime) -> UsageAllowance:
    slack = settings.SCHEDULER_USAGE_SLACK_S
    since = a.leased_at or a.created_at
    # Whole seconds, rounded down: the agent counts whole seconds too, and the slack
    # absorbs the one it may round past.
    elapsed = max(0, int((now - since).total_seconds()))
    by_clock = a.gpu_count * (elapsed + slack)
    by_budget = budget_gpu_seconds + a.gpu_count * slack
    gpu_seconds = min(by_clock, by_budget)
    return UsageAllowance(gpu_seconds=gpu_seconds,
                          ai_tokens=gpu_seconds * settings.SCHEDULER_AI_TOKENS_PER_GPU_S)


def usage_check(a: Assignment, *, gpu_seconds: int, ai_tokens: int, budget_gpu_seconds: int,
                now: datetime) -> None:
    """Refuse a cumulative report the clock or the run's budget rules out."""
    allowed = usage_allowance(a, budget_gpu_seconds=budget_gpu_seconds, now=now)
    fields: dict[str, list[str]] = {}
    if gpu_seconds > allowed.gpu_seconds:
        fields["gpu_seconds"] = [f"At most {allowed.gpu_seconds} now."]
    if ai_tokens > allowed.ai_tokens:
        fields["ai_tokens"] = [f"At most {allowed.ai_tokens} now."]
    if fields:
        claims = ", ".join(f"{name} {value}" for name, value in
                           (("gpu_seconds", gpu_seconds), ("ai_tokens", ai_tokens))
                           if name in fields)
        raise UsageImplausible(
            f"Assignment {a.pk} cannot have used {claims}: its {a.gpu_count} GPU(s), since "
            f"the node could first have started it and within its budget, allow at most "
            f"{allowed.gpu_seconds} GPU-seconds and {allowed.ai_tokens} AI tokens now. "
            "This report is counted against the node.",
            fields=fields)


@transaction.atomic
def implausible_usage_record(*, node_id: int, now: datetime | None = None) -> bool:
    """Count a refused report against its node; True when that disabled the node."""
    now = now or timezone.now()
    # The node's row first: two refusals at once count one after the other, so the one
    # that reaches the threshold is the one that disables.
    Node.objects.select_for_update().filter(pk=node_id).first()
    node_fault_record(node_id=node_id, kind=NodeFault.Kind.IMPLAUSIBLE, now=now)
    since = now - timedelta(days=settings.SCHEDULER_RELIABILITY_WINDOW_DAYS)
    refusals = NodeFault.objects.filter(node_id=node_id, kind=NodeFault.Kind.IMPLAUSIBLE,
                                        at__gte=since).count()
    if refusals < settings.SCHEDULER_IMPLAUSIBLE_DISABLE_AFTER:
        return False
    disabled = node_disable(node_id=node_id, flag=Node.Flag.IMPLAUSIBLE_USAGE, now=now)
    if disabled:
        logger.warning("node %s disabled: %d implausible usage reports within %d days",
                       node_id, refusals, settings.SCHEDULER_RELIABILITY_WINDOW_DAYS)
    return disabled


@contextmanager
def implausible_usage_counted(node_id: int) -> Iterator[None]:
    """Around a report's own transaction: its refusal rolls that back, and is then
    counted against the node in a transaction of its own, so the count survives."""
    try:
        yield
    except UsageImplausible:
        implausible_usage_record(node_id=node_id)
        raise
