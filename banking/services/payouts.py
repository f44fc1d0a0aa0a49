"""Provider payouts: tokens held on request, approved by an operator (or automatically
below a threshold), then transferred in fiat to the provider's connected account.

The transfer is never made while a row lock is held: `payout_execute` claims the payout
(approved -> processing) and commits, calls the provider, then locks again and records
the result: paid captures the hold into payout clearing, failed releases it.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from banking import enqueue
from banking.audit import audit_record
from banking.error_codes import BankingErrorCode, PaymentErrorCode
from banking.gateway import GatewayError, PayoutTransferInfo, get_gateway
from banking.locks import payout_lock
from banking.models import AuditAction, Hold, Membership, Organization, Payout, PayoutAccount
from banking.models.ledger import AccountPurpose
from banking.selectors import organization_account
from banking.services.holds import hold_capture, hold_place, hold_release
from banking.services.ledger import new_idempotency_key, require_positive_tokens, system_account
from banking.services.payable import (
    payable_available,
    payable_check,
    payable_restore,
    payable_take,
)
from banking.services.payments import cents_for_tokens
from banking.services.transactions import money_transaction
from banking.standing import Act, organization_assert_may_act
from core.errors import DomainError, InvalidInput, NotFound, PermissionDenied

logger = logging.getLogger("suanli.payouts")


def payout_price() -> Decimal:
    return Decimal(str(settings.PAYOUT_CENTS_PER_MILLION))


def payout_account_set(
    *, organization_id: int, stripe_account_id: str, auto_payout_threshold: int | None = None
) -> PayoutAccount:
    org = Organization.objects.filter(pk=organization_id).first()
    if org is None:
        raise NotFound("Organization not found.")
    if not org.is_provider:
        raise PermissionDenied("Only provider organizations are paid out.",
                               code=PaymentErrorCode.NOT_A_PROVIDER)
    account_id = stripe_account_id.strip()
    if not account_id.startswith("acct_") or len(account_id) > 255:
        raise InvalidInput("A connected account id looks like acct_...",
                           fields={"stripe_account_id": ["Must start with acct_."]})
    if auto_payout_threshold is not None and auto_payout_threshold < 0:
        raise InvalidInput("The auto-payout threshold cannot be negative.",
                           fields={"auto_payout_threshold": ["Must be 0 or more."]})
    with transaction.atomic():
        account = PayoutAccount.objects.select_for_update().filter(
            organization_id=organization_id).first()
        if account is None:
            account = PayoutAccount.objects.create(
                organization_id=organization_id, stripe_account_id=account_id,
                auto_payout_threshold=auto_payout_threshold)
            _payout_account_audit(organization_id, account, account_id, auto_payout_threshold)
            return account
        update = ["auto_payout_threshold", "updated_at"]
        account.auto_payout_threshold = auto_payout_threshold
        if account.stripe_account_id != account_id:
            # A changed destination is the first thing a stolen login does: hold payouts
            # for a while, tell the owners, and verify the new account again.
            previous = account.stripe_account_id
            account.stripe_account_id = account_id
            account.verified_at = None
            account.payouts_held_until = timezone.now() + timedelta(
                seconds=settings.PAYOUT_ACCOUNT_CHANGE_HOLD_S)
            update += ["stripe_account_id", "verified_at", "payouts_held_until"]
            held_until = account.payouts_held_until
            transaction.on_commit(lambda: _owners_email_account_changed(
                organization_id, previous, account_id, held_until))
        account.save(update_fields=update)
        _payout_account_audit(organization_id, account, account_id, auto_payout_threshold)
        return account


def _payout_account_audit(organization_id: int, account: PayoutAccount, account_id: str,
                          auto_payout_threshold: int | None) -> None:
    audit_record(action=AuditAction.PAYOUT_ACCOUNT_CHANGED, organization_id=organization_id,
                 target=f"payout_account:{account.pk}",
                 detail={"stripe_account_id": account_id,
                         "auto_payout_threshold": auto_payout_threshold})


def _owners_email_account_changed(organization_id: int, previous: str, current: str,
                                  held_until: datetime) -> None:
    from django.core.mail import send_mail

    owners = list(Membership.objects.filter(
        organization_id=organization_id, role=Membership.Role.OWNER,
    ).exclude(user__email="").values_list("user__email", flat=True))
    if not owners:
        return
    send_mail(
        "Your payout account was changed",
        f"The payout account of your organization was changed from {previous} to {current}."
        f" Payouts are held until {held_until:%Y-%m-%d %H:%M} UTC. If you did not make "
        "this change, contact support now.",
        None, owners, fail_silently=True)


def _payout_account_check(account: PayoutAccount) -> None:
    """Refuse a payout to an account on hold after a change, or one the gateway does not
    confirm as enabled (asked once, before its first payout; no row lock is held)."""
    now = timezone.now()
    if account.payouts_held_until is not None and now < account.payouts_held_until:
        raise DomainError(
            f"The payout account was changed recently; payouts resume at "
            f"{account.payouts_held_until:%Y-%m-%d %H:%M} UTC.",
            code=PaymentErrorCode.PAYOUT_ACCOUNT_ON_HOLD, status=409,
            fields={"held_until": account.payouts_held_until.isoformat()})
    if account.verified_at is not None:
        return
    try:
        info = get_gateway().payout_account_retrieve(account.stripe_account_id)
    except GatewayError as exc:
        if exc.retryable:
            raise DomainError("The payment provider cannot be reached; try again shortly.",
                              code=PaymentErrorCode.PAYMENT_PROVIDER_UNAVAILABLE,
                              status=503) from exc
        raise InvalidInput(f"The payout account cannot be used: {exc.message}",
                           code=PaymentErrorCode.PAYOUT_ACCOUNT_UNVERIFIED) from exc
    if not (info.charges_enabled and info.payouts_enabled):
        raise InvalidInput(
            "The payout account cannot receive payouts yet (charges or payouts are not "
            "enabled on it); finish its onboarding with the payment provider.",
            code=PaymentErrorCode.PAYOUT_ACCOUNT_UNVERIFIED)
    PayoutAccount.objects.filter(pk=account.pk,
                                 stripe_account_id=account.stripe_account_id).update(
        verified_at=now)


def payout_request(
    *, organization_id: int, tokens: int, idempotency_key: str | None = None,
    is_sweep: bool = False,
) -> Payout:
    """Hold `tokens` of the provider's wallet for a payout. Refused, with nothing held,
    for a buyer-only organization (`not_a_provider`), below the minimum
    (`payout_below_minimum`), without a payout account (`payout_account_missing`), when
    the organization owes tokens, or above the wallet's balance (`insufficient_funds`)."""
    require_positive_tokens(tokens, "tokens")
    org = Organization.objects.filter(pk=organization_id).first()
    if org is None:
        raise NotFound("Organization not found.")
    if not org.is_provider:
        raise PermissionDenied("Only provider organizations can cash out.",
                               code=PaymentErrorCode.NOT_A_PROVIDER)
    if tokens < settings.PAYOUT_MIN_TOKENS:
        raise InvalidInput(
            f"The smallest payout is {settings.PAYOUT_MIN_TOKENS} tokens.",
            code=PaymentErrorCode.PAYOUT_BELOW_MINIMUM,
            fields={"tokens": [f"At least {settings.PAYOUT_MIN_TOKENS}."],
                    "min_tokens": settings.PAYOUT_MIN_TOKENS},
        )
    amount_cents = cents_for_tokens(tokens, payout_price(), round_up=False)
    if amount_cents <= 0:
        raise InvalidInput("This payout is worth less than one cent.",
                           code=PaymentErrorCode.PAYOUT_BELOW_MINIMUM)
    account = PayoutAccount.objects.filter(organization_id=organization_id).first()
    if account is None:
        raise InvalidInput(
            "Set a payout account (PUT /api/v1/payout-account/) before cashing out.",
            code=PaymentErrorCode.PAYOUT_ACCOUNT_MISSING,
        )
    organization_assert_may_act(organization_id, Act.PAYOUT)
    payable_check(organization_id=organization_id, tokens=tokens)
    _payout_account_check(account)
    key = idempotency_key or new_idempotency_key("payout")
    payout = _payout_record(
        organization_id=organization_id, tokens=tokens, amount_cents=amount_cents,
        destination=account.stripe_account_id, idempotency_key=key, is_sweep=is_sweep,
    )
    audit_record(action=AuditAction.PAYOUT_REQUESTED, organization_id=organization_id,
                 target=f"payout:{payout.pk}",
                 detail={"tokens": tokens, "destination": payout.destination, "sweep": is_sweep})
    return payout


@money_transaction
def _payout_record(
    *, organization_id: int, tokens: int, amount_cents: int, destination: str,
    idempotency_key: str, is_sweep: bool,
) -> Payout:
    existing = Payout.objects.filter(idempotency_key=idempotency_key).first()
    if existing is not None:
        if existing.organization_id != organization_id or existing.tokens != tokens:
            raise DomainError("This Idempotency-Key was already used for a different payout.",
                              code=BankingErrorCode.IDEMPOTENCY_CONFLICT, status=409)
        return existing
    hold = hold_place(
        organization_id=organization_id,
        amount=tokens,
        reference=f"payout:{idempotency_key}"[:255],
        idempotency_key=f"payout:{idempotency_key}"[:255],
        expires_at=timezone.now() + timedelta(seconds=settings.PAYOUT_HOLD_TTL_S),
    )
    # After the hold (wallet accounts before payable ones: see banking.services.payable).
    payable_take(organization_id=organization_id, tokens=tokens,
                 idempotency_key=idempotency_key[:200], reference=f"payout:{idempotency_key}"[:255])
    auto = 0 < tokens < settings.PAYOUT_AUTO_APPROVE_BELOW_TOKENS
    payout = Payout.objects.create(
        organization_id=organization_id,
        tokens=tokens,
        amount_cents=amount_cents,
        currency=settings.PAYOUT_CURRENCY.lower(),
        destination=destination,
        hold=hold,
        idempotency_key=idempotency_key,
        is_sweep=is_sweep,
        status=Payout.Status.APPROVED if auto else Payout.Status.PENDING_APPROVAL,
        approved_at=timezone.now() if auto else None,
    )
    if auto:
        _execute_after_commit(payout.pk)
    return payout


def _execute_after_commit(payout_id: int) -> None:
    # A broker outage must not undo or fail the approval: `payouts_resume` runs approved
    # payouts whose task never started.
    enqueue.payout_execute(payout_id)


@transaction.atomic
def payout_approve(*, payout_id: int, approved_by_id: int | None = None) -> Payout:
    """Approve a payout awaiting approval and queue its execution. Approving it again
    changes nothing."""
    payout = payout_lock(payout_id)
    if payout is None:
        raise NotFound("Payout not found.")
    if payout.status != Payout.Status.PENDING_APPROVAL:
        return payout
    payout.status = Payout.Status.APPROVED
    payout.approved_by_id = approved_by_id
    payout.approved_at = timezone.now()
    payout.save(update_fields=["status", "approved_by", "approved_at", "updated_at"])
    audit_record(action=AuditAction.PAYOUT_APPROVED, organization_id=payout.organization_id,
                 target=f"payout:{payout.pk}", actor_id=approved_by_id,
                 detail={"tokens": payout.tokens})
    _execute_after_commit(payout.pk)
    return payout


@money_transaction
def payout_reject(*, payout_id: int, reason: str) -> Payout:
    """Refuse a payout awaiting approval: its tokens go back to the wallet."""
    payout = payout_lock(payout_id)
    if payout is None:
        raise NotFound("Payout not found.")
    if payout.status != Payout.Status.PENDING_APPROVAL:
        return payout
    hold_release(hold_id=payout.hold_id, idempotency_key=f"payout-reject:{payout.pk}",
                 memo=f"Payout rejected: {reason}"[:500])
    payable_restore(idempotency_key=payout.idempotency_key[:200], memo="payout rejected")
    payout.status = Payout.Status.REJECTED
    payout.failure_message = (reason or "Rejected by an operator.")[:500]
    payout.save(update_fields=["status", "failure_message", "updated_at"])
    audit_record(action=AuditAction.PAYOUT_REJECTED, organization_id=payout.organization_id,
                 target=f"payout:{payout.pk}", detail={"reason": payout.failure_message})
    return payout


@money_transaction
def _payout_claim(payout_id: int, *, resume: bool) -> Payout | None:
    """approved -> processing (or, resuming, a payout left processing): only the caller
    that claims it calls the provider."""
    payout = payout_lock(payout_id)
    if payout is None:
        raise NotFound("Payout not found.")
    allowed = {Payout.Status.APPROVED}
    if resume:
        allowed.add(Payout.Status.PROCESSING)
    if payout.status not in allowed:
        return None
    hold = payout.hold
    if hold.status != Hold.Status.OPEN or hold.remaining != payout.tokens:
        # Its tokens are no longer held (the hold expired): never pay out unheld tokens.
        if hold.status == Hold.Status.OPEN:
            hold_release(hold_id=hold.pk, idempotency_key=f"payout-failed:{payout.pk}",
                         memo="Payout failed: its hold was no longer complete")
        payable_restore(idempotency_key=payout.idempotency_key[:200], memo="payout failed")
        payout.status = Payout.Status.FAILED
        payout.failure_message = "The payout's tokens were no longer held (the hold expired)."
        payout.save(update_fields=["status", "failure_message", "updated_at"])
        return None
    payout.status = Payout.Status.PROCESSING
    payout.attempts = F("attempts") + 1
    payout.save(update_fields=["status", "attempts", "updated_at"])
    payout.refresh_from_db()
    return payout


def payout_execute(*, payout_id: int, resume: bool = False) -> Payout:
    """Transfer an approved payout's fiat to the provider and record the result. Runs at
    most once per payout however often it is called; the provider call carries the
    idempotency key `payout:<id>`. A retryable provider failure puts the payout back to
    approved and re-raises (the task retries); any other failure releases the hold."""
    payout = _payout_claim(payout_id, resume=resume)
    if payout is None:
        found = Payout.objects.filter(pk=payout_id).first()
        assert found is not None
        return found
    try:
        result = get_gateway().payout_transfer_create(
            destination_account=payout.destination,
            amount_cents=payout.amount_cents,
            currency=payout.currency,
            idempotency_key=f"payout:{payout.pk}",
            metadata={"payout_id": str(payout.pk), "organization_id": str(payout.organization_id)},
        )
    except GatewayError as exc:
        if exc.retryable:
            logger.warning("payout %s: provider unavailable, will retry: %r", payout.pk, exc)
            Payout.objects.filter(pk=payout.pk, status=Payout.Status.PROCESSING).update(
                status=Payout.Status.APPROVED, last_error=exc.message[:500],
                updated_at=timezone.now(),
            )
            raise
        logger.warning("payout %s refused by the provider: %r", payout.pk, exc)
        return _payout_record_failure(payout.pk, exc.message or exc.code)
    if result.status == "paid":
        return _payout_record_paid(payout.pk, result)
    return _payout_record_failure(payout.pk, result.failure_message or "The transfer failed.")


@money_transaction
def _payout_record_paid(payout_id: int, result: PayoutTransferInfo) -> Payout:
    payout = payout_lock(payout_id)
    assert payout is not None
    if payout.status != Payout.Status.PROCESSING:
        return payout
    clearing_id = system_account(AccountPurpose.PAYOUT_CLEARING).pk
    hold_capture(
        hold_id=payout.hold_id,
        legs=[(clearing_id, payout.tokens)],
        idempotency_key=f"payout:{payout.pk}",
        reference=f"payout:{payout.pk}",
        memo=f"Payout {payout.amount_cents / 100:.2f} {payout.currency.upper()} to "
        f"{payout.destination} ({result.id})",
    )
    payout.status = Payout.Status.PAID
    payout.stripe_transfer_id = result.id
    payout.executed_at = timezone.now()
    payout.failure_message = ""
    payout.last_error = ""
    payout.save()
    return payout


@money_transaction
def _payout_record_failure(payout_id: int, reason: str) -> Payout:
    payout = payout_lock(payout_id)
    assert payout is not None
    if payout.status != Payout.Status.PROCESSING:
        return payout
    hold_release(hold_id=payout.hold_id, idempotency_key=f"payout-failed:{payout.pk}",
                 memo=f"Payout failed: {reason}"[:500])
    payable_restore(idempotency_key=payout.idempotency_key[:200], memo="payout failed")
    payout.status = Payout.Status.FAILED
    payout.failure_message = reason[:500]
    payout.executed_at = timezone.now()
    payout.save()
    return payout


def payouts_resume(*, stuck_after_s: int = 900, limit: int = 100) -> int:
    """Execute approved payouts whose task was lost and resume ones left processing by a
    crashed worker (safe: the provider call is idempotent by key)."""
    cutoff = timezone.now() - timedelta(seconds=stuck_after_s)
    rows = list(
        Payout.objects.filter(
            status__in=[Payout.Status.APPROVED, Payout.Status.PROCESSING], updated_at__lte=cutoff
        ).order_by("id").values_list("id", flat=True)[:limit]
    )
    for payout_id in rows:
        try:
            payout_execute(payout_id=payout_id, resume=True)
        except GatewayError as exc:
            logger.warning("payout %s still cannot be executed: %r", payout_id, exc)
    return len(rows)


def payouts_sweep(*, today: date | None = None) -> list[Payout]:
    """Cash out, once a day, every provider's tokens above its auto-payout threshold."""
    day = (today or timezone.now().date()).isoformat()
    made = []
    accounts = PayoutAccount.objects.filter(
        auto_payout_threshold__isnull=False, organization__is_provider=True
    ).order_by("id")
    for account in accounts:
        threshold = account.auto_payout_threshold
        assert threshold is not None
        wallet = organization_account(account.organization_id, AccountPurpose.WALLET)
        # Only payable tokens leave (top-ups and grants are spent, not cashed out).
        excess = min(wallet.balance - threshold, payable_available(account.organization_id))
        if excess < settings.PAYOUT_MIN_TOKENS:
            continue
        try:
            made.append(
                payout_request(
                    organization_id=account.organization_id,
                    tokens=excess,
                    idempotency_key=f"sweep:{account.organization_id}:{day}",
                    is_sweep=True,
                )
            )
        except DomainError as exc:
            logger.info("sweep skipped organization %s: %s", account.organization_id,
                        exc.message)
    return made

