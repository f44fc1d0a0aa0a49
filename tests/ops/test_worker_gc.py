"""A Celery worker freezes what it has loaded, as the web servers do: a full collection
would otherwise walk all of Django in the middle of a placement cycle."""

import gc

import pytest
from celery import signals

from config.celery import freeze_what_is_loaded


@pytest.mark.parametrize("signal", [signals.worker_init, signals.worker_process_init],
                         ids=["worker", "pool process"])
def test_a_starting_worker_freezes_what_it_has_loaded(signal):
    assert freeze_what_is_loaded in signal._live_receivers(None)
    # lists are tracked by the collector; these were made since any earlier freeze
    loose: list[list[int]] = [[] for _ in range(100)]
    before = gc.get_freeze_count()

    freeze_what_is_loaded()

    assert gc.get_freeze_count() >= before + len(loose)
