"""Card top-ups: price quotes, PaymentIntents, fulfilment (exactly once), refunds,
disputes and inbound Stripe webhooks.

The payment provider is reached only through `banking.gateway.get_gateway()` and never
while a row lock is held: every flow records its intent and commits, calls the gateway,
then locks again, re-checks and records the result (saleor's checkout completion).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from banking.error_codes import PaymentErrorCode
from banking.errors import OrganizationFrozen
from banking.gateway import CardDeclined as GatewayCardDeclined
from banking.gateway import (
    GatewayError,
    PaymentIntentInfo,
    SignatureVerificationError,
    get_gateway,
)
from banking.locks import accounts_lock, topup_lock
from banking.models import (
    Dispute,
    Organization,
    StripeCustomer,
    StripeEvent,
    TokenPrice,
    TokenPriceTier,
    TopUp,
)
from banking.models.ledger import AccountPurpose, TransferKind
from banking.selectors import organization_account_ids
from banking.services.holds import hold_capture, hold_place, hold_release
from banking.services.ledger import new_idempotency_key, system_account, transfer_post
from banking.services.transactions import money_transaction
from core.errors import Conflict, DomainError, InvalidInput, NotFound

logger = logging.getLogger("suanli.payments")

MILLION = 1_000_000


class CardDeclined(DomainError):
    code = PaymentErrorCode.CARD_DECLINED
    status = 402


class PaymentProviderUnavailable(DomainError):
    """The provider could not be reached; repeating the request (same Idempotency-Key)
    is safe."""

    code = PaymentErrorCode.PAYMENT_PROVIDER_UNAVAILABLE
    status = 503


class PaymentProviderError(DomainError):
    code = PaymentErrorCode.PAYMENT_PROVIDER_ERROR
    status = 400


class WebhookRejected(DomainError):
    code = PaymentErrorCode.INVALID_SIGNATURE
    status = 400


# -- pricing: the only place where fiat and tokens are converted and rounded -----------


def tokens_for_cents(amount_cents: int, cents_per_million: Decimal) -> int:
    """Whole tokens that `amount_cents` buys, rounded down."""
    return math.floor(Fraction(amount_cents) * MILLION / Fraction(cents_per_million))


def cents_for_tokens(tokens: int, cents_per_million: Decimal, *, round_up: bool) -> int:
    """What `tokens` cost (top-up: rounded up) or fetch (payout: rounded down)."""
    exact = Fraction(tokens) * Fraction(cents_per_million) / MILLION
    return math.ceil(exact) if round_up else math.floor(exact)


def tokens_for_refund(*, tokens: int, amount_cents: int, refunded_cents: int) -> int:
    """Tokens a (partial) refund of a top-up takes back: the refunded share of what the
    payment bought, rounded up; all of them for a full refund."""
    if refunded_cents >= amount_cents:
        return tokens
    return min(tokens, math.ceil(Fraction(tokens * refunded_cents, amount_cents)))


@dataclass(frozen=True)
class Quote:
    currency: str
    amount_cents: int
    tokens: int
    cents_per_million: Decimal
    min_amount_cents: int
    max_amount_cents: int


def _active_price(currency: str) -> TokenPrice:
    code = (currency or "").strip().lower()
    price = (
        TokenPrice.objects.filter(currency=code, is_active=True).prefetch_related("tiers").first()
    )
    if price is None:
        supported = sorted(
            TokenPrice.objects.filter(is_active=True).values_list("currency", flat=True)
        )
        raise InvalidInput(
            f"Top-ups in {code.upper() or '(none)'} are not offered; "
            f"use one of: {', '.join(c.upper() for c in supported) or 'none'}.",
            code=PaymentErrorCode.CURRENCY_NOT_SUPPORTED,
            fields={"currency": ["Not supported."]},
        )
    return price


def _rates(price: TokenPrice) -> list[tuple[int, Decimal]]:
    """(minimum amount, rate) from the highest tier down to the base price."""
    tiers = sorted(
        ((t.min_amount_cents, t.cents_per_million) for t in price.tiers.all()), reverse=True
    )
    return [*tiers, (0, price.cents_per_million)]


def topup_quote(
    *, currency: str, amount_cents: int | None = None, tokens: int | None = None
) -> Quote:
    """How many tokens `amount_cents` buys, or what `tokens` cost, at today's price (volume
    tiers included). Exactly one of the two is given. Raises on a top-up below the
    minimum (`topup_below_minimum`) or above the maximum (`topup_above_maximum`)."""
    if (amount_cents is None) == (tokens is None):
        raise InvalidInput(
            "Give either amount_cents or tokens.",
            fields={"amount_cents": ["Give this or tokens."], "tokens": ["Or this."]},
        )
    price = _active_price(currency)
    rates = _rates(price)
    if amount_cents is not None:
        if isinstance(amount_cents, bool) or amount_cents <= 0:
            raise InvalidInput("amount_cents must be positive.",
                               fields={"amount_cents": ["Must be positive."]})
        rate = next(r for floor_cents, r in rates if amount_cents >= floor_cents)
        amount = amount_cents
    else:
        assert tokens is not None
        if isinstance(tokens, bool) or tokens <= 0:
            raise InvalidInput("tokens must be positive.", fields={"tokens": ["Must be positive."]})
        for floor_cents, rate in rates:
            amount = cents_for_tokens(tokens, rate, round_up=True)
            if amount >= floor_cents:
                break
    bought = tokens_for_cents(amount, rate)
    money = f"{price.currency.upper()} {Decimal(price.min_amount_cents) / 100:.2f}"
    if amount < price.min_amount_cents or bought <= 0:
        raise InvalidInput(
            f"The smallest top-up is {money}.",
            code=PaymentErrorCode.TOPUP_BELOW_MINIMUM,
            fields={"min_amount_cents": price.min_amount_cents, "amount_cents": amount},
        )
    if amount > price.max_amount_cents:
        most = f"{price.currency.upper()} {Decimal(price.max_amount_cents) / 100:.2f}"
        raise InvalidInput(
            f"The largest top-up is {most}.",
            code=PaymentErrorCode.TOPUP_ABOVE_MAXIMUM,
            fields={"max_amount_cents": price.max_amount_cents, "amount_cents": amount},
        )
    return Quote(
        currency=price.currency,
        amount_cents=amount,
        tokens=bought,
        cents_per_million=rate,
        min_amount_cents=price.min_amount_cents,
        max_amount_cents=price.max_amount_cents,
    )


DEFAULT_PRICES: dict[str, dict[str, Any]] = {
    # USD 0.30 per 1M tokens, USD 1 to USD 10,000 a top-up, USD 0.27 from USD 1,000.
    "usd": {
        "cents_per_million": Decimal("30"),
        "min_amount_cents": 100,
        "max_amount_cents": 1_000_000,
        "tiers": [(100_000, Decimal("27"))],
    },
}


def token_prices_seed() -> None:
    """Create the default prices where none is set (migration 0004 seeds the same);
    an admin's prices are left alone."""
    for currency, spec in DEFAULT_PRICES.items():
        price, created = TokenPrice.objects.get_or_create(
            currency=currency,
            defaults={k: v for k, v in spec.items() if k != "tiers"},
        )
        if created:
            TokenPriceTier.objects.bulk_create(
                [TokenPriceTier(price=price, min_amount_cents=floor, cents_per_million=rate)
                 for floor, rate in spec["tiers"]]
            )


# -- customers -------------------------------------------------------------------------


def stripe_customer_ensure(*, organization_id: int) -> str:
    """The organization's customer id at the provider, created on first use. Called with
    no transaction open: the provider call happens outside any lock."""
    found = (
        StripeCustomer.objects.filter(organization_id=organization_id)
        .values_list("customer_id", flat=True)
        .first()
    )
    if found is not None:
        return found
    org = Organization.objects.filter(pk=organization_id).first()
    if org is None:
        raise NotFound("Organization not found.")
    customer_id = _gateway_call(
        lambda: get_gateway().customer_create(
            name=org.name,
            organization_id=str(org.pk),
            idempotency_key=f"customer:org{org.pk}",
        )
    )
    try:
        with transaction.atomic():
            StripeCustomer.objects.create(organization_id=org.pk, customer_id=customer_id)
    except IntegrityError:
        # A concurrent first top-up won; its customer is the one we keep.
        return StripeCustomer.objects.get(organization_id=org.pk).customer_id
    return customer_id


def _gateway_call(call: Any) -> Any:
    """Run a provider call; turn its failure into a domain error a caller can act on."""
    try:
        return call()
    except GatewayError as exc:
        if exc.retryable:
            logger.warning("payment provider unavailable: %r", exc)
            raise PaymentProviderUnavailable(
                "The payment provider could not be reached; try again (repeating the "
                "request with the same Idempotency-Key is safe)."
            ) from exc
        logger.warning("payment provider refused a call: %r", exc)
        raise PaymentProviderError(exc.message, fields={"provider_code": exc.code}) from exc


# -- top-ups ---------------------------------------------------------------------------


def topup_create(
    *,
    organization_id: int,
    currency: str = "usd",
    amount_cents: int | None = None,
    tokens: int | None = None,
    idempotency_key: str | None = None,
    payment_method: str | None = None,
    off_session: bool = False,
) -> TopUp:
    """Create a top-up at the price of now and its PaymentIntent. With `payment_method`
    the payment is confirmed at once and, when it succeeds, the tokens are credited
    before returning. A repeated `idempotency_key` returns the first top-up (resuming it
    when the provider could not be reached the first time)."""
    org = Organization.objects.filter(pk=organization_id).first()
    if org is None:
        raise NotFound("Organization not found.")
    if org.status == Organization.Status.FROZEN:
        raise OrganizationFrozen("This organization is frozen; contact support.")
    quote = topup_quote(currency=currency, amount_cents=amount_cents, tokens=tokens)
    key = idempotency_key or new_idempotency_key("topup")
    topup = _topup_record(organization_id=org.pk, quote=quote, idempotency_key=key)
    if topup.status == TopUp.Status.CREATED and topup.payment_intent_id is None:
        topup = _topup_start_payment(topup, payment_method=payment_method,
                                     off_session=off_session)
    return topup


@transaction.atomic
def _topup_record(*, organization_id: int, quote: Quote, idempotency_key: str) -> TopUp:
    existing = TopUp.objects.filter(idempotency_key=idempotency_key).first()
    if existing is None:
        try:
            with transaction.atomic():
                return TopUp.objects.create(
                    organization_id=organization_id,
                    amount_cents=quote.amount_cents,
                    currency=quote.currency,
                    tokens=quote.tokens,
                    cents_per_million=quote.cents_per_million,
                    idempotency_key=idempotency_key,
                )
        except IntegrityError:
            existing = TopUp.objects.get(idempotency_key=idempotency_key)
    if (
        existing.organization_id != organization_id
        or existing.amount_cents != quote.amount_cents
        or existing.currency != quote.currency
    ):
        raise Conflict(
            "This Idempotency-Key was already used for a different top-up.",
            code="idempotency_conflict",
            fields={"topup_id": existing.pk},
        )
    return existing


def _topup_start_payment(topup: TopUp, *, payment_method: str | None,
                         off_session: bool = False) -> TopUp:
    customer_id = stripe_customer_ensure(organization_id=topup.organization_id)
    try:
        pi = _gateway_call(
            lambda: get_gateway().payment_intent_create(
                customer_id=customer_id,
                amount_cents=topup.amount_cents,
                currency=topup.currency,
                metadata={
                    "topup_id": str(topup.pk),
                    "organization_id": str(topup.organization_id),
                },
                idempotency_key=f"topup:{topup.pk}",
                payment_method=payment_method,
                confirm=payment_method is not None,
                off_session=off_session,
            )
        )
    except PaymentProviderError as exc:
        _topup_mark(topup.pk, status=TopUp.Status.FAILED, code=str(exc.fields.get(
            "provider_code", "provider_error")), message=exc.message)
        return TopUp.objects.get(pk=topup.pk)
    topup = _topup_record_payment_intent(topup.pk, pi)
    if pi.succeeded:
        topup = topup_fulfil(topup_id=topup.pk)
    return topup


def _status_of(pi: PaymentIntentInfo) -> str:
    if pi.status == "canceled":
        return TopUp.Status.CANCELED
    if pi.status == "requires_payment_method" and pi.failure_message:
        return TopUp.Status.FAILED
    return TopUp.Status.PENDING


@transaction.atomic
def _topup_mark(topup_id: int, *, status: str, code: str, message: str) -> None:
    topup = topup_lock(topup_id)
    if topup is None or topup.status == TopUp.Status.SUCCEEDED:
        return
    topup.status = status
    topup.failure_code = code[:100]
    topup.failure_message = message[:500]
    topup.save(update_fields=["status", "failure_code", "failure_message", "updated_at"])


@transaction.atomic
def _topup_record_payment_intent(topup_id: int, pi: PaymentIntentInfo) -> TopUp:
    """Record what the provider says about a top-up that is not credited yet."""
    topup = topup_lock(topup_id)
    if topup is None:
        raise NotFound("Top-up not found.")
    if topup.status == TopUp.Status.SUCCEEDED:
        return topup
    if topup.payment_intent_id is None:
        topup.payment_intent_id = pi.id
    topup.client_secret = pi.client_secret or topup.client_secret
    topup.payment_status = pi.status
    topup.charge_id = pi.latest_charge_id or topup.charge_id
    topup.status = _status_of(pi)
    topup.failure_code = (pi.failure_code or "")[:100] if topup.status != "pending" else ""
    topup.failure_message = (
        (pi.failure_message or "")[:500] if topup.status != "pending" else ""
    )
    topup.save()
    return topup


def _check_payment_intent(topup: TopUp, pi: PaymentIntentInfo) -> None:
    problems = []
    if topup.payment_intent_id not in (None, pi.id):
        problems.append(f"PaymentIntent {pi.id} is not {topup.payment_intent_id}")
    if topup.payment_intent_id is None and pi.metadata.get("topup_id") != str(topup.pk):
        problems.append(f"PaymentIntent {pi.id} was not made for this top-up")
    if pi.amount_cents != topup.amount_cents or pi.currency != topup.currency:
        problems.append(
            f"PaymentIntent {pi.id} is for {pi.amount_cents} {pi.currency}, the top-up for "
            f"{topup.amount_cents} {topup.currency}"
        )
    if problems:
        logger.error("top-up %s does not match its payment: %s", topup.pk, "; ".join(problems))
        raise Conflict(
            "The payment does not match the top-up; nothing was credited.",
            code=PaymentErrorCode.PAYMENT_MISMATCH,
            fields={"problems": problems},
        )


def topup_fulfil(*, topup_id: int, payment_intent_id: str | None = None) -> TopUp:
    """The one fulfilment path (webhook, confirm endpoint, periodic sync): ask the
    provider for the PaymentIntent and credit the tokens when, and only when, it has
    succeeded. Safe to call any number of times, concurrently: the top-up row lock and the
    ledger's idempotency key `topup:<id>` credit it at most once."""
    topup = TopUp.objects.filter(pk=topup_id).first()
    if topup is None:
        raise NotFound("Top-up not found.")
    if topup.status == TopUp.Status.SUCCEEDED:
        return topup
    pi_id = topup.payment_intent_id or payment_intent_id
    if pi_id is None:
        return topup  # the PaymentIntent is not created yet: nothing to check
    pi = _gateway_call(lambda: get_gateway().payment_intent_retrieve(pi_id))
    _check_payment_intent(topup, pi)
    if pi.succeeded:
        return _topup_credit(topup_id, pi)
    return _topup_record_payment_intent(topup_id, pi)


@money_transaction
def _topup_credit(topup_id: int, pi: PaymentIntentInfo) -> TopUp:
    """Card clearing -> wallet, repaying the organization's debt first."""
    topup = topup_lock(topup_id)
    if topup is None:
        raise NotFound("Top-up not found.")
    if topup.status == TopUp.Status.SUCCEEDED:
        return topup
    ids = organization_account_ids(topup.organization_id)
    wallet_id, debt_id = ids[AccountPurpose.WALLET], ids[AccountPurpose.DEBT]
    clearing_id = system_account(AccountPurpose.CARD_CLEARING).pk
    accounts = accounts_lock([clearing_id, wallet_id, debt_id])
    owed = max(0, -accounts[debt_id].balance)
    repay = min(owed, topup.tokens)
    legs = [(clearing_id, -topup.tokens), (wallet_id, topup.tokens - repay), (debt_id, repay)]
    memo = f"Card top-up {topup.amount_cents / 100:.2f} {topup.currency.upper()}"
    if repay:
        memo += f"; {repay} tokens repay debt"
    transfer = transfer_post(
        kind=TransferKind.TOPUP,
        idempotency_key=f"topup:{topup.pk}",
        legs=[leg for leg in legs if leg[1] != 0],
        reference=f"topup:{topup.pk}",
        memo=memo,
    )
    topup.status = TopUp.Status.SUCCEEDED
    topup.payment_status = pi.status
    topup.credit_transfer = transfer
    topup.payment_intent_id = topup.payment_intent_id or pi.id
    topup.charge_id = pi.latest_charge_id or topup.charge_id
    topup.failure_code = ""
    topup.failure_message = ""
    topup.succeeded_at = timezone.now()
    topup.save()
    return topup


def topup_confirm(
    *,
    organization_id: int,
    topup_id: int,
    payment_method: str | None = None,
    card_token: str | None = None,
) -> TopUp:
    """The buyer's return path: confirm with `payment_method`, or with the card behind a
    Stripe.js `card_token` (saved on the organization's customer first), then fulfil.
    Repeating it is harmless: a payment already under way is not confirmed again."""
    topup = TopUp.objects.filter(pk=topup_id, organization_id=organization_id).first()
    if topup is None:
        raise NotFound("Top-up not found.")
    if topup.status == TopUp.Status.SUCCEEDED:
        return topup
    if card_token:
        if topup.payment_intent_id is not None and _payment_under_way(topup.payment_intent_id):
            return topup_fulfil(topup_id=topup.pk)
        payment_method = _card_token_attach(topup, card_token)
        if payment_method is None:
            return TopUp.objects.get(pk=topup.pk)
    if topup.payment_intent_id is None:
        if topup.status == TopUp.Status.CREATED:
            return _topup_start_payment(topup, payment_method=payment_method)
        return topup
    if payment_method:
        pi_id = topup.payment_intent_id
        pi = _gateway_call(
            lambda: get_gateway().payment_intent_confirm(pi_id, payment_method=payment_method)
        )
        if not pi.succeeded:
            _check_payment_intent(topup, pi)
            return _topup_record_payment_intent(topup.pk, pi)
    return topup_fulfil(topup_id=topup.pk)


def _payment_under_way(payment_intent_id: str) -> bool:
    """Whether the PaymentIntent already has a payment method it is working with (so a
    second card must not be attached to it)."""
    pi = _gateway_call(lambda: get_gateway().payment_intent_retrieve(payment_intent_id))
    return pi.status in ("requires_action", "processing", "requires_capture", "succeeded")


def _card_token_attach(topup: TopUp, card_token: str) -> str | None:
    """The id to pay with, or None when the issuer declined the card (the top-up is then
    marked failed, and another card may still be tried)."""
    customer_id = stripe_customer_ensure(organization_id=topup.organization_id)
    gateway = get_gateway()
    try:
        return str(_gateway_call(
            lambda: gateway.card_token_attach(
                customer_id=customer_id, token=card_token,
                idempotency_key=f"topup:{topup.pk}:card:{card_token}",
            )
        ))
    except PaymentProviderError as exc:
        if not isinstance(exc.__cause__, GatewayCardDeclined):
            raise
        _topup_mark(topup.pk, status=TopUp.Status.FAILED,
                    code=exc.__cause__.code, message=exc.message)
        return None


def topups_sync_pending(*, older_than_s: int | None = None, limit: int = 200) -> int:
    """Fulfil top-ups whose webhook may have been lost. Returns how many were credited."""
    now = timezone.now()
    age = timedelta(seconds=older_than_s if older_than_s is not None
                    else settings.TOPUP_SYNC_AFTER_S)
    ids = list(
        TopUp.objects.filter(
            status=TopUp.Status.PENDING,
            payment_intent_id__isnull=False,
            created_at__lte=now - age,
            created_at__gte=now - timedelta(days=7),
        )
        .order_by("id")
        .values_list("id", flat=True)[:limit]
    )
    credited = 0
    for topup_id in ids:
        try:
            if topup_fulfil(topup_id=topup_id).status == TopUp.Status.SUCCEEDED:
                credited += 1
        except DomainError as exc:
            logger.warning("sync of top-up %s failed: %s", topup_id, exc.message)
    return credited


# -- refunds and disputes --------------------------------------------------------------


def _take_back_legs(
    *, clearing_id: int, wallet_id: int, debt_id: int, wallet_balance: int, tokens: int
) -> list[tuple[int, int]]:
    """Tokens back to card clearing: what the wallet has, the rest owed (debt)."""
    from_wallet = min(max(wallet_balance, 0), tokens)
    legs = [(clearing_id, tokens), (wallet_id, -from_wallet), (debt_id, -(tokens - from_wallet))]
    return [leg for leg in legs if leg[1] != 0]


@money_transaction
def topup_refund_apply(*, topup_id: int, refunded_cents_total: int) -> TopUp:
    """Take back the tokens of a refund, given the payment's refunded total so far (as
    Stripe reports it in `charge.refunded`). Applying the same or a lower total again
    changes nothing."""
    topup = topup_lock(topup_id)
    if topup is None:
        raise NotFound("Top-up not found.")
    if topup.status != TopUp.Status.SUCCEEDED:
        raise Conflict(
            f"Top-up {topup_id} was never credited; there is nothing to refund.",
            code=PaymentErrorCode.TOPUP_NOT_REFUNDABLE,
        )
    total = min(refunded_cents_total, topup.amount_cents)
    if total <= topup.refunded_cents:
        return topup
    target = tokens_for_refund(
        tokens=topup.tokens, amount_cents=topup.amount_cents, refunded_cents=total
    )
    delta = target - topup.refunded_tokens
    if delta > 0:
        ids = organization_account_ids(topup.organization_id)
        wallet_id, debt_id = ids[AccountPurpose.WALLET], ids[AccountPurpose.DEBT]
        clearing_id = system_account(AccountPurpose.CARD_CLEARING).pk
        accounts = accounts_lock([clearing_id, wallet_id, debt_id])
        transfer_post(
            kind=TransferKind.REFUND,
            idempotency_key=f"topup-refund:{topup.pk}:{total}",
            legs=_take_back_legs(
                clearing_id=clearing_id,
                wallet_id=wallet_id,
                debt_id=debt_id,
                wallet_balance=accounts[wallet_id].balance,
                tokens=delta,
            ),
            reference=f"topup:{topup.pk}",
            memo=f"Card refund of {total / 100:.2f} {topup.currency.upper()} (total)",
        )
    TopUp.objects.filter(pk=topup.pk).update(
        refunded_cents=total, refunded_tokens=F("refunded_tokens") + delta,
        updated_at=timezone.now(),
    )
    topup.refresh_from_db()
    return topup


def topup_refund(*, topup_id: int, amount_cents: int | None = None) -> TopUp:
    """Refund (part of) a top-up through the provider, then take the tokens back. The
    `charge.refunded` webhook that follows changes nothing more."""
    topup = TopUp.objects.filter(pk=topup_id).first()
    if topup is None:
        raise NotFound("Top-up not found.")
    remaining = topup.amount_cents - topup.refunded_cents
    if topup.status != TopUp.Status.SUCCEEDED or topup.payment_intent_id is None:
        raise Conflict("Only a credited top-up can be refunded.",
                       code=PaymentErrorCode.TOPUP_NOT_REFUNDABLE)
    amount = remaining if amount_cents is None else amount_cents
    if amount <= 0 or amount > remaining:
        raise InvalidInput(
            f"A refund of 1 to {remaining} cents is possible.",
            fields={"amount_cents": [f"1 to {remaining}."]},
        )
    pi_id = topup.payment_intent_id
    total = topup.refunded_cents + amount
    refund = _gateway_call(
        lambda: get_gateway().refund_create(
            payment_intent_id=pi_id, amount_cents=amount, idempotency_key=f"refund:{pi_id}:{total}"
        )
    )
    return topup_refund_apply(
        topup_id=topup.pk, refunded_cents_total=topup.refunded_cents + refund.amount_cents
    )


@money_transaction
def dispute_open(*, dispute_id: str, topup_id: int, amount_cents: int, reason: str = "") -> Dispute:
    """A chargeback was opened: hold the tokens the disputed amount bought (as many as the
    wallet still has) until it closes."""
    existing = Dispute.objects.filter(dispute_id=dispute_id).first()
    if existing is not None:
        return existing
    topup = topup_lock(topup_id)
    if topup is None:
        raise NotFound("Top-up not found.")
    tokens = tokens_for_refund(
        tokens=topup.tokens, amount_cents=topup.amount_cents, refunded_cents=amount_cents
    )
    ids = organization_account_ids(topup.organization_id)
    accounts = accounts_lock([ids[AccountPurpose.WALLET], ids[AccountPurpose.HELD]])
    holdable = min(tokens, max(0, accounts[ids[AccountPurpose.WALLET]].balance))
    hold = None
    if holdable > 0:
        hold = hold_place(
            organization_id=topup.organization_id,
            amount=holdable,
            reference=f"dispute:{dispute_id}",
            idempotency_key=f"dispute:{dispute_id}",
            expires_at=timezone.now() + timedelta(seconds=settings.DISPUTE_HOLD_TTL_S),
        )
    logger.warning("dispute %s on top-up %s: %s tokens held of %s",
                   dispute_id, topup.pk, holdable, tokens)
    return Dispute.objects.create(
        dispute_id=dispute_id,
        topup=topup,
        amount_cents=amount_cents,
        tokens=tokens,
        hold=hold,
        reason=reason[:100],
    )


@money_transaction
def dispute_close(*, dispute_id: str, won: bool) -> Dispute:
    """Won: release the held tokens. Lost: the held tokens go back to card clearing and
    whatever could not be held is taken from the wallet, the rest owed."""
    dispute = Dispute.objects.select_for_update().filter(dispute_id=dispute_id).first()
    if dispute is None:
        raise NotFound(f"Dispute {dispute_id} is not known.")
    if dispute.status != Dispute.Status.OPEN:
        return dispute
    held = 0
    if dispute.hold_id is not None:
        if won:
            hold_release(hold_id=dispute.hold_id, idempotency_key=f"dispute-won:{dispute_id}",
                         memo="Dispute won")
        else:
            hold = dispute.hold
            assert hold is not None
            held = hold.remaining
            if held > 0:
                clearing_id = system_account(AccountPurpose.CARD_CLEARING).pk
                hold_capture(hold_id=hold.pk, legs=[(clearing_id, held)],
                             idempotency_key=f"dispute-lost:{dispute_id}", memo="Dispute lost")
    if not won and dispute.tokens > held:
        topup = dispute.topup
        ids = organization_account_ids(topup.organization_id)
        wallet_id, debt_id = ids[AccountPurpose.WALLET], ids[AccountPurpose.DEBT]
        clearing_id = system_account(AccountPurpose.CARD_CLEARING).pk
        accounts = accounts_lock([clearing_id, wallet_id, debt_id])
        transfer_post(
            kind=TransferKind.REFUND,
            idempotency_key=f"dispute-lost-rest:{dispute_id}",
            legs=_take_back_legs(clearing_id=clearing_id, wallet_id=wallet_id, debt_id=debt_id,
                                 wallet_balance=accounts[wallet_id].balance,
                                 tokens=dispute.tokens - held),
            reference=f"topup:{topup.pk}",
            memo=f"Dispute {dispute_id} lost",
        )
    dispute.status = Dispute.Status.WON if won else Dispute.Status.LOST
    dispute.save(update_fields=["status", "updated_at"])
    return dispute


# -- webhooks --------------------------------------------------------------------------

HANDLED_EVENT_TYPES = frozenset(
    {
        "payment_intent.succeeded",
        "payment_intent.payment_failed",
        "payment_intent.canceled",
        "charge.refunded",
        "charge.dispute.created",
        "charge.dispute.closed",
    }
)


@dataclass(frozen=True)
class WebhookReceipt:
    event_id: str
    type: str
    duplicate: bool
    handled: bool


def _payment_intent_id_of(type_: str, obj: dict[str, Any]) -> str | None:
    value = obj.get("id") if type_.startswith("payment_intent.") else obj.get("payment_intent")
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, str) and value else None


def _topup_of_event(type_: str, obj: dict[str, Any]) -> TopUp | None:
    pi_id = _payment_intent_id_of(type_, obj)
    if pi_id is not None:
        found = TopUp.objects.filter(payment_intent_id=pi_id).first()
        if found is not None:
            return found
    if type_.startswith("payment_intent."):
        # The webhook can beat the recording of the PaymentIntent on its top-up.
        metadata = obj.get("metadata")
        raw = metadata.get("topup_id") if isinstance(metadata, dict) else None
        if isinstance(raw, str) and raw.isdigit():
            return TopUp.objects.filter(pk=int(raw), payment_intent_id__isnull=True).first()
        return None
    charge = obj.get("charge") if type_.startswith("charge.dispute.") else obj.get("id")
    if isinstance(charge, str) and charge:
        return TopUp.objects.filter(charge_id=charge).first()
    return None


def stripe_webhook_receive(*, payload: bytes, signature_header: str) -> WebhookReceipt:
    """Verify, store once under the event id, and queue processing after commit. A
    replayed event changes nothing. Raises `WebhookRejected` (logged) on a bad signature,
    a malformed event or an event about a payment Suanli does not know."""
    try:
        event = get_gateway().webhook_event_parse(payload, signature_header)
    except SignatureVerificationError as exc:
        logger.warning("stripe webhook refused: bad signature (%s)", exc)
        raise WebhookRejected(f"Signature verification failed: {exc}") from exc
    except ValueError as exc:
        logger.warning("stripe webhook refused: malformed event (%s)", exc)
        raise WebhookRejected(str(exc), code=PaymentErrorCode.MALFORMED_EVENT) from exc
    handled = event.type in HANDLED_EVENT_TYPES
    if handled and _topup_of_event(event.type, event.data_object) is None:
        logger.warning(
            "stripe webhook refused: %s %s is about an unknown payment (%s)",
            event.type, event.id, _payment_intent_id_of(event.type, event.data_object),
        )
        raise WebhookRejected(
            "The event is about a payment this service does not know.",
            code=PaymentErrorCode.UNKNOWN_PAYMENT,
        )
    with transaction.atomic():
        stored, created = StripeEvent.objects.get_or_create(
            event_id=event.id,
            defaults={
                "type": event.type,
                "payload": {
                    "id": event.id,
                    "type": event.type,
                    "created": event.created,
                    "livemode": event.livemode,
                    "data": {"object": event.data_object},
                },
                "status": StripeEvent.Status.RECEIVED if handled else StripeEvent.Status.IGNORED,
            },
        )
        if created and handled:
            pk = stored.pk
            # robust: the event is stored, so a broker outage must not fail the webhook;
            # `stripe_events_retry` processes events left unprocessed.
            transaction.on_commit(lambda: _enqueue_event(pk), robust=True)
    if not created:
        logger.info("stripe webhook %s replayed: nothing to do", event.id)
    return WebhookReceipt(event_id=event.id, type=event.type, duplicate=not created,
                          handled=handled)


def _enqueue_event(event_pk: int) -> None:
    from banking.tasks import stripe_event_process_task

    stripe_event_process_task.delay(event_pk)


def stripe_event_process(*, event_pk: int) -> StripeEvent:
    """Apply one stored event. Safe to run twice: every step is idempotent."""
    event = StripeEvent.objects.filter(pk=event_pk).first()
    if event is None:
        raise NotFound(f"Stripe event {event_pk} is not stored.")
    if event.status in (StripeEvent.Status.PROCESSED, StripeEvent.Status.IGNORED):
        return event
    StripeEvent.objects.filter(pk=event_pk).update(attempts=F("attempts") + 1)
    try:
        _dispatch(event.type, event.payload["data"]["object"])
    except Exception as exc:
        StripeEvent.objects.filter(pk=event_pk).update(
            status=StripeEvent.Status.FAILED, last_error=repr(exc)[:2000]
        )
        raise
    StripeEvent.objects.filter(pk=event_pk).update(
        status=StripeEvent.Status.PROCESSED, processed_at=timezone.now(), last_error=""
    )
    event.refresh_from_db()
    return event


def stripe_events_retry(
    *, older_than_s: int = 300, max_attempts: int = 10, limit: int = 200
) -> int:
    """Process stored events that were never processed (lost task) or failed, oldest
    first. Returns how many are processed now."""
    cutoff = timezone.now() - timedelta(seconds=older_than_s)
    ids = list(
        StripeEvent.objects.filter(
            status__in=[StripeEvent.Status.RECEIVED, StripeEvent.Status.FAILED],
            received_at__lte=cutoff,
            attempts__lt=max_attempts,
        )
        .order_by("id")
        .values_list("id", flat=True)[:limit]
    )
    done = 0
    for event_pk in ids:
        try:
            stripe_event_process(event_pk=event_pk)
            done += 1
        except Exception as exc:  # recorded on the event; the next run tries again
            logger.warning("stripe event %s still fails: %r", event_pk, exc)
    return done


def _dispatch(type_: str, obj: dict[str, Any]) -> None:
    topup = _topup_of_event(type_, obj)
    if topup is None:
        raise NotFound(f"No top-up for this {type_} event.")
    if type_.startswith("payment_intent."):
        topup_fulfil(topup_id=topup.pk, payment_intent_id=_payment_intent_id_of(type_, obj))
    elif type_ == "charge.refunded":
        topup_fulfil(topup_id=topup.pk)
        topup_refund_apply(topup_id=topup.pk, refunded_cents_total=int(obj["amount_refunded"]))
    elif type_ == "charge.dispute.created":
        topup_fulfil(topup_id=topup.pk)
        dispute_open(dispute_id=str(obj["id"]), topup_id=topup.pk,
                     amount_cents=int(obj["amount"]), reason=str(obj.get("reason") or ""))
    elif type_ == "charge.dispute.closed":
        status = obj.get("status")
        if status in ("won", "lost"):
            dispute_close(dispute_id=str(obj["id"]), won=status == "won")
