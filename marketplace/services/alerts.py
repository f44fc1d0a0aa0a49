"""Low-balance alerts: one email when the wallet drops below the threshold, then quiet
until the balance is back above it."""

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from banking.fiat_display import tokens_with_usd
from banking.models import Membership
from banking.selectors import wallet_get
from banking.services.webhooks import webhook_event_emit
from core.errors import InvalidInput
from marketplace.models import LowBalanceAlert


@transaction.atomic
def low_balance_alert_set(*, organization_id: int, threshold: int | None) -> LowBalanceAlert | None:
    if threshold is None:
        LowBalanceAlert.objects.filter(organization_id=organization_id).delete()
        return None
    if isinstance(threshold, bool) or not isinstance(threshold, int) or threshold <= 0:
        raise InvalidInput("threshold must be a positive whole number of tokens.",
                           fields={"threshold": ["Positive whole number."]})
    alert, _ = LowBalanceAlert.objects.update_or_create(
        organization_id=organization_id, defaults={"threshold": threshold, "armed": True})
    return alert


def low_balance_check() -> int:
    sent = 0
    for alert in LowBalanceAlert.objects.select_related("organization"):
        available = wallet_get(organization_id=alert.organization_id).available
        if available < alert.threshold and alert.armed:
            recipients = list(Membership.objects.filter(organization_id=alert.organization_id)
                              .exclude(user__email="").values_list("user__email", flat=True))
            with transaction.atomic():
                # Disarm first: a crash after sending must not send the same alert again.
                sent_at = timezone.now()
                if not LowBalanceAlert.objects.filter(pk=alert.pk, armed=True).update(
                        armed=False, last_sent_at=sent_at):
                    continue
                webhook_event_emit(
                    organization_id=alert.organization_id, type="wallet.low_balance",
                    key=f"wallet.low_balance:{alert.organization_id}:{sent_at.isoformat()}",
                    data={"object": {"available": available, "threshold": alert.threshold}})
            if recipients:
                send_mail(
                    f"Suanli: {alert.organization.name} is below {alert.threshold:,} tokens",
                    f"Your wallet has {tokens_with_usd(available)} available, below the "
                    f"alert threshold of {tokens_with_usd(alert.threshold)}. Top up to keep "
                    "jobs running.",
                    settings.DEFAULT_FROM_EMAIL, recipients,
                )
            sent += 1
        elif available >= alert.threshold and not alert.armed:
            LowBalanceAlert.objects.filter(pk=alert.pk).update(armed=True)
    return sent
