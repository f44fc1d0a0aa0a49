"""Refunds: the tokens a refunded payment bought are taken back."""

from __future__ import annotations

from django.db.models import F
from django.utils import timezone

from banking.error_codes import PaymentErrorCode
from banking.gateway import get_gateway
from banking.locks import accounts_lock, topup_lock
from banking.models import TopUp
from banking.models.ledger import AccountPurpose, TransferKind
from banking.selectors import organization_account_ids
from banking.services.ledger import system_account, transfer_post
from banking.services.payments.pricing import tokens_for_refund
from banking.services.payments.provider import gateway_call
from banking.services.transactions import money_transaction
from core.errors import Conflict, InvalidInput, NotFound


def _take_back_legs(
    *, clearing_id: int, wallet_id: int, debt_id: int, wallet_balance: int, tokens: int
) -> list[tuple[int, int]]:
    """Tokens back to card clearing: what the wallet has, the rest owed (debt)."""
    from_wallet = min(max(wallet_balance, 0), tokens)
    legs = [(clearing_id, tokens), (wallet_id, -from_wallet), (debt_id, -(tokens - from_wallet))]
    return [leg for leg in legs if leg[1] != 0]


def take_back_post(*, topup: TopUp, tokens: int, idempotency_key: str, memo: str) -> None:
    """Post `tokens` a top-up bought back to card clearing (a refund, a lost dispute),
    with the organization's accounts locked: from the wallet what it has, the rest owed."""
    ids = organization_account_ids(topup.organization_id)
    wallet_id, debt_id = ids[AccountPurpose.WALLET], ids[AccountPurpose.DEBT]
    clearing_id = system_account(AccountPurpose.CARD_CLEARING).pk
    accounts = accounts_lock([clearing_id, wallet_id, debt_id])
    transfer_post(
        kind=TransferKind.REFUND,
        idempotency_key=idempotency_key,
        legs=_take_back_legs(clearing_id=clearing_id, wallet_id=wallet_id, debt_id=debt_id,
                             wallet_balance=accounts[wallet_id].balance, tokens=tokens),
        reference=f"topup:{topup.pk}",
        memo=memo,
    )


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
        take_back_post(
            topup=topup, tokens=delta, idempotency_key=f"topup-refund:{topup.pk}:{total}",
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
    refund = gateway_call(
        lambda: get_gateway().refund_create(
            payment_intent_id=pi_id, amount_cents=amount, idempotency_key=f"refund:{pi_id}:{total}"
        )
    )
    return topup_refund_apply(
        topup_id=topup.pk, refunded_cents_total=topup.refunded_cents + refund.amount_cents
    )
