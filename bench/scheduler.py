"""Placement on PostgreSQL: 1,000 nodes (mixed classes, 1-8 GPUs) and 100,000 queued jobs.

Prints placements/s of the placer (goal >= 5,000/s), p99 of one placement cycle as the
scheduler runs them (capacity freed between cycles; goal <= 100 ms), packing utilization
when demand exceeds supply (goal >= 95 % of free GPUs), and, as the anchor in the same
run, a naive placer: one job per transaction with row locks through the ORM.
Last line: one JSON object of the figures.
"""

import argparse
import json
import random
import statistics
import time
from urllib.parse import urlsplit

from bench._scratch import scratch_database, server_url, use_database


def _setup(nodes: int, jobs: int) -> None:
    from django.utils import timezone

    from banking.services.customers import organization_create
    from scheduler.models import GpuClass, Job, Node

    rng = random.Random(42)
    classes = list(GpuClass.objects.all())
    provider = organization_create(name="bench-provider", is_buyer=False, is_provider=True)
    buyers = [organization_create(name=f"bench-buyer-{i}") for i in range(50)]
    now = timezone.now()
    Node.objects.bulk_create([
        Node(provider=provider, name=f"n{i}", gpu_class=classes[i % len(classes)],
             gpu_count=(g := rng.choice([1, 2, 4, 8, 8])), free_gpus=g,
             vram_gb=classes[i % len(classes)].vram_gb, region=rng.choice(["eu", "us"]),
             status=Node.Status.ONLINE, is_approved=True, last_heartbeat_at=now,
             token_prefix=f"b{i:010d}", token_hash="x", reliability=rng.randint(800, 1000))
        for i in range(nodes)
    ], batch_size=2000)
    Job.objects.bulk_create([
        Job(organization=buyers[i % 50], spec={"simulate": {"seconds": 1}},
            gpu_class=(c := classes[rng.randrange(len(classes))]),
            gpu_count=rng.choice([1, 1, 1, 2, 2, 4, 8]), max_duration_s=60,
            priority=rng.choice([0, 0, 0, 1]), rate_per_gpu_hour=c.on_demand_rate,
            turn=i // 50 + 1)  # what submission gives 50 buyers taking turns
        for i in range(jobs)
    ], batch_size=5000)
    from django.db import connection

    with connection.cursor() as cursor:  # what autovacuum does after a bulk load
        cursor.execute("ANALYZE scheduler_job; ANALYZE scheduler_node")


def _reset() -> None:
    from django.db.models import F

    from scheduler.models import Assignment, Job, Node

    Assignment.objects.all().delete()
    Job.objects.update(state=Job.State.QUEUED, node=None, attempts=0)
    Node.objects.update(free_gpus=F("gpu_count"))


def _free_some(share: float, rng: random.Random) -> None:
    """Jobs finish: a share of the running assignments end and give their GPUs back."""
    from django.db.models import F

    from scheduler.models import Assignment, Job, Node

    ids = list(Assignment.objects.filter(state=Assignment.State.PLACED)
               .values_list("id", "node_id", "gpu_count", "job_id"))
    done = rng.sample(ids, int(len(ids) * share))
    per_node: dict[int, int] = {}
    for _, node_id, gpus, _ in done:
        per_node[node_id] = per_node.get(node_id, 0) + gpus
    Assignment.objects.filter(id__in=[d[0] for d in done]).update(
        state=Assignment.State.COMPLETED)
    Job.objects.filter(id__in=[d[3] for d in done]).update(state=Job.State.SUCCEEDED)
    for node_id, gpus in per_node.items():
        Node.objects.filter(pk=node_id).update(free_gpus=F("free_gpus") + gpus)


def naive_place(seconds: float) -> tuple[int, float]:
    """One job per transaction: lock a fitting node through the ORM, check, decrement,
    write the assignment."""
    from datetime import timedelta as td

    from django.db import transaction
    from django.db.models import F
    from django.utils import timezone

    from scheduler.models import Assignment, Job, Node

    placed = 0
    started = time.perf_counter()
    queue = Job.objects.filter(state=Job.State.QUEUED).order_by("-priority", "id").iterator()
    for job in queue:
        if time.perf_counter() - started > seconds:
            break
        with transaction.atomic():
            node = (Node.objects.select_for_update()
                    .filter(gpu_class_id=job.gpu_class_id, status=Node.Status.ONLINE,
                            free_gpus__gte=job.gpu_count)
                    .order_by("free_gpus", "-reliability").first())
            if node is None:
                continue
            Node.objects.filter(pk=node.pk).update(free_gpus=F("free_gpus") - job.gpu_count)
            Assignment.objects.create(job=job, node=node, gpu_count=job.gpu_count,
                                      rate_per_gpu_hour=job.rate_per_gpu_hour,
                                      lease_expires_at=timezone.now() + td(seconds=30))
            Job.objects.filter(pk=job.pk).update(state=Job.State.PLACED, node=node)
            placed += 1
    return placed, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    nodes, jobs, cycles = (1_000, 100_000, 100) if not args.quick else (1_000, 20_000, 20)
    # Named after DATABASE_URL's database, so that two people benchmarking on one server
    # (each with their own DATABASE_URL) never drop each other's scratch database.
    name = urlsplit(server_url()).path.strip("/") or "suanli"
    with scratch_database(f"{name}_bench_scheduler") as url:
        use_database(url)
        from django.db.models import Sum

        from scheduler.models import Assignment, Node
        from scheduler.services.placement import placement_run

        _setup(nodes, jobs)
        # The placer runs in a Celery worker, which freezes what it has loaded at start
        # (here after the setup too: the objects the setup made are gone by now).
        from config.celery import freeze_what_is_loaded

        freeze_what_is_loaded()
        total_gpus = Node.objects.aggregate(s=Sum("gpu_count"))["s"]
        print(f"setup: {nodes:,} nodes with {total_gpus:,} GPUs, {jobs:,} queued jobs")

        started = time.perf_counter()
        first = placement_run()
        first_s = time.perf_counter() - started
        used = Assignment.objects.aggregate(s=Sum("gpu_count"))["s"] or 0
        rate = first.placed / first_s
        utilization = used / total_gpus
        print(f"placer: {first.placed:,} jobs placed in {first_s * 1000:.0f} ms = "
              f"{rate:,.0f} placements/s (goal >= 5,000)")
        print(f"packing: {used:,} of {total_gpus:,} GPUs assigned = {utilization:.1%} "
              f"(goal >= 95%)")

        rng = random.Random(7)
        durations = []
        for _ in range(cycles):
            _free_some(0.2, rng)
            t = time.perf_counter()
            placement_run()
            durations.append(time.perf_counter() - t)
        durations.sort()
        p99 = durations[min(len(durations) - 1, round(0.99 * (len(durations) - 1)))]
        print(f"cycles: {len(durations)} after 20% of work finished each; median "
              f"{statistics.median(durations) * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms "
              f"(goal <= 100 ms)")

        _reset()
        naive_placed, naive_s = naive_place(5.0 if args.quick else 15.0)
        naive_rate = naive_placed / naive_s
        print(f"anchor: naive placer (one job per transaction, ORM row locks): "
              f"{naive_rate:,.0f} placements/s; the placer is {rate / naive_rate:.0f}x faster")
    print(json.dumps({
        "placements_per_s": round(rate), "cycle_p99_ms": round(p99 * 1000, 1),
        "packing_utilization": round(utilization, 4), "naive_placements_per_s": round(naive_rate),
        "speedup_vs_naive": round(rate / naive_rate, 1), "nodes": nodes, "jobs": jobs,
    }))


if __name__ == "__main__":
    main()
