"""Compute blocks out of the bank's inventory: buying, racing, selling back, financing."""

from collections import Counter
from datetime import timedelta

import pytest
import time_machine
from django.db import connection

from banking.models import Loan
from banking.models.ledger import AccountPurpose
from banking.selectors import wallet_get
from banking.services.ledger import system_account
from banking.services.lending import credit_line_set
from marketplace.errors import InsufficientInventory, SellBackNotAllowed
from marketplace.models import Block, InventorySlot, SellBack
from marketplace.services.blocks import availability, block_buy, block_quote, block_sell_back
from marketplace.services.deposits import deposit_create
from scheduler.models import Reservation
from scheduler.services.jobs import job_submit
from tests.concurrency import run_threads
from tests.marketplace.bank.conftest import next_hour
from tests.run_clock import run_for


@pytest.fixture
def stocked(provider, bank_node):
    """8 H100s of bank inventory for the next 4 hours (from the next whole hour)."""
    start = next_hour()
    node = bank_node(gpus=8)
    deposit_create(provider_id=provider.pk, node_id=node.pk, gpu_count=8, start=start,
                   end=start + timedelta(hours=4))
    return start


def buy(org, start, gpus, hours=4, key=None, **kw):
    return block_buy(organization_id=org.pk, gpu_class="H100-80GB", gpu_count=gpus,
                     start=start, end=start + timedelta(hours=hours),
                     payment=kw.pop("payment", "wallet"),
                     idempotency_key=key or f"k-{org.pk}-{gpus}-{start:%H}", **kw)


def test_buying_a_block_books_inventory_pays_the_bank_and_reserves(buyer, stocked, h100):
    capacity_before = system_account(AccountPurpose.BANK_CAPACITY).balance
    block = buy(buyer, stocked, 3)
    assert block.price == 3 * 4 * h100.block_rate  # under 24 h: no length discount
    assert wallet_get(organization_id=buyer.pk).available == 10_000_000_000 - block.price
    assert system_account(AccountPurpose.BANK_CAPACITY).balance == capacity_before + block.price
    assert [free for _, free in availability(gpu_class="H100-80GB", start=stocked,
                                             end=stocked + timedelta(hours=4)).slots] == [5] * 4
    reservation = Reservation.objects.get(pk=block.pk)
    assert (reservation.gpu_count, reservation.start) == (3, stocked)
    assert buy(buyer, stocked, 3).pk == block.pk  # same key: bought once


def test_length_discounts_apply_from_a_day(buyer, h100):
    start = next_hour()
    quote = block_quote(organization_id=buyer.pk, gpu_class="H100-80GB", gpu_count=1,
                        start=start, end=start + timedelta(hours=24))
    assert quote.discount_bps == 500
    assert quote.price == 24 * h100.block_rate - 24 * h100.block_rate * 500 // 10_000


def test_beyond_inventory_is_refused_and_nothing_changes(buyer, stocked):
    with pytest.raises(InsufficientInventory, match="8 H100-80GB GPUs free"):
        buy(buyer, stocked, 9)
    assert Block.objects.count() == 0
    assert InventorySlot.objects.filter(booked__gt=0).count() == 0
    assert wallet_get(organization_id=buyer.pk).available == 10_000_000_000


@pytest.mark.django_db(transaction=True)
@pytest.mark.xdist_group("pg-concurrency")
@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL locks")
def test_20_buyers_race_for_the_last_8_gpus_and_exactly_the_fitting_purchases_win(
        make_org, provider, bank_node):
    start = next_hour()
    node = bank_node(gpus=8)
    deposit_create(provider_id=provider.pk, node_id=node.pk, gpu_count=8, start=start,
                   end=start + timedelta(hours=2))
    buyers = [make_org(tokens=10**12) for _ in range(20)]
    sizes = [1, 2, 3] * 6 + [1, 2]  # 40 GPUs asked for 8

    def race(i: int) -> object:
        return buy(buyers[i], start, sizes[i], hours=2, key=f"race-{i}")

    results = run_threads(20, race)
    won = [sizes[i] for i, r in enumerate(results) if isinstance(r, Block)]
    errors = Counter(getattr(r, "code", type(r).__name__) for r in results
                     if not isinstance(r, Block))
    assert set(errors) == {"insufficient_inventory"}
    assert sum(won) <= 8
    # Exactly the fitting purchases win: free GPUs only shrink during the race, so every
    # refused buyer asked for more than what is left at the end.
    lost = [sizes[i] for i, r in enumerate(results) if not isinstance(r, Block)]
    assert all(size > 8 - sum(won) for size in lost)
    booked = list(InventorySlot.objects.values_list("booked", "capacity"))
    assert booked == [(sum(won), 8), (sum(won), 8)]
    assert Block.objects.count() == len(won)
    for i, r in enumerate(results):  # winners paid exactly their price, losers nothing
        paid = r.price if isinstance(r, Block) else 0
        assert wallet_get(organization_id=buyers[i].pk).available == 10**12 - paid


def test_selling_back_the_second_half_returns_it_to_inventory_for_another_buyer(
        buyer, make_org, stocked, settings):
    block = buy(buyer, stocked, 8)
    paid = wallet_get(organization_id=buyer.pk).available
    sell_back = block_sell_back(organization_id=buyer.pk, block_id=block.pk, gpu_count=8,
                                start=stocked + timedelta(hours=2), idempotency_key="sb")
    half = block.price // 2
    assert sell_back.credited == half - half * settings.BANK_SELL_BACK_DISCOUNT_BPS // 10_000
    assert wallet_get(organization_id=buyer.pk).available == paid + sell_back.credited
    assert Reservation.objects.get(pk=block.pk).end == stocked + timedelta(hours=2)
    after = availability(gpu_class="H100-80GB", start=stocked, end=stocked + timedelta(hours=4))
    assert [free for _, free in after.slots] == [0, 0, 8, 8]
    again = block_sell_back(organization_id=buyer.pk, block_id=block.pk, gpu_count=8,
                            start=stocked + timedelta(hours=2), idempotency_key="sb")
    assert again.pk == sell_back.pk
    other = make_org(tokens=10**12)
    resold = buy(other, stocked + timedelta(hours=2), 8, hours=2)
    assert resold.gpu_count == 8


def test_past_time_and_shapes_outside_the_rules_cannot_be_sold_back(buyer, stocked):
    block = buy(buyer, stocked, 4)
    with pytest.raises(SellBackNotAllowed, match="Past time"):
        block_sell_back(organization_id=buyer.pk, block_id=block.pk, gpu_count=4,
                        start=stocked - timedelta(hours=1), idempotency_key="p")
    with pytest.raises(SellBackNotAllowed):
        block_sell_back(organization_id=buyer.pk, block_id=block.pk, gpu_count=2,
                        start=stocked + timedelta(hours=1), idempotency_key="q")
    assert wallet_get(organization_id=buyer.pk).available == 10_000_000_000 - block.price
    assert Reservation.objects.get(pk=block.pk).gpu_count == 4


def test_a_financed_block_gets_exactly_the_quoted_schedule(buyer, stocked, settings):
    credit_line_set(organization_id=buyer.pk, limit=10**11, apr_bps=1200, max_term_months=12)
    quote = block_quote(organization_id=buyer.pk, gpu_class="H100-80GB", gpu_count=2,
                        start=stocked, end=stocked + timedelta(hours=4), payment="financed",
                        term_months=6)
    block = buy(buyer, stocked, 2, payment="financed", term_months=6)
    loan = Loan.objects.get(pk=block.loan_id)
    assert block.down_payment == quote.down_payment == block.price * 2000 // 10_000
    assert loan.principal == quote.financed == block.price - block.down_payment
    assert [(i.due_date, i.principal, i.interest) for i in loan.installments.order_by("number")
            ] == [(r.due_date, r.principal, r.interest) for r in quote.schedule]
    summary = wallet_get(organization_id=buyer.pk)
    assert summary.available == 10_000_000_000 - block.down_payment
    assert summary.credit_used == loan.principal


def test_financing_without_a_credit_line_is_refused_and_nothing_is_reserved(buyer, stocked):
    with pytest.raises(Exception) as info:
        buy(buyer, stocked, 2, payment="financed", term_months=6)
    assert info.value.code == "no_credit_line"  # type: ignore[attr-defined]
    assert Block.objects.count() == 0
    assert InventorySlot.objects.filter(booked__gt=0).count() == 0


def test_jobs_in_a_block_run_first_on_bank_nodes_and_are_not_charged_again(
        buyer, stocked, online_node):
    import time_machine

    from scheduler.models import Assignment, Job
    from scheduler.services.agent import assignment_complete
    from scheduler.services.jobs import job_submit
    from scheduler.services.nodes import node_heartbeat
    from scheduler.services.placement import placement_run

    market = online_node(gpus=8)  # an open-market node of the same class, also free
    block = buy(buyer, stocked, 2)
    paid = wallet_get(organization_id=buyer.pk).available
    with time_machine.travel(stocked + timedelta(minutes=5), tick=False):
        from scheduler.models import Node

        bank = Node.objects.get(mode="bank")
        for n in (bank, market):
            node_heartbeat(node_id=n.pk, free_gpus=8, busy_gpus=0, utilization=0,
                           agent_version="t")
        on_demand = job_submit(organization_id=buyer.pk, spec={"simulate": {"seconds": 5}},
                               gpu_class="H100-80GB", gpu_count=2, max_duration_s=60,
                               priority=10)
        in_block = job_submit(organization_id=buyer.pk, spec={"simulate": {"seconds": 5}},
                              gpu_class="H100-80GB", gpu_count=2, max_duration_s=600,
                              reservation_id=block.pk)
        assert (in_block.hold_amount, in_block.hold_id) == (0, None)
        placement_run()
        in_block.refresh_from_db()
        assert (in_block.state, in_block.node_id) == ("placed", bank.pk)
        assert Job.objects.get(pk=on_demand.pk).state == "placed"
        a = Assignment.objects.get(job=in_block)
        run_for(a, 500)  # 1000 GPU-seconds on its 2 GPUs
        assignment_complete(node_id=bank.pk, assignment_id=a.pk, seq=1, gpu_seconds=1000)
    a.refresh_from_db()
    assert (a.gpu_seconds, a.charged, a.settled_gpu_seconds) == (1000, 0, 1000)
    spent_on_demand = Job.objects.get(pk=on_demand.pk).hold_amount
    assert wallet_get(organization_id=buyer.pk).available == paid - spent_on_demand


def test_inside_the_window_only_later_unused_hours_can_be_sold_back(buyer, stocked, settings):
    """90 minutes into a 4-hour block with a job on it: the current hour and the next are
    refused (past / in use), the last two hours are sold back."""
    block = buy(buyer, stocked, 4)
    with time_machine.travel(stocked + timedelta(minutes=90), tick=False):
        job_submit(organization_id=buyer.pk, spec={"simulate": {"seconds": 60}},
                   gpu_class="H100-80GB", gpu_count=4, max_duration_s=600,
                   reservation_id=block.pk)
        with pytest.raises(SellBackNotAllowed, match="Past time"):
            block_sell_back(organization_id=buyer.pk, block_id=block.pk, gpu_count=4,
                            start=stocked + timedelta(hours=1), idempotency_key="now")
        with pytest.raises(SellBackNotAllowed, match="in use"):
            block_sell_back(organization_id=buyer.pk, block_id=block.pk, gpu_count=4,
                            start=stocked + timedelta(hours=2), idempotency_key="next")
        assert SellBack.objects.count() == 0
        sold = block_sell_back(organization_id=buyer.pk, block_id=block.pk, gpu_count=4,
                               start=stocked + timedelta(hours=3),
                               idempotency_key="later")
    quarter = block.price // 4
    assert sold.credited == quarter - quarter * settings.BANK_SELL_BACK_DISCOUNT_BPS // 10_000
    assert Reservation.objects.get(pk=block.pk).end == stocked + timedelta(hours=3)
    assert list(InventorySlot.objects.order_by("slot_start").values_list("booked", flat=True)
                ) == [4, 4, 4, 0]


def test_a_30_day_block_takes_a_bounded_number_of_queries(buyer, provider, bank_node,
                                                          django_assert_max_num_queries):
    """720 hour slots: one INSERT for the missing rows and one locking SELECT, not one
    statement per hour; the 20 % length discount applies."""
    start = next_hour()
    node = bank_node(gpus=8)
    with django_assert_max_num_queries(30):
        deposit_create(provider_id=provider.pk, node_id=node.pk, gpu_count=8, start=start,
                       end=start + timedelta(hours=720))
    with django_assert_max_num_queries(40):
        block = buy(buyer, start, 2, hours=720)
    assert block.discount_bps == 2000
    assert InventorySlot.objects.filter(booked=2, capacity=8).count() == 720
