"""POST /api/v1/loans/quote/: the schedule before confirming; writes nothing."""

from datetime import date

from banking.models import Loan, Transfer
from banking.services.lending import loan_originate


def test_a_quote_is_the_schedule_the_loan_then_gets(borrower, bank_capacity, api_client_for):
    client = api_client_for(borrower)
    response = client.post("/api/v1/loans/quote/", {"principal": 1_000_000, "term_months": 12,
                                                    "first_due": "2027-01-15"}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert (body["payment"], body["total_interest"], body["total"], body["apr_bps"]) == (
        88_849, 66_186, 1_066_186, 1200)
    assert body["schedule"][0] == {"number": 1, "due_date": "2027-01-15", "principal": 78_849,
                                   "interest": 10_000, "total": 88_849}
    assert body["schedule"][-1] == {"number": 12, "due_date": "2027-12-15",
                                    "principal": 87_967, "interest": 880, "total": 88_847}
    assert Loan.objects.count() == 0
    assert Transfer.objects.filter(kind="loan").count() == 0
    loan = loan_originate(organization_id=borrower.pk, principal=1_000_000, term_months=12,
                          reference="block:1", pay_to_account_id=bank_capacity.pk,
                          idempotency_key="q", first_due=date(2027, 1, 15))
    shown = client.get(f"/api/v1/loans/{loan.pk}/").json()["schedule"]
    assert [{k: r[k] for k in ("number", "due_date", "principal", "interest")} for r in shown] \
        == [{k: r[k] for k in ("number", "due_date", "principal", "interest")}
            for r in body["schedule"]]


def test_a_quote_gives_the_reasons_a_loan_would_be_refused(borrower, make_org, api_client_for):
    client = api_client_for(borrower)

    def quote(**body):
        return client.post("/api/v1/loans/quote/", body, format="json")

    assert quote(principal=1_000, term_months=25).json()["error"]["code"] == \
        "term_exceeds_credit_line"
    response = quote(principal=5_000_001, term_months=12)
    assert (response.status_code, response.json()["error"]["code"]) == (
        402, "credit_limit_exceeded")
    response = quote(principal=0, term_months=12)
    assert (response.status_code, response.json()["error"]["code"]) == (400, "invalid")
    assert "principal" in response.json()["error"]["fields"]
    assert quote(term_months=12).json()["error"]["fields"] == {
        "principal": ["This field is required."]}
    response = api_client_for(make_org()).post(
        "/api/v1/loans/quote/", {"principal": 1_000, "term_months": 1}, format="json")
    assert (response.status_code, response.json()["error"]["code"]) == (403, "no_credit_line")
