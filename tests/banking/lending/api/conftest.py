from datetime import date

import pytest

from banking.services.lending import loan_originate


@pytest.fixture
def make_loan(bank_capacity):
    counter = {"n": 0}

    def make(org, principal=1_000_000, term=12, first_due=date(2027, 1, 15)):
        counter["n"] += 1
        return loan_originate(organization_id=org.pk, principal=principal, term_months=term,
                              reference=f"block:{counter['n']}",
                              pay_to_account_id=bank_capacity.pk,
                              idempotency_key=f"api-loan-{org.pk}-{counter['n']}",
                              first_due=first_due)

    return make
