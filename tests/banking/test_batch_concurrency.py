"""The batch form under real concurrency: batches write their rows before they lock
their accounts, so several settle into one hot account at once; a batch sent twice at
the same moment still posts once."""

from collections import Counter

import pytest
from django.db import connection

from banking.errors import InsufficientFunds
from banking.models import Account, Transfer
from banking.models.ledger import AccountPurpose, TransferKind
from banking.selectors import organization_account, wallet_get
from banking.services.ledger import BatchResult, system_account, transfer_spec, transfers_post_batch
from tests.concurrency import run_threads

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.xdist_group("pg-concurrency"),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL row locks"),
]


def _batch(name: str, payers: list[int], revenue: int, size: int, amount: int = 3) -> list:
    return [
        transfer_spec(kind=TransferKind.CAPTURE, idempotency_key=f"{name}-{i}",
                      legs=[(payers[i % len(payers)], -amount), (revenue, amount)])
        for i in range(size)
    ]


def test_eight_batches_into_one_revenue_account_at_once_all_post(make_org):
    orgs = [make_org(tokens=10_000) for _ in range(8)]
    payers = [organization_account(o.pk, AccountPurpose.WALLET).pk for o in orgs]
    revenue = system_account(AccountPurpose.PLATFORM_REVENUE).pk
    start = Account.objects.get(pk=revenue).balance
    batches = [_batch(f"hot{b}", payers, revenue, 200) for b in range(8)]

    results = run_threads(8, lambda i: transfers_post_batch(batches[i]))

    assert [r.posted for r in results if isinstance(r, BatchResult)] == [200] * 8
    assert Account.objects.get(pk=revenue).balance == start + 8 * 200 * 3
    assert Transfer.objects.filter(idempotency_key__startswith="hot").count() == 1_600
    assert [wallet_get(organization_id=o.pk).available for o in orgs] == [10_000 - 600] * 8


def test_one_batch_sent_by_six_callers_at_once_posts_once(make_org):
    orgs = [make_org(tokens=10_000) for _ in range(3)]
    payers = [organization_account(o.pk, AccountPurpose.WALLET).pk for o in orgs]
    revenue = system_account(AccountPurpose.PLATFORM_REVENUE).pk
    start = Account.objects.get(pk=revenue).balance
    specs = _batch("twin", payers, revenue, 300)

    results = run_threads(6, lambda i: transfers_post_batch(specs))

    posted = [r for r in results if isinstance(r, BatchResult)]
    assert len(posted) == 6, results
    assert sorted(r.posted for r in posted) == [0, 0, 0, 0, 0, 300]
    assert all(r.transfer_ids == posted[0].transfer_ids for r in posted)
    assert Transfer.objects.filter(idempotency_key__startswith="twin-").count() == 300
    assert Account.objects.get(pk=revenue).balance == start + 900


def test_concurrent_batches_never_take_a_wallet_below_its_floor(make_org):
    payer = make_org(tokens=1_000)
    wallet = organization_account(payer.pk, AccountPurpose.WALLET).pk
    revenue = system_account(AccountPurpose.PLATFORM_REVENUE).pk
    # Each batch takes 300; only three of the eight fit in 1,000.
    batches = [_batch(f"floor{b}", [wallet], revenue, 100) for b in range(8)]

    results = run_threads(8, lambda i: transfers_post_batch(batches[i]))

    outcomes = Counter(type(r).__name__ for r in results)
    assert outcomes == {"BatchResult": 3, "InsufficientFunds": 5}
    assert all(r.code == "insufficient_funds" for r in results if isinstance(r, InsufficientFunds))
    assert wallet_get(organization_id=payer.pk).available == 100
    assert Transfer.objects.filter(idempotency_key__startswith="floor").count() == 300
