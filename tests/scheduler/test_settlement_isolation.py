"""Usage settlement never stalls on one bad item (scheduler.services.settlement): the
others settle, the poison item is logged, counted and parked until an operator mends it."""

import logging
from typing import Any

import pytest
from prometheus_client import REGISTRY

from banking.selectors import wallet_get
from scheduler.models import Assignment, Job
from scheduler.pricing import charge_for
from scheduler.services.agent import assignment_complete, usage_report
from scheduler.services.placement import placement_run
from scheduler.services.settlement import usage_settle, usage_settlement_resume
from tests.run_clock import run_for

FUNDS = 10_000_000_000  # the buyer fixture's


def _set_aside(reason: str) -> float:
    return REGISTRY.get_sample_value("suanli_batch_items_set_aside_total",
                                     {"batch": "settlement", "reason": reason}) or 0.0


@pytest.fixture
def three_reported(submit_job: Any, online_node: Any) -> Any:
    """Three one-GPU runs on one node, each having reported 600 GPU-seconds, unsettled."""
    node = online_node(gpus=4)
    jobs = [submit_job(gpu_count=1, max_duration_s=3600) for _ in range(3)]
    assert placement_run().placed == 3
    runs = [Assignment.objects.get(job=job) for job in jobs]
    for a in runs:
        run_for(a, 600)
        usage_report(node_id=node.pk, assignment_id=a.pk, seq=1, gpu_seconds=600)
    return node, jobs, runs


def _poison(a: Assignment) -> None:
    # A real bad row: no constraint keeps a run's rate from going negative, and pricing
    # refuses one (ValueError), as it refuses any charge it cannot make sense of.
    Assignment.objects.filter(pk=a.pk).update(rate_per_gpu_hour=-1)


def test_one_poison_row_is_parked_and_the_others_settle(three_reported, buyer, caplog):
    _node, jobs, (first, bad, last) = three_reported
    _poison(bad)
    before = _set_aside("ValueError")

    with caplog.at_level(logging.ERROR, logger="scheduler.services.settlement"):
        result = usage_settle()

    assert (result.assignments, result.parked) == (2, 1)
    prices = [charge_for(600, job.rate_per_gpu_hour) for job in (jobs[0], jobs[2])]
    assert result.captured == sum(prices)
    for a, price in ((first, prices[0]), (last, prices[1])):
        a.refresh_from_db()
        assert (a.settled_gpu_seconds, a.charged, a.settlement_parked_at) == (600, price, None)
    bad.refresh_from_db()
    assert (bad.settled_gpu_seconds, bad.charged) == (0, 0)
    assert bad.settlement_parked_at is not None
    assert bad.settlement_parked_reason == "ValueError: usage and rate are never negative"
    assert _set_aside("ValueError") == before + 1
    assert [r.getMessage() for r in caplog.records] == [
        f"settlement parked assignment {bad.pk}: ValueError: usage and rate are never negative"]
    wallet = wallet_get(organization_id=buyer.pk)
    assert wallet.available == FUNDS - sum(j.hold_amount for j in jobs)
    assert wallet.held == sum(j.hold_amount for j in jobs) - sum(prices)

    # The next batch does not trip over it again.
    again = usage_settle()
    assert (again.assignments, again.parked, again.captured) == (0, 0, 0)
    assert _set_aside("ValueError") == before + 1


def test_a_mended_parked_item_settles_when_the_operator_resumes_it(three_reported):
    _node, jobs, (_first, bad, _last) = three_reported
    _poison(bad)
    usage_settle()
    Assignment.objects.filter(pk=bad.pk).update(rate_per_gpu_hour=jobs[1].rate_per_gpu_hour)

    assert usage_settle().assignments == 0  # parked until resumed
    assert usage_settlement_resume(assignment_ids=[bad.pk]) == 1
    result = usage_settle()

    assert (result.assignments, result.parked) == (1, 0)
    bad.refresh_from_db()
    assert (bad.charged, bad.settled_gpu_seconds, bad.settlement_parked_at,
            bad.settlement_parked_reason) == (
        charge_for(600, jobs[1].rate_per_gpu_hour), 600, None, "")


def test_parked_items_are_listed_in_admin_and_resumed_there(three_reported, admin_client):
    _node, _jobs, (first, bad, _last) = three_reported
    _poison(bad)
    usage_settle()
    page = admin_client.get("/admin/scheduler/assignment/?settlement_parked_at__isempty=0")
    assert page.status_code == 200
    listed = page.content.decode()
    assert f'href="/admin/scheduler/assignment/{bad.pk}/change/' in listed
    assert f'href="/admin/scheduler/assignment/{first.pk}/change/' not in listed
    response = admin_client.post("/admin/scheduler/assignment/", {
        "action": "settle_again", "_selected_action": [bad.pk, first.pk]})
    assert response.status_code == 302
    assert Assignment.objects.get(pk=bad.pk).settlement_parked_at is None


def test_a_poison_run_still_completes_and_its_job_ends(three_reported, buyer):
    """Settlement inside the completion's transaction isolates the item the same way:
    the node's report is taken, the job ends, the hold's rest goes back to the buyer."""
    node, jobs, (first, bad, _last) = three_reported
    usage_settle(assignment_ids=[first.pk])
    _poison(bad)

    assignment_complete(node_id=node.pk, assignment_id=bad.pk, seq=2, gpu_seconds=600)

    bad.refresh_from_db()
    assert (bad.state, bad.charged) == ("completed", 0)
    assert bad.settlement_parked_at is not None
    assert Job.objects.get(pk=jobs[1].pk).state == "succeeded"
    wallet = wallet_get(organization_id=buyer.pk)
    # The first run's charge is captured; the poison one's hold went back whole.
    assert wallet.held == jobs[2].hold_amount + jobs[0].hold_amount - charge_for(
        600, jobs[0].rate_per_gpu_hour)


def test_when_no_item_settles_the_batch_fails_instead_of_parking_them_all(three_reported):
    """Every item failing is a fault of the release, not of the rows: it stays loud."""
    _node, _jobs, runs = three_reported
    for a in runs:
        _poison(a)
    with pytest.raises(ValueError, match="never negative"):
        usage_settle()
    assert Assignment.objects.filter(settlement_parked_at__isnull=False).count() == 0
    assert Assignment.objects.filter(charged__gt=0).count() == 0
