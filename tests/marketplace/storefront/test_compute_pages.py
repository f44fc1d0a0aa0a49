"""Catalog, top-up, jobs and the provider portal through the pages."""

import re
import uuid

import pytest

from banking.selectors import wallet_get
from scheduler.models import Job, Node
from scheduler.pricing import charge_for
from tests.scheduler.conftest import (  # noqa: F401  the scheduler's autouse fixtures
    _auto_approve_and_eager_kicks,
    _no_broker,
)


def test_the_catalog_shows_rates_free_gpus_and_the_largest_shape(client, online_node, h100):
    online_node(gpus=8)
    online_node(gpus=2)
    page = client.get("/catalog/")
    assert page.status_code == 200
    html = page.content.decode()
    assert f"{h100.on_demand_rate:,}" in html
    assert 'data-testid="shape-H100-80GB-eu-west">8 GPUs' in html


def test_a_top_up_with_a_test_card_credits_once_even_when_posted_twice(make_org, client_for):
    org = make_org()
    client = client_for(org)
    body = {"amount_usd": 20, "payment_method": "pm_card_visa",
            "idempotency_key": str(uuid.uuid4())}
    asked = client.post("/wallet/topup/", body)  # first the exact amount, asked once
    from banking.services.payments import topup_quote

    tokens = topup_quote(currency="usd", amount_cents=2000).tokens
    assert f"Pay USD 20.00 with card pm_card_visa for {tokens:,} tokens?" in (
        asked.content.decode())
    assert org.topups.count() == 0
    client.post("/wallet/topup/", {**body, "confirm": "1"})
    client.post("/wallet/topup/", {**body, "confirm": "1"})  # a double click: the same key
    credited = wallet_get(organization_id=org.pk).available
    assert credited > 0
    assert org.topups.count() == 1


def test_submitting_a_job_holds_its_maximum_and_a_double_click_submits_once(
        make_org, client_for, online_node, h100):
    online_node(gpus=8)
    org = make_org(tokens=10**11)
    client = client_for(org)
    assert client.get("/jobs/").status_code == 200
    estimate = client.get("/jobs/estimate/", {"gpu_class": "H100-80GB", "gpu_count": 2,
                                               "max_duration_s": 600})
    hold = charge_for(1200, h100.on_demand_rate)
    assert f"{hold:,}" in estimate.content.decode()
    body = {"gpu_class": "H100-80GB", "gpu_count": 2, "max_duration_s": 600,
            "simulate_seconds": 5, "priority": 0, "idempotency_key": str(uuid.uuid4())}
    first = client.post("/jobs/", body)
    second = client.post("/jobs/", body)
    assert first.status_code == second.status_code == 302
    assert Job.objects.filter(organization=org).count() == 1
    job = Job.objects.get(organization=org)
    assert job.hold_amount == hold
    detail = client.get(f"/jobs/{job.pk}/")
    assert 'data-testid="job-state">Waiting for a GPU' in detail.content.decode()


def test_a_job_the_wallet_cannot_cover_shows_the_error_and_creates_nothing(
        make_org, client_for, online_node):
    online_node(gpus=8)
    org = make_org(tokens=5)
    page = client_for(org).post("/jobs/", {
        "gpu_class": "H100-80GB", "gpu_count": 1, "max_duration_s": 600,
        "idempotency_key": str(uuid.uuid4())})
    assert page.status_code == 200
    assert "Not enough tokens" in page.content.decode()
    assert Job.objects.count() == 0


def test_another_organizations_job_page_answers_404(make_org, client_for, online_node):
    online_node(gpus=8)
    mine = make_org(tokens=10**11)
    from scheduler.services.jobs import job_submit

    job = job_submit(organization_id=mine.pk, spec={"simulate": {"seconds": 5}},
                     gpu_class="H100-80GB", gpu_count=1, max_duration_s=60)
    other = client_for(make_org(tokens=10**11))
    assert other.get(f"/jobs/{job.pk}/").status_code == 404
    assert other.post(f"/jobs/{job.pk}/cancel/").status_code == 404
    assert Job.objects.get(pk=job.pk).state == "queued"


def test_a_provider_registers_a_node_and_sees_its_token_and_agent_command_once(
        make_org, client_for):
    provider = make_org(provider=True, buyer=False)
    client = client_for(provider)
    response = client.post("/provider/", {"form": "node", "name": "rack-7",
                                          "gpu_class": "H100-80GB", "gpu_count": 8,
                                          "region": "eu-west", "mode": "bank"})
    assert response.status_code == 302
    shown = client.get("/provider/nodes/created/").content.decode()
    token = re.search(r'data-testid="node-token"[^>]*|value="(nt_[^"]+)"', shown)
    assert token is not None
    assert ('value="pip install http://testserver/downloads/'
            'suanli_agent-0.1.0-py3-none-any.whl"') in shown
    assert ("suanli-agent --server http://testserver --token-file "
            "suanli-node-token") in shown
    assert "add\n    <code>--gpus 8 --gpu-class H100-80GB</code>" in shown
    assert "(umask 077 &amp;&amp; printf &#x27;%s&#x27; &#x27;nt_" in shown
    assert "--token nt_" not in shown
    again = client.get("/provider/nodes/created/")
    assert again.status_code == 302  # shown once
    assert Node.objects.filter(provider=provider, name="rack-7").count() == 1


def test_buyers_see_no_provider_portal(make_org, client_for):
    page = client_for(make_org()).get("/provider/")
    assert page.status_code == 403


@pytest.mark.parametrize("path", ["/jobs/", "/provider/", "/wallet/"])
def test_pages_need_a_signed_in_member(client, db, path):
    response = client.get(path)
    assert response.status_code == 302
    assert "/login/" in response["Location"]
