"""Chargebacks: the disputed tokens held while open, taken back when lost."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from banking.locks import accounts_lock, topup_lock
from banking.models import Dispute
from banking.models.ledger import AccountPurpose
from banking.selectors import organization_account_ids
from banking.services.holds import hold_capture, hold_place, hold_release
from banking.services.ledger import system_account
from banking.services.payments.pricing import tokens_for_refund
from banking.services.payments.refunds import take_back_post
from banking.services.transactions import money_transaction
from core.errors import NotFound

logger = logging.getLogger("suanli.payments")


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
        take_back_post(topup=dispute.topup, tokens=dispute.tokens - held,
                       idempotency_key=f"dispute-lost-rest:{dispute_id}",
                       memo=f"Dispute {dispute_id} lost")
    dispute.status = Dispute.Status.WON if won else Dispute.Status.LOST
    dispute.save(update_fields=["status", "updated_at"])
    return dispute
