"""Lending under real concurrency: threads with their own PostgreSQL connections,
committing for real."""

from collections import Counter
from datetime import UTC, date, datetime

import pytest
import time_machine
from django.db import connection

from banking.errors import CreditLimitExceeded, InsufficientFunds, LoanClosed
from banking.models import Installment, Loan, Transfer
from banking.models.ledger import AccountPurpose
from banking.services.ledger import grant_post, system_account
from banking.services.lending import (
    credit_line_set,
    installments_collect,
    loan_originate,
    loan_prepay,
)
from core.errors import InvalidInput
from tests.banking.lending.conftest import balances
from tests.concurrency import run_threads

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.xdist_group("pg-concurrency"),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL row locks"),
]


def test_10_threads_on_a_line_that_fits_4_loans_get_exactly_4(make_org):
    org = make_org()
    credit_line_set(organization_id=org.pk, limit=4_000_000, apr_bps=1200, max_term_months=12)
    bank = system_account(AccountPurpose.BANK_CAPACITY)

    def borrow(i: int) -> object:
        return loan_originate(organization_id=org.pk, principal=1_000_000, term_months=12,
                              reference=f"block:{i}", pay_to_account_id=bank.pk,
                              idempotency_key=f"race-{i}")

    results = run_threads(10, borrow)
    outcomes = Counter(type(r).__name__ for r in results)
    assert outcomes == {"Loan": 4, "CreditLimitExceeded": 6}
    assert all(r.code == "credit_limit_exceeded"
               for r in results if isinstance(r, CreditLimitExceeded))
    assert Loan.objects.filter(organization=org).count() == 4
    assert Installment.objects.filter(loan__organization=org).count() == 48
    assert balances(org)[AccountPurpose.CREDIT] == -4_000_000


def test_8_threads_with_one_key_make_one_loan(make_org):
    org = make_org()
    credit_line_set(organization_id=org.pk, limit=4_000_000, apr_bps=1200, max_term_months=12)
    bank = system_account(AccountPurpose.BANK_CAPACITY)

    def borrow(i: int) -> object:
        return loan_originate(organization_id=org.pk, principal=1_000_000, term_months=12,
                              reference="block:1", pay_to_account_id=bank.pk,
                              idempotency_key="same-key").pk

    results = run_threads(8, borrow)
    assert len(set(results)) == 1 and isinstance(results[0], int)
    assert Loan.objects.count() == 1
    assert Transfer.objects.filter(kind="loan").count() == 1
    assert balances(org)[AccountPurpose.CREDIT] == -1_000_000


def test_collectors_and_prepayments_racing_pay_each_installment_once(make_org):
    org = make_org()
    credit_line_set(organization_id=org.pk, limit=4_000_000, apr_bps=1200, max_term_months=12)
    bank = system_account(AccountPurpose.BANK_CAPACITY)
    loan = loan_originate(organization_id=org.pk, principal=1_000_000, term_months=12,
                          reference="block:1", pay_to_account_id=bank.pk,
                          idempotency_key="l", first_due=date(2027, 1, 15))
    grant_post(organization_id=org.pk, amount=3 * 88_849, reason="funds")

    def work(i: int) -> object:
        if i % 2 == 0:
            return installments_collect(today=date(2027, 2, 15)).paid
        return loan_prepay(organization_id=org.pk, loan_id=loan.pk, amount=88_849,
                           idempotency_key=f"p-{i}").interest

    # the clock is process-wide: travel once, around all the threads
    with time_machine.travel(datetime(2027, 2, 15, 12, tzinfo=UTC), tick=False):
        results = run_threads(8, work)
    unexpected = [r for r in results if isinstance(r, BaseException)
                  and not isinstance(r, InsufficientFunds | InvalidInput | LoanClosed)]
    assert unexpected == []
    paid = Installment.objects.filter(loan=loan, status="paid").count()
    # the wallet held exactly three installments
    assert paid == 3
    assert Transfer.objects.filter(kind="installment").count() >= 1
    assert balances(org)[AccountPurpose.WALLET] == 0
    assert balances(org)[AccountPurpose.CREDIT] == -1_000_000 + 78_849 + 79_637 + 80_434
