"""Stripe Elements' path, against localstripe: the buyer's browser trades the card for a
one-use token (here made the way Stripe.js makes it, with the publishable key alone), and
`POST /api/v1/topups/{id}/confirm/` pays with it. The card issuer may ask for 3-D Secure
(`payment_status` "requires_action"), may decline (402, nothing credited, another card can
still pay), and a repeated confirm never charges or credits twice."""

import pytest
import stripe
from django.db import connection

from banking.models import TopUp, Transfer
from banking.models.ledger import TransferKind
from tests.banking.payments.conftest import balance
from tests.stripe_server import (
    LOCALSTRIPE_SECRET_KEY,
    authenticate_payment,
    create_card_token,
)

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.xdist_group("localstripe"),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL row locks"),
]
TOKENS_FOR_10_USD = 33_333_333
VISA = "4242424242424242"
VISA_3DS = "4000002760003184"
DECLINED = "4000000000000002"


def _pending_topup(client) -> dict:
    created = client.post("/api/v1/topups/", {"amount_cents": 1000, "currency": "usd"},
                          format="json")
    assert created.status_code == 201
    body = created.json()
    assert (body["status"], body["payment_status"]) == ("pending", "requires_payment_method")
    return dict(body)


def _stripe_side(localstripe_url: str, payment_intent_id: str):
    client = stripe.StripeClient(LOCALSTRIPE_SECRET_KEY, base_addresses={"api": localstripe_url})
    return client.v1.payment_intents.retrieve(payment_intent_id)


def test_a_card_token_pays_the_top_up_once_however_often_it_is_confirmed(
    make_org, api_client_for, localstripe
):
    org = make_org()
    client = api_client_for(org)
    topup = _pending_topup(client)
    token = create_card_token(localstripe.url, VISA)
    url = f"/api/v1/topups/{topup['id']}/confirm/"

    first = client.post(url, {"card_token": token}, format="json")
    again = client.post(url, {"card_token": token}, format="json")
    plain = client.post(url, {}, format="json")

    assert first.status_code == again.status_code == plain.status_code == 200
    for answer in (first, again, plain):
        assert (answer.json()["status"], answer.json()["payment_status"]) == (
            "succeeded", "succeeded")
    assert balance(org) == TOKENS_FOR_10_USD
    assert Transfer.objects.filter(kind=TransferKind.TOPUP).count() == 1
    paid = _stripe_side(localstripe.url, topup["payment_intent_id"])
    assert (paid.status, paid.amount, paid.currency) == ("succeeded", 1000, "usd")
    assert paid.payment_method.startswith("card_")


def test_a_card_that_asks_for_3d_secure_is_credited_only_after_authentication(
    make_org, api_client_for, localstripe
):
    org = make_org()
    client = api_client_for(org)
    topup = _pending_topup(client)
    url = f"/api/v1/topups/{topup['id']}/confirm/"

    asked = client.post(url, {"card_token": create_card_token(localstripe.url, VISA_3DS)},
                        format="json")
    assert asked.status_code == 200
    assert (asked.json()["status"], asked.json()["payment_status"]) == (
        "pending", "requires_action")
    not_yet = client.post(url, {}, format="json")
    assert not_yet.json()["status"] == "pending"
    assert balance(org) == 0

    authenticate_payment(localstripe.url, topup["payment_intent_id"], topup["client_secret"])
    done = client.post(url, {}, format="json")

    assert done.status_code == 200
    assert (done.json()["status"], done.json()["payment_status"]) == ("succeeded", "succeeded")
    assert balance(org) == TOKENS_FOR_10_USD
    assert Transfer.objects.filter(kind=TransferKind.TOPUP).count() == 1


def test_a_declined_card_credits_nothing_and_another_card_then_pays(
    make_org, api_client_for, localstripe
):
    org = make_org()
    client = api_client_for(org)
    topup = _pending_topup(client)
    url = f"/api/v1/topups/{topup['id']}/confirm/"

    declined = client.post(url, {"card_token": create_card_token(localstripe.url, DECLINED)},
                           format="json")

    assert declined.status_code == 402
    error = declined.json()["error"]
    assert (error["code"], error["fields"]["topup_id"]) == ("card_declined", topup["id"])
    assert TopUp.objects.get(pk=topup["id"]).status == "failed"
    assert balance(org) == 0
    assert _stripe_side(localstripe.url, topup["payment_intent_id"]).status == (
        "requires_payment_method")

    paid = client.post(url, {"card_token": create_card_token(localstripe.url, VISA)},
                       format="json")
    assert paid.status_code == 200
    assert paid.json()["status"] == "succeeded"
    assert balance(org) == TOKENS_FOR_10_USD


@pytest.mark.parametrize(
    "body",
    [{"card_token": "4242424242424242"}, {"card_token": "tok_visa", "payment_method": "pm_x"}],
    ids=["not-a-token", "token-and-payment-method"],
)
def test_a_malformed_confirm_is_refused_and_changes_nothing(
    make_org, api_client_for, localstripe, body
):
    org = make_org()
    client = api_client_for(org)
    topup = _pending_topup(client)

    refused = client.post(f"/api/v1/topups/{topup['id']}/confirm/", body, format="json")

    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "invalid"
    assert TopUp.objects.get(pk=topup["id"]).status == "pending"
    assert _stripe_side(localstripe.url, topup["payment_intent_id"]).status == (
        "requires_payment_method")
    assert balance(org) == 0
