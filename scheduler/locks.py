"""Row locks of the scheduler, always in one order: jobs, then assignments, then nodes
(then banking's holds and accounts), each by ascending id."""

from collections.abc import Iterable

from django.db import connection

from scheduler.models import Assignment, Job, Node

PLACEMENT_LOCK_KEY = 0x5CED  # pg advisory lock: one placer at a time


def jobs_lock(ids: Iterable[int]) -> dict[int, Job]:
    return {j.id: j for j in Job.objects.select_for_update().filter(id__in=sorted(set(ids)))
            .order_by("id")}


def assignments_lock(ids: Iterable[int]) -> dict[int, Assignment]:
    return {
        a.id: a
        for a in Assignment.objects.select_for_update(of=("self",))
        .select_related("job")
        .filter(id__in=sorted(set(ids)))
        .order_by("id")
    }


def nodes_lock(ids: Iterable[int]) -> dict[int, Node]:
    return {n.id: n for n in Node.objects.select_for_update().filter(id__in=sorted(set(ids)))
            .order_by("id")}


def placement_lock_try() -> bool:
    """Take the transaction-scoped advisory lock of the placer; False if another placer
    holds it. SQLite (embedded mode) has one writer at a time anyway."""
    if connection.vendor != "postgresql":
        return True
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [PLACEMENT_LOCK_KEY])
        return bool(cursor.fetchone()[0])
