"""Celery tasks of banking: thin wrappers that call services (DESIGN §5, STYLE "Celery")."""

import logging
from typing import Any

from celery import shared_task
from django.conf import settings
from django.db import OperationalError

from banking.gateway import GatewayError
from banking.services.auto_topup import auto_topup_run, auto_topups_due
from banking.services.holds import holds_expire
from banking.services.ledger_checks import ledger_check_run
from banking.services.lending import installments_collect
from banking.services.payments import (
    PaymentProviderUnavailable,
    stripe_event_process,
    stripe_events_retry,
    topups_sync_pending,
)
from banking.services.payouts import payout_execute, payouts_resume, payouts_sweep
from banking.services.webhooks import RetryableDelivery, webhook_deliver

logger = logging.getLogger(__name__)

# Payments

_MONEY_TASK: dict[str, Any] = {
    "acks_late": True,
    "reject_on_worker_lost": True,
    "time_limit": 120,
    "soft_time_limit": 100,
}
# Only a provider that could not be reached is worth retrying; the rest is recorded.
_PROVIDER_RETRY: dict[str, Any] = {
    "autoretry_for": (GatewayError, PaymentProviderUnavailable),
    "retry_backoff": True,
    "retry_backoff_max": 600,
    "max_retries": 8,
}


@shared_task(name="banking.stripe_event_process", **_MONEY_TASK, **_PROVIDER_RETRY)  # type: ignore[untyped-decorator]
def stripe_event_process_task(event_pk: int) -> str:
    return str(stripe_event_process(event_pk=event_pk).status)


@shared_task(name="banking.payout_execute", **_MONEY_TASK, **_PROVIDER_RETRY)  # type: ignore[untyped-decorator]
def payout_execute_task(payout_id: int) -> str:
    return str(payout_execute(payout_id=payout_id).status)


@shared_task(name="banking.payouts_sweep", **_MONEY_TASK)  # type: ignore[untyped-decorator]
def payouts_sweep_task() -> int:
    return len(payouts_sweep())


@shared_task(name="banking.payouts_resume", **_MONEY_TASK)  # type: ignore[untyped-decorator]
def payouts_resume_task() -> int:
    return payouts_resume()


@shared_task(name="banking.topups_sync_pending", **_MONEY_TASK)  # type: ignore[untyped-decorator]
def topups_sync_pending_task() -> int:
    return topups_sync_pending()


@shared_task(name="banking.stripe_events_retry", **_MONEY_TASK)  # type: ignore[untyped-decorator]
def stripe_events_retry_task() -> int:
    return stripe_events_retry()


# Ledger


@shared_task(  # type: ignore[untyped-decorator]
    name="banking.holds_expire",
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    max_retries=5,
    time_limit=300,
    soft_time_limit=270,
)
def holds_expire_task() -> int:
    """Release what is left of holds past their expiry (idempotent)."""
    return holds_expire()


@shared_task(  # type: ignore[untyped-decorator]
    name="banking.ledger_check",
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    max_retries=3,
    time_limit=600,
    soft_time_limit=540,
)
def ledger_check_task() -> dict[str, Any]:
    """Check what was posted since the last clean checkpoint; log every violation."""
    run = ledger_check_run()
    for violation in run.violations:
        logger.error("ledger invariant broken [%s] %s", violation.invariant, violation.detail)
    return {"violations": len(run.violations),
            "checkpoint": run.recorded.pk if run.recorded else None}


# Lending


@shared_task(  # type: ignore[untyped-decorator]
    name="banking.installments_collect",
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    max_retries=5,
    time_limit=600,
    soft_time_limit=540,
)
def installments_collect_task() -> dict[str, Any]:
    """Collect the installments due today (idempotent; safe to run twice)."""
    result = installments_collect()
    return {
        "paid": result.paid,
        "tokens": result.tokens,
        "newly_overdue": result.newly_overdue,
        "delinquent": result.delinquent,
        "reinstated": result.reinstated,
        "failed": result.failed,
    }


# Webhooks: one attempt per run, retried with exponential backoff until the endpoint
# answers 2xx or the attempts run out (each attempt is kept as a WebhookDelivery).
@shared_task(name="banking.webhook_deliver", bind=True, acks_late=True,  # type: ignore[untyped-decorator]
             max_retries=settings.WEBHOOKS_MAX_ATTEMPTS - 1, time_limit=60, soft_time_limit=50)
def webhook_deliver_task(self: Any, message_id: int) -> bool:
    final = self.request.retries >= self.max_retries
    try:
        return webhook_deliver(message_id=message_id, final=final)
    except RetryableDelivery as failure:
        delay = min(600.0, settings.WEBHOOKS_RETRY_BASE_S * 2 ** self.request.retries)
        raise self.retry(exc=failure, countdown=delay) from failure


@shared_task(name="banking.auto_topup_run", **_MONEY_TASK, **_PROVIDER_RETRY)  # type: ignore[untyped-decorator]
def auto_topup_run_task(organization_id: int) -> int | None:
    topup = auto_topup_run(organization_id=organization_id)
    return topup.pk if topup is not None else None


@shared_task(name="banking.auto_topups_check", **_MONEY_TASK)  # type: ignore[untyped-decorator]
def auto_topups_check_task() -> int:
    """Every minute: one run per organization below its threshold (each run claims its
    interval under a lock, so an overlap charges nothing twice)."""
    due = auto_topups_due()
    for organization_id in due:
        auto_topup_run_task.delay(organization_id)
    return len(due)
