"""loan_originate: the principal leaves the credit account, the schedule is stored, and
every refusal posts nothing."""

from datetime import UTC, date, datetime

import pytest
import time_machine

from banking.amortization import annuity_schedule
from banking.errors import (
    CreditLimitExceeded,
    IdempotencyConflict,
    NoCreditLine,
    OrganizationDelinquent,
    OrganizationFrozen,
    TermExceedsCreditLine,
)
from banking.models import Installment, Loan, Organization, Transfer
from banking.models.ledger import AccountPurpose
from banking.selectors_lending import credit_line_get, loan_quote
from banking.services.customers import organization_set_status
from banking.services.lending import loan_originate
from core.errors import InvalidInput
from tests.banking.lending.conftest import balances, system_balance


def originate(org, bank, *, key="k1", principal=1_000_000, term=12, **kw):
    return loan_originate(organization_id=org.pk, principal=principal, term_months=term,
                          reference="block:12", pay_to_account_id=bank.pk,
                          idempotency_key=key, **kw)


def test_a_loan_pays_the_seller_from_the_credit_account(borrower, bank_capacity):
    before = system_balance(AccountPurpose.BANK_CAPACITY)
    loan = originate(borrower, bank_capacity, first_due=date(2027, 1, 15))
    assert (loan.principal, loan.apr_bps, loan.term_months, loan.status, loan.reference) == (
        1_000_000, 1200, 12, "active", "block:12")
    assert balances(borrower)[AccountPurpose.CREDIT] == -1_000_000
    assert balances(borrower)[AccountPurpose.WALLET] == 0
    assert system_balance(AccountPurpose.BANK_CAPACITY) == before + 1_000_000
    transfer = loan.disbursed_transfer
    assert (transfer.kind, transfer.reference) == ("loan", f"loan:{loan.pk}")
    assert sorted(transfer.entries.values_list("amount", flat=True)) == [-1_000_000, 1_000_000]
    assert credit_line_get(organization_id=borrower.pk).available == 4_000_000


def test_the_stored_schedule_is_exactly_the_quoted_one(borrower, bank_capacity):
    with time_machine.travel(datetime(2027, 1, 31, 12, tzinfo=UTC), tick=False):
        quote = loan_quote(organization_id=borrower.pk, principal=1_000_000, term_months=12)
        loan = originate(borrower, bank_capacity)
    stored = [(i.number, i.due_date, i.principal, i.interest, i.status)
              for i in loan.installments.order_by("number")]
    assert stored == [(r.number, r.due_date, r.principal, r.interest, "due")
                      for r in quote.schedule]
    assert quote.schedule == annuity_schedule(principal=1_000_000, apr_bps=1200,
                                              term_months=12, first_due=date(2027, 2, 28))
    assert (quote.payment, quote.total_interest, quote.total) == (88_849, 66_186, 1_066_186)
    assert stored[0][1] == date(2027, 2, 28)
    assert stored[-1][1] == date(2028, 1, 28)


def test_the_same_key_returns_the_same_loan_and_posts_once(borrower, bank_capacity):
    first = originate(borrower, bank_capacity)
    again = originate(borrower, bank_capacity)
    assert again.pk == first.pk
    assert Loan.objects.count() == 1
    assert Transfer.objects.filter(kind="loan").count() == 1
    assert balances(borrower)[AccountPurpose.CREDIT] == -1_000_000
    with pytest.raises(IdempotencyConflict):
        originate(borrower, bank_capacity, principal=999_999)


def _assert_nothing_posted(org):
    assert Loan.objects.count() == 0
    assert Installment.objects.count() == 0
    assert Transfer.objects.filter(kind="loan").count() == 0
    assert balances(org)[AccountPurpose.CREDIT] == 0


def test_no_credit_line_is_refused(make_org, bank_capacity):
    org = make_org()
    with pytest.raises(NoCreditLine, match="no credit line") as caught:
        originate(org, bank_capacity)
    assert caught.value.code == "no_credit_line"
    _assert_nothing_posted(org)


def test_a_term_longer_than_the_line_allows_is_refused(borrower, bank_capacity):
    with pytest.raises(TermExceedsCreditLine, match="24 months") as caught:
        originate(borrower, bank_capacity, term=25)
    assert caught.value.code == "term_exceeds_credit_line"
    _assert_nothing_posted(borrower)


def test_more_than_the_available_credit_is_refused(borrower, bank_capacity):
    originate(borrower, bank_capacity, key="a", principal=4_500_000)
    with pytest.raises(CreditLimitExceeded, match="500001 tokens asked, 500000 available") as c:
        originate(borrower, bank_capacity, key="b", principal=500_001)
    assert c.value.code == "credit_limit_exceeded"
    assert Loan.objects.count() == 1
    assert balances(borrower)[AccountPurpose.CREDIT] == -4_500_000
    originate(borrower, bank_capacity, key="c", principal=500_000)
    assert balances(borrower)[AccountPurpose.CREDIT] == -5_000_000


@pytest.mark.parametrize(
    ("status", "error", "code"),
    [(Organization.Status.DELINQUENT, OrganizationDelinquent, "organization_delinquent"),
     (Organization.Status.FROZEN, OrganizationFrozen, "organization_frozen")],
)
def test_a_delinquent_or_frozen_organization_gets_no_new_loan(borrower, bank_capacity, status,
                                                              error, code):
    organization_set_status(organization_id=borrower.pk, status=status)
    with pytest.raises(error) as caught:
        originate(borrower, bank_capacity)
    assert caught.value.code == code
    _assert_nothing_posted(borrower)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"principal": 0}, "principal"), ({"principal": -5}, "principal"),
     ({"term": 0}, "term_months"), ({"principal": 10}, "principal"), ({"key": ""}, None)],
)
def test_invalid_loans_are_refused(borrower, bank_capacity, kwargs, field):
    with pytest.raises(InvalidInput) as caught:
        originate(borrower, bank_capacity, **kwargs)
    assert caught.value.code == "invalid"
    if field:
        assert field in caught.value.fields
    _assert_nothing_posted(borrower)


@pytest.mark.parametrize("first_due", [date(2026, 12, 1), date(2026, 11, 30)])
def test_a_loan_is_never_born_overdue(borrower, bank_capacity, first_due):
    with pytest.raises(InvalidInput, match="must fall due after today") as caught:
        originate(borrower, bank_capacity, first_due=first_due)
    assert list(caught.value.fields) == ["first_due"]
    _assert_nothing_posted(borrower)
    with pytest.raises(InvalidInput, match="must fall due after today"):
        loan_quote(organization_id=borrower.pk, principal=1_000, term_months=1,
                   first_due=first_due)
