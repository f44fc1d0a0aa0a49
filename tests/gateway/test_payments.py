"""Customers, PaymentIntents, declines, refunds and reconciliation lists, run against
the FakeGateway and against a real localstripe process."""

from __future__ import annotations

import time

import pytest

from banking.gateway.interface import CardDeclined, GatewayError
from tests.gateway.conftest import GatewayUnderTest, unique_key


def _customer(gut: GatewayUnderTest) -> str:
    return gut.gateway.customer_create(
        name="Acme Robotics", organization_id="42", idempotency_key=unique_key("cus")
    )


def test_customer_create_returns_a_customer_id(gut: GatewayUnderTest) -> None:
    customer_id = _customer(gut)

    assert customer_id.startswith("cus_")


def test_payment_intent_confirmed_with_visa_succeeds(gut: GatewayUnderTest) -> None:
    customer_id = _customer(gut)
    created = gut.gateway.payment_intent_create(
        customer_id=customer_id,
        amount_cents=2500,
        currency="USD",
        metadata={"topup_id": "7"},
        idempotency_key=unique_key("pi"),
    )

    confirmed = gut.gateway.payment_intent_confirm(created.id, payment_method="pm_card_visa")

    assert created.status == "requires_payment_method"
    assert created.client_secret is not None
    assert confirmed.id == created.id
    assert confirmed.status == "succeeded"
    assert confirmed.succeeded is True
    assert confirmed.amount_cents == 2500
    assert confirmed.currency == "usd"
    assert confirmed.customer_id == customer_id
    assert confirmed.metadata == {"topup_id": "7"}
    assert confirmed.failure_message is None
    assert confirmed.latest_charge_id is not None
    assert gut.gateway.payment_intent_retrieve(created.id) == confirmed


def test_confirming_twice_returns_the_succeeded_payment_intent(gut: GatewayUnderTest) -> None:
    pi = gut.gateway.payment_intent_create(
        customer_id=_customer(gut),
        amount_cents=900,
        currency="usd",
        metadata={},
        idempotency_key=unique_key("pi"),
    )
    first = gut.gateway.payment_intent_confirm(pi.id, payment_method="pm_card_visa")

    again = gut.gateway.payment_intent_confirm(pi.id, payment_method="pm_card_visa")

    assert again == first
    assert again.status == "succeeded"


def test_a_card_token_is_saved_once_on_the_customer_and_pays(gut: GatewayUnderTest) -> None:
    customer_id = _customer(gut)
    token = gut.card_token("visa")
    key = unique_key("card")

    card = gut.gateway.card_token_attach(customer_id=customer_id, token=token,
                                         idempotency_key=key)
    again = gut.gateway.card_token_attach(customer_id=customer_id, token=token,
                                          idempotency_key=key)
    pi = gut.gateway.payment_intent_create(
        customer_id=customer_id, amount_cents=1200, currency="usd", metadata={},
        idempotency_key=unique_key("pi"),
    )
    paid = gut.gateway.payment_intent_confirm(pi.id, payment_method=card)

    assert again == card
    assert (paid.status, paid.amount_cents) == ("succeeded", 1200)


def test_a_declined_card_token_is_refused_when_saved(gut: GatewayUnderTest) -> None:
    with pytest.raises(CardDeclined) as declined:
        gut.gateway.card_token_attach(customer_id=_customer(gut),
                                      token=gut.card_token("declined"),
                                      idempotency_key=unique_key("card"))

    assert declined.value.retryable is False
    assert "declined" in declined.value.message


def test_create_with_confirm_charges_at_once(gut: GatewayUnderTest) -> None:
    pi = gut.gateway.payment_intent_create(
        customer_id=_customer(gut),
        amount_cents=1234,
        currency="usd",
        metadata={},
        idempotency_key=unique_key("pi"),
        payment_method="pm_card_visa",
        confirm=True,
    )

    assert pi.status == "succeeded"
    assert pi.amount_cents == 1234


def test_a_declined_card_on_confirm_reports_a_readable_failure(gut: GatewayUnderTest) -> None:
    pi = gut.gateway.payment_intent_create(
        customer_id=_customer(gut),
        amount_cents=5000,
        currency="usd",
        metadata={},
        idempotency_key=unique_key("pi"),
    )

    declined = gut.gateway.payment_intent_confirm(pi.id, payment_method=gut.declined_card())

    assert declined.id == pi.id
    assert declined.status == "requires_payment_method"
    assert declined.succeeded is False
    assert declined.failure_code == "card_declined"
    assert declined.failure_message == "Your card was declined."
    assert gut.gateway.payment_intent_retrieve(pi.id).status == "requires_payment_method"


def test_a_declined_card_on_create_and_confirm_reports_a_readable_failure(
    gut: GatewayUnderTest,
) -> None:
    declined = gut.gateway.payment_intent_create(
        customer_id=_customer(gut),
        amount_cents=5000,
        currency="usd",
        metadata={"topup_id": "9"},
        idempotency_key=unique_key("pi"),
        payment_method=gut.declined_card(),
        confirm=True,
    )

    assert declined.id.startswith("pi_")
    assert declined.status == "requires_payment_method"
    assert declined.failure_code == "card_declined"
    assert declined.failure_message == "Your card was declined."
    assert declined.metadata == {"topup_id": "9"}


def _succeeded_payment(gut: GatewayUnderTest, amount_cents: int) -> str:
    pi = gut.gateway.payment_intent_create(
        customer_id=_customer(gut),
        amount_cents=amount_cents,
        currency="usd",
        metadata={},
        idempotency_key=unique_key("pi"),
        payment_method="pm_card_visa",
        confirm=True,
    )
    assert pi.status == "succeeded"
    return pi.id


def test_refund_of_part_of_a_payment(gut: GatewayUnderTest) -> None:
    pi_id = _succeeded_payment(gut, 3000)

    refund = gut.gateway.refund_create(
        payment_intent_id=pi_id, amount_cents=1000, idempotency_key=unique_key("re")
    )

    assert refund.id.startswith("re_")
    assert refund.payment_intent_id == pi_id
    assert refund.amount_cents == 1000
    assert refund.currency == "usd"
    assert refund.status == "succeeded"
    assert refund.charge_id == gut.gateway.payment_intent_retrieve(pi_id).latest_charge_id


def test_refund_without_amount_refunds_the_whole_payment(gut: GatewayUnderTest) -> None:
    pi_id = _succeeded_payment(gut, 4200)

    refund = gut.gateway.refund_create(payment_intent_id=pi_id, idempotency_key=unique_key("re"))

    assert refund.amount_cents == 4200


def test_refund_of_a_declined_payment_is_refused(gut: GatewayUnderTest) -> None:
    declined = gut.gateway.payment_intent_create(
        customer_id=_customer(gut),
        amount_cents=700,
        currency="usd",
        metadata={},
        idempotency_key=unique_key("pi"),
        payment_method=gut.declined_card(),
        confirm=True,
    )

    with pytest.raises(GatewayError, match="Cannot refund a failed payment") as info:
        gut.gateway.refund_create(payment_intent_id=declined.id, idempotency_key=unique_key())

    assert info.value.retryable is False


def test_retrieving_an_unknown_payment_intent_is_a_non_retryable_error(
    gut: GatewayUnderTest,
) -> None:
    with pytest.raises(GatewayError) as info:
        gut.gateway.payment_intent_retrieve("pi_doesnotexist")

    assert info.value.retryable is False


def test_reconciliation_lists_succeeded_payments_and_refunds_since(
    gut: GatewayUnderTest,
) -> None:
    since = int(time.time())
    paid = _succeeded_payment(gut, 1500)
    declined = gut.gateway.payment_intent_create(
        customer_id=_customer(gut),
        amount_cents=800,
        currency="usd",
        metadata={},
        idempotency_key=unique_key("pi"),
        payment_method=gut.declined_card(),
        confirm=True,
    )
    refund = gut.gateway.refund_create(
        payment_intent_id=paid, amount_cents=500, idempotency_key=unique_key("re")
    )

    payments = {p.id: p for p in gut.gateway.payments_succeeded_list(since=since)}
    refunds = {r.id: r for r in gut.gateway.refunds_list(since=since)}
    charges = {c.payment_intent_id: c for c in gut.gateway.charges_list(since=since)}
    future = int(time.time()) + 3600

    assert payments[paid].amount_cents == 1500
    assert declined.id not in payments
    assert all(p.status == "succeeded" for p in payments.values())
    assert refunds[refund.id].amount_cents == 500
    assert charges[paid].amount_refunded_cents == 500
    assert charges[declined.id].status == "failed"
    assert gut.gateway.payments_succeeded_list(since=future) == []
    assert gut.gateway.refunds_list(since=future) == []
    assert paid in {p.id for p in gut.gateway.payments_succeeded_list(since=None)}
