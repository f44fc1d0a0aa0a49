"""Celery tasks of banking: thin wrappers that call services (DESIGN §5, STYLE "Celery")."""

from typing import Any

from celery import shared_task
from django.db import OperationalError

from banking.services.holds import holds_expire
from banking.services.lending import installments_collect

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
