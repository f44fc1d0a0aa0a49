"""The lending admin: credit lines are saved through the service; loans are written off by
an action."""

import pytest
from django.contrib.auth.models import User
from django.test import Client

from banking.models import CreditLine, Loan
from banking.models.ledger import AccountPurpose
from banking.selectors import organization_account
from banking.services.lending import loan_originate
from tests.operators import operator_sign_in


@pytest.fixture
def admin_client(db) -> Client:
    user = User.objects.create_superuser("ops", "ops@example.com", "pw-for-tests-only")
    return operator_sign_in(Client(), user, "pw-for-tests-only")


def test_adding_a_credit_line_in_the_admin_sets_the_floor(admin_client, make_org):
    org = make_org()
    response = admin_client.post("/admin/banking/creditline/add/", {
        "organization": org.pk, "limit": 250_000, "apr_bps": 1000, "max_term_months": 6})
    assert response.status_code == 302
    line = CreditLine.objects.get(organization=org)
    assert (line.limit, line.apr_bps, line.max_term_months) == (250_000, 1000, 6)
    assert organization_account(org.pk, AccountPurpose.CREDIT).floor == -250_000


def test_the_admin_refuses_a_limit_below_what_is_drawn(admin_client, borrower, bank_capacity):
    loan_originate(organization_id=borrower.pk, principal=1_000_000, term_months=6,
                   reference="block:1", pay_to_account_id=bank_capacity.pk,
                   idempotency_key="adm")
    line = CreditLine.objects.get(organization=borrower)
    response = admin_client.post(f"/admin/banking/creditline/{line.pk}/change/", {
        "limit": 999_999, "apr_bps": 1200, "max_term_months": 24})
    assert response.status_code == 200
    assert "already drawn" in response.content.decode()
    assert organization_account(borrower.pk, AccountPurpose.CREDIT).floor == -5_000_000


def test_the_write_off_action_writes_off_the_selected_loans(admin_client, borrower,
                                                            bank_capacity):
    loan = loan_originate(organization_id=borrower.pk, principal=1_000_000, term_months=6,
                          reference="block:1", pay_to_account_id=bank_capacity.pk,
                          idempotency_key="adm")
    response = admin_client.post("/admin/banking/loan/", {
        "action": "write_off", "_selected_action": [loan.pk]})
    assert response.status_code == 302
    assert Loan.objects.get(pk=loan.pk).status == "written_off"
    assert organization_account(borrower.pk, AccountPurpose.CREDIT).balance == 0
    assert admin_client.get(f"/admin/banking/loan/{loan.pk}/change/").status_code == 200
