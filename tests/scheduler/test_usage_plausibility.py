"""Agents' usage reports checked against the clock (scheduler.services.plausibility):
what the clock or the run's budget rules out is refused with 409 usage_implausible,
changes nothing, counts against the node, and a node that repeats it is disabled and
flagged in admin. Report bodies are bounded to their columns (400)."""

import threading
from datetime import timedelta
from typing import Any

import pytest
import time_machine

from banking.models import Hold
from banking.selectors import wallet_get
from core.bounds import OutOfBounds
from scheduler.errors import UsageImplausible
from scheduler.models import Assignment, Job, Node, NodeFault, UsageRecord
from scheduler.pricing import charge_for
from scheduler.services.agent import assignment_complete, assignment_fail, usage_report
from scheduler.services.placement import placement_run

FUNDS = 10_000_000_000  # the buyer fixture's


@pytest.fixture
def placed(submit_job: Any, online_node: Any, agent_client: Any) -> Any:
    """A 2-GPU job of an hour placed on a 4-GPU node, nothing reported yet."""
    node = online_node(gpus=4)
    job = submit_job(gpu_count=2, max_duration_s=3600)
    assert placement_run().placed == 1
    return node, job, Assignment.objects.get(job=job), agent_client(node)


def _untouched(assignment: Assignment, job: Job) -> None:
    a = Assignment.objects.get(pk=assignment.pk)
    assert (a.state, a.last_seq, a.gpu_seconds, a.ai_tokens, a.charged, a.started_at) == (
        "placed", 0, 0, 0, 0, None)
    assert UsageRecord.objects.filter(assignment=assignment).count() == 0
    assert Job.objects.get(pk=job.pk).state == "placed"


def _faults(node: Node) -> int:
    return NodeFault.objects.filter(node=node, kind=NodeFault.Kind.IMPLAUSIBLE).count()


def test_completing_a_just_placed_job_with_its_whole_budget_is_refused_and_bills_only_time_run(
        placed, buyer, provider, settings):
    node, job, assignment, client = placed
    budget = 2 * 3600
    slack = settings.SCHEDULER_USAGE_SLACK_S
    url = f"/api/v1/agent/assignments/{assignment.pk}"

    with time_machine.travel(assignment.created_at, tick=False):  # just placed
        refused = client.post(f"{url}/complete/", {"seq": 1, "gpu_seconds": budget,
                                                   "exit_code": 0}, format="json")

    assert refused.status_code == 409
    error = refused.json()["error"]
    assert error["code"] == "usage_implausible"
    assert error["fields"] == {"gpu_seconds": [f"At most {2 * slack} now."]}  # 2 GPUs
    _untouched(assignment, job)
    wallet = wallet_get(organization_id=buyer.pk)
    assert (wallet.available, wallet.held) == (FUNDS - job.hold_amount, job.hold_amount)
    hold = Hold.objects.get(pk=job.hold_id)
    assert (hold.status, hold.captured, hold.released) == ("open", 0, 0)
    assert wallet_get(organization_id=provider.pk).available == 0
    assert _faults(node) == 1
    node.refresh_from_db()
    assert (node.status, node.flag, node.free_gpus) == ("online", "", 2)
    # round(1000 x (24 + 1) / (24 + 1 + 10)): the prior, its hour of heartbeats, one fault
    assert node.reliability == 714

    # Thirty seconds later the node tells the truth: charged for that, nothing more.
    with time_machine.travel(assignment.created_at + timedelta(seconds=30), tick=False):
        done = client.post(f"{url}/complete/", {"seq": 2, "gpu_seconds": 60, "exit_code": 0},
                           format="json")
    assert done.status_code == 200
    price = charge_for(60, job.rate_per_gpu_hour)
    wallet = wallet_get(organization_id=buyer.pk)
    assert (wallet.available, wallet.held) == (FUNDS - price, 0)
    assert Job.objects.get(pk=job.pk).state == "succeeded"
    assert Assignment.objects.get(pk=assignment.pk).charged == price


def test_the_clock_bound_is_exact_gpu_count_times_elapsed_plus_slack(placed, settings):
    node, job, assignment, _ = placed
    settings.SCHEDULER_USAGE_SLACK_S = 10
    with time_machine.travel(assignment.created_at + timedelta(seconds=100), tick=False):
        with pytest.raises(UsageImplausible, match="cannot have used gpu_seconds 221"):
            usage_report(node_id=node.pk, assignment_id=assignment.pk, seq=1, gpu_seconds=221)
        _untouched(assignment, job)
        assert usage_report(node_id=node.pk, assignment_id=assignment.pk, seq=1,
                            gpu_seconds=220).accepted is True
    assert Assignment.objects.get(pk=assignment.pk).gpu_seconds == 220
    assert _faults(node) == 1


def test_the_clock_runs_from_the_nodes_first_lease_read_when_there_is_one(placed, settings):
    node, _job, assignment, client = placed
    settings.SCHEDULER_USAGE_SLACK_S = 10
    with time_machine.travel(assignment.created_at + timedelta(seconds=50), tick=False):
        client.post("/api/v1/agent/lease/", {}, format="json")
    assert Assignment.objects.get(pk=assignment.pk).leased_at == (
        assignment.created_at + timedelta(seconds=50))
    with time_machine.travel(assignment.created_at + timedelta(seconds=100), tick=False):
        # 100 s since placement but 50 s since the node learnt of the run: 2 x (50 + 10).
        with pytest.raises(UsageImplausible):
            usage_report(node_id=node.pk, assignment_id=assignment.pk, seq=1, gpu_seconds=121)
        usage_report(node_id=node.pk, assignment_id=assignment.pk, seq=1, gpu_seconds=120)


def test_ai_tokens_are_bounded_per_gpu_second_of_the_clock(placed, settings):
    node, job, assignment, _ = placed
    settings.SCHEDULER_AI_TOKENS_PER_GPU_S = 5
    settings.SCHEDULER_USAGE_SLACK_S = 10
    with time_machine.travel(assignment.created_at + timedelta(seconds=100), tick=False):
        with pytest.raises(UsageImplausible) as refused:
            usage_report(node_id=node.pk, assignment_id=assignment.pk, seq=1, gpu_seconds=10,
                         ai_tokens=1101)  # 5 x 2 GPUs x (100 + 10) s = 1100
        assert refused.value.fields == {"ai_tokens": ["At most 1100 now."]}
        _untouched(assignment, job)
        usage_report(node_id=node.pk, assignment_id=assignment.pk, seq=1, gpu_seconds=10,
                     ai_tokens=1100)
    assert Assignment.objects.get(pk=assignment.pk).ai_tokens == 1100


def test_past_the_budget_by_more_than_the_slack_is_refused_even_when_the_clock_allows_it(
        submit_job, online_node, buyer, settings):
    settings.SCHEDULER_USAGE_SLACK_S = 10
    node = online_node(gpus=1)
    job = submit_job(gpu_count=1, max_duration_s=60)
    placement_run()
    a = Assignment.objects.get(job=job)
    with time_machine.travel(a.created_at + timedelta(hours=1), tick=False):
        with pytest.raises(UsageImplausible, match="at most 70 GPU-seconds"):
            assignment_fail(node_id=node.pk, assignment_id=a.pk, seq=1, gpu_seconds=71,
                            reason="boom")
        _untouched(a, job)
        assignment_fail(node_id=node.pk, assignment_id=a.pk, seq=1, gpu_seconds=70,
                        reason="boom")
    a.refresh_from_db()
    assert (a.state, a.gpu_seconds) == ("failed", 60)  # billed no further than its budget
    assert wallet_get(organization_id=buyer.pk).available == (
        FUNDS - charge_for(60, job.rate_per_gpu_hour))


def test_a_node_refused_again_and_again_is_disabled_flagged_and_locked_out(
        placed, settings, online_node, admin_client):
    node, job, assignment, client = placed
    settings.SCHEDULER_IMPLAUSIBLE_DISABLE_AFTER = 3
    honest = online_node(gpus=1)
    url = f"/api/v1/agent/assignments/{assignment.pk}/usage/"
    for seq in (1, 2):
        assert client.post(url, {"seq": seq, "gpu_seconds": 7200},
                           format="json").status_code == 409
    node.refresh_from_db()
    assert (node.status, node.flag, _faults(node)) == ("online", "", 2)

    third = client.post(f"/api/v1/agent/assignments/{assignment.pk}/complete/",
                        {"seq": 3, "gpu_seconds": 7200}, format="json")

    assert third.status_code == 409 and third.json()["error"]["code"] == "usage_implausible"
    node.refresh_from_db()
    assert (node.status, node.flag, _faults(node)) == ("disabled", "implausible_usage", 3)
    assert node.flagged_at is not None
    _untouched(assignment, job)
    # Its token no longer opens any door.
    beat = client.post("/api/v1/agent/heartbeat/", {"free_gpus": 4, "busy_gpus": 0},
                       format="json")
    assert beat.status_code == 401
    assert client.post(url, {"seq": 4, "gpu_seconds": 0}, format="json").status_code == 401
    assert Node.objects.get(pk=honest.pk).status == "online"
    # Flagged where an operator looks: the node list's column and filter.
    flagged = admin_client.get("/admin/scheduler/node/?flag=implausible_usage")
    assert flagged.status_code == 200
    page = flagged.content.decode()
    assert f'href="/admin/scheduler/node/{node.pk}/change/' in page
    assert f'href="/admin/scheduler/node/{honest.pk}/change/' not in page
    assert "Disabled: repeated implausible usage" in page


def test_a_refusal_of_a_node_already_disabled_changes_nothing_more(placed, settings):
    node, _job, assignment, _ = placed
    settings.SCHEDULER_IMPLAUSIBLE_DISABLE_AFTER = 1
    with pytest.raises(UsageImplausible):
        usage_report(node_id=node.pk, assignment_id=assignment.pk, seq=1, gpu_seconds=9999)
    flagged_at = Node.objects.get(pk=node.pk).flagged_at
    with pytest.raises(UsageImplausible):
        usage_report(node_id=node.pk, assignment_id=assignment.pk, seq=1, gpu_seconds=9999)
    assert Node.objects.get(pk=node.pk).flagged_at == flagged_at
    assert _faults(node) == 2


BIG = 2**63


@pytest.mark.parametrize(("kind", "body", "field"), [
    ("usage", {"seq": BIG, "gpu_seconds": 0}, "seq"),
    ("usage", {"seq": 2**31, "gpu_seconds": 0}, "seq"),  # the column is an integer
    ("usage", {"seq": -1, "gpu_seconds": 0}, "seq"),
    ("usage", {"seq": 0, "gpu_seconds": 0}, "seq"),
    ("usage", {"seq": True, "gpu_seconds": 0}, "seq"),
    ("usage", {"seq": 1.5, "gpu_seconds": 0}, "seq"),
    ("usage", {"seq": 1, "gpu_seconds": BIG}, "gpu_seconds"),
    ("usage", {"seq": 1, "gpu_seconds": -1}, "gpu_seconds"),
    ("usage", {"seq": 1, "gpu_seconds": 1.0}, "gpu_seconds"),
    ("usage", {"seq": 1, "gpu_seconds": False}, "gpu_seconds"),
    ("usage", {"seq": 1, "gpu_seconds": 0, "ai_tokens": BIG}, "ai_tokens"),
    ("usage", {"seq": 1, "gpu_seconds": 0, "ai_tokens": -5}, "ai_tokens"),
    ("usage", {"seq": 1, "gpu_seconds": 0, "ai_tokens": True}, "ai_tokens"),
    ("usage", {"seq": 1, "gpu_seconds": 0, "ai_tokens": 0.5}, "ai_tokens"),
    ("usage", {"seq": 1, "gpu_seconds": 0, "image": "a\x00b"}, "image"),
    ("complete", {"seq": BIG, "gpu_seconds": 0}, "seq"),
    ("complete", {"seq": 1, "gpu_seconds": BIG * 4}, "gpu_seconds"),
    ("complete", {"seq": 1, "gpu_seconds": 0, "exit_code": 2**31}, "exit_code"),
    ("complete", {"seq": 1, "gpu_seconds": 0, "exit_code": True}, "exit_code"),
    ("fail", {"seq": 1, "gpu_seconds": -1}, "gpu_seconds"),
    ("fail", {"seq": 1, "gpu_seconds": 0, "ai_tokens": BIG}, "ai_tokens"),
    ("fail", {"seq": 1, "gpu_seconds": 0, "exit_code": -(2**31) - 1}, "exit_code"),
    ("fail", {"seq": 1, "gpu_seconds": 0, "reason": "boom\x00"}, "reason"),
    ("fail", {"seq": 1, "gpu_seconds": 0, "reason": "x" * 2001}, "reason"),
])
def test_report_bodies_out_of_bounds_are_400_and_change_nothing(placed, kind, body, field):
    node, job, assignment, client = placed
    response = client.post(f"/api/v1/agent/assignments/{assignment.pk}/{kind}/", body,
                           format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert list(error["fields"]) == [field]
    _untouched(assignment, job)
    assert _faults(node) == 0
    assert Node.objects.get(pk=node.pk).free_gpus == 2


@pytest.mark.parametrize(("report", "field"), [
    ({"seq": BIG, "gpu_seconds": 0}, "seq"),
    ({"seq": 1, "gpu_seconds": BIG}, "gpu_seconds"),
    ({"seq": 1, "gpu_seconds": 0, "ai_tokens": -1}, "ai_tokens"),
    ({"seq": 1, "gpu_seconds": 2.0}, "gpu_seconds"),
])
def test_the_services_bound_reports_by_themselves_too(placed, report, field):
    """The services are called by more than the API (the bench, other services)."""
    node, job, assignment, _ = placed
    with pytest.raises(OutOfBounds, match=f"^{field}: "):
        usage_report(node_id=node.pk, assignment_id=assignment.pk, **report)
    with pytest.raises(OutOfBounds, match=f"^{field}: "):
        assignment_complete(node_id=node.pk, assignment_id=assignment.pk, **report)
    _untouched(assignment, job)


class _Workload:
    """A container workload that claims absurdly many AI tokens in its tokens file."""

    def elapsed_s(self) -> float:
        return 5.4

    def ai_tokens(self) -> int:
        return 10**18


def test_the_agent_caps_a_workloads_own_token_count_so_its_node_is_not_refused(
        placed, settings):
    """The tokens file is the buyer's word: the agent caps it at the server's rate, so a
    buyer's job cannot get the node that runs it refused and flagged."""
    import logging

    from suanli_agent.assignment import AI_TOKENS_PER_GPU_S_MAX, AssignmentRun, Lease
    from suanli_agent.config import AgentConfig
    from suanli_agent.state import RunStateStore

    assert AI_TOKENS_PER_GPU_S_MAX == settings.SCHEDULER_AI_TOKENS_PER_GPU_S  # the default
    node, _job, assignment, _ = placed
    run = AssignmentRun(
        lease=Lease(id=assignment.pk, job_id=assignment.job_id, gpu_count=2, spec={},
                    max_duration_s=3600, lease_expires_at=None),
        gpu_indices=[0, 1], client=None, config=AgentConfig(),  # type: ignore[arg-type]
        store=RunStateStore(), log=logging.LoggerAdapter(logging.getLogger("test"), {}),
        on_exit=lambda _run: None, shutdown=threading.Event())
    run.execution = _Workload()  # type: ignore[assignment]

    gpu_seconds, ai_tokens, _elapsed = run._usage_now()

    assert (gpu_seconds, ai_tokens) == (10, 2 * 6 * AI_TOKENS_PER_GPU_S_MAX)
    with time_machine.travel(assignment.created_at + timedelta(seconds=6), tick=False):
        assert usage_report(node_id=node.pk, assignment_id=assignment.pk, seq=1,
                            gpu_seconds=gpu_seconds, ai_tokens=ai_tokens).accepted is True
    assert _faults(node) == 0
