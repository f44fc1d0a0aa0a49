"""Card top-ups: PaymentIntents and fulfilment, exactly once."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from banking.error_codes import BankingErrorCode, PaymentErrorCode
from banking.gateway import CardDeclined as GatewayCardDeclined
from banking.gateway import PaymentIntentInfo, get_gateway
from banking.locks import accounts_lock, topup_lock
from banking.models import Organization, TopUp
from banking.models.ledger import AccountPurpose, TransferKind
from banking.selectors import organization_account_ids
from banking.services.ledger import new_idempotency_key, system_account, transfer_post
from banking.services.payments.customers import stripe_customer_ensure
from banking.services.payments.pricing import Quote, topup_quote
from banking.services.payments.provider import PaymentProviderError, gateway_call
from banking.services.transactions import money_transaction
from banking.standing import organization_frozen_refuse
from core.errors import Conflict, DomainError, NotFound

logger = logging.getLogger("suanli.payments")


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
    organization_frozen_refuse(org.status)
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
            code=BankingErrorCode.IDEMPOTENCY_CONFLICT,
            fields={"topup_id": existing.pk},
        )
    return existing


def _topup_start_payment(topup: TopUp, *, payment_method: str | None,
                         off_session: bool = False) -> TopUp:
    customer_id = stripe_customer_ensure(organization_id=topup.organization_id)
    try:
        pi = gateway_call(
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


def _topup_locked(topup_id: int) -> TopUp:
    topup = topup_lock(topup_id)
    if topup is None:
        raise NotFound("Top-up not found.")
    return topup


@transaction.atomic
def _topup_record_payment_intent(topup_id: int, pi: PaymentIntentInfo) -> TopUp:
    """Record what the provider says about a top-up that is not credited yet."""
    topup = _topup_locked(topup_id)
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
    pi = gateway_call(lambda: get_gateway().payment_intent_retrieve(pi_id))
    _check_payment_intent(topup, pi)
    if pi.succeeded:
        return _topup_credit(topup_id, pi)
    return _topup_record_payment_intent(topup_id, pi)


@money_transaction
def _topup_credit(topup_id: int, pi: PaymentIntentInfo) -> TopUp:
    """Card clearing -> wallet, repaying the organization's debt first."""
    topup = _topup_locked(topup_id)
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
        pi = gateway_call(
            lambda: get_gateway().payment_intent_confirm(pi_id, payment_method=payment_method)
        )
        if not pi.succeeded:
            _check_payment_intent(topup, pi)
            return _topup_record_payment_intent(topup.pk, pi)
    return topup_fulfil(topup_id=topup.pk)


def _payment_under_way(payment_intent_id: str) -> bool:
    """Whether the PaymentIntent already has a payment method it is working with (so a
    second card must not be attached to it)."""
    pi = gateway_call(lambda: get_gateway().payment_intent_retrieve(payment_intent_id))
    return pi.status in ("requires_action", "processing", "requires_capture", "succeeded")


def _card_token_attach(topup: TopUp, card_token: str) -> str | None:
    """The id to pay with, or None when the issuer declined the card (the top-up is then
    marked failed, and another card may still be tried)."""
    customer_id = stripe_customer_ensure(organization_id=topup.organization_id)
    gateway = get_gateway()
    try:
        return str(gateway_call(
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
