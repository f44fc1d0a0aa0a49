"""Plain data at the payment boundary.

Everything that crosses between Suanli and a payment provider is one of these frozen
dataclasses or one of the errors below; no provider object (a ``stripe.StripeObject``)
ever leaves ``banking.gateway``. Amounts are integer minor units (cents) with a
lower-case ISO currency code, exactly as Stripe spells them.

Declined cards: a decline is *data*, not an exception. ``payment_intent_create(...,
confirm=True)`` and ``payment_intent_confirm`` return a :class:`PaymentIntentInfo` whose
``status`` is not ``"succeeded"`` (Stripe: ``"requires_payment_method"``) and whose
``failure_code`` / ``failure_message`` say why, in words a buyer can act on.
:class:`CardDeclined` is raised only when a card error cannot be tied to a PaymentIntent
(it is a :class:`GatewayError`, so ``except GatewayError`` still covers it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

PAYMENT_INTENT_SUCCEEDED = "succeeded"


@dataclass(frozen=True, slots=True)
class PaymentIntentInfo:
    id: str
    status: str
    amount_cents: int
    currency: str
    client_secret: str | None
    customer_id: str | None
    failure_code: str | None = None
    failure_message: str | None = None
    latest_charge_id: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    created: int = 0

    @property
    def succeeded(self) -> bool:
        return self.status == PAYMENT_INTENT_SUCCEEDED


@dataclass(frozen=True, slots=True)
class RefundInfo:
    id: str
    payment_intent_id: str | None
    charge_id: str | None
    amount_cents: int
    currency: str
    status: str
    created: int = 0
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PayoutTransferInfo:
    """A transfer of funds to a provider's connected account (Stripe Connect)."""

    id: str
    amount_cents: int
    currency: str
    destination: str
    status: Literal["paid", "failed"]
    failure_message: str | None = None
    created: int = 0
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PayoutAccountInfo:
    """A connected account as the provider sees it: may it be paid out to?"""

    id: str
    charges_enabled: bool
    payouts_enabled: bool


@dataclass(frozen=True, slots=True)
class ChargeInfo:
    """One card charge, for reconciliation against card clearing."""

    id: str
    payment_intent_id: str | None
    amount_cents: int
    amount_refunded_cents: int
    currency: str
    status: str
    created: int = 0


@dataclass(frozen=True, slots=True)
class WebhookEvent:
    id: str
    type: str
    created: int
    data_object: dict[str, Any]
    livemode: bool


class GatewayError(Exception):
    """A payment provider call failed.

    ``retryable`` is true when the same call with the same idempotency key may succeed
    later (network failure, rate limit, provider 5xx); false when repeating it is
    pointless (bad request, authentication, idempotency conflict).
    """

    def __init__(self, message: str, *, code: str = "gateway_error", retryable: bool = False):
        super().__init__(message)
        self.message = message
        self.code = code
        self.retryable = retryable

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(message={self.message!r}, code={self.code!r}, "
            f"retryable={self.retryable!r})"
        )


class CardDeclined(GatewayError):
    """The card was declined and the decline could not be reported on a PaymentIntent."""

    def __init__(self, message: str, *, code: str = "card_declined"):
        super().__init__(message, code=code, retryable=False)


class SignatureVerificationError(Exception):
    """An inbound webhook's signature is missing, malformed, wrong or too old."""


@runtime_checkable
class PaymentGateway(Protocol):
    """What Suanli needs from a card processor. Implementations: ``StripeGateway``
    (real Stripe or localstripe) and ``FakeGateway`` (in memory, for the embedded demo).

    Every call that creates something takes an ``idempotency_key``: repeating the call
    with the same key returns the first result and creates nothing new.
    """

    def customer_create(self, *, name: str, organization_id: str, idempotency_key: str) -> str:
        """Create a customer for an organization; return its id (``cus_...``)."""
        ...

    def payment_intent_create(
        self,
        *,
        customer_id: str,
        amount_cents: int,
        currency: str,
        metadata: dict[str, str],
        idempotency_key: str,
        payment_method: str | None = None,
        confirm: bool = False,
        off_session: bool = False,
    ) -> PaymentIntentInfo: ...

    def payment_intent_retrieve(self, payment_intent_id: str) -> PaymentIntentInfo: ...

    def payment_intent_confirm(
        self, payment_intent_id: str, *, payment_method: str
    ) -> PaymentIntentInfo: ...

    def card_token_attach(self, *, customer_id: str, token: str, idempotency_key: str) -> str:
        """Save the card behind a Stripe.js token (``tok_...``, made in the buyer's browser
        by Stripe Elements) on the customer; return the id to pay with (``card_...``).
        Raises :class:`CardDeclined` when the issuer refuses the card."""
        ...

    def refund_create(
        self, *, payment_intent_id: str, amount_cents: int | None = None, idempotency_key: str
    ) -> RefundInfo: ...

    def payout_transfer_create(
        self,
        *,
        destination_account: str,
        amount_cents: int,
        currency: str,
        idempotency_key: str,
        metadata: dict[str, str],
    ) -> PayoutTransferInfo: ...

    def payout_account_retrieve(self, account_id: str) -> PayoutAccountInfo:
        """The connected account (Stripe ``Account.retrieve``). An unknown account raises
        a non-retryable :class:`GatewayError`."""
        ...

    def webhook_event_parse(self, payload: bytes, signature_header: str) -> WebhookEvent:
        """Verify ``Stripe-Signature`` (300 s tolerance) and parse the event.

        Raises :class:`SignatureVerificationError` on any failure to verify and
        ``ValueError`` when a correctly signed payload is not an event.
        """
        ...

    def payments_succeeded_list(self, *, since: int | None) -> list[PaymentIntentInfo]:
        """Every succeeded PaymentIntent created at or after ``since`` (epoch seconds)."""
        ...

    def refunds_list(self, *, since: int | None) -> list[RefundInfo]: ...

    def payout_transfers_list(self, *, since: int | None) -> list[PayoutTransferInfo]: ...

    def charges_list(self, *, since: int | None) -> list[ChargeInfo]: ...
