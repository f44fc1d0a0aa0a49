"""End to end: real node agents, a real Celery worker on Redis, PostgreSQL, the live API."""

import os
import signal

import pytest
import redis
from django.db.models import Sum
from rest_framework.test import APIClient

from banking.models import Hold
from banking.models.ledger import AccountPurpose
from banking.selectors import wallet_get
from banking.services.customers import api_key_issue
from banking.services.ledger import system_account
from scheduler.models import Assignment, Job, Node
from scheduler.pricing import charge_for, fee_of
from scheduler.services.heartbeat_buffer import PENDING
from tests.live import wait_until

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.worker,
    pytest.mark.xdist_group("live-worker"),
]

FUNDS = 10_000_000_000


@pytest.fixture(autouse=True, params=["synchronous", "write-behind"])
def heartbeats(request, settings) -> str:
    """Each scenario runs with heartbeats written as they arrive, and with them buffered
    in Redis and flushed by the worker's beat, as production runs with Redis."""
    settings.AGENT_HEARTBEAT_WRITE_BEHIND = request.param == "write-behind"
    if settings.AGENT_HEARTBEAT_WRITE_BEHIND:
        redis.Redis.from_url(settings.REDIS_URL).delete(PENDING)
    return str(request.param)


def api(org) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {api_key_issue(organization_id=org.pk).secret}")
    return client


def submit(client: APIClient, seconds: int, gpus: int) -> int:
    response = client.post("/api/v1/jobs/", {
        "spec": {"simulate": {"seconds": seconds}}, "gpu_class": "H100-80GB",
        "gpu_count": gpus, "max_duration_s": 600}, format="json")
    assert response.status_code == 201, response.content
    return response.json()["id"]


def test_three_nodes_run_ten_jobs_and_every_token_is_accounted_for(
        make_org, celery_worker, start_agent, heartbeats, settings):
    provider = make_org(provider=True, buyer=False)
    buyer = make_org(tokens=FUNDS)
    start_agent(api_key_issue(organization_id=provider.pk).secret, nodes=3, gpus=4)
    wait_until(lambda: Node.objects.filter(status="online").count() == 3, 30, "3 nodes online")
    revenue_before = system_account(AccountPurpose.PLATFORM_REVENUE).balance
    client = api(buyer)
    job_ids = [submit(client, seconds=2 + i % 3, gpus=1 + i % 4) for i in range(10)]
    wait_until(lambda: Job.objects.filter(id__in=job_ids, state="succeeded").count() == 10, 120,
               "all 10 jobs to succeed")
    assignments = list(Assignment.objects.filter(job_id__in=job_ids))
    assert {a.state for a in assignments} == {"completed"}
    charges = [charge_for(a.gpu_seconds, a.rate_per_gpu_hour) for a in assignments]
    fees = [fee_of(c, 1000) for c in charges]
    assert all(a.gpu_seconds > 0 for a in assignments)
    summary = wallet_get(organization_id=buyer.pk)
    assert summary.available == FUNDS - sum(charges)
    assert summary.held == 0
    assert wallet_get(organization_id=provider.pk).available == sum(charges) - sum(fees)
    assert system_account(AccountPurpose.PLATFORM_REVENUE).balance == revenue_before + sum(fees)
    assert not Hold.objects.filter(organization=buyer, status="open").exists()
    assert Node.objects.aggregate(free=Sum("free_gpus"))["free"] == 12
    if heartbeats == "write-behind":  # the beats went through Redis, flushed all along
        known = redis.Redis.from_url(settings.REDIS_URL)
        assert all(known.exists(f"hb:tok:{n.token_hash}") for n in Node.objects.all())
        assert all(n.status == "online" for n in Node.objects.all())


def test_a_killed_agents_jobs_finish_elsewhere_and_only_reported_usage_is_paid(
        make_org, celery_worker, start_agent):
    provider = make_org(provider=True, buyer=False)
    buyer = make_org(tokens=FUNDS)
    key = api_key_issue(organization_id=provider.pk).secret
    doomed = start_agent(key, nodes=1, gpus=4, prefix="doomed")
    wait_until(lambda: Node.objects.filter(status="online").count() == 1, 30, "node online")
    client = api(buyer)
    job_ids = [submit(client, seconds=30, gpus=2) for _ in range(2)]
    wait_until(
        lambda: Assignment.objects.filter(job_id__in=job_ids, gpu_seconds__gt=0).count() == 2,
        60, "both jobs reporting usage on the first node")
    first_node = Node.objects.get(status="online")
    os.killpg(doomed.pid, signal.SIGKILL)
    doomed.wait()
    reported = {a.pk: a.gpu_seconds for a in Assignment.objects.filter(job_id__in=job_ids)}
    start_agent(key, nodes=1, gpus=4, prefix="rescue")
    wait_until(lambda: Job.objects.filter(id__in=job_ids, state="succeeded").count() == 2, 120,
               "both jobs to finish on the second node")
    lost = Assignment.objects.filter(job_id__in=job_ids, node=first_node)
    assert {a.state for a in lost} == {"lost"}
    for a in lost:
        assert a.gpu_seconds == reported[a.pk]  # nothing arrived after the kill
        assert a.charged == charge_for(a.gpu_seconds, a.rate_per_gpu_hour)
    done = Assignment.objects.filter(job_id__in=job_ids).exclude(node=first_node)
    assert {a.state for a in done} == {"completed"}
    total = sum(charge_for(a.gpu_seconds, a.rate_per_gpu_hour)
                for a in Assignment.objects.filter(job_id__in=job_ids))
    assert wallet_get(organization_id=buyer.pk).available == FUNDS - total
    assert wallet_get(organization_id=buyer.pk).held == 0
    assert Node.objects.get(pk=first_node.pk).status == "offline"
