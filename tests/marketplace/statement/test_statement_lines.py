"""The readable statement: one line per job with its total (fee included), holds and
releases not shown, a running balance that ends at wallet plus held, and the API's
grouped statement beside the ledger."""

import pytest
from rest_framework.test import APIClient

from banking.models import Entry
from banking.selectors import wallet_get
from banking.services.ledger import grant_post
from marketplace.statement import statement_lines
from scheduler.models import Assignment
from scheduler.pricing import charge_for
from scheduler.services.placement import placement_run
from scheduler.services.settlement import usage_settle
from tests.run_clock import run_for
from tests.scheduler.conftest import (  # noqa: F401  the scheduler's autouse fixtures
    _auto_approve_and_eager_kicks,
    _no_broker,
    submit_job,
)


@pytest.fixture
def finished_job(submit_job, online_node, agent_client, buyer):  # noqa: F811
    node = online_node(gpus=4)
    job = submit_job(gpu_count=2, max_duration_s=3600)
    assert placement_run().placed == 1
    assignment = Assignment.objects.get(job=job)
    client = agent_client(node)
    url = f"/api/v1/agent/assignments/{assignment.pk}"
    run_for(assignment, 60)  # 120 GPU-seconds on its 2 GPUs
    assert client.post(f"{url}/usage/", {"seq": 1, "gpu_seconds": 40},
                       format="json").status_code == 200
    usage_settle()
    assert client.post(f"{url}/complete/", {"seq": 2, "gpu_seconds": 120, "exit_code": 0},
                       format="json").status_code == 200
    return node, job


def test_a_job_is_one_line_with_its_total_and_its_captures_inside(finished_job, buyer,
                                                                  provider):
    node, job = finished_job
    price = charge_for(120, job.rate_per_gpu_hour)
    captures = Entry.objects.filter(account__organization=buyer, transfer__kind="capture")
    assert captures.count() == 2  # two slices settled: still one line

    lines = statement_lines(organization_id=buyer.pk)

    job_lines = [line for line in lines if line.kind == "job"]
    assert len(job_lines) == 1
    line = job_lines[0]
    assert (line.job_id, line.amount, line.gpu_class, line.gpu_count, line.duration_s,
            line.node) == (job.pk, -price, "H100-80GB", 2, 60, node.name)
    assert line.description == f"Job #{job.pk}: 2 \u00d7 H100-80GB, 1 min 00 s on {node.name}"
    assert sum(c.amount for c in line.captures) == -price
    assert len(line.captures) == 2
    # the grant and the job: holds and releases are not lines
    assert [x.kind for x in lines] == ["job", "grant"]
    summary = wallet_get(organization_id=buyer.pk)
    assert lines[0].balance == summary.available + summary.held == 10_000_000_000 - price
    assert lines[1].balance == 10_000_000_000
    # the provider's side: one earning line for the same job, its share after the fee
    earned = statement_lines(organization_id=provider.pk)
    assert [(x.kind, x.amount) for x in earned] == [("earning", price - price // 10)]
    assert "job:" not in earned[0].description and "node " not in earned[0].description[:5]


def test_no_internal_keys_in_descriptions(org):
    grant_post(organization_id=org.pk, amount=1_000, reason="welcome",
               idempotency_key="grant-key:abc")
    (line,) = statement_lines(organization_id=org.pk)
    assert (line.description, line.amount, line.balance) == ("Grant: welcome", 1_000, 1_000)


def test_the_api_gives_the_grouped_statement(finished_job, buyer, api_client_for, make_org):
    _node, job = finished_job
    price = charge_for(120, job.rate_per_gpu_hour)
    body = api_client_for(buyer).get("/api/v1/wallet/statement/").json()
    assert [(r["kind"], r["amount"], r["job_id"]) for r in body["results"]] == [
        ("job", -price, job.pk), ("grant", 10_000_000_000, None)]
    assert body["results"][1]["usd"] == "\u2248 $3,000.00"  # 10,000M tokens at $0.30 per 1M
    # another organization sees only its own lines; nobody signed in sees none
    stranger = make_org(tokens=5)
    other = api_client_for(stranger).get("/api/v1/wallet/statement/").json()
    assert [(r["kind"], r["amount"]) for r in other["results"]] == [("grant", 5)]
    anonymous = APIClient().get("/api/v1/wallet/statement/")
    assert anonymous.status_code in (401, 403)
    assert anonymous.json()["error"]["code"] in ("not_authenticated", "authentication_failed")


def test_the_api_statement_is_walked_by_cursor_and_refuses_a_forged_one(org, api_client_for):
    for n in range(5):
        grant_post(organization_id=org.pk, amount=1_000 + n, reason=f"g{n}",
                   idempotency_key=f"walk:{n}")
    client = api_client_for(org)

    seen, url = [], "/api/v1/wallet/statement/?page_size=2"
    pages = 0
    while url:
        body = client.get(url.replace("http://testserver", "")).json()
        seen += [r["amount"] for r in body["results"]]
        last, url, pages = body, body["next"], pages + 1
        if pages == 2:
            # a line added at the top meanwhile shifts nothing further down the walk
            grant_post(organization_id=org.pk, amount=9, reason="late", idempotency_key="late")
    back = client.get(last["previous"].replace("http://testserver", "")).json()
    forged = client.get("/api/v1/wallet/statement/?cursor=cD0lMjclMjBPUiUyMDE9MQ==")

    assert seen == [1_004, 1_003, 1_002, 1_001, 1_000]
    assert pages == 3
    assert [r["amount"] for r in back["results"]] == [1_002, 1_001]
    assert forged.status_code == 404
    assert forged.json()["error"]["code"] == "not_found"
