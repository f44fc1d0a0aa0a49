"""installments_collect: due installments are debited whole, oldest first; a missed one
is overdue; past the grace period the organization is delinquent; paying clears it."""

from datetime import UTC, date, datetime

import pytest
import time_machine
from django.test import override_settings

from banking.errors import OrganizationDelinquent
from banking.models import Installment, Loan, Organization, Transfer
from banking.models.ledger import AccountPurpose
from banking.services.customers import organization_set_status
from banking.services.ledger import grant_post
from banking.services.lending import installments_collect, loan_originate, loan_prepay
from banking.tasks import installments_collect_task
from tests.banking.lending.conftest import balances, system_balance

FIRST_DUE = date(2027, 1, 15)
PAYMENT = 88_849


@pytest.fixture
def loan(borrower, bank_capacity):
    return loan_originate(organization_id=borrower.pk, principal=1_000_000, term_months=12,
                          reference="block:12", pay_to_account_id=bank_capacity.pk,
                          idempotency_key="loan-1", first_due=FIRST_DUE)


def status_of(org):
    return Organization.objects.get(pk=org.pk).status


def inst(loan, number):
    return Installment.objects.get(loan=loan, number=number)


def test_a_due_installment_is_debited_from_the_wallet(borrower, loan):
    grant_post(organization_id=borrower.pk, amount=100_000, reason="funds")
    income = system_balance(AccountPurpose.INTEREST_INCOME)
    assert installments_collect(today=FIRST_DUE - date.resolution).paid == 0
    result = installments_collect(today=FIRST_DUE)
    assert (result.paid, result.tokens, result.newly_overdue) == (1, PAYMENT, 0)
    first = inst(loan, 1)
    assert (first.status, first.paid_transfer.kind) == ("paid", "installment")
    assert first.paid_transfer.idempotency_key == f"installment:{first.pk}"
    assert balances(borrower)[AccountPurpose.WALLET] == 100_000 - PAYMENT
    assert balances(borrower)[AccountPurpose.CREDIT] == -1_000_000 + 78_849
    assert system_balance(AccountPurpose.INTEREST_INCOME) == income + 10_000
    # running again the same day changes nothing
    again = installments_collect(today=FIRST_DUE)
    assert (again.paid, again.newly_overdue) == (0, 0)
    assert Transfer.objects.filter(kind="installment").count() == 1


def test_missed_then_overdue_then_delinquent_after_grace_then_cleared_by_paying(
    borrower, loan, bank_capacity
):
    # Given a wallet that cannot cover the first installment
    grant_post(organization_id=borrower.pk, amount=50_000, reason="funds")
    # When it falls due: overdue, loan overdue, organization still active (grace)
    result = installments_collect(today=FIRST_DUE)
    assert (result.paid, result.newly_overdue) == (0, 1)
    assert inst(loan, 1).status == "overdue"
    assert Loan.objects.get(pk=loan.pk).status == "overdue"
    assert status_of(borrower) == "active"
    assert balances(borrower)[AccountPurpose.WALLET] == 50_000
    # the last day of the 7-day grace period: still active
    assert installments_collect(today=date(2027, 1, 22)).delinquent == []
    assert status_of(borrower) == "active"
    # Then the day after: delinquent
    result = installments_collect(today=date(2027, 1, 23))
    assert result.delinquent == [borrower.pk]
    assert status_of(borrower) == "delinquent"
    # and no new credit
    with pytest.raises(OrganizationDelinquent) as caught:
        loan_originate(organization_id=borrower.pk, principal=1_000, term_months=1,
                       reference="block:13", pay_to_account_id=bank_capacity.pk,
                       idempotency_key="loan-2")
    assert caught.value.code == "organization_delinquent"
    assert Loan.objects.count() == 1
    # When the wallet is topped up, the next collection pays and reinstates
    grant_post(organization_id=borrower.pk, amount=50_000, reason="more funds")
    result = installments_collect(today=date(2027, 1, 24))
    assert (result.paid, result.reinstated) == (1, [borrower.pk])
    assert status_of(borrower) == "active"
    assert inst(loan, 1).status == "paid"
    assert Loan.objects.get(pk=loan.pk).status == "active"
    assert balances(borrower)[AccountPurpose.WALLET] == 100_000 - PAYMENT


def test_a_prepayment_of_the_overdue_installment_also_reinstates(borrower, loan):
    installments_collect(today=FIRST_DUE)
    installments_collect(today=date(2027, 2, 1))
    assert status_of(borrower) == "delinquent"
    grant_post(organization_id=borrower.pk, amount=PAYMENT, reason="funds")
    with time_machine.travel(datetime(2027, 2, 2, 9, tzinfo=UTC), tick=False):
        prepayment = loan_prepay(organization_id=borrower.pk, loan_id=loan.pk,
                                 amount=PAYMENT, idempotency_key="cure")
    assert (prepayment.principal, prepayment.interest) == (78_849, 10_000)
    assert status_of(borrower) == "active"
    assert Loan.objects.get(pk=loan.pk).status == "active"


def test_a_frozen_organization_stays_frozen(borrower, loan):
    installments_collect(today=FIRST_DUE)
    organization_set_status(organization_id=borrower.pk, status=Organization.Status.FROZEN)
    installments_collect(today=date(2027, 2, 1))
    assert status_of(borrower) == "frozen"
    grant_post(organization_id=borrower.pk, amount=PAYMENT, reason="funds")
    assert installments_collect(today=date(2027, 2, 2)).paid == 1
    assert status_of(borrower) == "frozen"


@override_settings(LENDING_GRACE_DAYS=0)
def test_the_grace_period_is_a_setting(borrower, loan):
    installments_collect(today=FIRST_DUE)
    assert status_of(borrower) == "active"
    installments_collect(today=date(2027, 1, 16))
    assert status_of(borrower) == "delinquent"


def test_payments_go_to_the_oldest_installment_first(borrower, loan):
    # two installments due, money for one: the older is paid, the younger overdue
    grant_post(organization_id=borrower.pk, amount=PAYMENT + 10, reason="funds")
    result = installments_collect(today=date(2027, 2, 15))
    assert (result.paid, result.newly_overdue) == (1, 1)
    assert [inst(loan, n).status for n in (1, 2, 3)] == ["paid", "overdue", "due"]
    assert balances(borrower)[AccountPurpose.WALLET] == 10


def test_a_whole_schedule_collected_month_by_month_repays_exactly(borrower, loan):
    grant_post(organization_id=borrower.pk, amount=1_066_186, reason="funds")
    income = system_balance(AccountPurpose.INTEREST_INCOME)
    for month in range(12):
        day = date(2027 + (month // 12), month % 12 + 1, 15)
        assert installments_collect(today=day).paid == 1
    assert Loan.objects.get(pk=loan.pk).status == "paid"
    assert balances(borrower)[AccountPurpose.WALLET] == 0
    assert balances(borrower)[AccountPurpose.CREDIT] == 0
    assert system_balance(AccountPurpose.INTEREST_INCOME) == income + 66_186


def test_the_celery_task_collects_today(borrower, loan):
    grant_post(organization_id=borrower.pk, amount=PAYMENT, reason="funds")
    with time_machine.travel(datetime(2027, 1, 15, 0, 15, tzinfo=UTC), tick=False):
        summary = installments_collect_task.apply().get()
    assert summary == {"paid": 1, "tokens": PAYMENT, "newly_overdue": 0, "delinquent": [],
                       "reinstated": [], "failed": []}


def test_the_task_is_on_the_beat_schedule():
    from django.conf import settings

    entry = settings.CELERY_BEAT_SCHEDULE["banking.installments_collect"]
    assert entry["task"] == "banking.installments_collect"
