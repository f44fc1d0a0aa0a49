"""Random sequences of lending operations over many days keep the schedule and the ledger
in agreement: credit balance = -unpaid principal; interest income = interest paid."""

import random
from datetime import UTC, date, datetime, timedelta

import pytest
import time_machine
from django.db.models import F, Sum

from banking.models import Installment, Loan
from banking.models.ledger import AccountPurpose
from banking.selectors_lending import lending_verify
from banking.services.ledger import grant_post
from banking.services.lending import (
    credit_line_set,
    installments_collect,
    loan_originate,
    loan_prepay,
    loan_write_off,
)
from core.errors import DomainError
from tests.banking.lending.conftest import system_balance


@pytest.mark.parametrize("seed", range(6))
def test_random_lending_keeps_the_books_in_agreement(make_org, bank_capacity, seed):
    rng = random.Random(seed)
    orgs = [make_org() for _ in range(3)]
    for org in orgs:
        credit_line_set(organization_id=org.pk, limit=rng.choice([500_000, 2_000_000]),
                        apr_bps=rng.choice([0, 999, 1200, 3650]), max_term_months=12)
    income_before = system_balance(AccountPurpose.INTEREST_INCOME)
    day = date(2027, 1, 1)
    for step in range(60):
        day += timedelta(days=rng.randint(1, 12))
        org = rng.choice(orgs)
        op = rng.random()
        with time_machine.travel(datetime(day.year, day.month, day.day, 6, tzinfo=UTC),
                                 tick=False):
            try:
                if op < 0.3:
                    loan_originate(organization_id=org.pk,
                                   principal=rng.randint(1_000, 400_000),
                                   term_months=rng.randint(1, 12), reference=f"block:{step}",
                                   pay_to_account_id=bank_capacity.pk,
                                   idempotency_key=f"m-{seed}-{step}")
                elif op < 0.55:
                    grant_post(organization_id=org.pk, amount=rng.randint(1, 150_000),
                               reason="random funds")
                elif op < 0.8:
                    installments_collect(today=day)
                elif op < 0.95:
                    loan = Loan.objects.filter(organization=org).order_by("?").first()
                    if loan is not None:
                        loan_prepay(organization_id=org.pk, loan_id=loan.pk,
                                    amount=rng.choice([None, rng.randint(1, 300_000)]),
                                    idempotency_key=f"p-{seed}-{step}")
                else:
                    loan = Loan.objects.filter(organization=org).order_by("?").first()
                    if loan is not None:
                        loan_write_off(loan_id=loan.pk)
            except DomainError:
                pass  # refusals are part of the game; they must post nothing
        assert lending_verify() == []
    assert Loan.objects.count() >= 5
    assert Installment.objects.filter(status="paid").count() >= 10
    charged = Installment.objects.filter(status="paid", interest_waived=False).aggregate(
        total=Sum(F("interest")))["total"] or 0
    assert system_balance(AccountPurpose.INTEREST_INCOME) - income_before == charged
