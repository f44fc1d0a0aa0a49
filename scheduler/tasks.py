"""Thin Celery wrappers. Every task is safe to run twice."""

import logging

from celery import shared_task
from django.db import DatabaseError

from scheduler.services.block_rules import block_jobs_stop
from scheduler.services.heartbeat_buffer import heartbeats_flush
from scheduler.services.leases import leases_expire, queued_jobs_expire
from scheduler.services.logs import objects_expire
from scheduler.services.placement import placement_run
from scheduler.services.reliability import reliability_refresh_all
from scheduler.services.settlement import usage_settle

logger = logging.getLogger(__name__)


@shared_task(name="scheduler.placement_run", ignore_result=True, time_limit=60,
             soft_time_limit=50)
def placement_run_task() -> int:
    result = placement_run()
    if result.placed:
        logger.info("placed %d of %d queued jobs", result.placed, result.considered)
    return result.placed


@shared_task(name="scheduler.usage_settle", ignore_result=True, acks_late=True,
             reject_on_worker_lost=True, autoretry_for=(DatabaseError,), retry_backoff=True,
             max_retries=5, time_limit=60, soft_time_limit=50)
def usage_settle_task(assignment_id: int | None = None) -> int:
    ids = [assignment_id] if assignment_id is not None else None
    return usage_settle(assignment_ids=ids).captured


@shared_task(name="scheduler.leases_expire", ignore_result=True, acks_late=True,
             reject_on_worker_lost=True, time_limit=60, soft_time_limit=50)
def leases_expire_task() -> int:
    sweep = leases_expire()
    if sweep.nodes_offline or sweep.assignments_lost:
        logger.info("lease sweep: %s", sweep)
    queued_jobs_expire()
    block_jobs_stop()
    return sweep.assignments_lost


@shared_task(name="scheduler.reliability_refresh", ignore_result=True, time_limit=300,
             soft_time_limit=280)
def reliability_refresh_task() -> int:
    return reliability_refresh_all()


@shared_task(name="scheduler.heartbeats_flush", ignore_result=True, time_limit=30,
             soft_time_limit=25, expires=10)
def heartbeats_flush_task() -> int:
    flushed = heartbeats_flush()
    if flushed.dropped:
        logger.info("heartbeat flush: %s", flushed)
    return flushed.written


@shared_task(name="scheduler.objects_expire", ignore_result=True, acks_late=True,
             time_limit=600, soft_time_limit=550)
def objects_expire_task() -> int:
    result = objects_expire()
    if result.logs or result.outputs:
        logger.info("retention: %s", result)
    return result.chunks + result.outputs
