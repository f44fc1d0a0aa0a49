"""The enqueue seam (core.enqueue, each app's enqueue.py): a task is sent by its stable
name once the caller's transaction commits, never when it rolls back; a broker outage is
logged, not raised; under CELERY_TASK_ALWAYS_EAGER the registered task runs in process."""

import logging
from typing import Any

import pytest
from celery import current_app
from django.db import transaction

from core import enqueue as core_enqueue
from scheduler import enqueue


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    """What reaches the broker from scheduler.usage_settle_task (its apply_async)."""
    from scheduler.tasks import usage_settle_task

    calls: list[tuple[Any, ...]] = []
    monkeypatch.setattr(usage_settle_task, "apply_async",
                        lambda args, kwargs=None, **options: calls.append(tuple(args)))
    return calls


def test_a_task_is_sent_by_name_when_the_transaction_commits(
    db: None, sent: list[tuple[Any, ...]], django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        enqueue.usage_settle(7)
        assert sent == []
    assert (len(callbacks), sent) == (1, [(7,)])


def test_nothing_is_sent_when_the_transaction_rolls_back(
    db: None, sent: list[tuple[Any, ...]], django_capture_on_commit_callbacks: Any
) -> None:
    with (django_capture_on_commit_callbacks(execute=True) as callbacks,
          pytest.raises(RuntimeError, match="undo"), transaction.atomic()):
        enqueue.usage_settle(7)
        raise RuntimeError("undo")
    assert (callbacks, sent) == ([], [])


def test_a_broker_outage_is_logged_and_not_raised(
    db: None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
    django_capture_on_commit_callbacks: Any,
) -> None:
    from scheduler.tasks import usage_settle_task

    def broker_down(*args: object, **kwargs: object) -> None:
        raise ConnectionError("broker unreachable")

    monkeypatch.setattr(usage_settle_task, "apply_async", broker_down)
    with caplog.at_level(logging.WARNING, logger="suanli.enqueue"), \
            django_capture_on_commit_callbacks(execute=True):
        enqueue.usage_settle(9)
    assert [r.getMessage() for r in caplog.records] == [
        "could not queue scheduler.usage_settle(9,); its periodic sweep catches up"
    ]


def test_eager_mode_runs_the_registered_task_in_process(
    db: None, settings: Any, monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: Any,
) -> None:
    ran: list[list[int] | None] = []

    def usage_settle(assignment_ids: list[int] | None = None) -> Any:
        ran.append(assignment_ids)
        return type("Settled", (), {"captured": 0})()

    monkeypatch.setattr("scheduler.tasks.usage_settle", usage_settle)
    settings.CELERY_TASK_ALWAYS_EAGER = True
    with django_capture_on_commit_callbacks(execute=True):
        enqueue.usage_settle(11)
    assert ran == [[11]]


def test_a_name_no_process_here_registered_is_sent_as_a_message_by_that_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    messages: list[tuple[str, Any]] = []
    monkeypatch.setattr(current_app, "send_task",
                        lambda name, args=None, kwargs=None, **options: messages.append(
                            (name, tuple(args or ()))))
    core_enqueue.send("elsewhere.task_kept_by_another_service", 3, "x")
    assert messages == [("elsewhere.task_kept_by_another_service", (3, "x"))]
