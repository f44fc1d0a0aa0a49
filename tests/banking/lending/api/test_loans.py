"""GET /api/v1/loans/ and GET /api/v1/loans/{id}/."""

from datetime import date

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from banking.services.ledger import grant_post
from banking.services.lending import credit_line_set, installments_collect


def test_the_list_shows_only_the_callers_loans(borrower, make_org, make_loan, api_client_for):
    other = make_org()
    credit_line_set(organization_id=other.pk, limit=9_000_000, apr_bps=0, max_term_months=6)
    mine = [make_loan(borrower, principal=100_000 * (i + 1)) for i in range(3)]
    make_loan(other, principal=777_000, term=6)
    response = api_client_for(borrower).get("/api/v1/loans/")
    assert response.status_code == 200
    body = response.json()
    assert "count" not in body  # keyset pages count nothing
    assert [r["id"] for r in body["results"]] == [loan.pk for loan in reversed(mine)]
    assert body["results"][0] == {
        "id": mine[2].pk, "principal": 300_000, "apr_bps": 1200, "term_months": 12,
        "status": "active", "outstanding_principal": 300_000, "reference": "block:3",
        "created_at": body["results"][0]["created_at"],
    }


def test_the_list_query_count_does_not_grow_with_loans(borrower, make_loan, api_client_for):
    client = api_client_for(borrower)
    make_loan(borrower, principal=10_000)
    client.get("/api/v1/loans/")  # warm: api key last-used write
    with CaptureQueriesContext(connection) as one:
        client.get("/api/v1/loans/")
    for _ in range(5):
        make_loan(borrower, principal=10_000)
    with CaptureQueriesContext(connection) as six:
        assert len(client.get("/api/v1/loans/").json()["results"]) == 6
    assert len(six) == len(one)


def test_a_loan_shows_its_schedule_and_what_is_outstanding(borrower, make_loan,
                                                           api_client_for):
    loan = make_loan(borrower)
    grant_post(organization_id=borrower.pk, amount=88_849, reason="funds")
    installments_collect(today=date(2027, 2, 15))  # pays 1, 2 overdue
    response = api_client_for(borrower).get(f"/api/v1/loans/{loan.pk}/")
    assert response.status_code == 200
    body = response.json()
    assert {k: body[k] for k in ("id", "principal", "apr_bps", "term_months", "status",
                                  "outstanding_principal")} == {
        "id": loan.pk, "principal": 1_000_000, "apr_bps": 1200, "term_months": 12,
        "status": "overdue", "outstanding_principal": 1_000_000 - 78_849}
    assert set(body) == {"id", "principal", "apr_bps", "term_months", "status",
                         "outstanding_principal", "schedule"}
    assert body["schedule"][:3] == [
        {"number": 1, "due_date": "2027-01-15", "principal": 78_849, "interest": 10_000,
         "status": "paid"},
        {"number": 2, "due_date": "2027-02-15", "principal": 79_637, "interest": 9_212,
         "status": "overdue"},
        {"number": 3, "due_date": "2027-03-15", "principal": 80_434, "interest": 8_415,
         "status": "due"},
    ]
    assert len(body["schedule"]) == 12


def test_another_organizations_loan_is_not_found(borrower, make_org, make_loan,
                                                 api_client_for):
    loan = make_loan(borrower)
    response = api_client_for(make_org()).get(f"/api/v1/loans/{loan.pk}/")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert api_client_for(borrower).get("/api/v1/loans/999999/").status_code == 404


@pytest.mark.parametrize("url", ["/api/v1/loans/", "/api/v1/loans/1/"])
def test_anonymous_callers_are_refused(db, url):
    response = APIClient().get(url)
    assert response.status_code in (401, 403)
    assert response.json()["error"]["code"] in ("not_authenticated", "permission_denied")
