"""Deposits are bounded (a horizon to start within, a longest window, the GPUs the node's
agent reports) and advances lend only against the next days' yield of deposits on nodes
with a verified history."""

from datetime import timedelta

import pytest
from django.utils import timezone

from banking.models import Transfer
from marketplace.errors import (
    AdvanceLimitExceeded,
    DepositTooFarAhead,
    DepositTooLong,
    GpusNotReported,
)
from marketplace.models import Advance, CapacityDeposit, InventorySlot
from marketplace.services.advances import advance_create, advance_limit
from marketplace.services.deposits import deposit_create
from scheduler.models import Node
from scheduler.services.jobs import job_submit
from scheduler.services.placement import placement_run
from tests.marketplace.bank.conftest import next_hour, verified_history


def _nothing_made() -> None:
    assert (CapacityDeposit.objects.count(), InventorySlot.objects.count()) == (0, 0)


def test_a_deposit_ten_years_out_is_refused(provider, bank_node):
    node = bank_node(gpus=8)
    start = next_hour(24 * 3650)
    with pytest.raises(DepositTooFarAhead, match="starts within 30 days") as refused:
        deposit_create(provider_id=provider.pk, node_id=node.pk, gpu_count=8, start=start,
                       end=start + timedelta(hours=24))
    assert refused.value.code == "deposit_too_far_ahead"
    _nothing_made()


def test_a_deposit_starting_just_past_the_horizon_is_refused_and_one_inside_accepted(
        provider, bank_node):
    node = bank_node(gpus=8)
    last = timezone.now().replace(minute=0, second=0, microsecond=0) + timedelta(days=30)
    with pytest.raises(DepositTooFarAhead):
        deposit_create(provider_id=provider.pk, node_id=node.pk, gpu_count=8,
                       start=last + timedelta(hours=1), end=last + timedelta(hours=2))
    _nothing_made()
    deposit = deposit_create(provider_id=provider.pk, node_id=node.pk, gpu_count=8,
                             start=last, end=last + timedelta(hours=1))
    assert deposit.start == last


def test_a_deposit_longer_than_90_days_is_refused_and_90_days_accepted(provider, bank_node):
    node = bank_node(gpus=8)
    start = next_hour()
    with pytest.raises(DepositTooLong, match="at most 90 days") as refused:
        deposit_create(provider_id=provider.pk, node_id=node.pk, gpu_count=8, start=start,
                       end=start + timedelta(days=90, hours=1))
    assert refused.value.code == "deposit_too_long"
    _nothing_made()
    deposit = deposit_create(provider_id=provider.pk, node_id=node.pk, gpu_count=8,
                             start=start, end=start + timedelta(days=90))
    assert deposit.intervals == 90 * 24 * 4


def test_a_node_cannot_deposit_more_gpus_than_its_agent_reports(provider, bank_node):
    node = bank_node(gpus=8)
    Node.objects.filter(pk=node.pk).update(gpus_reported=4)
    start = next_hour()
    with pytest.raises(GpusNotReported, match="reports 4 GPUs") as refused:
        deposit_create(provider_id=provider.pk, node_id=node.pk, gpu_count=5, start=start,
                       end=start + timedelta(hours=2))
    assert refused.value.code == "gpus_not_reported"
    Node.objects.filter(pk=node.pk).update(gpus_reported=None)
    with pytest.raises(GpusNotReported, match="reports 0 GPUs"):
        deposit_create(provider_id=provider.pk, node_id=node.pk, gpu_count=1, start=start,
                       end=start + timedelta(hours=2))
    _nothing_made()


def test_the_heartbeats_inventory_is_kept_and_caps_the_work_a_node_gets(
        provider, buyer, online_node, agent_client):
    node = online_node(gpus=8)
    Node.objects.filter(pk=node.pk).update(gpus_reported=None)
    inventory = [{"index": i, "name": "NVIDIA H100 80GB HBM3", "memory_mb": 81559}
                 for i in range(4)]
    response = agent_client(node).post("/api/v1/agent/heartbeat/", {
        "free_gpus": 8, "busy_gpus": 0, "utilization": 0.0, "agent_version": "1.0",
        "gpus": inventory}, format="json")
    assert response.status_code == 200
    assert Node.objects.get(pk=node.pk).gpus_reported == 4
    eight = job_submit(organization_id=buyer.pk, spec={"simulate": {"seconds": 60}},
                       gpu_class="H100-80GB", gpu_count=8, max_duration_s=600)
    threes = [job_submit(organization_id=buyer.pk, spec={"simulate": {"seconds": 60}},
                         gpu_class="H100-80GB", gpu_count=3, max_duration_s=600)
              for _ in range(2)]
    result = placement_run()
    assert result.assignments == [(threes[0].pk, node.pk, 3)]  # 4 reported: one 3-GPU job
    assert {j.pk for j in (eight, threes[1])} == set(
        type(eight).objects.filter(state="queued").values_list("pk", flat=True))


def test_an_advance_needs_days_of_verified_history(provider, bank_node):
    node = bank_node(gpus=2)
    start = next_hour()
    deposit_create(provider_id=provider.pk, node_id=node.pk, gpu_count=2, start=start,
                   end=start + timedelta(hours=4))
    assert advance_limit(provider_id=provider.pk).available == 0
    transfers = Transfer.objects.count()
    with pytest.raises(AdvanceLimitExceeded, match="at most 0 tokens"):
        advance_create(provider_id=provider.pk, amount=1, idempotency_key="a")
    assert (Advance.objects.count(), Transfer.objects.count()) == (0, transfers)
    verified_history(node, days=6)  # one day short
    assert advance_limit(provider_id=provider.pk).available == 0
    verified_history(node, days=7)
    assert advance_limit(provider_id=provider.pk).available > 0


def test_an_advance_lends_half_of_the_next_14_days_yield_only(provider, bank_node, h100):
    node = bank_node(gpus=2)
    verified_history(node)
    start = next_hour()
    deposit = deposit_create(provider_id=provider.pk, node_id=node.pk, gpu_count=2,
                             start=start, end=start + timedelta(days=60))
    # The intervals starting before now + 14 days: 13 days and 23 hours from `start` on
    # (the current hour has started), each 15 minutes.
    now = timezone.now()
    first = 0
    until_s = int((now + timedelta(days=14) - start).total_seconds())
    last = -(-until_s // deposit.interval_s)
    expected = (deposit.total_yield * last // deposit.intervals
                - deposit.total_yield * first // deposit.intervals)
    limit = advance_limit(provider_id=provider.pk)
    assert limit.remaining_expected_yield == expected
    assert expected < deposit.total_yield * 14 // 60 + 2 * h100.deposit_rate
    assert limit.available == expected // 2
    with pytest.raises(AdvanceLimitExceeded):
        advance_create(provider_id=provider.pk, amount=limit.available + 1,
                       idempotency_key="big")
    advance = advance_create(provider_id=provider.pk, amount=limit.available,
                             idempotency_key="ok")
    assert advance.amount == expected // 2
    assert advance_limit(provider_id=provider.pk).available == 0
