"""End to end against localstripe, a real HTTP server started by the test suite: the
buyer pays, localstripe POSTs the signed webhook to our live server, tokens are credited
exactly once; replays, a race with the confirm endpoint, a declined card, a refund."""

import json
import time
import urllib.request
import uuid
from typing import Any

import pytest
from django.db import connection

from banking.gateway import get_gateway
from banking.gateway.signatures import sign_payload
from banking.models import StripeEvent, TopUp, Transfer
from banking.models.ledger import AccountPurpose, TransferKind
from banking.selectors import organization_account, wallet_get
from banking.services.ledger import transfer_post
from banking.services.payments import (
    stripe_webhook_receive,
    topup_create,
    topup_refund,
)
from banking.standing import organization_assert_can_spend
from tests.banking.payments.conftest import balance
from tests.concurrency import run_threads
from tests.stripe_server import create_card_payment_method, register_webhook

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.xdist_group("localstripe"),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL row locks"),
]
TOKENS_FOR_10_USD = 33_333_333


@pytest.fixture
def webhook_to_live_server(localstripe, live_server):
    """localstripe sends payment events to this test's live server, signed with this
    test's secret (registrations are process-wide: one id, re-pointed each time)."""
    register_webhook(
        localstripe.url,
        webhook_id="suanli-payments-tests",
        url=f"{live_server.url}/webhooks/stripe/",
        secret=localstripe.webhook_secret,
        events=["payment_intent.succeeded", "payment_intent.payment_failed"],
    )
    return localstripe


def _post_webhook(url: str, payload: bytes, header: str) -> dict:
    request = urllib.request.Request(
        url, data=payload, method="POST",
        headers={"Content-Type": "application/json", "Stripe-Signature": header},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return dict(json.loads(response.read()))


def _wait(predicate, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("timed out waiting")


def test_happy_path_the_signed_webhook_from_localstripe_credits_once_and_replays_change_nothing(
    make_org, api_client_for, webhook_to_live_server, eager_tasks, live_server
):
    org = make_org()
    client = api_client_for(org)
    created = client.post("/api/v1/topups/", {"amount_cents": 1000, "currency": "usd"},
                          format="json", HTTP_IDEMPOTENCY_KEY="happy")
    assert created.status_code == 201
    body = created.json()
    assert body["status"] == "pending"
    assert body["tokens"] == TOKENS_FOR_10_USD
    assert body["payment_intent_id"].startswith("pi_")
    assert body["client_secret"].startswith(body["payment_intent_id"])

    # The buyer pays in the browser (Stripe.js confirms with the card).
    get_gateway().payment_intent_confirm(body["payment_intent_id"], payment_method="pm_card_visa")

    _wait(lambda: StripeEvent.objects.filter(type="payment_intent.succeeded",
                                             status="processed").exists())
    event = StripeEvent.objects.get(type="payment_intent.succeeded")
    assert event.payload["data"]["object"]["id"] == body["payment_intent_id"]
    assert TopUp.objects.get(pk=body["id"]).status == "succeeded"
    assert balance(org) == TOKENS_FOR_10_USD

    # The same event delivered 10 more times, over HTTP, freshly signed each time.
    payload = json.dumps(event.payload).encode()
    for _ in range(10):
        answer = _post_webhook(
            f"{live_server.url}/webhooks/stripe/",
            payload,
            sign_payload(payload, secret=webhook_to_live_server.webhook_secret),
        )
        assert answer == {"received": True, "event_id": event.event_id, "duplicate": True,
                          "handled": True}
    assert StripeEvent.objects.filter(event_id=event.event_id).count() == 1
    assert Transfer.objects.filter(kind=TransferKind.TOPUP).count() == 1
    assert balance(org) == TOKENS_FOR_10_USD
    listed = client.get("/api/v1/topups/").json()["results"]
    assert [(t["id"], t["status"]) for t in listed] == [(body["id"], "succeeded")]


def test_the_webhook_and_the_confirm_endpoint_racing_credit_once(
    make_org, api_client_for, localstripe, eager_tasks
):
    org = make_org()
    client = api_client_for(org)
    rounds = 4
    for n in range(rounds):
        topup = topup_create(organization_id=org.pk, amount_cents=1000,
                             idempotency_key=f"race-{n}")
        assert topup.payment_intent_id is not None
        pi = get_gateway().payment_intent_confirm(topup.payment_intent_id,
                                                  payment_method="pm_card_visa")
        assert pi.succeeded
        payload = json.dumps({
            "id": f"evt_race_{uuid.uuid4().hex}", "object": "event",
            "type": "payment_intent.succeeded", "created": int(time.time()),
            "livemode": False,
            "data": {"object": {"id": pi.id, "object": "payment_intent",
                                "metadata": pi.metadata}},
        }).encode()
        header = sign_payload(payload, secret=localstripe.webhook_secret)

        def racer(i: int, payload=payload, header=header, topup_id=topup.pk) -> object:
            if i == 0:
                return stripe_webhook_receive(payload=payload, signature_header=header)
            return client.post(f"/api/v1/topups/{topup_id}/confirm/", {}, format="json")

        results = run_threads(2, racer)
        assert [r for r in results if isinstance(r, BaseException)] == []
        confirmed: Any = results[1]
        assert confirmed.status_code == 200
        assert confirmed.json()["status"] == "succeeded"
    assert Transfer.objects.filter(kind=TransferKind.TOPUP).count() == rounds
    assert balance(org) == rounds * TOKENS_FOR_10_USD
    assert StripeEvent.objects.filter(status="processed").count() == rounds


def test_a_declined_card_credits_nothing_and_the_top_up_says_why(
    make_org, api_client_for, localstripe
):
    org = make_org()
    client = api_client_for(org)
    card = create_card_payment_method(localstripe.url, "4000000000000341")
    response = client.post(
        "/api/v1/topups/",
        {"amount_cents": 1000, "currency": "usd", "payment_method": card},
        format="json",
    )
    assert response.status_code == 402
    error = response.json()["error"]
    assert error["code"] == "card_declined"
    assert error["message"] == "Your card was declined."
    topup = TopUp.objects.get(pk=error["fields"]["topup_id"])
    assert (topup.status, topup.failure_code) == ("failed", "card_declined")
    assert balance(org) == 0
    assert Transfer.objects.filter(kind=TransferKind.TOPUP).count() == 0
    listed = client.get("/api/v1/topups/").json()["results"]
    assert [(t["status"], t["failure_message"]) for t in listed] == [
        ("failed", "Your card was declined.")
    ]
    confirm = client.post(f"/api/v1/topups/{topup.pk}/confirm/", {}, format="json")
    assert confirm.status_code == 402
    assert balance(org) == 0


def test_a_refund_after_spending_leaves_a_debt_that_blocks_spending_until_repaid(
    make_org, localstripe
):
    org, shop = make_org(), make_org()
    topup = topup_create(organization_id=org.pk, amount_cents=1000,
                         payment_method="pm_card_visa", idempotency_key="paid")
    assert topup.status == "succeeded"
    transfer_post(kind=TransferKind.TRANSFER, idempotency_key="spent",
                  legs=[(organization_account(org.pk, "wallet").pk, -20_000_000),
                        (organization_account(shop.pk, "wallet").pk, 20_000_000)])

    refunded = topup_refund(topup_id=topup.pk)

    assert (refunded.refunded_cents, refunded.refunded_tokens) == (1000, TOKENS_FOR_10_USD)
    summary = wallet_get(organization_id=org.pk)
    assert (summary.available, summary.debt) == (0, 20_000_000)
    assert organization_account(org.pk, AccountPurpose.DEBT).balance == -20_000_000
    with pytest.raises(Exception, match="owes 20000000 tokens"):
        organization_assert_can_spend(org.pk)

    # Stripe's charge.refunded for the same refund changes nothing more.
    charge_refunded = json.dumps({
        "id": f"evt_refund_{uuid.uuid4().hex}", "object": "event", "type": "charge.refunded",
        "created": int(time.time()), "livemode": False,
        "data": {"object": {"id": refunded.charge_id, "object": "charge",
                            "payment_intent": refunded.payment_intent_id,
                            "amount": 1000, "amount_refunded": 1000}},
    }).encode()
    from banking.services.payments import stripe_event_process

    receipt = stripe_webhook_receive(
        payload=charge_refunded,
        signature_header=sign_payload(charge_refunded, secret=localstripe.webhook_secret),
    )
    stripe_event_process(event_pk=StripeEvent.objects.get(event_id=receipt.event_id).pk)
    assert Transfer.objects.filter(kind=TransferKind.REFUND).count() == 1

    topup_create(organization_id=org.pk, amount_cents=1000, payment_method="pm_card_visa",
                 idempotency_key="repay")
    summary = wallet_get(organization_id=org.pk)
    assert (summary.available, summary.debt) == (TOKENS_FOR_10_USD - 20_000_000, 0)
    organization_assert_can_spend(org.pk)
