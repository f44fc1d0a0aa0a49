"""/api/v1/topups/ (quote, create, list, get, confirm): behaviour and who may call."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from banking.models import StripeCustomer, TopUp, Transfer
from banking.services.payments import topup_create
from tests.banking.payments.conftest import balance

pytestmark = pytest.mark.django_db


@pytest.fixture
def buyer(make_org):
    return make_org()


def test_quote_by_amount_and_by_tokens(buyer, api_client_for):
    client = api_client_for(buyer)
    by_amount = client.get("/api/v1/topups/quote/?amount_cents=1000&currency=usd")
    assert by_amount.status_code == 200
    assert by_amount.json() == {
        "currency": "usd", "amount_cents": 1000, "tokens": 33_333_333,
        "cents_per_million": "30.000000", "min_amount_cents": 100,
        "max_amount_cents": 1_000_000,
    }
    by_tokens = client.get("/api/v1/topups/quote/?tokens=10000000").json()
    assert (by_tokens["amount_cents"], by_tokens["tokens"]) == (300, 10_000_000)


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("amount_cents=50", "topup_below_minimum"),
        ("amount_cents=2000000", "topup_above_maximum"),
        ("amount_cents=1000&currency=xyz", "currency_not_supported"),
        ("", "invalid"),
        ("amount_cents=abc", "invalid"),
    ],
)
def test_bad_quotes_get_a_code(buyer, api_client_for, query, code):
    response = api_client_for(buyer).get(f"/api/v1/topups/quote/?{query}")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == code


def test_create_returns_the_payment_intent_and_the_tokens_at_the_locked_price(
    buyer, api_client_for, fake_gateway
):
    response = api_client_for(buyer).post(
        "/api/v1/topups/", {"amount_cents": 1000, "currency": "usd"}, format="json",
        HTTP_IDEMPOTENCY_KEY="k1",
    )
    assert response.status_code == 201
    body = response.json()
    topup = TopUp.objects.get()
    assert body["id"] == topup.pk
    assert body["status"] == "pending"
    assert body["tokens"] == 33_333_333
    assert body["payment_intent_id"] == topup.payment_intent_id
    assert body["client_secret"] == f"{topup.payment_intent_id}_secret_fake"
    assert body["cents_per_million"] == "30.000000"


def test_create_by_tokens_with_a_card_credits_at_once(buyer, api_client_for, fake_gateway):
    response = api_client_for(buyer).post(
        "/api/v1/topups/", {"tokens": 10_000_000, "payment_method": "pm_card_visa"},
        format="json",
    )
    assert response.status_code == 201
    assert (response.json()["status"], response.json()["amount_cents"]) == ("succeeded", 300)
    assert balance(buyer) == 10_000_000


def test_the_same_idempotency_key_gives_the_same_top_up(buyer, api_client_for, fake_gateway):
    client = api_client_for(buyer)
    first = client.post("/api/v1/topups/", {"amount_cents": 500}, format="json",
                        HTTP_IDEMPOTENCY_KEY="same")
    again = client.post("/api/v1/topups/", {"amount_cents": 500}, format="json",
                        HTTP_IDEMPOTENCY_KEY="same")
    assert first.json()["id"] == again.json()["id"]
    assert TopUp.objects.count() == 1


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"amount_cents": 99}, 400, "topup_below_minimum"),
        ({"amount_cents": 1_000_001}, 400, "topup_above_maximum"),
        ({"currency": "usd"}, 400, "invalid"),
        ({"amount_cents": 500, "tokens": 5}, 400, "invalid"),
        ({"amount_cents": 500, "payment_method": "pm_card_chargeDeclined"}, 402,
         "card_declined"),
    ],
)
def test_bad_top_ups_get_a_clear_error_and_credit_nothing(
    buyer, api_client_for, fake_gateway, body, status, code
):
    response = api_client_for(buyer).post("/api/v1/topups/", body, format="json")
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert balance(buyer) == 0
    assert Transfer.objects.filter(kind="topup").count() == 0


def test_anonymous_callers_are_refused_and_nothing_changes(buyer, fake_gateway):
    topup = topup_create(organization_id=buyer.pk, amount_cents=500, idempotency_key="t")
    fake_gateway.payment_intent_confirm(topup.payment_intent_id, payment_method="pm_card_visa")
    client = APIClient()
    calls = [
        client.get("/api/v1/topups/quote/?amount_cents=500"),
        client.post("/api/v1/topups/", {"amount_cents": 500}, format="json"),
        client.get("/api/v1/topups/"),
        client.get(f"/api/v1/topups/{topup.pk}/"),
        client.post(f"/api/v1/topups/{topup.pk}/confirm/", {}, format="json"),
    ]
    assert [r.status_code for r in calls] == [401] * 5
    assert {r.json()["error"]["code"] for r in calls} == {"not_authenticated"}
    assert TopUp.objects.count() == 1
    assert StripeCustomer.objects.count() == 1
    assert balance(buyer) == 0


def test_another_organization_sees_404_and_cannot_confirm(
    buyer, make_org, api_client_for, fake_gateway
):
    topup = topup_create(organization_id=buyer.pk, amount_cents=500, idempotency_key="t")
    fake_gateway.payment_intent_confirm(topup.payment_intent_id, payment_method="pm_card_visa")
    stranger = api_client_for(make_org())
    assert stranger.get(f"/api/v1/topups/{topup.pk}/").status_code == 404
    response = stranger.post(f"/api/v1/topups/{topup.pk}/confirm/", {}, format="json")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert stranger.get("/api/v1/topups/").json()["results"] == []
    assert TopUp.objects.get().status == "pending"
    assert balance(buyer) == 0

    mine = api_client_for(buyer).post(f"/api/v1/topups/{topup.pk}/confirm/", {}, format="json")
    assert mine.status_code == 200
    assert mine.json()["status"] == "succeeded"
    assert balance(buyer) == 16_666_666


def test_confirm_with_a_payment_method_pays_and_credits(buyer, api_client_for, fake_gateway):
    client = api_client_for(buyer)
    created = client.post("/api/v1/topups/", {"amount_cents": 300}, format="json").json()
    response = client.post(f"/api/v1/topups/{created['id']}/confirm/",
                           {"payment_method": "pm_card_visa"}, format="json")
    assert response.status_code == 200
    assert response.json()["status"] == "succeeded"
    assert client.get(f"/api/v1/topups/{created['id']}/").json()["status"] == "succeeded"
    assert balance(buyer) == 10_000_000


def test_the_list_query_count_does_not_grow_with_rows(buyer, api_client_for, fake_gateway):
    client = api_client_for(buyer)
    topup_create(organization_id=buyer.pk, amount_cents=500, idempotency_key="t0")
    client.get("/api/v1/topups/")

    def count() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert client.get("/api/v1/topups/").status_code == 200
        return len(ctx.captured_queries)

    few = count()
    for i in range(5):
        topup_create(organization_id=buyer.pk, amount_cents=500 + i, idempotency_key=f"t{i + 1}")
    assert count() == few
    assert len(client.get("/api/v1/topups/").json()["results"]) == 6


def test_a_payment_method_the_provider_does_not_know_is_a_400_not_a_decline(
    buyer, api_client_for, fake_gateway
):
    response = api_client_for(buyer).post(
        "/api/v1/topups/", {"amount_cents": 500, "payment_method": "pm_nonsense"}, format="json"
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "payment_provider_error"
    assert "pm_nonsense" in error["message"]
    assert TopUp.objects.get().status == "failed"
    assert balance(buyer) == 0
