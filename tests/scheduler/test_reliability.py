"""Reliability falls with faults attributable to the node and recovers with clean history
(scheduler.services.reliability's formula)."""

from datetime import timedelta

import time_machine
from django.utils import timezone

from scheduler.models import Node, NodeFault, NodeHeartbeat
from scheduler.services.leases import leases_expire
from scheduler.services.placement import placement_run
from scheduler.services.reliability import (
    PRIOR,
    node_fault_record,
    reliability_refresh_all,
    reliability_score,
)


def _beat_hours(node: Node, start, hours: int) -> None:
    NodeHeartbeat.objects.bulk_create(
        [NodeHeartbeat(node=node, at=start + timedelta(hours=h, minutes=5), free_gpus=8,
                       busy_gpus=0) for h in range(hours)], ignore_conflicts=True)


def test_the_formula():
    assert reliability_score(PRIOR, 0.0) == 1000
    assert reliability_score(24.0, 24.0) == 500
    assert reliability_score(0.0, 0.0) == 1000


def test_a_new_node_is_1000_and_faults_lower_it_exactly(online_node):
    node = online_node(gpus=8)
    now = timezone.now().replace(microsecond=0)
    NodeHeartbeat.objects.filter(node=node).delete()
    assert node_fault_record(node_id=node.pk, kind=NodeFault.Kind.LOST, now=now) == round(
        1000 * PRIOR / (PRIOR + 5.0))
    assert node_fault_record(node_id=node.pk, kind=NodeFault.Kind.IMPLAUSIBLE, now=now) == round(
        1000 * PRIOR / (PRIOR + 15.0))
    assert Node.objects.get(pk=node.pk).reliability == round(1000 * 24 / 39)


def test_reliability_recovers_after_a_clean_week(online_node):
    node = online_node(gpus=8)
    NodeHeartbeat.objects.filter(node=node).delete()
    start = timezone.now().replace(minute=0, second=0, microsecond=0) - timedelta(days=1)
    _beat_hours(node, start - timedelta(days=2), 48)
    for _ in range(12):  # a bad day: twelve runs lost
        node_fault_record(node_id=node.pk, kind=NodeFault.Kind.LOST, now=start)
    fallen = Node.objects.get(pk=node.pk).reliability
    assert fallen < 600
    week = start + timedelta(days=7)
    _beat_hours(node, start, 7 * 24)  # a clean week, online every hour
    Node.objects.filter(pk=node.pk).update(last_heartbeat_at=week)
    with time_machine.travel(week, tick=False):
        assert reliability_refresh_all() == 1
    recovered = Node.objects.get(pk=node.pk).reliability
    # good: the prior, the week's hours and the two days before, each weighted by age;
    # bad: twelve lost runs a week old, at half their weight.
    hours = [week - (start - timedelta(days=2) + timedelta(hours=h, minutes=5))
             for h in range(9 * 24)]
    good = PRIOR + sum(0.5 ** ((a.total_seconds() - 300) / 86400 / 7)
                       for a in hours)
    bad = 12 * 5.0 * 0.5
    assert abs(recovered - round(1000 * good / (good + bad))) <= 2
    assert recovered > 800 > fallen


def test_a_silent_node_loses_reliability_and_placement_prefers_the_reliable_one(
        buyer, online_node, settings):
    flaky, steady = online_node(gpus=8), online_node(gpus=8)
    Node.objects.filter(pk=flaky.pk).update(last_heartbeat_at=timezone.now() - timedelta(
        seconds=settings.SCHEDULER_NODE_TIMEOUT_S + 5))
    leases_expire()
    assert NodeFault.objects.filter(node=flaky, kind=NodeFault.Kind.OFFLINE).count() == 1
    flaky.refresh_from_db()
    assert flaky.reliability < Node.objects.get(pk=steady.pk).reliability
    Node.objects.filter(pk=flaky.pk).update(status=Node.Status.ONLINE)  # back online
    from scheduler.services.jobs import job_submit

    job = job_submit(organization_id=buyer.pk, spec={"simulate": {"seconds": 60}},
                     gpu_class="H100-80GB", gpu_count=8, max_duration_s=600)
    assert placement_run().assignments == [(job.pk, steady.pk, 8)]
