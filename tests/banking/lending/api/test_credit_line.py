"""GET /api/v1/credit-line/."""

from rest_framework.test import APIClient


def test_the_caller_sees_its_line_and_what_is_available(borrower, make_loan, api_client_for):
    make_loan(borrower, principal=1_250_000)
    response = api_client_for(borrower).get("/api/v1/credit-line/")
    assert response.status_code == 200
    assert response.json() == {"limit": 5_000_000, "apr_bps": 1200, "max_term_months": 24,
                               "used": 1_250_000, "available": 3_750_000}


def test_without_a_line_it_says_so(make_org, api_client_for):
    response = api_client_for(make_org()).get("/api/v1/credit-line/")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "no_credit_line"


def test_anonymous_callers_are_refused(db):
    response = APIClient().get("/api/v1/credit-line/")
    assert response.status_code in (401, 403)
