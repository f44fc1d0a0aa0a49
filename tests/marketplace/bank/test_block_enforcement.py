"""A block is a right to N GPUs during its window, no more: its jobs never hold more than
N GPUs at once, never run past its end, are never charged, and on-demand work gives its
GPUs back to it within one placement cycle."""

from datetime import timedelta

import pytest
import time_machine

from banking.models import Transfer
from banking.selectors import wallet_get
from marketplace.services.blocks import block_buy
from marketplace.services.deposits import deposit_create
from scheduler.errors import QueueFull
from scheduler.models import ACTIVE_ASSIGNMENT_STATES, Assignment, Job
from scheduler.services.agent import assignment_complete, usage_report
from scheduler.services.block_rules import BLOCK_ENDED, PREEMPTED, block_jobs_stop
from scheduler.services.jobs import job_submit
from scheduler.services.nodes import node_heartbeat
from scheduler.services.placement import placement_run
from tests.marketplace.bank.conftest import next_hour
from tests.run_clock import run_for


def _beat(node):
    node_heartbeat(node_id=node.pk, free_gpus=node.gpu_count, busy_gpus=0, utilization=0.0,
                   agent_version="test")


def _block(buyer, provider, node, *, gpus, hours=2):
    start = next_hour()
    deposit_create(provider_id=provider.pk, node_id=node.pk, gpu_count=node.gpu_count,
                   start=start, end=start + timedelta(hours=hours))
    return block_buy(organization_id=buyer.pk, gpu_class="H100-80GB", gpu_count=gpus,
                     start=start, end=start + timedelta(hours=hours), payment="wallet",
                     idempotency_key=f"blk-{gpus}")


def _running_under(block) -> int:
    return sum(Assignment.objects.filter(job__reservation_id=block.pk,
                                         state__in=ACTIVE_ASSIGNMENT_STATES)
               .values_list("gpu_count", flat=True))


def test_a_hundred_one_gpu_jobs_on_a_one_gpu_block(buyer, provider, bank_node):
    node = bank_node(gpus=8)
    block = _block(buyer, provider, node, gpus=1)
    wallet = wallet_get(organization_id=buyer.pk).available
    with time_machine.travel(block.start + timedelta(minutes=1), tick=False):
        _beat(node)
        jobs = [job_submit(organization_id=buyer.pk, spec={"simulate": {"seconds": 600}},
                           gpu_class="H100-80GB", gpu_count=1, max_duration_s=30 * 86400,
                           reservation_id=block.pk) for _ in range(100)]
    # Capped at submission to the block's remaining window (1 h 59 min).
    assert {j.max_duration_s for j in jobs} == {2 * 3600 - 60}
    assert {j.hold_amount for j in jobs} == {0}
    finished = 0
    for minute in range(5, 120, 10):  # a job finishes every ten minutes of the window
        with time_machine.travel(block.start + timedelta(minutes=minute), tick=False):
            _beat(node)
            result = placement_run()
            assert len(result.assignments) <= 1
            assert _running_under(block) == 1  # never more than the block's one GPU
            if minute + 10 < 120:
                running = Assignment.objects.get(job__reservation_id=block.pk,
                                                 state__in=ACTIVE_ASSIGNMENT_STATES)
                run_for(running, 60)
                assignment_complete(node_id=node.pk, assignment_id=running.pk, seq=1,
                                    gpu_seconds=60)
                finished += 1
    with time_machine.travel(block.end + timedelta(seconds=5), tick=False):
        stopped = block_jobs_stop()
        assert placement_run().placed == 0
    assert stopped == 100 - finished
    assert _running_under(block) == 0
    assert Job.objects.filter(reservation_id=block.pk, state="succeeded").count() == finished
    assert set(Job.objects.filter(reservation_id=block.pk, state="canceled")
               .values_list("failure_reason", flat=True)) == {BLOCK_ENDED}
    assert not Assignment.objects.filter(job__reservation_id=block.pk,
                                         ended_at__gt=block.end + timedelta(seconds=5)).exists()
    assert Assignment.objects.filter(job__reservation_id=block.pk).exclude(
        charged=0).count() == 0  # none charged
    assert wallet_get(organization_id=buyer.pk).available == wallet  # no hold, no charge


def test_a_job_wider_than_what_is_left_of_the_block_waits(buyer, provider, bank_node):
    node = bank_node(gpus=8)
    block = _block(buyer, provider, node, gpus=3)
    with time_machine.travel(block.start + timedelta(minutes=1), tick=False):
        _beat(node)
        two = [job_submit(organization_id=buyer.pk, spec={"simulate": {"seconds": 60}},
                          gpu_class="H100-80GB", gpu_count=2, max_duration_s=600,
                          reservation_id=block.pk) for _ in range(2)]
        result = placement_run()
    assert result.assignments == [(two[0].pk, node.pk, 2)]
    assert Job.objects.get(pk=two[1].pk).state == Job.State.QUEUED
    assert _running_under(block) == 2


def test_the_blocks_buyer_gets_its_gpus_within_one_cycle_although_on_demand_filled_the_node(
        buyer, provider, bank_node, make_org):
    node = bank_node(gpus=4)
    block = _block(buyer, provider, node, gpus=2)
    other = make_org(tokens=10**10)
    before = Transfer.objects.count()
    with time_machine.travel(block.start - timedelta(minutes=30), tick=False):
        _beat(node)
        fill = [job_submit(organization_id=other.pk, spec={"simulate": {"seconds": 7200}},
                           gpu_class="H100-80GB", gpu_count=1, max_duration_s=7200)
                for _ in range(4)]
        assert placement_run().placed == 4  # before the window the bank sells its GPUs
    with time_machine.travel(block.start + timedelta(minutes=1), tick=False):
        _beat(node)
        for a in Assignment.objects.filter(job__in=fill):
            usage_report(node_id=node.pk, assignment_id=a.pk, seq=1, gpu_seconds=1800)
        mine = [job_submit(organization_id=buyer.pk, spec={"simulate": {"seconds": 60}},
                           gpu_class="H100-80GB", gpu_count=1, max_duration_s=600,
                           reservation_id=block.pk) for _ in range(2)]
        result = placement_run()
        assert sorted(j for j, _, _ in result.assignments) == sorted(j.pk for j in mine)
        preempted = Assignment.objects.filter(job__in=fill, reason=PREEMPTED)
        assert preempted.count() == 2
        assert set(Job.objects.filter(assignments__in=preempted).values_list(
            "state", flat=True)) == {Job.State.QUEUED}
        # Charged what they used before the preemption, nothing after.
        assert {a.charged for a in preempted} == {
            -(-1800 * fill[0].rate_per_gpu_hour // 3600)}
        # On-demand work does not go back onto the block's GPUs in the window.
        assert placement_run().placed == 0
    assert Transfer.objects.count() > before


def test_a_block_queue_is_bounded(buyer, provider, bank_node, settings):
    settings.SCHEDULER_BLOCK_QUEUE_MAX = 3
    node = bank_node(gpus=8)
    block = _block(buyer, provider, node, gpus=1)
    with time_machine.travel(block.start + timedelta(minutes=1), tick=False):
        for _ in range(3):
            job_submit(organization_id=buyer.pk, spec={"simulate": {"seconds": 60}},
                       gpu_class="H100-80GB", gpu_count=1, max_duration_s=600,
                       reservation_id=block.pk)
        with pytest.raises(QueueFull, match="already has 3 jobs waiting") as refused:
            job_submit(organization_id=buyer.pk, spec={"simulate": {"seconds": 60}},
                       gpu_class="H100-80GB", gpu_count=1, max_duration_s=600,
                       reservation_id=block.pk)
    assert refused.value.code == "block_queue_full"
    assert Job.objects.count() == 3


def test_an_organizations_queue_is_bounded(buyer, online_node, settings):
    settings.SCHEDULER_ORG_QUEUED_MAX = 2
    online_node(gpus=8)
    for _ in range(2):
        job_submit(organization_id=buyer.pk, spec={"simulate": {"seconds": 60}},
                   gpu_class="H100-80GB", gpu_count=1, max_duration_s=600)
    held = wallet_get(organization_id=buyer.pk).held
    with pytest.raises(QueueFull, match="already has 2 jobs queued") as refused:
        job_submit(organization_id=buyer.pk, spec={"simulate": {"seconds": 60}},
                   gpu_class="H100-80GB", gpu_count=1, max_duration_s=600)
    assert refused.value.code == "queue_full"
    assert (Job.objects.count(), wallet_get(organization_id=buyer.pk).held) == (2, held)
