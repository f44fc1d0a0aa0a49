"""The periodic settlement of a real Celery worker goes around a poison row: the other
runs are charged within seconds and the poison one is parked, not retried forever."""

from datetime import timedelta

import pytest
from django.utils import timezone

from banking.selectors import wallet_get
from scheduler.models import Assignment, Node
from scheduler.pricing import charge_for
from scheduler.services.agent import usage_report
from scheduler.services.placement import placement_run
from tests.live import wait_until
from tests.run_clock import run_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker,
              pytest.mark.xdist_group("live-worker")]


def test_the_workers_settlement_charges_the_others_and_parks_the_poison_row(
        celery_worker, buyer, online_node, submit_job):
    node = online_node(gpus=4)
    jobs = [submit_job(gpu_count=1, max_duration_s=3600) for _ in range(3)]
    placement_run()  # the worker's beat may place them first
    wait_until(lambda: Assignment.objects.filter(job__in=jobs).count() == 3, 30,
               "the three jobs placed")
    # The node stays alive for the test without beating (the worker sweeps leases).
    later = timezone.now() + timedelta(hours=1)
    Node.objects.filter(pk=node.pk).update(last_heartbeat_at=later)
    Assignment.objects.filter(job__in=jobs).update(lease_expires_at=later)
    good_first, bad, good_last = (Assignment.objects.get(job=job) for job in jobs)
    # A real bad row: pricing refuses a negative rate, and no constraint prevents one.
    Assignment.objects.filter(pk=bad.pk).update(rate_per_gpu_hour=-1)
    for a in (good_first, bad, good_last):
        run_for(a, 600)
        usage_report(node_id=node.pk, assignment_id=a.pk, seq=1, gpu_seconds=600)

    good = [good_first.pk, good_last.pk]
    wait_until(lambda: Assignment.objects.filter(pk__in=good, settled_gpu_seconds=600)
               .count() == 2, 30, "the two good runs settled by the worker")
    wait_until(lambda: Assignment.objects.filter(pk=bad.pk, settlement_parked_at__isnull=False)
               .exists(), 30, "the poison run parked")

    prices = [charge_for(600, jobs[0].rate_per_gpu_hour),
              charge_for(600, jobs[2].rate_per_gpu_hour)]
    assert sorted(Assignment.objects.filter(pk__in=good).values_list("charged", flat=True)) == (
        sorted(prices))
    assert Assignment.objects.get(pk=bad.pk).charged == 0
    held = sum(j.hold_amount for j in jobs)
    assert wallet_get(organization_id=buyer.pk).held == held - sum(prices)
