"""Reads of the scheduler, scoped to the caller's organization where they are private."""

from dataclasses import dataclass

from django.db.models import Count, Max, OuterRef, Q, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce

from core.errors import NotFound
from scheduler.models import Assignment, GpuClass, Job, Node
from scheduler.services.node_isolation import container_nodes
from scheduler.standing import node_may_work


@dataclass(frozen=True)
class RegionAvailability:
    region: str
    nodes_online: int
    free_gpus: int
    largest_shape: int  # the most GPUs one job can get right now: free GPUs on one node


def gpu_class_availability() -> dict[int, list[RegionAvailability]]:
    """What any buyer can use now: container nodes only (a node without a runtime runs
    only its own organization's commands, or simulated runs)."""
    rows = (
        Node.objects.filter(container_nodes(), node_may_work(), status=Node.Status.ONLINE,
                            is_approved=True)
        .values("gpu_class_id", "region")
        .annotate(nodes=Count("id"), free=Sum("free_gpus"), largest=Max("free_gpus"))
        .order_by("gpu_class_id", "region")
    )
    out: dict[int, list[RegionAvailability]] = {}
    for r in rows:
        out.setdefault(r["gpu_class_id"], []).append(
            RegionAvailability(r["region"], r["nodes"], r["free"] or 0, r["largest"] or 0)
        )
    return out


def gpu_class_list() -> QuerySet[GpuClass]:
    return GpuClass.objects.order_by("name")


def node_list(*, provider_id: int) -> QuerySet[Node]:
    return (
        Node.objects.filter(provider_id=provider_id)
        .exclude(status=Node.Status.DISABLED)
        .select_related("gpu_class")
        .annotate(
            running=Count("assignments", filter=Q(assignments__state__in=("placed", "running")))
        )
        .order_by("id")
    )


def node_get(*, provider_id: int, node_id: int) -> Node:
    node = node_list(provider_id=provider_id).filter(pk=node_id).first()
    if node is None:
        raise NotFound("Node not found.")
    return node


def job_list(*, organization_id: int, states: list[str] | None = None) -> QuerySet[Job]:
    qs = (
        Job.objects.filter(organization_id=organization_id)
        .select_related("gpu_class", "node")
        .annotate(
            usage_gpu_seconds=Coalesce(Sum("assignments__gpu_seconds"), 0),
            usage_ai_tokens=Coalesce(Sum("assignments__ai_tokens"), 0),
            cost=Coalesce(Sum("assignments__charged"), 0),
            # The latest attempt's steps (a retried job's earlier ones came before).
            placed_at=Max("assignments__created_at"),
            leased_at=Max("assignments__leased_at"),
            # The latest run's exit code: what `suanli jobs wait` exits with.
            exit_code=Subquery(Assignment.objects.filter(job=OuterRef("pk")).order_by("-id")
                               .values("exit_code")[:1]),
        )
        .order_by("-id")
    )
    if states:
        qs = qs.filter(state__in=states)
    return qs


def job_get(*, organization_id: int, job_id: int) -> Job:
    job = job_list(organization_id=organization_id).filter(pk=job_id).first()
    if job is None:
        raise NotFound("Job not found.")
    return job


def job_assignments(*, job_id: int) -> QuerySet[Assignment]:
    return Assignment.objects.filter(job_id=job_id).select_related("node").order_by("id")


def jobs_by_state() -> dict[str, int]:
    return dict(Job.objects.values_list("state").annotate(n=Count("id")).order_by("state"))
