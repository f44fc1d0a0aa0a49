"""The bank's periodic tasks: declared in the beat schedule under their stable names,
routed to a queue, and thin (each runs its service and is safe to run twice)."""

from django.conf import settings

from marketplace import tasks


def test_every_bank_task_is_scheduled_and_routed_under_its_name():
    names = {"marketplace.yield_accrue", "marketplace.sla_credits_post",
             "marketplace.prices_adjust", "marketplace.low_balance_check"}
    assert {t.name for t in (tasks.yield_accrue_task, tasks.sla_credits_post_task,
                             tasks.prices_adjust_task, tasks.low_balance_check_task)} == names
    scheduled = {e["task"] for e in settings.CELERY_BEAT_SCHEDULE.values()}
    assert names <= scheduled
    assert names <= set(settings.CELERY_TASK_ROUTES)


def test_the_tasks_run_twice_with_nothing_to_do(db):
    for _ in range(2):
        assert tasks.yield_accrue_task() == 0
        assert tasks.sla_credits_post_task() == 0
        assert tasks.low_balance_check_task() == 0
