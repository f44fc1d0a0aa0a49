from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
import time_machine

from banking.models import Account, Organization
from banking.models.ledger import AccountPurpose
from banking.services.ledger import system_account
from banking.services.lending import credit_line_set


@pytest.fixture(autouse=True)
def _lending_clock() -> Iterator[None]:
    """Lending tests run on a known calendar (1 December 2026, ticking), so fixed due
    dates such as 15 January 2027 stay in the future whatever the real date is. Tests
    that need another day travel again inside this one."""
    with time_machine.travel(datetime(2026, 12, 1, 12, tzinfo=UTC), tick=True):
        yield


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
