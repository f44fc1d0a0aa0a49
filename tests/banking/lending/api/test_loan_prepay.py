"""POST /api/v1/loans/{id}/prepay/."""

from datetime import UTC, datetime

import pytest
import time_machine
from rest_framework.test import APIClient

from banking.models import Installment, LoanPrepayment, Transfer
from banking.models.ledger import AccountPurpose
from banking.services.ledger import grant_post
from tests.banking.lending.conftest import balances


@pytest.fixture(autouse=True)
def _january_first():
    with time_machine.travel(datetime(2027, 1, 1, 12, tzinfo=UTC), tick=False):
        yield


def test_an_amount_pays_the_next_whole_installments(borrower, make_loan, api_client_for):
    loan = make_loan(borrower)
    grant_post(organization_id=borrower.pk, amount=200_000, reason="funds")
    response = api_client_for(borrower).post(
        f"/api/v1/loans/{loan.pk}/prepay/", {"amount": 100_000}, format="json",
        HTTP_IDEMPOTENCY_KEY="pp-1")
    assert response.status_code == 200
    body = response.json()
    assert (body["amount"], body["principal"], body["interest"]) == (88_849, 78_849, 10_000)
    assert body["loan"]["outstanding_principal"] == 1_000_000 - 78_849
    assert body["loan"]["schedule"][0]["status"] == "paid"
    assert balances(borrower)[AccountPurpose.WALLET] == 200_000 - 88_849


def test_no_amount_repays_the_loan_and_waives_future_interest(borrower, make_loan,
                                                              api_client_for):
    loan = make_loan(borrower)
    grant_post(organization_id=borrower.pk, amount=1_000_000, reason="funds")
    response = api_client_for(borrower).post(f"/api/v1/loans/{loan.pk}/prepay/", {},
                                             format="json", HTTP_IDEMPOTENCY_KEY="all")
    body = response.json()
    assert (response.status_code, body["amount"], body["interest"]) == (200, 1_000_000, 0)
    assert body["loan"]["status"] == "paid"
    assert body["loan"]["outstanding_principal"] == 0
    assert {r["interest"] for r in body["loan"]["schedule"]} == {0}
    assert balances(borrower)[AccountPurpose.WALLET] == 0


def test_the_same_idempotency_key_pays_once(borrower, make_loan, api_client_for):
    loan = make_loan(borrower)
    grant_post(organization_id=borrower.pk, amount=300_000, reason="funds")
    client = api_client_for(borrower)
    url = f"/api/v1/loans/{loan.pk}/prepay/"
    first = client.post(url, {"amount": 88_849}, format="json", HTTP_IDEMPOTENCY_KEY="k")
    again = client.post(url, {"amount": 88_849}, format="json", HTTP_IDEMPOTENCY_KEY="k")
    assert first.json()["prepayment_id"] == again.json()["prepayment_id"]
    conflict = client.post(url, {"amount": 200_000}, format="json", HTTP_IDEMPOTENCY_KEY="k")
    assert (conflict.status_code, conflict.json()["error"]["code"]) == (
        409, "idempotency_conflict")
    assert LoanPrepayment.objects.count() == 1
    assert balances(borrower)[AccountPurpose.WALLET] == 300_000 - 88_849


def test_another_organization_gets_404_and_nothing_changes(borrower, make_org, make_loan,
                                                           api_client_for):
    loan = make_loan(borrower)
    intruder = make_org(tokens=5_000_000)
    grant_post(organization_id=borrower.pk, amount=5_000_000, reason="funds")
    response = api_client_for(intruder).post(f"/api/v1/loans/{loan.pk}/prepay/", {},
                                             format="json", HTTP_IDEMPOTENCY_KEY="x")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert balances(intruder)[AccountPurpose.WALLET] == 5_000_000
    assert balances(borrower)[AccountPurpose.WALLET] == 5_000_000
    assert Transfer.objects.filter(kind="installment").count() == 0
    assert set(Installment.objects.values_list("status", flat=True)) == {"due"}


def test_refusals_are_clear_and_post_nothing(borrower, make_loan, api_client_for):
    loan = make_loan(borrower)
    client = api_client_for(borrower)
    url = f"/api/v1/loans/{loan.pk}/prepay/"
    broke = client.post(url, {}, format="json")
    assert (broke.status_code, broke.json()["error"]["code"]) == (402, "insufficient_funds")
    grant_post(organization_id=borrower.pk, amount=50_000, reason="funds")
    small = client.post(url, {"amount": 50_000}, format="json")
    assert (small.status_code, small.json()["error"]["code"]) == (400, "invalid")
    assert "88849" in small.json()["error"]["message"]
    bad = client.post(url, {"amount": "lots"}, format="json")
    assert (bad.status_code, list(bad.json()["error"]["fields"])) == (400, ["amount"])
    assert Transfer.objects.filter(kind="installment").count() == 0
    assert balances(borrower)[AccountPurpose.WALLET] == 50_000


def test_anonymous_callers_are_refused(borrower, make_loan):
    loan = make_loan(borrower)
    response = APIClient().post(f"/api/v1/loans/{loan.pk}/prepay/", {}, format="json")
    assert response.status_code in (401, 403)
    assert Transfer.objects.filter(kind="installment").count() == 0
