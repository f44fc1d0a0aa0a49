"""The Celery app. Tasks live in each app's `tasks.py`; the beat schedule is in settings."""

import gc
import os
from typing import Any

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("suanli")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@signals.worker_init.connect
@signals.worker_process_init.connect
def freeze_what_is_loaded(**_: Any) -> None:
    """As the web servers do (config.wsgi): what the worker has loaded stays for its life,
    so out of the collector's sight. A full collection that walked all of Django stalled
    a placement cycle reading a few thousand queued jobs (bench.scheduler;
    docs/performance.md)."""
    gc.freeze()


@signals.worker_init.connect
@signals.beat_init.connect
def refuse_insecure_settings(**_: Any) -> None:
    # Celery logs and swallows a receiver's exception: leave instead.
    from django.core.exceptions import ImproperlyConfigured

    from config.security import refuse_insecure_settings as refuse

    try:
        refuse()
    except ImproperlyConfigured as exc:
        raise SystemExit(f"ImproperlyConfigured: {exc}") from exc
