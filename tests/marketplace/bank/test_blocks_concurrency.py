"""Financed and wallet purchases race for the same slots: one lock order (organization,
inventory slots, accounts), so no deadlock and no overbooking."""

from collections import Counter
from datetime import timedelta

import pytest
from django.db import connection

from banking.models import Loan
from banking.models.ledger import AccountPurpose
from banking.services.ledger import system_account
from banking.services.lending import credit_line_set
from marketplace.models import Block, InventorySlot
from marketplace.services.blocks import block_buy
from marketplace.services.deposits import deposit_create
from tests.concurrency import run_threads
from tests.marketplace.bank.conftest import next_hour


@pytest.mark.django_db(transaction=True)
@pytest.mark.xdist_group("pg-concurrency")
@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL locks")
def test_financed_and_wallet_buyers_racing_for_8_gpus_get_exactly_8(make_org, provider,
                                                                    bank_node):
    start = next_hour()
    node = bank_node(gpus=8)
    deposit_create(provider_id=provider.pk, node_id=node.pk, gpu_count=8, start=start,
                   end=start + timedelta(hours=3))
    buyers = [make_org(tokens=10**12) for _ in range(20)]
    for org in buyers[::2]:
        credit_line_set(organization_id=org.pk, limit=10**12, apr_bps=1000, max_term_months=6)
    capacity_before = system_account(AccountPurpose.BANK_CAPACITY).balance

    def race(i: int) -> object:
        financed = i % 2 == 0
        return block_buy(organization_id=buyers[i].pk, gpu_class="H100-80GB", gpu_count=1,
                         start=start, end=start + timedelta(hours=3),
                         payment="financed" if financed else "wallet",
                         term_months=3 if financed else None, idempotency_key=f"mixed-{i}")

    results = run_threads(20, race)
    won = [r for r in results if isinstance(r, Block)]
    errors = Counter(getattr(r, "code", type(r).__name__) for r in results
                     if not isinstance(r, Block))
    assert len(won) == 8
    assert errors == Counter({"insufficient_inventory": 12})
    assert list(InventorySlot.objects.values_list("booked", flat=True)) == [8, 8, 8]
    financed = [b for b in won if b.payment == "financed"]
    assert Loan.objects.count() == len(financed)
    # The bank got every price in full: down payments and loans for the financed ones.
    assert (system_account(AccountPurpose.BANK_CAPACITY).balance - capacity_before
            == sum(b.price for b in won))
