"""Auto top-up: a pipeline does not stop when the wallet runs dry.

When an organization's available tokens fall below its threshold, its saved card is
charged off-session (a PaymentIntent with `off_session=True`, `confirm=True` and the saved
payment method) for the amount it set, at most once per `AUTO_TOPUP_MIN_INTERVAL_S`,
through the same top-up and fulfilment path as every other top-up (`topup_create`, then
`topup_fulfil`: credited exactly once by the ledger's `topup:<id>` key). A decline, or a
bank asking for authentication nobody is there to give, pauses auto top-up and tells the
owners; saving the settings again resumes it.

The attempt is claimed (row lock, interval check, `last_attempt_at`) and committed before
the payment provider is called, so two workers never charge twice in one interval.
"""

import logging
from datetime import timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from banking.error_codes import PaymentErrorCode
from banking.fiat_display import tokens_with_usd
from banking.models import AutoTopUp, Membership, Organization, TopUp
from banking.selectors import wallet_get
from banking.services.payments import topup_create, topup_quote
from core.errors import DomainError, InvalidInput, NotFound

logger = logging.getLogger("suanli.auto_topup")

MAX_THRESHOLD = 10**15


def auto_topup_set(*, organization_id: int, threshold: int, amount_cents: int,
                   payment_method: str, enabled: bool = True) -> AutoTopUp:
    """Turn auto top-up on (or change it) with a threshold in tokens, an amount in cents
    inside the top-up limits and a saved card; resumes a paused one. `enabled=False`
    turns it off."""
    if Organization.objects.filter(pk=organization_id).first() is None:
        raise NotFound("Organization not found.")
    if isinstance(threshold, bool) or not isinstance(threshold, int) or not (
            0 < threshold <= MAX_THRESHOLD):
        raise InvalidInput("The threshold is a whole number of tokens above zero.",
                           fields={"threshold": ["1 or more tokens."]})
    if isinstance(amount_cents, bool) or not isinstance(amount_cents, int):
        raise InvalidInput("The amount is a whole number of cents.",
                           fields={"amount_cents": ["Whole cents."]})
    topup_quote(currency="usd", amount_cents=amount_cents)  # inside the top-up limits
    card = (payment_method or "").strip()
    if not card.startswith("pm_") or len(card) > 255 or "\x00" in card:
        raise InvalidInput("A saved card's id looks like pm_...",
                           code=PaymentErrorCode.PAYMENT_PROVIDER_ERROR,
                           fields={"payment_method": ["Must start with pm_."]})
    config, _ = AutoTopUp.objects.update_or_create(
        organization_id=organization_id,
        defaults={"threshold": threshold, "amount_cents": amount_cents, "currency": "usd",
                  "payment_method": card, "enabled": enabled, "paused_at": None,
                  "paused_reason": ""},
    )
    return config


def auto_topup_get(*, organization_id: int) -> AutoTopUp | None:
    return AutoTopUp.objects.filter(organization_id=organization_id).first()


@transaction.atomic
def _claim(organization_id: int) -> tuple[AutoTopUp, str] | None:
    """Lock the settings; when the wallet is below the threshold and no attempt was made
    in this interval, record the attempt and return its idempotency key."""
    config = (AutoTopUp.objects.select_for_update()
              .filter(organization_id=organization_id).first())
    if config is None or not config.enabled or config.paused_at is not None:
        return None
    now = timezone.now()
    interval = timedelta(seconds=settings.AUTO_TOPUP_MIN_INTERVAL_S)
    if config.last_attempt_at is not None and now - config.last_attempt_at < interval:
        return None
    if wallet_get(organization_id=organization_id).available >= config.threshold:
        return None
    config.last_attempt_at = now
    config.save(update_fields=["last_attempt_at", "updated_at"])
    return config, f"auto-topup:{organization_id}:{now.isoformat()}"


def auto_topup_run(*, organization_id: int) -> TopUp | None:
    """Charge the saved card once if the wallet is below the threshold and the interval
    has passed; None when nothing was due. Safe to run any number of times."""
    claimed = _claim(organization_id)
    if claimed is None:
        return None
    config, key = claimed
    try:
        topup = topup_create(organization_id=organization_id, currency=config.currency,
                             amount_cents=config.amount_cents, idempotency_key=key,
                             payment_method=config.payment_method, off_session=True)
    except DomainError as exc:
        if exc.status >= 500:
            raise  # the provider could not be reached: the next interval tries again
        _pause(config.pk, f"The card could not be charged: {exc.message}")
        return None
    if topup.status == TopUp.Status.SUCCEEDED:
        AutoTopUp.objects.filter(pk=config.pk).update(last_topup=topup,
                                                      updated_at=timezone.now())
        _tell_owners(organization_id,
                     subject=f"Suanli: auto top-up of ${topup.amount_cents / 100:,.2f}",
                     body=f"Your wallet fell below {tokens_with_usd(config.threshold)}, so your "
                          f"saved card was charged ${topup.amount_cents / 100:,.2f} for "
                          f"{topup.tokens:,} tokens.")
    elif topup.status in (TopUp.Status.FAILED, TopUp.Status.CANCELED) or (
            topup.payment_status == "requires_action"):
        reason = ("Your bank asked for authentication"
                  if topup.payment_status == "requires_action"
                  or topup.failure_code == "authentication_required"
                  else f"The card was declined ({topup.failure_message or 'no reason given'})")
        AutoTopUp.objects.filter(pk=config.pk).update(last_topup=topup)
        _pause(config.pk, reason)
    return topup


def _pause(config_id: int, reason: str) -> None:
    with transaction.atomic():
        config = AutoTopUp.objects.select_for_update().get(pk=config_id)
        config.paused_at = timezone.now()
        config.paused_reason = reason[:500]
        config.save(update_fields=["paused_at", "paused_reason", "updated_at"])
        organization_id = config.organization_id
        _tell_owners(organization_id, subject="Suanli: auto top-up is paused",
                     body=f"{reason}. Auto top-up is paused until you save its settings "
                          "again on the wallet page (or top up by hand).")
    logger.info("auto top-up of organization %s paused: %s", organization_id, reason)


def _tell_owners(organization_id: int, *, subject: str, body: str) -> None:
    recipients = list(
        Membership.objects.filter(organization_id=organization_id,
                                  role=Membership.Role.OWNER)
        .exclude(user__email="").values_list("user__email", flat=True))
    if recipients:
        transaction.on_commit(
            lambda: send_mail(subject, body, None, recipients, fail_silently=True))


def auto_topups_due() -> list[int]:
    """Organizations whose auto top-up may be due now (cheap filter; `auto_topup_run`
    decides under the lock)."""
    interval = timedelta(seconds=settings.AUTO_TOPUP_MIN_INTERVAL_S)
    cutoff = timezone.now() - interval
    candidates = AutoTopUp.objects.filter(enabled=True, paused_at__isnull=True).exclude(
        last_attempt_at__gt=cutoff).values_list("organization_id", "threshold")
    due = []
    for organization_id, threshold in candidates:
        if wallet_get(organization_id=organization_id).available < threshold:
            due.append(organization_id)
    return due
