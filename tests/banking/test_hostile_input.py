"""The bank's doors against a stranger's extreme values: top-ups and their quote, payouts
and the payout account, loans' quotes and prepayments, statements' filters, webhooks.
Each is a 4xx with its code and the field named, and nothing changed."""

from __future__ import annotations

from typing import Any

import pytest

from banking.models import Payout, PayoutAccount, TopUp, Transfer
from banking.selectors import wallet_get

pytestmark = pytest.mark.django_db

EXTREMES = [2**31, 2**63, -1, "9" * 5000, "1\x00", True, 1.5]


def _state(org_id: int) -> dict[str, Any]:
    return {"topups": TopUp.objects.count(), "payouts": Payout.objects.count(),
            "transfers": Transfer.objects.count(),
            "accounts": list(PayoutAccount.objects.values_list(
                "organization_id", "stripe_account_id", "auto_payout_threshold")),
            "wallet": wallet_get(organization_id=org_id)}


def _refused(response: Any, field: str) -> None:
    assert 400 <= response.status_code < 500, response.content
    error = response.json()["error"]
    assert error["code"] in ("invalid", "out_of_bounds"), error
    assert field in error["fields"], error


@pytest.mark.parametrize("field", ["amount_cents", "tokens"])
@pytest.mark.parametrize("value", EXTREMES)
def test_a_topup_with_an_extreme_amount_is_refused(buyer, api_client_for, field, value):
    if value == 2**31 and field == "tokens":
        pytest.skip("2**31 tokens is a valid amount")
    before = _state(buyer.pk)
    response = api_client_for(buyer).post("/api/v1/topups/", {field: value}, format="json")
    _refused(response, field)
    assert _state(buyer.pk) == before


@pytest.mark.parametrize(("field", "value"), [
    ("amount_cents", str(2**63)), ("tokens", str(2**63)), ("amount_cents", "-1"),
    ("currency", "us\x00"), ("currency", "dollars")])
def test_the_topup_quote_refuses_an_extreme_query(buyer, api_client_for, field, value):
    response = api_client_for(buyer).get("/api/v1/topups/quote/", {field: value})
    _refused(response, field)


@pytest.mark.parametrize("value", [2**63, -1, 10**16, "1\x00", 1.5])
def test_a_payout_of_an_extreme_amount_is_refused(provider, api_client_for, value):
    before = _state(provider.pk)
    response = api_client_for(provider).post("/api/v1/payouts/", {"tokens": value},
                                             format="json")
    _refused(response, "tokens")
    assert _state(provider.pk) == before


@pytest.mark.parametrize(("field", "value"), [
    ("auto_payout_threshold", 2**63), ("auto_payout_threshold", 2**64),
    ("auto_payout_threshold", 10**16), ("auto_payout_threshold", -1),
    ("stripe_account_id", "acct_\x00"), ("stripe_account_id", "a" * 256)])
def test_the_payout_account_refuses_an_extreme_value(provider, api_client_for, field, value):
    before = _state(provider.pk)
    body = {"stripe_account_id": "acct_1", "auto_payout_threshold": 100, field: value}
    response = api_client_for(provider).put("/api/v1/payout-account/", body, format="json")
    _refused(response, field)
    assert _state(provider.pk) == before


@pytest.mark.parametrize(("field", "value"), [
    ("principal", 2**63), ("principal", -1), ("term_months", 2**31), ("term_months", -1)])
def test_a_loan_quote_refuses_an_extreme_value(buyer, api_client_for, field, value):
    body = {"principal": 1000, "term_months": 3, field: value}
    response = api_client_for(buyer).post("/api/v1/loans/quote/", body, format="json")
    _refused(response, field)


@pytest.mark.parametrize(("field", "value"), [
    ("kind", "\x00"), ("kind", "k," * 300), ("account", "wallet\x00"),
    ("date_from", "\x00"), ("date_to", "9" * 5000)])
def test_the_statement_refuses_a_hostile_filter(buyer, api_client_for, field, value):
    response = api_client_for(buyer).get("/api/v1/wallet/transfers/", {field: value})
    _refused(response, field)


@pytest.mark.parametrize(("field", "value"), [
    ("url", "https://example.com/\x00"), ("url", "https://example.com/" + "a" * 500),
    ("events", ["job.succeeded\x00"]), ("events", "not-a-list")])
def test_a_webhook_with_a_hostile_value_is_refused(buyer, api_client_for, field, value):
    from banking.models import WebhookEndpoint

    before = WebhookEndpoint.objects.count()
    body = {"url": "https://example.com/hook", "events": ["job.succeeded"], field: value}
    response = api_client_for(buyer).post("/api/v1/webhooks/", body, format="json")
    _refused(response, field)
    assert WebhookEndpoint.objects.count() == before


@pytest.mark.parametrize("position", ["\x00", "1" * 65, "not-a-position"])
def test_a_forged_cursor_is_an_invalid_cursor_not_a_server_error(buyer, api_client_for,
                                                                position):
    import base64
    from urllib.parse import urlencode

    cursor = base64.b64encode(urlencode({"p": position}).encode()).decode()
    for path in ("/api/v1/topups/", "/api/v1/jobs/", "/api/v1/wallet/transfers/"):
        response = api_client_for(buyer).get(path, {"cursor": cursor})
        assert response.status_code == 404, (path, response.content)
        assert response.json()["error"]["code"] == "not_found"
