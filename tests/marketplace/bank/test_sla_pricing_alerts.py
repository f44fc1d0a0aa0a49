from datetime import timedelta

import pytest
import time_machine
from django.core import mail

from banking.models import Organization
from banking.selectors import wallet_get
from banking.services.ledger import grant_post
from banking.services.lending import credit_line_set, installments_collect, loan_prepay
from core.errors import DomainError
from marketplace.models import Block, PriceHistory, SlaCredit
from marketplace.services.alerts import low_balance_alert_set, low_balance_check
from marketplace.services.blocks import block_buy
from marketplace.services.deposits import deposit_create
from marketplace.services.pricing import prices_adjust
from marketplace.services.sla import shortfall_share, sla_credits_post
from scheduler.models import GpuClass, Job, Node
from scheduler.services.jobs import job_submit
from tests.marketplace.bank.conftest import beat_every_minute, next_hour


def test_an_sla_credit_is_posted_once_per_undelivered_interval(provider, buyer, bank_node,
                                                              settings):
    start = next_hour()
    node = bank_node(gpus=4)
    deposit_create(provider_id=provider.pk, node_id=node.pk, gpu_count=4, start=start,
                   end=start + timedelta(hours=1))
    block = block_buy(organization_id=buyer.pk, gpu_class="H100-80GB", gpu_count=4,
                      start=start, end=start + timedelta(hours=1), payment="wallet",
                      idempotency_key="b")
    after_purchase = wallet_get(organization_id=buyer.pk).available
    # online for the first two 15-minute intervals, then gone
    beat_every_minute(node, start, start + timedelta(minutes=30))
    assert sla_credits_post(now=start + timedelta(minutes=61)) == 2
    assert sla_credits_post(now=start + timedelta(minutes=90)) == 0  # never twice
    credits = list(SlaCredit.objects.filter(block=block).order_by("interval_start"))
    assert [c.interval_start for c in credits] == [start + timedelta(minutes=30),
                                                    start + timedelta(minutes=45)]
    per_interval = block.price * 900 * settings.BANK_SLA_MULTIPLE // 3600  # paid x multiple
    assert [c.amount for c in credits] == [per_interval, per_interval]
    assert wallet_get(organization_id=buyer.pk).available == after_purchase + 2 * per_interval


def test_prices_move_with_utilization_inside_the_bounds_and_are_kept(buyer, online_node):
    node = online_node(gpus=8)
    Node.objects.filter(pk=node.pk).update(free_gpus=0)  # fully busy
    h100 = GpuClass.objects.get(name="H100-80GB")
    moves = prices_adjust()
    assert [(m.gpu_class, m.old, m.new) for m in moves] == [
        ("H100-80GB", h100.on_demand_rate, h100.on_demand_rate * 105 // 100)]
    for _ in range(30):
        prices_adjust()
    assert GpuClass.objects.get(pk=h100.pk).on_demand_rate == h100.max_rate
    history = list(PriceHistory.objects.filter(gpu_class=h100).order_by("id")
                   .values_list("on_demand_rate", flat=True))
    assert history[0] == h100.on_demand_rate * 105 // 100
    assert history[-1] == h100.max_rate


def test_the_price_history_endpoint(client, buyer, online_node):
    online_node(gpus=8)
    prices_adjust()  # idle: the rate steps down
    h100 = GpuClass.objects.get(name="H100-80GB")
    body = client.get(f"/api/v1/gpu-classes/{h100.pk}/price-history/").json()
    assert [r["on_demand_rate"] for r in body["results"]] == [h100.on_demand_rate]
    assert client.get("/api/v1/gpu-classes/999999/price-history/").status_code == 404


def test_sla_checks_stop_once_a_block_is_checked_to_its_end(provider, buyer, bank_node):
    start = next_hour()
    node = bank_node(gpus=2)
    deposit_create(provider_id=provider.pk, node_id=node.pk, gpu_count=2, start=start,
                   end=start + timedelta(hours=1))
    block = block_buy(organization_id=buyer.pk, gpu_class="H100-80GB", gpu_count=2,
                      start=start, end=start + timedelta(hours=1), payment="wallet",
                      idempotency_key="b")
    beat_every_minute(node, start, start + timedelta(hours=1))  # delivered throughout
    assert sla_credits_post(now=start + timedelta(hours=2)) == 0
    block.refresh_from_db()
    assert block.sla_checked_until == start + timedelta(hours=1)
    assert SlaCredit.objects.count() == 0


def test_sla_credit_amount_is_shared_by_blocks_in_proportion(provider, buyer, make_org,
                                                             bank_node, settings):
    """4 GPUs booked by two blocks (3 + 1), only 2 delivered: the 2 missing GPUs are
    split 3:1 by cumulative flooring, 1 and 1, so both are credited."""
    start = next_hour()
    online, offline = bank_node(gpus=2), bank_node(gpus=2)
    for node in (online, offline):
        deposit_create(provider_id=provider.pk, node_id=node.pk, gpu_count=2, start=start,
                       end=start + timedelta(hours=1))
    other = make_org(tokens=10**12)
    big = block_buy(organization_id=buyer.pk, gpu_class="H100-80GB", gpu_count=3, start=start,
                    end=start + timedelta(hours=1), payment="wallet", idempotency_key="big")
    small = block_buy(organization_id=other.pk, gpu_class="H100-80GB", gpu_count=1,
                      start=start, end=start + timedelta(hours=1), payment="wallet",
                      idempotency_key="small")
    beat_every_minute(online, start, start + timedelta(minutes=15))
    assert sla_credits_post(now=start + timedelta(minutes=15)) == 2
    credits = {c.block_id: c for c in SlaCredit.objects.all()}
    assert {pk: c.undelivered_gpus for pk, c in credits.items()} == {big.pk: 1, small.pk: 1}
    assert [credits[big.pk].amount, credits[small.pk].amount] == [
        big.price // 3 * 900 * settings.BANK_SLA_MULTIPLE // 3600,
        small.price * 900 * settings.BANK_SLA_MULTIPLE // 3600]


@pytest.mark.parametrize(("sizes", "delivered", "shares"), [
    ([(1, 3), (2, 1)], 2, [1, 1]),
    ([(1, 4)], 0, [4]),
    ([(1, 2), (2, 2), (3, 2)], 5, [0, 0, 1]),
    ([(1, 5), (2, 5)], 12, [0, 0]),
])
def test_shortfall_shares_are_whole_gpus_that_sum_to_the_shortfall(sizes, delivered, shares):
    assert [shortfall_share(sizes, delivered, rid) for rid, _ in sizes] == shares
    assert sum(shares) == max(0, sum(n for _, n in sizes) - delivered)


def test_a_low_balance_alert_emails_once_until_the_balance_recovers(make_org, settings):
    from django.contrib.auth.models import User

    from banking.services.customers import membership_add
    from banking.services.holds import hold_place

    org = make_org(tokens=1_000)
    membership_add(organization_id=org.pk,
                   user=User.objects.create_user("cfo", "cfo@example.com", "x"), role="owner")
    low_balance_alert_set(organization_id=org.pk, threshold=500)
    assert low_balance_check() == 0
    hold_place(organization_id=org.pk, amount=600, reference="r", idempotency_key="h")
    assert low_balance_check() == 1
    assert low_balance_check() == 0
    assert len(mail.outbox) == 1 and "below 500 tokens" in mail.outbox[0].subject
    assert mail.outbox[0].body == (
        "Your wallet has 400 tokens (< $0.01) available, below the alert threshold of "
        "500 tokens (< $0.01). Top up to keep jobs running.")
    grant_post(organization_id=org.pk, amount=1_000, reason="top up")
    low_balance_check()  # re-armed
    hold_place(organization_id=org.pk, amount=1_200, reference="r", idempotency_key="h2")
    assert low_balance_check() == 1
    assert len(mail.outbox) == 2


def test_missed_installment_delinquency_refuses_jobs_until_paid(buyer, online_node, stocked_day,
                                                                make_org):
    """overdue -> delinquent after the grace period -> job submission refused -> paying
    clears it."""
    online_node(gpus=8)
    credit_line_set(organization_id=buyer.pk, limit=10**11, apr_bps=1200, max_term_months=12)
    block = block_buy(organization_id=buyer.pk, gpu_class="H100-80GB", gpu_count=1,
                      start=stocked_day, end=stocked_day + timedelta(hours=1),
                      payment="financed", term_months=3, idempotency_key="fin")
    assert block.loan is not None
    first = block.loan.installments.order_by("number")[0]
    available = wallet_get(organization_id=buyer.pk).available
    from banking.services.ledger import transfer_post

    sink = make_org()
    transfer_post(kind="transfer", idempotency_key="spent-elsewhere",
                  legs=[(buyer.accounts.get(purpose="wallet").pk, -available),
                        (sink.accounts.get(purpose="wallet").pk, available)])
    # the wallet is empty: the installment cannot be collected
    with time_machine.travel(first.due_date + timedelta(days=1), tick=False):
        installments_collect()
    assert Organization.objects.get(pk=buyer.pk).status == "active"
    first.refresh_from_db()
    block.loan.refresh_from_db()
    assert (first.status, block.loan.status) == ("overdue", "overdue")
    with time_machine.travel(first.due_date + timedelta(days=9), tick=False):
        installments_collect()
        assert Organization.objects.get(pk=buyer.pk).status == "delinquent"
        with pytest.raises(DomainError) as info:
            job_submit(organization_id=buyer.pk, spec={"simulate": {"seconds": 5}},
                       gpu_class="H100-80GB", gpu_count=1, max_duration_s=60)
        assert info.value.code == "organization_delinquent"
        assert Job.objects.filter(organization=buyer).count() == 0
        with pytest.raises(DomainError) as info:  # nor a new block
            block_buy(organization_id=buyer.pk, gpu_class="H100-80GB", gpu_count=1,
                      start=stocked_day, end=stocked_day + timedelta(hours=1),
                      payment="wallet", idempotency_key="while-delinquent")
        assert info.value.code == "organization_delinquent"
        assert Block.objects.filter(organization=buyer).count() == 1
        grant_post(organization_id=buyer.pk, amount=10**10, reason="funds")
        loan_prepay(organization_id=buyer.pk, loan_id=block.loan.pk, amount=None,
                    idempotency_key="pay")
        assert Organization.objects.get(pk=buyer.pk).status == "active"
        job_submit(organization_id=buyer.pk, spec={"simulate": {"seconds": 5}},
                   gpu_class="H100-80GB", gpu_count=1, max_duration_s=60)


@pytest.fixture
def stocked_day(provider, bank_node):
    start = next_hour()
    node = bank_node(gpus=8)
    deposit_create(provider_id=provider.pk, node_id=node.pk, gpu_count=8, start=start,
                   end=start + timedelta(hours=1))
    return start
