"""The agent protocol: heartbeat, lease, usage, complete, fail."""

import pytest

from banking.models.ledger import AccountPurpose
from banking.selectors import wallet_get
from banking.services.ledger import system_account
from scheduler.models import Assignment, Job, Node, UsageRecord
from scheduler.pricing import charge_for
from scheduler.services.placement import placement_run
from tests.run_clock import run_for


@pytest.fixture
def running(submit_job, online_node, agent_client):
    """A job placed on a node, as the node's agent sees it."""
    node = online_node(gpus=4)
    job = submit_job(gpu_count=2, max_duration_s=3600)
    assert placement_run().placed == 1
    assignment = Assignment.objects.get(job=job)
    return node, job, assignment, agent_client(node)


def test_heartbeat_turns_an_approved_node_online(provider, online_node, agent_client):
    node = online_node()
    Node.objects.filter(pk=node.pk).update(status=Node.Status.OFFLINE)
    response = agent_client(node).post("/api/v1/agent/heartbeat/", {
        "free_gpus": 8, "busy_gpus": 0, "utilization": 0.0, "agent_version": "1.0"},
        format="json")
    assert response.status_code == 200
    assert response.json()["status"] == "online"
    assert response.json()["next_heartbeat_s"] == 10
    assert node.heartbeats.count() == 1  # one row per node and minute


def test_a_pending_node_stays_pending(provider, settings, agent_client):
    settings.SCHEDULER_AUTO_APPROVE_NODES = False
    from scheduler.services.nodes import node_register

    registered = node_register(provider_id=provider.pk, name="p", gpu_class="H100-80GB",
                               gpu_count=1, region="eu")
    registered.node.token = registered.token  # type: ignore[attr-defined]
    response = agent_client(registered.node).post(
        "/api/v1/agent/heartbeat/", {"free_gpus": 1, "busy_gpus": 0}, format="json")
    assert response.json()["status"] == "pending"


@pytest.mark.parametrize("header", [None, "Node nope", "Node nt_abc_def", "Api-Key x"])
def test_agent_calls_need_a_valid_node_token(db, client, header):
    kwargs = {"HTTP_AUTHORIZATION": header} if header else {}
    response = client.post("/api/v1/agent/heartbeat/", {"free_gpus": 1, "busy_gpus": 0},
                           content_type="application/json", **kwargs)
    assert response.status_code in (401, 403)


def test_the_lease_lists_active_assignments_with_their_spec(running):
    _node, job, assignment, client = running
    body = client.post("/api/v1/agent/lease/", {}, format="json").json()
    assert body["kill"] == []
    assert [(a["id"], a["job_id"], a["gpu_count"], a["spec"], a["max_duration_s"])
            for a in body["assignments"]] == [
        (assignment.pk, job.pk, 2, {"simulate": {"seconds": 60}}, 3600)
    ]


def test_usage_is_cumulative_with_sequence_numbers(running):
    _node, job, assignment, client = running
    url = f"/api/v1/agent/assignments/{assignment.pk}/usage/"
    run_for(assignment, 60)
    first = client.post(url, {"seq": 1, "gpu_seconds": 0}, format="json")
    assert first.status_code == 200 and first.json()["action"] == "continue"
    assert Job.objects.get(pk=job.pk).state == "running"
    assert client.post(url, {"seq": 2, "gpu_seconds": 100, "ai_tokens": 5}, format="json"
                       ).json()["accepted"] is True
    repeat = client.post(url, {"seq": 2, "gpu_seconds": 100, "ai_tokens": 5}, format="json")
    assert repeat.status_code == 200 and repeat.json()["accepted"] is False
    stale = client.post(url, {"seq": 1, "gpu_seconds": 100}, format="json")
    assert stale.status_code == 409 and stale.json()["error"]["code"] == "stale_sequence"
    down = client.post(url, {"seq": 3, "gpu_seconds": 50}, format="json")
    assert down.status_code == 400
    assert UsageRecord.objects.filter(assignment=assignment).count() == 2
    assignment.refresh_from_db()
    assert (assignment.last_seq, assignment.gpu_seconds, assignment.ai_tokens) == (2, 100, 5)


def test_another_nodes_assignment_answers_404_and_changes_nothing(running, online_node,
                                                                  agent_client):
    _node, _job, assignment, _ = running
    stranger = agent_client(online_node())
    response = stranger.post(f"/api/v1/agent/assignments/{assignment.pk}/usage/",
                             {"seq": 1, "gpu_seconds": 10}, format="json")
    assert response.status_code == 404
    assert stranger.post(f"/api/v1/agent/assignments/{assignment.pk}/complete/",
                         {"seq": 1, "gpu_seconds": 10}, format="json").status_code == 404
    assignment.refresh_from_db()
    assert (assignment.last_seq, assignment.state) == (0, "placed")


def test_complete_settles_the_usage_and_releases_the_rest(running, buyer, provider):
    node, job, assignment, client = running
    revenue_before = system_account(AccountPurpose.PLATFORM_REVENUE).balance
    run_for(assignment, 617)  # 1234 GPU-seconds on its 2 GPUs
    client.post(f"/api/v1/agent/assignments/{assignment.pk}/usage/",
                {"seq": 1, "gpu_seconds": 0}, format="json")
    response = client.post(f"/api/v1/agent/assignments/{assignment.pk}/complete/",
                           {"seq": 2, "gpu_seconds": 1234, "ai_tokens": 99, "exit_code": 0},
                           format="json")
    assert response.status_code == 200
    price = charge_for(1234, job.rate_per_gpu_hour)
    fee = price // 10
    assert wallet_get(organization_id=buyer.pk).available == 10_000_000_000 - price
    assert wallet_get(organization_id=buyer.pk).held == 0
    assert wallet_get(organization_id=provider.pk).available == price - fee
    assert system_account(AccountPurpose.PLATFORM_REVENUE).balance == revenue_before + fee
    assert Job.objects.get(pk=job.pk).state == "succeeded"
    assert Node.objects.get(pk=node.pk).free_gpus == 4
    again = client.post(f"/api/v1/agent/assignments/{assignment.pk}/complete/",
                        {"seq": 2, "gpu_seconds": 1234}, format="json")
    assert again.status_code == 200
    late = client.post(f"/api/v1/agent/assignments/{assignment.pk}/usage/",
                       {"seq": 3, "gpu_seconds": 2000}, format="json")
    assert late.status_code == 409 and late.json()["error"]["code"] == "assignment_closed"
    assert wallet_get(organization_id=buyer.pk).available == 10_000_000_000 - price
    assert client.post("/api/v1/agent/lease/", {}, format="json").json()["assignments"] == []


def test_fail_charges_usage_so_far_and_fails_the_job(running, buyer):
    _node, job, assignment, client = running
    run_for(assignment, 5)
    response = client.post(f"/api/v1/agent/assignments/{assignment.pk}/fail/",
                           {"seq": 1, "gpu_seconds": 10, "reason": "exit code 3: boom",
                            "exit_code": 3}, format="json")
    assert response.status_code == 200
    job.refresh_from_db()
    assert (job.state, job.failure_reason) == ("failed", "exit code 3: boom")
    assert wallet_get(organization_id=buyer.pk).available == (
        10_000_000_000 - charge_for(10, job.rate_per_gpu_hour))


def test_usage_beyond_the_maximum_duration_is_not_billed_and_the_node_is_told_to_stop(
    submit_job, buyer, online_node, agent_client
):
    """A run may overrun its budget by the slack while its node stops it (never billed);
    further is implausible (tests/scheduler/test_usage_plausibility.py)."""
    node = online_node(gpus=1)
    job = submit_job(max_duration_s=60)
    placement_run()
    a = Assignment.objects.get(job=job)
    run_for(a, 600)
    body = agent_client(node).post(f"/api/v1/agent/assignments/{a.pk}/usage/",
                                   {"seq": 1, "gpu_seconds": 65}, format="json").json()
    assert body["action"] == "stop"
    a.refresh_from_db()
    assert a.gpu_seconds == 60


def test_canceling_a_running_job_charges_usage_so_far_and_orders_a_kill(running, buyer,
                                                                       api_client_for):
    node, job, assignment, client = running
    run_for(assignment, 180)
    client.post(f"/api/v1/agent/assignments/{assignment.pk}/usage/",
                {"seq": 1, "gpu_seconds": 360}, format="json")
    response = api_client_for(buyer).post(f"/api/v1/jobs/{job.pk}/cancel/")
    assert response.json()["state"] == "canceled"
    assert response.json()["cost"] == charge_for(360, job.rate_per_gpu_hour)
    lease = client.post("/api/v1/agent/lease/", {}, format="json").json()
    assert lease == {"assignments": [], "kill": [assignment.pk]}
    assert wallet_get(organization_id=buyer.pk).held == 0
    assert Node.objects.get(pk=node.pk).free_gpus == 4
