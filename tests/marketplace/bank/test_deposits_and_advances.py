"""Capacity deposits earn availability yield for verified online intervals; advances
are repaid from accruals first and fall due at once on a default."""

from datetime import timedelta

import pytest
import time_machine

from banking.errors import IdempotencyConflict
from banking.models.ledger import AccountPurpose
from banking.selectors import wallet_get
from banking.services.ledger import system_account
from marketplace.errors import AdvanceLimitExceeded, DepositOverlap, NodeNotInBankMode
from marketplace.models import Advance, CapacityDeposit, InventorySlot, YieldAccrual
from marketplace.services.advances import advance_create, advance_limit
from marketplace.services.blocks import block_buy
from marketplace.services.deposits import deposit_create, interval_yield, yield_accrue
from scheduler.models import Node, NodeHeartbeat
from scheduler.services.nodes import node_heartbeat
from tests.concurrency import run_threads
from tests.marketplace.bank.conftest import beat_every_minute, next_hour, verified_history


def test_interval_yields_are_whole_tokens_that_sum_to_the_total():
    assert sum(interval_yield(1_000_003, 7, i) for i in range(7)) == 1_000_003
    assert {interval_yield(800, 8, i) for i in range(8)} == {100}


def test_a_deposit_online_half_its_window_earns_exactly_half(provider, bank_node, h100,
                                                            settings):
    settings.BANK_DEFAULT_MISSED_SHARE = 0.5  # missing half is tolerated here
    node = bank_node(gpus=4)
    start = next_hour()
    deposit = deposit_create(provider_id=provider.pk, node_id=node.pk, gpu_count=4,
                             start=start, end=start + timedelta(hours=2))
    assert deposit.total_yield == 4 * h100.deposit_rate * 2
    assert deposit.intervals == 8
    beat_every_minute(node, start, start + timedelta(hours=1))  # online the first hour only
    run = yield_accrue(now=start + timedelta(hours=2, minutes=1))
    assert (run.paid, run.missed) == (4, 4)
    deposit.refresh_from_db()
    assert deposit.earned == deposit.total_yield // 2
    assert deposit.missed_yield == deposit.total_yield // 2
    assert wallet_get(organization_id=provider.pk).available == deposit.total_yield // 2
    assert Node.objects.get(pk=node.pk).faults.filter(kind="missed_interval").count() == 4
    assert Node.objects.get(pk=node.pk).reliability < 1000
    assert yield_accrue(now=start + timedelta(hours=3)).intervals == 0  # safe to run twice
    assert YieldAccrual.objects.filter(deposit=deposit).count() == 8
    assert deposit.status == "completed"


def test_deposits_join_the_inventory_and_cannot_oversubscribe_a_node(provider, bank_node):
    node = bank_node(gpus=8)
    start = next_hour()
    deposit_create(provider_id=provider.pk, node_id=node.pk, gpu_count=6, start=start,
                   end=start + timedelta(hours=3))
    assert list(InventorySlot.objects.order_by("slot_start").values_list("capacity", flat=True)
                ) == [6, 6, 6]
    with pytest.raises(DepositOverlap, match="already has 6 of its 8"):
        deposit_create(provider_id=provider.pk, node_id=node.pk, gpu_count=3,
                       start=start + timedelta(hours=2), end=start + timedelta(hours=4))
    assert CapacityDeposit.objects.count() == 1
    assert InventorySlot.objects.count() == 3


@pytest.mark.parametrize("case", ["past", "reversed", "market_node", "half_hour"])
def test_bad_deposits_are_refused_and_nothing_is_deposited(provider, bank_node, online_node,
                                                           case):
    node = online_node() if case == "market_node" else bank_node()
    start = next_hour()
    window = {
        "past": (start - timedelta(hours=3), start - timedelta(hours=1)),
        "reversed": (start + timedelta(hours=2), start),
        "market_node": (start, start + timedelta(hours=1)),
        "half_hour": (start + timedelta(minutes=30), start + timedelta(hours=2)),
    }[case]
    with pytest.raises((NodeNotInBankMode, Exception)) as info:
        deposit_create(provider_id=provider.pk, node_id=node.pk, gpu_count=1,
                       start=window[0], end=window[1])
    assert info.value.code in ("invalid_window", "node_not_in_bank_mode")  # type: ignore[attr-defined]
    assert CapacityDeposit.objects.count() == 0
    assert InventorySlot.objects.count() == 0


def test_an_advance_is_repaid_from_accruals_first(provider, bank_node):
    node = bank_node(gpus=2)
    verified_history(node)
    start = next_hour()
    deposit = deposit_create(provider_id=provider.pk, node_id=node.pk, gpu_count=2,
                             start=start, end=start + timedelta(hours=4))
    limit = advance_limit(provider_id=provider.pk)
    assert limit.available == deposit.total_yield // 2
    with pytest.raises(AdvanceLimitExceeded):
        advance_create(provider_id=provider.pk, amount=limit.available + 1, idempotency_key="a0")
    per_interval = deposit.total_yield // deposit.intervals
    advance = advance_create(provider_id=provider.pk, amount=per_interval * 3 // 2,
                             idempotency_key="a1")
    assert advance_create(provider_id=provider.pk, amount=per_interval * 3 // 2,
                          idempotency_key="a1").pk == advance.pk
    assert wallet_get(organization_id=provider.pk).available == per_interval * 3 // 2
    beat_every_minute(node, start, start + timedelta(hours=1))
    yield_accrue(now=start + timedelta(hours=1))  # four intervals online
    advance.refresh_from_db()
    assert (advance.outstanding, advance.status) == (0, "repaid")
    # 4 intervals earned; 1.5 of them went to repay the advance
    assert wallet_get(organization_id=provider.pk).available == 4 * per_interval
    # the 1.5 intervals withheld stayed in bank_capacity, which had paid the advance
    assert system_account(AccountPurpose.BANK_CAPACITY).balance == -4 * per_interval


def test_a_defaulted_deposit_makes_the_unpaid_advance_owed_at_once(provider, bank_node):
    node = bank_node(gpus=2)
    verified_history(node)
    start = next_hour()
    deposit_create(provider_id=provider.pk, node_id=node.pk, gpu_count=2, start=start,
                   end=start + timedelta(hours=4))
    advance = advance_create(provider_id=provider.pk, amount=1_000_000, idempotency_key="a")
    with time_machine.travel(start + timedelta(hours=2), tick=False):
        run = yield_accrue()  # silent for 8 of 16 intervals: defaulted after the 5th
    assert run.defaulted == 1
    advance.refresh_from_db()
    assert (advance.status, advance.outstanding) == ("defaulted", 0)
    summary = wallet_get(organization_id=provider.pk)
    assert (summary.available, summary.debt, summary.owed) == (1_000_000, 1_000_000, 1_000_000)
    assert Advance.objects.get(pk=advance.pk).status == "defaulted"


def test_a_defaulted_deposit_leaves_the_inventory_but_keeps_what_was_sold(provider, buyer,
                                                                          bank_node):
    node = bank_node(gpus=4)
    start = next_hour()
    deposit = deposit_create(provider_id=provider.pk, node_id=node.pk, gpu_count=4,
                             start=start, end=start + timedelta(hours=4))
    block_buy(organization_id=buyer.pk, gpu_class="H100-80GB", gpu_count=1,
              start=start + timedelta(hours=3), end=start + timedelta(hours=4),
              payment="wallet", idempotency_key="b")
    with time_machine.travel(start + timedelta(hours=2), tick=False):
        assert yield_accrue().defaulted == 1
        yield_accrue()  # twice: withdrawn once
    deposit.refresh_from_db()
    assert (deposit.status, deposit.inventory_withdrawn) == ("defaulted", True)
    # hours 0-2 are past or current and stay; hour 3 keeps the GPU already sold
    assert list(InventorySlot.objects.order_by("slot_start").values_list(
        "capacity", "booked")) == [(4, 0), (4, 0), (4, 0), (1, 1)]


def test_a_reused_idempotency_key_for_another_deposit_is_a_conflict(provider, bank_node):
    node = bank_node(gpus=2)
    start = next_hour()
    deposit_create(provider_id=provider.pk, node_id=node.pk, gpu_count=2, start=start,
                   end=start + timedelta(hours=1), idempotency_key="d")
    with pytest.raises(IdempotencyConflict, match="different deposit"):
        deposit_create(provider_id=provider.pk, node_id=node.pk, gpu_count=1, start=start,
                       end=start + timedelta(hours=1), idempotency_key="d")
    assert CapacityDeposit.objects.count() == 1


def test_advances_lend_only_against_intervals_not_started_yet(provider, bank_node):
    node = bank_node(gpus=2)
    verified_history(node)
    start = next_hour()
    deposit = deposit_create(provider_id=provider.pk, node_id=node.pk, gpu_count=2,
                             start=start, end=start + timedelta(hours=4))
    # 20 minutes in, nothing accrued yet: intervals 0 and 1 have started, 14 of 16 remain
    with time_machine.travel(start + timedelta(minutes=20), tick=False):
        limit = advance_limit(provider_id=provider.pk)
    remaining = deposit.total_yield - deposit.total_yield * 2 // 16
    assert limit.remaining_expected_yield == remaining
    assert limit.available == remaining * 5000 // 10_000


@pytest.mark.parametrize(("silent_minutes", "online"), [(0, True), (1, True), (2, False)])
def test_an_interval_counts_when_heartbeats_cover_at_least_90_percent_of_its_minutes(
        provider, bank_node, silent_minutes, online):
    """15-minute intervals: 14 of 15 minutes with a heartbeat is 93 % (counts), 13 is 87 %
    (missed)."""
    node = bank_node(gpus=1)
    start = next_hour()
    deposit = deposit_create(provider_id=provider.pk, node_id=node.pk, gpu_count=1,
                             start=start, end=start + timedelta(hours=1))
    beat_every_minute(node, start + timedelta(minutes=silent_minutes),
                      start + timedelta(minutes=15))
    run = yield_accrue(now=start + timedelta(minutes=15))
    assert (run.paid, run.missed) == ((1, 0) if online else (0, 1))
    accrual = YieldAccrual.objects.get(deposit=deposit)
    assert accrual.online is online
    expected = interval_yield(deposit.total_yield, 4, 0) if online else 0
    assert wallet_get(organization_id=provider.pk).available == expected


def test_an_advance_left_when_the_last_deposit_ends_is_owed(provider, bank_node, settings):
    settings.BANK_DEFAULT_MISSED_SHARE = 0.75  # 3 of 4 missed: completed, not defaulted
    node = bank_node(gpus=2)
    verified_history(node)
    start = next_hour()
    deposit = deposit_create(provider_id=provider.pk, node_id=node.pk, gpu_count=2,
                             start=start, end=start + timedelta(hours=1))
    advance = advance_create(provider_id=provider.pk, amount=deposit.total_yield // 2,
                             idempotency_key="a")
    beat_every_minute(node, start, start + timedelta(minutes=15))  # 1 of 4 intervals online
    yield_accrue(now=start + timedelta(hours=1))
    deposit.refresh_from_db()
    advance.refresh_from_db()
    assert deposit.status == "completed"
    owed = deposit.total_yield // 2 - interval_yield(deposit.total_yield, 4, 0)
    assert (advance.status, advance.outstanding) == ("defaulted", 0)
    assert wallet_get(organization_id=provider.pk).owed == owed


@pytest.mark.django_db(transaction=True)
@pytest.mark.xdist_group("pg-concurrency")
def test_two_accrual_runs_at_once_pay_each_interval_once(provider, bank_node):
    node = bank_node(gpus=2)
    start = next_hour()
    deposit = deposit_create(provider_id=provider.pk, node_id=node.pk, gpu_count=2,
                             start=start, end=start + timedelta(hours=2))
    beat_every_minute(node, start, start + timedelta(hours=2))
    results = run_threads(4, lambda i: yield_accrue(now=start + timedelta(hours=2)))
    assert sum(r.paid for r in results) == 8  # type: ignore[attr-defined]
    assert YieldAccrual.objects.filter(deposit=deposit).count() == 8
    assert wallet_get(organization_id=provider.pk).available == deposit.total_yield


def test_heartbeats_through_the_scheduler_count_toward_the_yield(provider, bank_node):
    """The real heartbeat path (one row per node and minute) is the evidence."""
    node = bank_node(gpus=1)
    start = next_hour()
    deposit = deposit_create(provider_id=provider.pk, node_id=node.pk, gpu_count=1,
                             start=start, end=start + timedelta(hours=1))
    for minute in range(15):
        for second in (10, 20, 30):  # several beats a minute still make one row
            with time_machine.travel(start + timedelta(minutes=minute, seconds=second),
                                     tick=False):
                node_heartbeat(node_id=node.pk, free_gpus=1, busy_gpus=0, utilization=0.0,
                               agent_version="test")
    assert NodeHeartbeat.objects.filter(node=node).count() == 15
    run = yield_accrue(now=start + timedelta(minutes=15))
    assert (run.paid, run.missed) == (1, 0)
    deposit.refresh_from_db()
    assert deposit.earned == interval_yield(deposit.total_yield, 4, 0)
