"""A node's reliability: verified uptime and job outcomes over a rolling, exponentially
weighted window, so that it falls with faults and recovers with clean history.

Evidence from the last SCHEDULER_RELIABILITY_WINDOW_DAYS days (30), each piece weighted
by its age a (in days) as w(a) = 0.5 ** (a / H), H = SCHEDULER_RELIABILITY_HALF_LIFE_DAYS
(7):

    good = PRIOR + sum over hours with a heartbeat of w + sum over runs completed of w
    bad  = sum over faults f (NodeFault) of weight(f.kind) * w
    reliability = round(1000 * good / (good + bad))            (per mille, 0..1000)

PRIOR (24: one clean day) makes a new node 1000. Fault weights: went silent 5, lost a
running job 5, missed a bank deposit interval 2, implausible usage 10; a job that fails
by its own exit code is the buyer's, not the node's. A week of clean uptime adds about
120 weighted hours while halving the weight of older faults, so a node recovers.
Placement prefers higher reliability among equally priced, equally fitting nodes; buyers
see it on their jobs' nodes, providers on their nodes."""

from datetime import datetime, timedelta

from django.conf import settings
from django.db.models.functions import TruncHour
from django.utils import timezone

from scheduler.models import Assignment, Node, NodeFault, NodeHeartbeat

PRIOR = 24.0
FAULT_WEIGHTS = {
    NodeFault.Kind.OFFLINE: 5.0,
    NodeFault.Kind.LOST: 5.0,
    NodeFault.Kind.MISSED_INTERVAL: 2.0,
    NodeFault.Kind.IMPLAUSIBLE: 10.0,
}


def _weight(age: timedelta) -> float:
    days = max(0.0, age.total_seconds() / 86400)
    return float(0.5 ** (days / settings.SCHEDULER_RELIABILITY_HALF_LIFE_DAYS))


def reliability_score(good: float, bad: float) -> int:
    return round(1000 * good / (good + bad)) if good + bad > 0 else 1000


def node_reliability_compute(node_id: int, *, now: datetime | None = None) -> int:
    now = now or timezone.now()
    since = now - timedelta(days=settings.SCHEDULER_RELIABILITY_WINDOW_DAYS)
    good = PRIOR
    for hour in (NodeHeartbeat.objects.filter(node_id=node_id, at__gte=since, at__lt=now)
                 .annotate(hour=TruncHour("at")).values_list("hour", flat=True).distinct()):
        good += _weight(now - hour)
    for ended in Assignment.objects.filter(node_id=node_id, state=Assignment.State.COMPLETED,
                                           ended_at__gte=since).values_list("ended_at",
                                                                            flat=True):
        if ended is not None:
            good += _weight(now - ended)
    bad = sum(FAULT_WEIGHTS[NodeFault.Kind(kind)] * _weight(now - at)
              for kind, at in NodeFault.objects.filter(node_id=node_id, at__gte=since,
                                                       at__lt=now + timedelta(seconds=1))
              .values_list("kind", "at"))
    return reliability_score(good, bad)


def node_reliability_refresh(node_id: int, *, now: datetime | None = None) -> int:
    score = node_reliability_compute(node_id, now=now)
    Node.objects.filter(pk=node_id).exclude(reliability=score).update(reliability=score)
    return score


def node_fault_record(*, node_id: int, kind: str, now: datetime | None = None) -> int:
    """Keep a fault of the node and lower its reliability accordingly."""
    now = now or timezone.now()
    NodeFault.objects.create(node_id=node_id, kind=kind, at=now)
    return node_reliability_refresh(node_id, now=now)


def reliability_refresh_all(*, now: datetime | None = None, limit: int = 10_000) -> int:
    """Recompute every node seen in the window (periodic: scores recover with time)."""
    now = now or timezone.now()
    since = now - timedelta(days=settings.SCHEDULER_RELIABILITY_WINDOW_DAYS)
    ids = list(Node.objects.filter(last_heartbeat_at__gte=since).exclude(
        status=Node.Status.DISABLED).order_by("id").values_list("id", flat=True)[:limit])
    for node_id in ids:
        node_reliability_refresh(node_id, now=now)
    return len(ids)
