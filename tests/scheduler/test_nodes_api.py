"""POST/GET /api/v1/nodes/, PATCH/DELETE /api/v1/nodes/{id}/."""

import pytest

from scheduler.models import Node
from scheduler.services.jobs import job_submit
from scheduler.services.placement import placement_run

BODY = {"name": "rack-1", "gpu_class": "H100-80GB", "gpu_count": 8, "region": "eu-west"}


def test_a_provider_registers_a_node_and_sees_its_token_once(provider, api_client_for):
    client = api_client_for(provider)
    response = client.post("/api/v1/nodes/", BODY, format="json")
    assert response.status_code == 201
    body = response.json()
    assert body["token"].startswith("nt_")
    assert (body["status"], body["free_gpus"], body["vram_gb"]) == ("offline", 8, 80)
    listed = client.get("/api/v1/nodes/").json()["results"]
    assert [n["id"] for n in listed] == [body["id"]]
    assert "token" not in listed[0]
    assert Node.objects.get(pk=body["id"]).token_hash != body["token"]


def test_without_auto_approval_a_node_is_pending(provider, api_client_for, settings):
    settings.SCHEDULER_AUTO_APPROVE_NODES = False
    body = api_client_for(provider).post("/api/v1/nodes/", BODY, format="json").json()
    assert body["status"] == "pending"


def test_a_buyer_only_organization_cannot_register_nodes(buyer, api_client_for):
    response = api_client_for(buyer).post("/api/v1/nodes/", BODY, format="json")
    assert response.status_code == 403
    assert Node.objects.count() == 0


@pytest.mark.parametrize(
    ("overrides", "code"),
    [({"gpu_count": 0}, "invalid"), ({"gpu_class": "nope"}, "unknown_gpu_class"),
     ({"region": ""}, "invalid"), ({"rate_per_gpu_hour": 1}, "invalid")],
)
def test_bad_node_input_is_refused(provider, api_client_for, overrides, code):
    response = api_client_for(provider).post("/api/v1/nodes/", {**BODY, **overrides},
                                             format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == code
    assert Node.objects.count() == 0


def test_drain_rate_and_delete(provider, api_client_for, h100):
    client = api_client_for(provider)
    node_id = client.post("/api/v1/nodes/", BODY, format="json").json()["id"]
    drained = client.patch(f"/api/v1/nodes/{node_id}/", {"drain": True}, format="json").json()
    assert drained["status"] == "draining"
    priced = client.patch(f"/api/v1/nodes/{node_id}/",
                          {"rate_per_gpu_hour": h100.min_rate}, format="json").json()
    assert priced["rate_per_gpu_hour"] == h100.min_rate
    assert client.delete(f"/api/v1/nodes/{node_id}/").status_code == 204
    assert not Node.objects.filter(pk=node_id).exists()


def test_a_busy_node_cannot_be_deleted(provider, buyer, online_node, api_client_for):
    node = online_node(gpus=1)
    job_submit(organization_id=buyer.pk, spec={"simulate": {"seconds": 5}},
               gpu_class="H100-80GB", gpu_count=1, max_duration_s=60)
    placement_run()
    response = api_client_for(provider).delete(f"/api/v1/nodes/{node.pk}/")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "node_busy"
    assert Node.objects.filter(pk=node.pk).exists()


def test_another_providers_node_answers_404(provider, make_org, api_client_for):
    node_id = api_client_for(provider).post("/api/v1/nodes/", BODY, format="json").json()["id"]
    other = api_client_for(make_org(provider=True))
    assert other.get(f"/api/v1/nodes/{node_id}/").status_code == 404
    assert other.patch(f"/api/v1/nodes/{node_id}/", {"drain": True},
                       format="json").status_code == 404
    assert other.delete(f"/api/v1/nodes/{node_id}/").status_code == 404
    assert Node.objects.get(pk=node_id).status == "offline"


def test_the_catalog_shows_free_gpus_and_the_largest_shape(db, client, online_node):
    online_node(gpus=8)
    online_node(gpus=2)
    online_node(gpus=4, region="us-east")
    classes = client.get("/api/v1/gpu-classes/").json()
    h100 = next(c for c in classes if c["name"] == "H100-80GB")
    assert h100["availability"] == [
        {"region": "eu-west", "nodes_online": 2, "free_gpus": 10, "largest_shape": 8},
        {"region": "us-east", "nodes_online": 1, "free_gpus": 4, "largest_shape": 4},
    ]
    assert {c["name"] for c in classes} >= {"H200-141GB", "A100-80GB", "L40S-48GB",
                                            "RTX4090-24GB"}


def test_anonymous_callers_are_refused_and_nothing_changes(client, provider, api_client_for):
    node_id = api_client_for(provider).post("/api/v1/nodes/", BODY, format="json").json()["id"]
    assert client.get("/api/v1/nodes/").status_code == 401
    assert client.post("/api/v1/nodes/", {**BODY, "name": "x"},
                       content_type="application/json").status_code == 401
    assert client.patch(f"/api/v1/nodes/{node_id}/", {"drain": True},
                        content_type="application/json").status_code == 401
    assert client.delete(f"/api/v1/nodes/{node_id}/").status_code == 401
    assert list(Node.objects.values_list("id", "status")) == [(node_id, "offline")]


def test_a_node_token_is_not_a_provider_key(provider, online_node, agent_client):
    node = online_node()
    response = agent_client(node).get("/api/v1/nodes/")
    assert response.status_code in (401, 403)


def test_list_query_counts_do_not_grow_with_rows(db, client, provider, api_client_for,
                                                 online_node):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    provider_client = api_client_for(provider)
    online_node()

    def count(c, url: str) -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert c.get(url).status_code == 200
        return len(ctx.captured_queries)

    count(provider_client, "/api/v1/nodes/")  # the key's first use is recorded once
    count(client, "/api/v1/gpu-classes/")  # the dollar price is read once per half minute
    nodes, catalog = count(provider_client, "/api/v1/nodes/"), count(client, "/api/v1/gpu-classes/")
    for gpus, region in [(1, "eu-west"), (2, "us-east"), (4, "ap-south"), (8, "eu-west")]:
        online_node(gpus=gpus, region=region)
        online_node(gpu_class="A100-80GB", gpus=gpus, region=region)
    assert count(provider_client, "/api/v1/nodes/") == nodes
    assert count(client, "/api/v1/gpu-classes/") == catalog
