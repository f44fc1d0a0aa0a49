"""Placement: queued jobs onto online nodes, one placer at a time.

Filters (class, free GPUs on one node, VRAM, region, online, price cap, block window),
then scores (lowest price, best fit: fewest GPUs left idle on the node, then
reliability). Order: block jobs first, then priority, then round-robin across
organizations so no buyer starves the others (each job's turn, set at submission: see
`jobs._turn`), then age. Writes are set-based, and the node's free-GPU counter
(CHECK >= 0) makes double allocation impossible in the database.
"""

import bisect
import itertools
from collections import defaultdict, deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from core.database import jsonb_value, server_bound_cursor
from core.sql_names import compose, insert_into
from scheduler.locks import placement_lock_try
from scheduler.models import Assignment, Job, Node
from scheduler.services.block_rules import (
    active_blocks,
    block_gpus_in_use,
    block_preempt,
    block_queue_head,
)
from scheduler.services.inventory import usable_free_gpus
from scheduler.services.lease_hints import leases_changed
from scheduler.standing import node_may_work


@dataclass
class PlacementResult:
    placed: int = 0
    considered: int = 0
    skipped_locked: bool = False
    assignments: list[tuple[int, int, int]] = field(default_factory=list)  # job, node, gpus


@dataclass
class _Node:
    id: int
    gpu_class_id: int
    free: int
    vram_gb: int
    region: str
    rate: int | None
    reliability: int
    bank: bool
    provider_id: int = 0
    isolation: str = Node.Isolation.NONE
    network: str = Node.Network.NONE
    host_execution: bool = False


@dataclass
class _Job:
    id: int
    organization_id: int
    gpu_class_id: int
    gpu_count: int
    min_vram_gb: int
    regions: list[str]
    rate: int
    max_price: int | None
    priority: int
    reservation_id: int | None
    turn: int
    workload: str = Job.Workload.SIMULATED


def _may_run(n: _Node, job: _Job) -> bool:
    """A command runs in a container node (one offering the internet if it asks for it),
    or on the host of a node of the buyer's own whose provider allowed that; never on
    another organization's host (jobs.nodes_for_workload says the same in SQL)."""
    if job.workload == Job.Workload.SIMULATED:
        return True
    if n.isolation == Node.Isolation.CONTAINER:
        return job.workload != Job.Workload.INTERNET or n.network == Node.Network.INTERNET
    return n.host_execution and n.provider_id == job.organization_id


def _order(jobs: list[_Job]) -> list[_Job]:
    """Block jobs first, then by priority; within a priority, organizations take turns
    (each keeps its own oldest-first order)."""
    ordered: list[_Job] = []
    key = lambda j: (j.reservation_id is None, -j.priority)  # noqa: E731
    for _, group in itertools.groupby(sorted(jobs, key=key), key=key):
        per_org: dict[int, deque[_Job]] = defaultdict(deque)
        for job in group:  # already oldest first within the group
            per_org[job.organization_id].append(job)
        queues = deque(per_org.values())
        while queues:
            q = queues.popleft()
            ordered.append(q.popleft())
            if q:
                queues.append(q)
    return ordered


class _Pool:
    """Free capacity of one GPU class, bucketed by free GPUs and, inside a bucket, sorted
    by (price, -reliability): the best fit of a job is the first node that passes the
    filters in each bucket from its size up, so placing a job is a short walk."""

    def __init__(self, nodes: list[_Node], default_rate: int) -> None:
        self.default_rate = default_rate
        self.buckets: dict[int, list[tuple[int, int, int, _Node]]] = defaultdict(list)
        for n in nodes:
            if n.free > 0:
                self.buckets[n.free].append(self._entry(n))
        for bucket in self.buckets.values():
            bucket.sort(key=lambda e: e[:3])
        self.max_free = max(self.buckets, default=0)

    def _entry(self, n: _Node) -> tuple[int, int, int, _Node]:
        rate = n.rate if n.rate is not None else self.default_rate
        return (rate, -n.reliability, n.id, n)

    def withhold_bank(self, gpus: int) -> None:
        """Take up to `gpus` free GPUs of bank nodes out of the pool for the rest of the
        cycle (kept for blocks)."""
        for free in sorted(self.buckets, reverse=True):
            for entry in list(self.buckets.get(free, ())):
                if gpus <= 0:
                    break
                node = entry[3]
                if not node.bank:
                    continue
                self.buckets[free].remove(entry)
                taken = min(gpus, node.free)
                node.free -= taken
                gpus -= taken
                if node.free > 0:
                    bisect.insort(self.buckets[node.free], self._entry(node), key=lambda e: e[:3])
        while self.max_free and not self.buckets.get(self.max_free):
            self.buckets.pop(self.max_free, None)
            self.max_free -= 1

    def take(self, job: _Job, windows: dict[int, bool]) -> _Node | None:
        if job.gpu_count > self.max_free:
            return None
        cap = job.rate if job.max_price is None else min(job.rate, job.max_price)
        best: tuple[int, int, int] | None = None
        chosen: tuple[int, int, int, _Node] | None = None
        for free in range(job.gpu_count, self.max_free + 1):
            for entry in self.buckets.get(free, ()):
                n = entry[3]
                price = n.rate if n.rate is not None else job.rate
                if price > cap or not _may_run(n, job):
                    continue
                if n.vram_gb < job.min_vram_gb or (job.regions and n.region not in job.regions):
                    continue
                if job.reservation_id is not None and not (
                    n.bank and windows.get(job.reservation_id, False)
                ):
                    continue
                score = (price, free - job.gpu_count, -n.reliability)
                if best is None or score < best:
                    best, chosen = score, entry
                break
        if chosen is None:
            return None
        node = chosen[3]
        self.buckets[node.free].remove(chosen)
        node.free -= job.gpu_count
        if node.free > 0:
            bisect.insort(self.buckets[node.free], self._entry(node), key=lambda e: e[:3])
        while self.max_free and not self.buckets.get(self.max_free):
            self.buckets.pop(self.max_free, None)
            self.max_free -= 1
        return node


_JOB_FIELDS = ("id", "organization", "gpu_class", "gpu_count", "min_vram_gb", "regions",
               "rate_per_gpu_hour", "max_price_per_gpu_hour", "priority", "reservation", "turn",
               "workload")
# Above any priority: the first page's bound, so that one prepared statement reads every page.
_FIRST = 2**62
_QUEUE_PAGE = compose(f"""
SELECT {", ".join(f"{{Job.{f}}}" for f in _JOB_FIELDS)} FROM {{Job}}
WHERE {{Job.state}} = {{Job.State.QUEUED}} AND {{Job.gpu_class}} = %(cls)s
  AND {{Job.reservation}} IS NULL AND {{Job.gpu_count}} <= %(max_gpus)s
  AND ({{Job.priority}} < %(priority)s
       OR ({{Job.priority}} = %(priority)s AND ({{Job.turn}}, {{Job.id}}) > (%(turn)s, %(id)s)))
ORDER BY {{Job.priority}} DESC, {{Job.turn}}, {{Job.id}}
LIMIT %(size)s
""", Job)


def _regions(value: Any) -> list[str]:
    # Nearly every job names no region: no decoding for those.
    return [] if value == "[]" else jsonb_value(value) or []


def _queue_page(gpu_class_id: int, *, max_gpus: int, after: "_Job | None",
                size: int) -> list[_Job]:
    """Queued on-demand jobs of a class that one node could still take by size, in placing
    order (priority, then turn: the organizations' fair-queueing order set at submission,
    then age), after `after`. An index walk (job_queue_turn_idx)."""
    if connection.vendor != "postgresql":
        return _queue_page_orm(gpu_class_id, max_gpus=max_gpus, after=after, size=size)
    params = {"cls": gpu_class_id, "max_gpus": max_gpus, "size": size,
              "priority": _FIRST if after is None else after.priority,
              "turn": 0 if after is None else after.turn, "id": 0 if after is None else after.id}
    # Bound on the server and prepared: the ORM's query building was a third of a cycle.
    with server_bound_cursor() as cursor:
        cursor.execute(_QUEUE_PAGE, params, prepare=True)
        rows = cursor.fetchall()
    return [_Job(i, org, cls, gpus, vram, _regions(regions), rate, cap, priority, res, turn, w)
            for i, org, cls, gpus, vram, regions, rate, cap, priority, res, turn, w in rows]


def _queue_page_orm(gpu_class_id: int, *, max_gpus: int, after: "_Job | None",
                    size: int) -> list[_Job]:
    queued = Job.objects.filter(state=Job.State.QUEUED, gpu_class_id=gpu_class_id,
                                reservation__isnull=True, gpu_count__lte=max_gpus)
    if after is not None:
        queued = queued.filter(
            Q(priority__lt=after.priority)
            | Q(priority=after.priority, turn__gt=after.turn)
            | Q(priority=after.priority, turn=after.turn, id__gt=after.id)
        )
    rows = queued.order_by("-priority", "turn", "id").values_list(*_JOB_FIELDS)[:size]
    return [_Job(*row) for row in rows]


def _plan_into(plan: list[tuple[_Job, _Node, int]], pool: "_Pool", jobs: list[_Job],
               windows: dict[int, bool]) -> None:
    """Place `jobs`, already in order, on the pool's nodes; append to `plan`."""
    for job in jobs:
        if pool.max_free == 0:
            return
        node = pool.take(job, windows)
        if node is not None:
            rate = node.rate if node.rate is not None else job.rate
            plan.append((job, node, rate))


def _block_queues(class_ids: list[int], now: datetime
                  ) -> tuple[dict[int, list[_Job]], dict[int, int]]:
    """Per class, the queued jobs of blocks inside their window that could still fit
    (a bounded read per block), and the GPUs each block has left."""
    blocks = active_blocks(class_ids, now)
    in_use = block_gpus_in_use(r for r, _, _ in blocks)
    gpus_left = {rid: gpus - in_use.get(rid, 0) for rid, _, gpus in blocks}
    head = [job_id for rid, left in gpus_left.items() for job_id in block_queue_head(rid, left)]
    blocks_of: dict[int, list[_Job]] = defaultdict(list)
    for row in (Job.objects.filter(pk__in=head).order_by("-priority", "id")
                .values_list(*_JOB_FIELDS)):
        job = _Job(*row)
        blocks_of[job.gpu_class_id].append(job)
    return blocks_of, gpus_left


def _plan_blocks(plan: list[tuple[_Job, _Node, int]], pool: "_Pool", jobs: list[_Job],
                 windows: dict[int, bool], gpus_left: dict[int, int]) -> int:
    """Place block jobs, never more GPUs per block than it has left; returns the GPUs of
    the jobs that fit their block but found no node (they wait, and are owed)."""
    waiting = 0
    for job in jobs:
        assert job.reservation_id is not None
        if job.gpu_count > gpus_left.get(job.reservation_id, 0):
            continue  # the block's GPUs are all in use: it waits in the block's queue
        node = pool.take(job, windows) if pool.max_free else None
        if node is None:
            waiting += job.gpu_count
            continue
        gpus_left[job.reservation_id] -= job.gpu_count
        plan.append((job, node, node.rate if node.rate is not None else job.rate))
    return waiting


def placement_run(*, limit: int | None = None, now: datetime | None = None) -> PlacementResult:
    """One placement cycle. Returns at once, placing nothing, if another placer runs."""
    now = now or timezone.now()
    limit = limit or settings.SCHEDULER_PLACEMENT_BATCH
    result = PlacementResult()
    # Blocks first get the bank GPUs on-demand work took before their window began.
    block_preempt(now=now)
    with transaction.atomic():
        if not placement_lock_try():
            result.skipped_locked = True
            return result
        node_rows = Node.objects.filter(
            node_may_work(), status=Node.Status.ONLINE, is_approved=True, free_gpus__gt=0
        ).values_list("id", "gpu_class_id", "free_gpus", "vram_gb", "region",
                      "rate_per_gpu_hour", "reliability", "mode", "gpu_class__on_demand_rate",
                      "provider_id", "isolation", "network", "host_execution",
                      "gpu_count", "gpus_reported")
        pools: dict[int, list[_Node]] = defaultdict(list)
        default_rates: dict[int, int] = {}
        for (nid, cls, free, vram, region, rate, rel, mode, default_rate,
             provider, isolation, network, host_execution, count, reported) in node_rows:
            free = usable_free_gpus(gpu_count=count, free_gpus=free, gpus_reported=reported)
            pools[cls].append(_Node(nid, cls, free, vram, region, rate, rel,
                                    mode == Node.Mode.BANK, provider, isolation, network,
                                    host_execution))
            default_rates[cls] = default_rate
        if not pools:
            return result
        # Block jobs inside their window first, each block's only as many as GPUs are
        # left to it (scheduler.services.block_rules).
        blocks_of, gpus_left = _block_queues(list(pools), now)
        plan: list[tuple[_Job, _Node, int]] = []
        for cls, nodes in pools.items():
            pool = _Pool(nodes, default_rates[cls])
            blocks = blocks_of.get(cls, [])
            result.considered += len(blocks)
            windows = {j.reservation_id: True for j in blocks if j.reservation_id}
            waiting = _plan_blocks(plan, pool, _order(blocks), windows, gpus_left)
            # GPUs the class's blocks still wait for are kept off on-demand jobs (the
            # preemption before this cycle freed them for the blocks).
            pool.withhold_bank(waiting)
            # Then on-demand jobs, a page at a time in the order they are placed in, so a
            # cycle reads what the capacity it hands out needs, not the whole queue; the
            # next page only while GPUs are left (jobs that fit behind ones that do not).
            # Pages are of jobs no bigger than the largest free shape (it shrinks as
            # capacity fills, and a job skipped for size cannot fit later in the cycle).
            read, last = 0, None
            while pool.max_free and read < limit:
                size = min(limit - read, sum(n.free for n in nodes) + 50)
                page = _queue_page(cls, max_gpus=pool.max_free, after=last, size=size)
                read += len(page)
                _plan_into(plan, pool, page, windows)
                if len(page) < size:
                    break
                last = page[-1]
            result.considered += read
        if plan:
            _apply(plan, now, result)
    return result


def _apply(plan: list[tuple[_Job, _Node, int]], now: datetime, result: PlacementResult) -> None:
    by_job = {job.id: (job, node, rate) for job, node, rate in plan}
    # Only jobs still queued are taken (one canceled meanwhile is left alone).
    taken = _take_jobs({job_id: node.id for job_id, (_, node, _) in by_job.items()}, now)
    used: dict[int, int] = defaultdict(int)
    lease = now + timedelta(seconds=settings.SCHEDULER_NODE_TIMEOUT_S)
    rows = []  # (job, node, gpus, rate): plain tuples, a cycle may write thousands
    for job_id in taken:
        job, node, rate = by_job[job_id]
        used[node.id] += job.gpu_count
        rows.append((job_id, node.id, job.gpu_count, rate))
        result.assignments.append((job_id, node.id, job.gpu_count))
    _take_gpus(used)
    _insert_assignments(rows, lease, now)
    leases_changed(used)
    result.placed = len(taken)


# The counters, the reason and the rest take their db_default.
_INSERT_ASSIGNMENTS = compose(
    f"INSERT INTO {insert_into(Assignment, 'job', 'node', 'gpu_count', 'rate_per_gpu_hour', 'state', 'lease_expires_at', 'created_at')} "  # noqa: E501
    "SELECT j, n, g, r, {Assignment.State.PLACED}, %s, %s FROM unnest("
    "%s::bigint[], %s::bigint[], %s::int[], %s::bigint[]) AS v(j, n, g, r)", Assignment)
_TAKE_GPUS = compose(
    "UPDATE {Node} AS n SET {Node.free_gpus} = n.{Node.free_gpus} - v.used "
    "FROM unnest(%s::bigint[], %s::int[]) AS v(id, used) WHERE n.{Node.id} = v.id", Node)
_TAKE_JOBS = compose(
    "UPDATE {Job} AS j SET {Job.state} = {Job.State.PLACED}, "
    "{Job.attempts} = j.{Job.attempts} + 1, {Job.node} = v.node, {Job.updated_at} = %s "
    "FROM unnest(%s::bigint[], %s::bigint[]) AS v(id, node) "
    "WHERE j.{Job.id} = v.id AND j.{Job.state} = {Job.State.QUEUED} RETURNING j.{Job.id}", Job)


def _insert_assignments(rows: list[tuple[int, int, int, int]], lease: datetime,
                        now: datetime) -> None:
    """One `INSERT ... SELECT FROM unnest(...)` on PostgreSQL, whatever the count."""
    if not rows:
        return
    if connection.vendor != "postgresql":
        Assignment.objects.bulk_create(
            [Assignment(job_id=j, node_id=n, gpu_count=g, rate_per_gpu_hour=r,
                        lease_expires_at=lease) for j, n, g, r in rows], batch_size=2000)
        return
    jobs, nodes, gpus, rates = (list(column) for column in zip(*rows, strict=True))
    with server_bound_cursor() as cursor:
        cursor.execute(_INSERT_ASSIGNMENTS, [lease, now, jobs, nodes, gpus, rates])


def _take_gpus(used: dict[int, int]) -> None:
    """Decrement free GPUs; the CHECK constraint refuses any count below zero, so an
    over-allocation fails the whole cycle instead of double-booking a GPU."""
    if not used:
        return
    if connection.vendor == "postgresql":
        with server_bound_cursor() as cursor:
            cursor.execute(_TAKE_GPUS, [list(used), list(used.values())])
        return
    for node_id, n in used.items():
        Node.objects.filter(pk=node_id).update(free_gpus=F("free_gpus") - n)


def _take_jobs(node_of_job: dict[int, int], now: datetime) -> list[int]:
    """Mark the planned jobs placed on their nodes, those still queued; returns them."""
    if connection.vendor == "postgresql":
        with server_bound_cursor() as cursor:
            cursor.execute(_TAKE_JOBS, [now, list(node_of_job), list(node_of_job.values())])
            return [row[0] for row in cursor.fetchall()]
    taken = list(Job.objects.filter(id__in=list(node_of_job), state=Job.State.QUEUED)
                 .values_list("id", flat=True))
    for job_id in taken:
        Job.objects.filter(pk=job_id).update(state=Job.State.PLACED, node_id=node_of_job[job_id],
                                             attempts=F("attempts") + 1, updated_at=now)
    return taken
