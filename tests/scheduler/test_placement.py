"""Placement: filters, scores, fairness, and no GPU assigned twice."""

import random
import threading
from collections import Counter
from typing import Any

import pytest
from django.db import connection, connections
from django.db.models import Sum

from scheduler.models import Assignment, Job, Node
from scheduler.services.jobs import job_submit
from scheduler.services.placement import placement_run


def submit(org, **kw):
    args: dict[str, Any] = {"spec": {"simulate": {"seconds": 5}}, "gpu_class": "H100-80GB",
                            "gpu_count": 1, "max_duration_s": 60}
    args.update(kw)
    return job_submit(organization_id=org.pk, **args)


def test_best_fit_puts_a_job_on_the_node_it_fills_most(buyer, online_node):
    online_node(gpus=8)
    four = online_node(gpus=4)
    job = submit(buyer, gpu_count=3)
    placement_run()
    job.refresh_from_db()
    assert (job.state, job.node_id) == ("placed", four.pk)
    assert Node.objects.get(pk=four.pk).free_gpus == 1


def test_the_cheapest_node_wins_over_a_better_fit(buyer, online_node, h100):
    online_node(gpus=2)
    cheap = online_node(gpus=8, rate_per_gpu_hour=h100.min_rate)
    job = submit(buyer, gpu_count=2)
    placement_run()
    job.refresh_from_db()
    assert job.node_id == cheap.pk
    assert Assignment.objects.get(job=job).rate_per_gpu_hour == h100.min_rate


def test_filters_class_vram_region_and_price_cap(buyer, online_node, h100):
    online_node(gpu_class="A100-80GB", gpus=8)
    online_node(gpus=8, region="us-east")
    online_node(gpus=8, region="eu-west", vram_gb=40)
    pricey = online_node(gpus=8, region="eu-west", rate_per_gpu_hour=h100.max_rate)
    job = submit(buyer, regions=["eu-west"], min_vram_gb=80,
                 max_price_per_gpu_hour=h100.on_demand_rate)
    placement_run()
    job.refresh_from_db()
    assert job.state == "queued"  # the only eu-west 80 GB node is over the cap
    assert Node.objects.get(pk=pricey.pk).free_gpus == 8


def test_only_online_approved_nodes_take_work(buyer, online_node):
    node = online_node(gpus=8)
    Node.objects.filter(pk=node.pk).update(status=Node.Status.DRAINING)
    job = submit(buyer)
    assert placement_run().placed == 0
    job.refresh_from_db()
    assert job.state == "queued"


def test_round_robin_across_organizations_within_a_priority(make_org, online_node):
    online_node(gpus=4)
    greedy, modest = make_org(tokens=10**12), make_org(tokens=10**12)
    greedy_jobs = [submit(greedy) for _ in range(6)]
    modest_jobs = [submit(modest) for _ in range(2)]
    placement_run()
    placed = Counter(Job.objects.filter(state="placed").values_list("organization_id",
                                                                     flat=True))
    assert placed == {greedy.pk: 2, modest.pk: 2}
    assert all(Job.objects.get(pk=j.pk).state == "placed" for j in modest_jobs)
    assert Job.objects.get(pk=greedy_jobs[0].pk).state == "placed"


def test_higher_priority_goes_first(buyer, online_node):
    online_node(gpus=1)
    low = submit(buyer, priority=0)
    high = submit(buyer, priority=5)
    placement_run()
    assert Job.objects.get(pk=high.pk).state == "placed"
    assert Job.objects.get(pk=low.pk).state == "queued"


def test_a_job_that_does_not_fit_now_waits_and_smaller_ones_backfill(buyer, online_node):
    online_node(gpus=4)
    big = submit(buyer, gpu_count=8) if False else None  # 8 > every node: refused at submit
    three = submit(buyer, gpu_count=3)
    two = submit(buyer, gpu_count=2)
    one = submit(buyer, gpu_count=1)
    placement_run()
    assert big is None
    states = {j.pk: Job.objects.get(pk=j.pk).state for j in (three, two, one)}
    assert states == {three.pk: "placed", two.pk: "queued", one.pk: "placed"}


def _backlog(org, n: int, **kw: Any) -> None:
    """n queued jobs straight into the table (no holds: placement does not look at them)."""
    from scheduler.models import GpuClass

    cls = GpuClass.objects.get(name="H100-80GB")
    Job.objects.bulk_create([
        Job(organization=org, spec={"simulate": {"seconds": 1}}, gpu_class=cls, gpu_count=1,
            max_duration_s=60, rate_per_gpu_hour=cls.on_demand_rate, turn=k + 1, **kw)
        for k in range(n)
    ])


def test_a_deep_backlog_of_one_buyer_does_not_push_another_buyer_out_of_the_cycle(
    make_org, online_node
):
    """The placer reads a page sized by free capacity (here 2 x 4 + 100 jobs); the late
    buyer's job gets the turn at the head of the queue, so it is in the first page."""
    online_node(gpus=4)
    greedy, late = make_org(tokens=10**12), make_org(tokens=10**12)
    _backlog(greedy, 500)
    late_job = submit(late)

    placement_run()

    placed = Counter(Job.objects.filter(state="placed").values_list("organization_id",
                                                                     flat=True))
    assert placed == {greedy.pk: 3, late.pk: 1}
    assert Job.objects.get(pk=late_job.pk).state == "placed"


def test_jobs_that_fit_behind_a_page_of_jobs_that_do_not_are_placed(buyer, online_node):
    """Head-of-line: 500 older jobs want a region no node is in; the next page is read
    while GPUs are left, and the job that fits is placed in the same cycle."""
    online_node(gpus=4, region="eu-west")
    _backlog(buyer, 500, regions=["ap-south"])
    fits = submit(buyer, regions=["eu-west"])

    result = placement_run()

    assert Job.objects.get(pk=fits.pk).state == "placed"
    assert result.placed == 1
    assert result.considered == 501


@pytest.mark.django_db(transaction=True)
@pytest.mark.xdist_group("pg-concurrency")
@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL")
def test_four_placers_200_nodes_5000_jobs_never_assign_a_gpu_twice(make_org, online_node):
    rng = random.Random(5)
    for _ in range(200):
        online_node(gpus=rng.choice([1, 2, 4, 8]))
    total_gpus = Node.objects.aggregate(s=Sum("gpu_count"))["s"]
    buyers = [make_org(tokens=10**13) for _ in range(5)]
    from scheduler.models import GpuClass

    cls = GpuClass.objects.get(name="H100-80GB")
    Job.objects.bulk_create([
        Job(organization=buyers[i % 5], spec={"simulate": {"seconds": 1}}, gpu_class=cls,
            gpu_count=rng.choice([1, 1, 2, 4]), max_duration_s=60,
            rate_per_gpu_hour=cls.on_demand_rate)
        for i in range(5000)
    ])

    errors = []

    def placer() -> None:
        try:
            for _ in range(3):
                placement_run()
        except Exception as exc:  # asserted below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=placer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    used = dict(Assignment.objects.values_list("node_id").annotate(s=Sum("gpu_count")))
    for node in Node.objects.all():
        assert used.get(node.pk, 0) + node.free_gpus == node.gpu_count
        assert used.get(node.pk, 0) <= node.gpu_count
    assert Assignment.objects.count() == Job.objects.filter(state="placed").count()
    assert Assignment.objects.values("job_id").distinct().count() == Assignment.objects.count()
    # every job that fits was placed: no node has room left for the smallest queued job
    smallest = Job.objects.filter(state="queued").order_by("gpu_count").first()
    if smallest is not None:
        assert not Node.objects.filter(free_gpus__gte=smallest.gpu_count).exists()
    assert sum(used.values()) <= total_gpus


def test_a_submission_takes_the_turn_after_its_organizations_last_never_before_the_head(
    make_org, online_node
):
    online_node(gpus=2)
    a, b, c = make_org(tokens=10**12), make_org(tokens=10**12), make_org(tokens=10**12)
    a_jobs = [submit(a) for _ in range(4)]
    b_jobs = [submit(b) for _ in range(2)]
    assert [j.turn for j in a_jobs] == [1, 2, 3, 4]
    assert [j.turn for j in b_jobs] == [1, 2]

    placement_run()  # a's and b's first jobs take the 2 GPUs: the head is now turn 2
    late = submit(c)
    other_priority = submit(c, priority=1)

    assert late.turn == 2
    assert other_priority.turn == 1
