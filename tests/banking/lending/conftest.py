from collections.abc import Callable

import pytest

from banking.models import Account, Organization
from banking.models.ledger import AccountPurpose
from banking.services.ledger import system_account
from banking.services.lending import credit_line_set


@pytest.fixture
def bank_capacity(db: None) -> Account:
    return system_account(AccountPurpose.BANK_CAPACITY)


@pytest.fixture
def borrower(make_org: Callable[..., Organization]) -> Organization:
    """A buyer with a 5M-token credit line at 12 % for up to 24 months and no tokens."""
    org = make_org("Borrower Inc")
    credit_line_set(organization_id=org.pk, limit=5_000_000, apr_bps=1200, max_term_months=24)
    return org


def balances(org: Organization) -> dict[str, int]:
    return dict(
        Account.objects.filter(organization=org).values_list("purpose", "balance")
    )


def system_balance(purpose: str) -> int:
    return system_account(purpose).balance
