"""A node that goes silent: offline, leases expired, jobs requeued up to the retry limit,
usage reported before the loss paid and nothing after."""

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from banking.selectors import wallet_get
from scheduler.errors import UsageImplausible
from scheduler.models import Assignment, Job, Node
from scheduler.pricing import charge_for
from scheduler.services.agent import assignment_complete, node_lease, usage_report
from scheduler.services.jobs import job_submit
from scheduler.services.leases import leases_expire
from scheduler.services.nodes import node_heartbeat
from scheduler.services.placement import placement_run
from tests.run_clock import run_for


def test_a_silent_node_goes_offline_and_its_job_is_requeued_and_charged_only_what_was_reported(
        buyer, online_node):
    lost_node = online_node(gpus=2)
    job = job_submit(organization_id=buyer.pk, spec={"simulate": {"seconds": 600}},
                     gpu_class="H100-80GB", gpu_count=2, max_duration_s=3600)
    placement_run()
    a = Assignment.objects.get(job=job)
    run_for(a, 120)
    usage_report(node_id=lost_node.pk, assignment_id=a.pk, seq=1, gpu_seconds=240)
    with time_machine.travel(timezone.now() + timedelta(seconds=31), tick=False):
        sweep = leases_expire()
        assert (sweep.nodes_offline, sweep.assignments_lost, sweep.requeued) == (1, 1, 1)
    lost = Node.objects.get(pk=lost_node.pk)
    assert (lost.status, lost.free_gpus) == ("offline", 2)
    assert lost.reliability < 1000
    job.refresh_from_db()
    assert (job.state, job.attempts, job.node_id) == ("queued", 1, None)
    charged = charge_for(240, job.rate_per_gpu_hour)
    assert wallet_get(organization_id=buyer.pk).available == (
        10_000_000_000 - job.hold_amount)  # the hold stays for the retry
    assert Assignment.objects.get(pk=a.pk).charged == charged

    spare = online_node(gpus=2)
    placement_run()
    job.refresh_from_db()
    assert (job.state, job.node_id, job.attempts) == ("placed", spare.pk, 2)


def test_a_job_lost_more_times_than_the_limit_fails_and_its_hold_is_released(buyer, online_node,
                                                                            settings):
    settings.SCHEDULER_MAX_ATTEMPTS = 2
    online_node(gpus=1)
    job = job_submit(organization_id=buyer.pk, spec={"simulate": {"seconds": 600}},
                     gpu_class="H100-80GB", gpu_count=1, max_duration_s=3600)
    now = timezone.now()
    for attempt in range(2):
        if attempt:
            online_node(gpus=1)
        with time_machine.travel(now + timedelta(seconds=100 * attempt), tick=False):
            placement_run()
        with time_machine.travel(now + timedelta(seconds=100 * attempt + 45), tick=False):
            leases_expire()
    job.refresh_from_db()
    assert job.state == "failed"
    assert "retry limit" in job.failure_reason
    summary = wallet_get(organization_id=buyer.pk)
    assert (summary.available, summary.held) == (10_000_000_000, 0)


def test_a_node_back_before_its_lease_expires_keeps_its_assignment(buyer, online_node):
    node = online_node(gpus=1)
    job = job_submit(organization_id=buyer.pk, spec={"simulate": {"seconds": 600}},
                     gpu_class="H100-80GB", gpu_count=1, max_duration_s=3600)
    placement_run()
    with time_machine.travel(timezone.now() + timedelta(seconds=20), tick=False):
        node_heartbeat(node_id=node.pk, free_gpus=0, busy_gpus=1, utilization=1.0,
                       agent_version="t")
    with time_machine.travel(timezone.now() + timedelta(seconds=45), tick=False):
        sweep = leases_expire()
    assert sweep.assignments_lost == 0
    assert Job.objects.get(pk=job.pk).state == "placed"


def test_a_retried_job_runs_for_what_its_lost_attempt_left_and_never_bills_past_its_hold(
        buyer, online_node, settings):
    """gpu_count x max_duration is the job's budget over every attempt: the hold covers it,
    the retry is told how long it may still run, and usage past it is neither billed nor
    run."""
    first = online_node(gpus=2)
    job = job_submit(organization_id=buyer.pk, spec={"simulate": {"seconds": 90}},
                     gpu_class="H100-80GB", gpu_count=2, max_duration_s=100)
    placement_run()
    lost = Assignment.objects.get(job=job)
    run_for(lost, 60)
    usage_report(node_id=first.pk, assignment_id=lost.pk, seq=1, gpu_seconds=120)  # 60 s x 2
    with time_machine.travel(timezone.now() + timedelta(seconds=31), tick=False):
        leases_expire()
    second = online_node(gpus=2)
    placement_run()
    retry = Assignment.objects.get(job=job, node=second)

    lease = node_lease(node_id=second.pk)
    assert [(r.id, r.max_duration_s) for r in lease.runs] == [(retry.pk, 40)]  # (200-120)/2
    run_for(retry, 60)
    # Past its 80 GPU-seconds by more than it may overrun (2 GPUs x the slack):
    over = 80 + 2 * settings.SCHEDULER_USAGE_SLACK_S + 1
    with pytest.raises(UsageImplausible, match=f"cannot have used gpu_seconds {over}"):
        usage_report(node_id=second.pk, assignment_id=retry.pk, seq=1, gpu_seconds=over)
    result = usage_report(node_id=second.pk, assignment_id=retry.pk, seq=1, gpu_seconds=90)
    assert result.action == "stop"
    assignment_complete(node_id=second.pk, assignment_id=retry.pk, seq=2, gpu_seconds=96)

    retry.refresh_from_db()
    assert retry.gpu_seconds == 80
    total = charge_for(120, job.rate_per_gpu_hour) + charge_for(80, job.rate_per_gpu_hour)
    assert total <= job.hold_amount
    assert wallet_get(organization_id=buyer.pk).available == 10_000_000_000 - total
    assert wallet_get(organization_id=buyer.pk).held == 0
