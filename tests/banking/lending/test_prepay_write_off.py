"""Prepayment (oldest first, whole installments; full payoff waives future interest) and
write-off (the unpaid principal is booked as a loss)."""

from datetime import UTC, date, datetime

import pytest
import time_machine

from banking.errors import IdempotencyConflict, InsufficientFunds, LoanClosed
from banking.models import Installment, Loan, LoanPrepayment, Transfer
from banking.models.ledger import AccountPurpose
from banking.services.ledger import grant_post
from banking.services.lending import (
    installments_collect,
    loan_originate,
    loan_prepay,
    loan_write_off,
)
from core.errors import InvalidInput, NotFound
from tests.banking.lending.conftest import balances, system_balance

FIRST_DUE = date(2027, 1, 15)


@pytest.fixture
def loan(borrower, bank_capacity):
    return loan_originate(organization_id=borrower.pk, principal=1_000_000, term_months=12,
                          reference="block:12", pay_to_account_id=bank_capacity.pk,
                          idempotency_key="loan-1", first_due=FIRST_DUE)


def on(day):
    return time_machine.travel(datetime(day.year, day.month, day.day, 12, tzinfo=UTC),
                               tick=False)


def statuses(loan):
    return list(Installment.objects.filter(loan=loan).order_by("number")
                .values_list("status", flat=True))


def test_full_prepayment_pays_due_interest_and_waives_future_interest(borrower, loan):
    grant_post(organization_id=borrower.pk, amount=2_000_000, reason="funds")
    income = system_balance(AccountPurpose.INTEREST_INCOME)
    installments_collect(today=FIRST_DUE)  # installment 1 paid
    with on(date(2027, 2, 15)):  # installment 2 due today, not collected yet
        prepayment = loan_prepay(organization_id=borrower.pk, loan_id=loan.pk,
                                 idempotency_key="payoff")
    # installment 2 with its interest (9212) + principal of 3..12, their interest waived
    assert prepayment.principal == 1_000_000 - 78_849
    assert prepayment.interest == 9_212
    assert prepayment.requested_amount is None
    assert Loan.objects.get(pk=loan.pk).status == "paid"
    assert statuses(loan) == ["paid"] * 12
    assert list(Installment.objects.filter(loan=loan, interest_waived=True)
                .values_list("number", flat=True)) == list(range(3, 13))
    assert balances(borrower)[AccountPurpose.CREDIT] == 0
    assert balances(borrower)[AccountPurpose.WALLET] == 2_000_000 - 88_849 - 921_151 - 9_212
    assert system_balance(AccountPurpose.INTEREST_INCOME) == income + 10_000 + 9_212


def test_an_amount_pays_whole_installments_in_order_and_takes_no_more(borrower, loan):
    grant_post(organization_id=borrower.pk, amount=500_000, reason="funds")
    with on(date(2027, 1, 1)):
        prepayment = loan_prepay(organization_id=borrower.pk, loan_id=loan.pk,
                                 amount=200_000, idempotency_key="p1")
    assert (prepayment.principal + prepayment.interest) == 2 * 88_849
    assert statuses(loan)[:3] == ["paid", "paid", "due"]
    assert balances(borrower)[AccountPurpose.WALLET] == 500_000 - 2 * 88_849
    assert Loan.objects.get(pk=loan.pk).status == "active"
    # the collector leaves prepaid installments alone
    assert installments_collect(today=date(2027, 2, 15)).paid == 0


def test_an_amount_above_the_payoff_is_a_full_payoff(borrower, loan):
    grant_post(organization_id=borrower.pk, amount=2_000_000, reason="funds")
    with on(date(2027, 1, 1)):
        prepayment = loan_prepay(organization_id=borrower.pk, loan_id=loan.pk,
                                 amount=1_500_000, idempotency_key="p1")
    assert (prepayment.principal, prepayment.interest) == (1_000_000, 0)
    assert balances(borrower)[AccountPurpose.WALLET] == 1_000_000


def test_prepayment_refusals_post_nothing(borrower, loan, make_org):
    with on(date(2027, 1, 1)):
        with pytest.raises(InsufficientFunds):
            loan_prepay(organization_id=borrower.pk, loan_id=loan.pk, idempotency_key="a")
        grant_post(organization_id=borrower.pk, amount=100_000, reason="funds")
        with pytest.raises(InvalidInput, match="at least the next installment, 88849"):
            loan_prepay(organization_id=borrower.pk, loan_id=loan.pk, amount=88_848,
                        idempotency_key="b")
        with pytest.raises(InvalidInput):
            loan_prepay(organization_id=borrower.pk, loan_id=loan.pk, amount=0,
                        idempotency_key="c")
        other = make_org()
        grant_post(organization_id=other.pk, amount=2_000_000, reason="funds")
        with pytest.raises(NotFound, match="Loan not found"):
            loan_prepay(organization_id=other.pk, loan_id=loan.pk, idempotency_key="d")
    assert LoanPrepayment.objects.count() == 0
    assert Transfer.objects.filter(kind="installment").count() == 0
    assert balances(borrower)[AccountPurpose.WALLET] == 100_000
    assert balances(other)[AccountPurpose.WALLET] == 2_000_000
    assert statuses(loan) == ["due"] * 12


def test_a_prepayment_key_pays_once(borrower, loan):
    grant_post(organization_id=borrower.pk, amount=300_000, reason="funds")
    with on(date(2027, 1, 1)):
        first = loan_prepay(organization_id=borrower.pk, loan_id=loan.pk, amount=100_000,
                            idempotency_key="once")
        again = loan_prepay(organization_id=borrower.pk, loan_id=loan.pk, amount=100_000,
                            idempotency_key="once")
        with pytest.raises(IdempotencyConflict):
            loan_prepay(organization_id=borrower.pk, loan_id=loan.pk, amount=200_000,
                        idempotency_key="once")
    assert again.pk == first.pk
    assert balances(borrower)[AccountPurpose.WALLET] == 300_000 - 88_849


def test_a_paid_loan_takes_no_prepayment(borrower, loan):
    grant_post(organization_id=borrower.pk, amount=2_000_000, reason="funds")
    with on(date(2027, 1, 1)):
        loan_prepay(organization_id=borrower.pk, loan_id=loan.pk, idempotency_key="all")
        with pytest.raises(LoanClosed):
            loan_prepay(organization_id=borrower.pk, loan_id=loan.pk, idempotency_key="more")


def test_a_write_off_books_the_unpaid_principal_as_a_loss(borrower, loan):
    grant_post(organization_id=borrower.pk, amount=88_849, reason="funds")
    installments_collect(today=FIRST_DUE)
    installments_collect(today=date(2027, 3, 1))  # 2 overdue, delinquent
    losses = system_balance(AccountPurpose.WRITE_OFFS)
    written = loan_write_off(loan_id=loan.pk)
    assert written.status == "written_off"
    assert written.written_off_transfer is not None
    assert written.written_off_transfer.kind == "write_off"
    rest = 1_000_000 - 78_849
    assert system_balance(AccountPurpose.WRITE_OFFS) == losses - rest
    assert balances(borrower)[AccountPurpose.CREDIT] == 0
    assert statuses(loan) == ["paid"] + ["written_off"] * 11
    # nothing is collected from a written-off loan, and it cannot be written off twice
    grant_post(organization_id=borrower.pk, amount=1_000_000, reason="funds")
    assert installments_collect(today=date(2027, 6, 1)).paid == 0
    with pytest.raises(LoanClosed):
        loan_write_off(loan_id=loan.pk)
    assert Transfer.objects.filter(kind="write_off").count() == 1
