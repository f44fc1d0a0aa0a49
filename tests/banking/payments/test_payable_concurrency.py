"""Eight threads cashing out the same earnings at once: exactly what was earned leaves,
never more, on PostgreSQL with real commits."""

from collections import Counter

import pytest
from django.db import connection

from banking.models import Payout
from banking.models.ledger import AccountPurpose
from banking.selectors import organization_account, wallet_get
from banking.services.payouts import payout_account_set, payout_request
from tests.concurrency import run_threads

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.xdist_group("pg-concurrency"),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL row locks"),
]
M = 1_000_000


def test_8_threads_cashing_out_the_same_earnings_take_them_once(make_org, fake_gateway):
    org = make_org(provider=True, tokens=500 * M, earned=30 * M)
    payout_account_set(organization_id=org.pk, stripe_account_id="acct_race")
    payout_request(organization_id=org.pk, tokens=10 * M, idempotency_key="verify-first")

    def cash_out(i: int) -> object:
        try:
            return payout_request(organization_id=org.pk, tokens=20 * M,
                                  idempotency_key=f"race-{i}").tokens
        except Exception as exc:  # the refusals are what is counted
            return getattr(exc, "code", repr(exc))

    results = run_threads(8, cash_out)
    assert Counter(results) == Counter({20 * M: 1, "not_payable": 7})
    assert Payout.objects.filter(organization=org).count() == 2
    assert organization_account(org.pk, AccountPurpose.PAYABLE).balance == 0
    assert wallet_get(organization_id=org.pk).held == 30 * M
