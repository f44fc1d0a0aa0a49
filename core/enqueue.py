"""How a service starts a Celery task: by the task's stable name, once the caller's
transaction commits, and never failing the caller. Each app's `enqueue.py` names its
tasks through here, so no service imports `tasks` (which import the services).

A broker outage is logged, not raised: what was not queued is caught up by the task's
periodic sweep (beat). The task is looked up by name among the registered ones, so it is
sent with its own options and runs in process under CELERY_TASK_ALWAYS_EAGER; a name no
process here has registered is sent as a plain message by that name.
"""

import logging
from functools import partial

from celery import current_app, signature
from django.db import transaction

logger = logging.getLogger("suanli.enqueue")

TaskArg = int | str | None


def after_commit(task_name: str, *args: TaskArg) -> None:
    """Send `task_name(*args)` when the open transaction commits (at once outside one)."""
    transaction.on_commit(partial(send, task_name, *args))


def send(task_name: str, *args: TaskArg) -> None:
    """Send `task_name(*args)` now; a failure to send is logged, never raised."""
    try:
        _discover(task_name)
        signature(task_name, args=args).apply_async()
    except Exception:
        logger.warning("could not queue %s%r; its periodic sweep catches up", task_name, args,
                       exc_info=True)


def _discover(task_name: str) -> None:
    """Import every app's `tasks` once, the first time a name is not registered (a web
    process imports no tasks module of its own)."""
    if task_name not in current_app.tasks:
        current_app.autodiscover_tasks(force=True)
