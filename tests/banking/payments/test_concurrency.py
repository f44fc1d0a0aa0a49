"""Fulfilment and payout execution under real concurrency: threads, each with its own
PostgreSQL connection, committing for real."""

from collections import Counter

import pytest
from django.db import connection

from banking.models import Payout, Transfer
from banking.models.ledger import AccountPurpose, TransferKind
from banking.selectors import wallet_get
from banking.services.ledger import system_account
from banking.services.payments import topup_confirm, topup_create, topup_fulfil
from banking.services.payouts import (
    payout_account_set,
    payout_approve,
    payout_execute,
    payout_request,
)
from tests.banking.payments.conftest import balance
from tests.concurrency import run_threads

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.xdist_group("pg-concurrency"),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL row locks"),
]


def test_16_threads_fulfilling_one_paid_top_up_credit_it_once(make_org, fake_gateway):
    org = make_org()
    topup = topup_create(organization_id=org.pk, amount_cents=300, idempotency_key="t")
    assert topup.payment_intent_id is not None
    fake_gateway.payment_intent_confirm(topup.payment_intent_id, payment_method="pm_card_visa")

    def fulfil(i: int) -> object:
        if i % 2:
            return topup_confirm(organization_id=org.pk, topup_id=topup.pk).status
        return topup_fulfil(topup_id=topup.pk).status

    results = run_threads(16, fulfil)
    assert results == ["succeeded"] * 16
    assert Transfer.objects.filter(kind=TransferKind.TOPUP).count() == 1
    assert balance(org) == 10_000_000


def test_8_threads_approving_and_executing_one_payout_pay_it_once(make_org, fake_gateway):
    provider = make_org(provider=True, earned=50_000_000)
    payout_account_set(organization_id=provider.pk, stripe_account_id="acct_p")
    payout = payout_request(organization_id=provider.pk, tokens=20_000_000)
    calls: list[int] = []
    transfer = fake_gateway.payout_transfer_create

    def counted(**kwargs: object) -> object:
        calls.append(1)
        return transfer(**kwargs)

    fake_gateway.payout_transfer_create = counted

    def approve_and_execute(i: int) -> object:
        payout_approve(payout_id=payout.pk)
        return payout_execute(payout_id=payout.pk).status

    results = run_threads(8, approve_and_execute)
    assert [r for r in results if isinstance(r, BaseException)] == []
    assert Counter(results)["paid"] >= 1
    assert Payout.objects.get(pk=payout.pk).status == "paid"
    assert len(calls) == 1  # one claim, one provider call (not the fake's idempotency)
    assert len(fake_gateway.payout_transfers_list(since=None)) == 1
    assert system_account(AccountPurpose.PAYOUT_CLEARING).balance == 20_000_000
    summary = wallet_get(organization_id=provider.pk)
    assert (summary.available, summary.held) == (30_000_000, 0)
