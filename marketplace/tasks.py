"""Thin Celery wrappers of the bank's periodic work; each is safe to run twice."""

from celery import shared_task
from django.db import OperationalError

from marketplace.services.alerts import low_balance_check
from marketplace.services.deposits import yield_accrue
from marketplace.services.pricing import prices_adjust
from marketplace.services.sla import sla_credits_post

MONEY = {"acks_late": True, "reject_on_worker_lost": True, "autoretry_for": (OperationalError,),
         "retry_backoff": True, "max_retries": 5, "time_limit": 300, "soft_time_limit": 270,
         "ignore_result": True}


@shared_task(name="marketplace.yield_accrue", **MONEY)
def yield_accrue_task() -> int:
    return yield_accrue().intervals


@shared_task(name="marketplace.sla_credits_post", **MONEY)
def sla_credits_post_task() -> int:
    return sla_credits_post()


@shared_task(name="marketplace.prices_adjust", ignore_result=True, time_limit=120)
def prices_adjust_task() -> int:
    return len(prices_adjust())


@shared_task(name="marketplace.low_balance_check", ignore_result=True, time_limit=120)
def low_balance_check_task() -> int:
    return low_balance_check()
