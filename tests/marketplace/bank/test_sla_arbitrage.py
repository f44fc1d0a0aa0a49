"""SLA credits without arbitrage: at most the multiple (set in admin, with history) of
what the buyer paid for the undelivered GPU-hours; the deposit that failed forfeits its
yield and owes a penalty equal to the credit, from future yield first, else owed."""

from datetime import timedelta

import pytest
import time_machine

from banking.models import Account, Organization
from banking.models.ledger import AccountPurpose
from banking.selectors import wallet_get
from marketplace.models import CapacityDeposit, SlaCredit, SlaMultiple, SlaPenalty
from marketplace.services.blocks import block_buy
from marketplace.services.deposits import deposit_create, interval_yield, yield_accrue
from marketplace.services.sla import sla_credits_post, sla_multiple_bps
from tests.marketplace.bank.conftest import beat_every_minute, next_hour


def _tokens(*orgs: Organization) -> int:
    """Everything the organizations have or owe: wallets, holds and debts."""
    return sum(Account.objects.filter(
        organization__in=orgs,
        purpose__in=[AccountPurpose.WALLET, AccountPurpose.HELD, AccountPurpose.DEBT],
    ).values_list("balance", flat=True))


@pytest.mark.parametrize("multiple_bps", [10_000, 30_000])
@pytest.mark.parametrize("sla_first", [True, False])
def test_a_colluding_provider_and_buyer_taking_a_bank_node_offline_lose(
        provider, make_org, bank_node, multiple_bps, sla_first):
    colluder = make_org(tokens=10**10)
    SlaMultiple.objects.create(multiple_bps=multiple_bps, note="test")
    node = bank_node(gpus=4)
    start = next_hour()
    before = _tokens(provider, colluder)
    deposit = deposit_create(provider_id=provider.pk, node_id=node.pk, gpu_count=4,
                             start=start, end=start + timedelta(hours=1))
    block = block_buy(organization_id=colluder.pk, gpu_class="H100-80GB", gpu_count=4,
                      start=start, end=start + timedelta(hours=1), payment="wallet",
                      idempotency_key="collude")
    # The node never beats through the block's window.
    after_window = start + timedelta(hours=1, minutes=1)
    steps = [lambda: sla_credits_post(now=after_window), lambda: yield_accrue(now=after_window)]
    for step in steps if sla_first else reversed(steps):
        step()
    credited = sum(SlaCredit.objects.filter(block=block).values_list("amount", flat=True))
    assert credited == block.price * multiple_bps // 10_000  # the multiple of what was paid
    penalties = SlaPenalty.objects.filter(deposit=deposit)
    assert sum(p.amount for p in penalties) == credited
    assert {p.status for p in penalties} == {SlaPenalty.Status.OWED}
    deposit.refresh_from_db()
    assert (deposit.earned, deposit.status) == (0, CapacityDeposit.Status.DEFAULTED)
    after = _tokens(provider, colluder)
    assert after == before - block.price  # together they lost what the block cost
    assert after < before


def test_the_penalty_is_taken_from_the_deposits_future_yield_first(provider, buyer, bank_node):
    node = bank_node(gpus=4)
    start = next_hour()
    deposit = deposit_create(provider_id=provider.pk, node_id=node.pk, gpu_count=4,
                             start=start, end=start + timedelta(hours=1))
    block = block_buy(organization_id=buyer.pk, gpu_class="H100-80GB", gpu_count=4,
                      start=start, end=start + timedelta(hours=1), payment="wallet",
                      idempotency_key="b")
    beat_every_minute(node, start + timedelta(minutes=15), start + timedelta(hours=1))
    sla_credits_post(now=start + timedelta(minutes=16))  # the first interval was missed
    penalty = SlaPenalty.objects.get(deposit=deposit)
    credit = SlaCredit.objects.get(block=block)
    assert (penalty.amount, penalty.outstanding, penalty.status) == (
        credit.amount, credit.amount, SlaPenalty.Status.OPEN)
    yield_accrue(now=start + timedelta(hours=1, minutes=1))
    penalty.refresh_from_db()
    assert (penalty.outstanding, penalty.status) == (0, SlaPenalty.Status.REPAID)
    earned = sum(interval_yield(deposit.total_yield, deposit.intervals, i) for i in (1, 2, 3))
    assert wallet_get(organization_id=provider.pk).available == earned - credit.amount
    assert Account.objects.get(organization=provider, purpose=AccountPurpose.DEBT).balance == 0


def test_the_multiple_is_set_in_admin_with_history(admin_client, provider, buyer, bank_node):
    node = bank_node(gpus=4)
    start = next_hour()
    deposit_create(provider_id=provider.pk, node_id=node.pk, gpu_count=4, start=start,
                   end=start + timedelta(hours=1))
    block = block_buy(organization_id=buyer.pk, gpu_class="H100-80GB", gpu_count=4,
                      start=start, end=start + timedelta(hours=1), payment="wallet",
                      idempotency_key="b")
    assert sla_multiple_bps(start) == 10_000  # the setting, until an admin sets one
    with time_machine.travel(start + timedelta(minutes=20), tick=False):
        response = admin_client.post("/admin/marketplace/slamultiple/add/",
                                     {"multiple_bps": 5000, "note": "half"})
    assert response.status_code == 302
    assert list(SlaMultiple.objects.values_list("multiple_bps", flat=True)) == [5000]
    listed = admin_client.get("/admin/marketplace/slamultiple/").content.decode()
    assert "half" in listed
    # Nobody beats. Each interval is priced at the multiple in force when it started:
    # 1x for those starting at :00 and :15, 0.5x from :30 (set at :20).
    sla_credits_post(now=start + timedelta(minutes=46))
    amounts = list(SlaCredit.objects.filter(block=block).order_by("interval_start")
                   .values_list("amount", flat=True))
    quarter = block.price * 900 // 3600
    assert amounts == [quarter, quarter, quarter * 5000 // 10_000]
    assert all(a <= quarter for a in amounts)  # never above the multiple x what was paid
