"""POST/GET /api/v1/jobs/, GET /api/v1/jobs/{id}/, POST /api/v1/jobs/{id}/cancel/."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from banking.models import Hold, Organization
from banking.selectors import wallet_get
from banking.services.customers import organization_set_status
from scheduler.models import Job
from scheduler.pricing import charge_for
from tests.scheduler.conftest import job_body


def test_submitting_locks_the_rate_and_holds_the_maximum_cost(buyer, online_node, h100,
                                                              api_client_for):
    online_node()
    response = api_client_for(buyer).post("/api/v1/jobs/", job_body(gpu_count=2,
                                          max_duration_s=600), format="json")
    assert response.status_code == 201
    body = response.json()
    expected_hold = charge_for(2 * 600, h100.on_demand_rate)
    assert (body["state"], body["rate_per_gpu_hour"], body["hold_amount"]) == (
        "queued", h100.on_demand_rate, expected_hold)
    assert wallet_get(organization_id=buyer.pk).held == expected_hold


def test_a_job_the_wallet_cannot_cover_is_refused_and_nothing_is_created(
        make_org, online_node, api_client_for):
    online_node()
    poor = make_org(tokens=100)
    response = api_client_for(poor).post("/api/v1/jobs/", job_body(), format="json")
    assert response.status_code == 402
    assert response.json()["error"]["code"] == "insufficient_funds"
    assert Job.objects.filter(organization=poor).count() == 0
    assert Hold.objects.filter(organization=poor).count() == 0
    assert wallet_get(organization_id=poor.pk).available == 100


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"gpu_count": 0}, "invalid"),
        ({"gpu_count": 9}, "no_node_fits"),
        ({"gpu_class": "TPU-v9"}, "unknown_gpu_class"),
        ({"max_duration_s": 0}, "invalid"),
        ({"max_duration_s": -5}, "invalid"),
        ({"max_price_per_gpu_hour": 0}, "invalid"),
        ({"spec": {}}, "invalid_spec"),
        ({"spec": {"command": 42}}, "invalid_spec"),
        ({"spec": {"simulate": {"seconds": "ten"}}}, "invalid_spec"),
        ({"regions": "eu-west"}, "invalid"),
        ({"gpu_count": 1.5}, "invalid"),
    ],
)
def test_bad_job_input_gets_a_clear_code_and_holds_nothing(buyer, online_node, api_client_for,
                                                          overrides, code):
    online_node()
    response = api_client_for(buyer).post("/api/v1/jobs/", job_body(**overrides), format="json")
    assert response.status_code in (400, 402)
    assert response.json()["error"]["code"] == code
    assert Job.objects.count() == 0
    assert wallet_get(organization_id=buyer.pk).held == 0


def test_the_same_idempotency_key_submits_once(buyer, online_node, api_client_for):
    online_node()
    client = api_client_for(buyer)
    first = client.post("/api/v1/jobs/", job_body(), format="json", HTTP_IDEMPOTENCY_KEY="k1")
    again = client.post("/api/v1/jobs/", job_body(), format="json", HTTP_IDEMPOTENCY_KEY="k1")
    assert first.json()["id"] == again.json()["id"]
    assert Job.objects.count() == 1
    assert wallet_get(organization_id=buyer.pk).held == first.json()["hold_amount"]


def test_the_same_idempotency_key_for_another_job_is_a_conflict(buyer, online_node,
                                                                  api_client_for):
    online_node()
    client = api_client_for(buyer)
    first = client.post("/api/v1/jobs/", job_body(), format="json", HTTP_IDEMPOTENCY_KEY="k1")
    other = client.post("/api/v1/jobs/", job_body(gpu_count=2), format="json",
                        HTTP_IDEMPOTENCY_KEY="k1")
    assert other.status_code == 409
    assert other.json()["error"]["code"] == "idempotency_conflict"
    assert Job.objects.count() == 1
    assert wallet_get(organization_id=buyer.pk).held == first.json()["hold_amount"]


@pytest.mark.parametrize("status", [Organization.Status.FROZEN, Organization.Status.DELINQUENT])
def test_frozen_or_delinquent_organizations_cannot_submit(buyer, online_node, api_client_for,
                                                          status):
    online_node()
    organization_set_status(organization_id=buyer.pk, status=status)
    response = api_client_for(buyer).post("/api/v1/jobs/", job_body(), format="json")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == f"organization_{status}"
    assert Job.objects.count() == 0


def test_providers_only_organizations_cannot_submit(provider, online_node, api_client_for):
    online_node()
    response = api_client_for(provider).post("/api/v1/jobs/", job_body(), format="json")
    assert response.status_code == 403
    assert Job.objects.count() == 0


def test_anonymous_callers_are_refused(client, db):
    assert client.post("/api/v1/jobs/", job_body(), content_type="application/json"
                       ).status_code in (401, 403)
    assert Job.objects.count() == 0


def test_another_organizations_job_answers_404_and_cannot_be_canceled(
        buyer, make_org, online_node, api_client_for):
    online_node()
    job_id = api_client_for(buyer).post("/api/v1/jobs/", job_body(), format="json").json()["id"]
    other = api_client_for(make_org(tokens=10))
    assert other.get(f"/api/v1/jobs/{job_id}/").status_code == 404
    assert other.post(f"/api/v1/jobs/{job_id}/cancel/").status_code == 404
    assert Job.objects.get(pk=job_id).state == "queued"
    assert len(other.get("/api/v1/jobs/").json()["results"]) == 0


def test_canceling_a_queued_job_releases_its_hold(buyer, online_node, api_client_for):
    online_node()
    client = api_client_for(buyer)
    job_id = client.post("/api/v1/jobs/", job_body(), format="json").json()["id"]
    response = client.post(f"/api/v1/jobs/{job_id}/cancel/")
    assert response.status_code == 200
    assert response.json()["state"] == "canceled"
    summary = wallet_get(organization_id=buyer.pk)
    assert (summary.held, summary.available) == (0, 10_000_000_000)
    assert client.post(f"/api/v1/jobs/{job_id}/cancel/").json()["state"] == "canceled"


def test_the_job_list_query_count_does_not_grow_with_rows(buyer, online_node, api_client_for):
    online_node()
    client = api_client_for(buyer)
    client.post("/api/v1/jobs/", job_body(), format="json")

    def count() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert client.get("/api/v1/jobs/").status_code == 200
        return len(ctx.captured_queries)

    few = count()
    for _ in range(8):
        client.post("/api/v1/jobs/", job_body(), format="json")
    assert count() == few
