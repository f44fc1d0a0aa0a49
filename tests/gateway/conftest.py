"""Fixtures for the gateway tests. No Django: gateways are built directly."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from banking.gateway.fake import FakeGateway
from banking.gateway.interface import PaymentGateway
from banking.gateway.stripe_adapter import StripeGateway
from tests.stripe_server import (
    LOCALSTRIPE_SECRET_KEY,
    create_card_payment_method,
    create_card_token,
)

# `localstripe_url` (one server per session) comes from the repository-wide conftest.
__all__ = ["GatewayUnderTest"]

WEBHOOK_SECRET = "whsec_gateway_tests"
CARD_NUMBERS = {"visa": "4242424242424242", "declined": "4000000000000002"}


@dataclass(frozen=True)
class GatewayUnderTest:
    name: str
    gateway: PaymentGateway
    declined_card: Callable[[], str]
    """Returns a payment method whose charge is declined (card 4000000000000341)."""
    card_token: Callable[[str], str]
    """A Stripe.js token for the card "visa" or "declined" (4000000000000002)."""


def unique_key(prefix: str = "key") -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


@pytest.fixture(params=["fake", "localstripe"])
def gut(request: pytest.FixtureRequest) -> Iterator[GatewayUnderTest]:
    """Each behavioural test runs against the FakeGateway and against localstripe."""
    if request.param == "fake":
        yield GatewayUnderTest(
            name="fake",
            gateway=FakeGateway(webhook_secret=WEBHOOK_SECRET),
            declined_card=lambda: "4000000000000341",
            card_token={"visa": "tok_visa", "declined": "tok_chargeDeclined"}.__getitem__,
        )
        return
    base_url: str = request.getfixturevalue("localstripe_url")
    yield GatewayUnderTest(
        name="localstripe",
        gateway=StripeGateway(
            LOCALSTRIPE_SECRET_KEY, WEBHOOK_SECRET, base_url, max_network_retries=0
        ),
        declined_card=lambda: create_card_payment_method(base_url, "4000000000000341"),
        card_token=lambda card: create_card_token(base_url, CARD_NUMBERS[card]),
    )
