"""The money paths under real concurrency: threads, each with its own PostgreSQL
connection, committing for real."""

import random
import time
from collections import Counter

import pytest
from django.db import connection

from banking.errors import InsufficientFunds
from banking.models import Transfer
from banking.models.ledger import AccountPurpose, TransferKind
from banking.selectors import organization_account, wallet_get
from banking.services.ledger import REFERENCE_ENGINE, posting_engine, transfer_spec
from core.errors import DomainError
from tests.concurrency import run_threads

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.xdist_group("pg-concurrency"),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL row locks"),
]


@pytest.fixture(params=["sql-function", "python"])
def transfer_post(request):
    """Every race runs against both engines of the single-transfer posting service on
    PostgreSQL: the one the vendor chooses (the database function) and the Python
    reference that other databases take."""
    engine = posting_engine("postgresql") if request.param == "sql-function" else REFERENCE_ENGINE
    assert (engine is REFERENCE_ENGINE) == (request.param == "python")

    def post(**spec):
        return engine(transfer_spec(**spec))

    return post


def wallet(org) -> int:
    return organization_account(org.pk, AccountPurpose.WALLET).pk


def test_double_spend_64_threads_spend_10_from_500(make_org, transfer_post):
    payer = make_org(tokens=500)
    payee = make_org()
    src, dst = wallet(payer), wallet(payee)

    def spend(i: int) -> object:
        return transfer_post(kind=TransferKind.TRANSFER, idempotency_key=f"spend-{i}",
                             legs=[(src, -10), (dst, 10)])

    results = run_threads(64, spend)
    outcomes = Counter(type(r).__name__ for r in results)
    assert outcomes == {"Transfer": 50, "InsufficientFunds": 14}
    assert all(r.code == "insufficient_funds" for r in results if isinstance(r, InsufficientFunds))
    assert wallet_get(organization_id=payer.pk).available == 0
    assert wallet_get(organization_id=payee.pk).available == 500


def test_idempotency_storm_32_threads_200_keys_post_200_transfers(make_org, transfer_post):
    payer = make_org(tokens=1_000_000)
    payee = make_org()
    src, dst = wallet(payer), wallet(payee)
    keys = [f"storm-{k}" for k in range(200)]

    def submit(i: int) -> object:
        order = keys[:]
        random.Random(i).shuffle(order)
        ids = {}
        for key in order:
            amount = 1 + int(key.split("-")[1])
            ids[key] = transfer_post(kind=TransferKind.TRANSFER, idempotency_key=key,
                                     legs=[(src, -amount), (dst, amount)]).pk
        return ids

    results = run_threads(32, submit)
    errors = [r for r in results if isinstance(r, BaseException)]
    assert errors == []
    assert Transfer.objects.filter(idempotency_key__startswith="storm-").count() == 200
    # every thread was handed the same transfer for each key
    assert all(r == results[0] for r in results)
    assert wallet_get(organization_id=payee.pk).available == sum(range(1, 201))


def test_lock_order_16_threads_both_ways_among_10_accounts_never_deadlock(make_org, transfer_post):
    orgs = [make_org(tokens=10_000) for _ in range(10)]
    wallets = [wallet(o) for o in orgs]
    deadline = time.monotonic() + 10.0
    posted: Counter[int] = Counter()

    def churn(i: int) -> object:
        rng = random.Random(i)
        failures: list[BaseException] = []
        n = 0
        while time.monotonic() < deadline:
            a, b, c = rng.sample(wallets, 3)
            # three legs in random order: the service must sort its locks itself
            legs = [(a, -rng.randint(21, 60)), (b, rng.randint(1, 20))]
            legs.append((c, -sum(x for _, x in legs)))
            rng.shuffle(legs)
            try:
                transfer_post(kind=TransferKind.TRANSFER, idempotency_key=f"lo-{i}-{n}",
                              legs=legs)
                n += 1
            except InsufficientFunds:
                n += 1
            except DomainError as exc:
                failures.append(exc)
            except Exception as exc:  # a deadlock error reaching us is the failure asserted
                failures.append(exc)
        posted[i] = n
        return failures

    results = run_threads(16, churn)
    assert [r for r in results if r] == []
    assert sum(posted.values()) > 16
    total = sum(wallet_get(organization_id=o.pk).available for o in orgs)
    assert total == 100_000
