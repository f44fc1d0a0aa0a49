"""The scheduler's buyer and provider doors against a stranger's extreme values: jobs (spec,
regions, every number), their list's query string, nodes (labels, names, counts, rates).
Each is a 400 with its code and the field named, and nothing changed. (The agents' own
calls are bounded by their fast path, scheduler.api.agent_doors.)"""

from __future__ import annotations

from typing import Any

import pytest

from banking.models import Hold, Transfer
from banking.selectors import wallet_get
from scheduler.models import Job, Node
from tests.scheduler.conftest import job_body

pytestmark = pytest.mark.django_db

NODE = {"name": "rack-1", "gpu_class": "H100-80GB", "gpu_count": 8, "region": "eu-west"}


def nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = {"k": value}
    return value


def _state(org_id: int) -> dict[str, Any]:
    return {"jobs": Job.objects.count(), "holds": Hold.objects.count(),
            "transfers": Transfer.objects.count(),
            "nodes": list(Node.objects.order_by("pk").values_list(
                "pk", "name", "gpu_count", "labels", "rate_per_gpu_hour", "status")),
            "wallet": wallet_get(organization_id=org_id)}


@pytest.mark.parametrize("query", ["\x00", "queued\x00", "queued," * 100, "nope"])
def test_the_job_list_refuses_a_hostile_state(buyer, api_client_for, query):
    response = api_client_for(buyer).get("/api/v1/jobs/", {"state": query})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "out_of_bounds"
    assert list(response.json()["error"]["fields"]) == ["state"]


def test_the_job_list_still_filters_by_known_states(buyer, api_client_for):
    response = api_client_for(buyer).get("/api/v1/jobs/", {"state": "queued,running"})
    assert response.status_code == 200
    assert response.json()["results"] == []


@pytest.mark.parametrize(("field", "value"), [
    ("spec", {"command": "echo \x00"}),
    ("spec", {"simulate": {"seconds": 10}, "x": nested(20)}),
    ("spec", {"command": "x" * (70 * 1024)}),
    ("spec", {"simulate": {"seconds": 2**63}}),
    ("regions", ["eu-west\x00"]),
    ("regions", ["r" * 33]),
    ("regions", ["eu-west"] * 33),
    ("regions", "eu-west"),
    ("gpu_class", "H100\x00"),
    ("gpu_class", "H" * 65),
    ("gpu_count", 2**31), ("gpu_count", 2**63), ("gpu_count", -1),
    ("max_duration_s", 2**31), ("max_duration_s", 2**63), ("max_duration_s", -1),
    ("min_vram_gb", 2**31), ("min_vram_gb", -1),
    ("max_price_per_gpu_hour", 2**63), ("max_price_per_gpu_hour", -1),
    ("priority", 2**31), ("priority", -(2**31) - 1), ("priority", 2**63),
    ("block", 2**63), ("block", -1),
])
def test_a_job_with_an_extreme_value_is_refused_and_nothing_held(
        buyer, online_node, api_client_for, field, value):
    online_node()
    before = _state(buyer.pk)
    response = api_client_for(buyer).post("/api/v1/jobs/", job_body(**{field: value}),
                                          format="json")
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    # A spec's own rules name the place in it (invalid_spec, spec.command).
    assert error["code"] in ("invalid", "out_of_bounds", "invalid_spec")
    assert any(name == field or name.startswith(f"{field}.") for name in error["fields"])
    assert _state(buyer.pk) == before


@pytest.mark.parametrize(("field", "value"), [
    ("name", "rack\x00"), ("name", "r" * 101),
    ("gpu_class", "H100\x00"),
    ("region", "eu\x00"), ("region", "r" * 33),
    ("gpu_count", 2**31), ("gpu_count", 2**63), ("gpu_count", -1),
    ("vram_gb", 2**31), ("vram_gb", 2**63), ("vram_gb", -1),
    ("rate_per_gpu_hour", 2**63), ("rate_per_gpu_hour", -1),
    ("labels", {"rack": "a\x00"}), ("labels", {"k\x00": "v"}),
    ("labels", nested(4)), ("labels", {"blob": "x" * 5000}), ("labels", ["not", "a", "map"]),
])
def test_a_node_with_an_extreme_value_is_refused_and_none_made(provider, api_client_for,
                                                              field, value):
    before = _state(provider.pk)
    response = api_client_for(provider).post("/api/v1/nodes/", {**NODE, field: value},
                                             format="json")
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] in ("invalid", "out_of_bounds")
    assert field in response.json()["error"]["fields"]
    assert _state(provider.pk) == before


@pytest.mark.parametrize("value", [2**63, 2**64, -1, "1\x00"])
def test_a_node_patch_with_an_extreme_rate_changes_nothing(provider, online_node,
                                                          api_client_for, value):
    node = online_node()
    before = _state(provider.pk)
    response = api_client_for(provider).patch(f"/api/v1/nodes/{node.pk}/",
                                              {"rate_per_gpu_hour": value}, format="json")
    assert response.status_code == 400, response.content
    assert "rate_per_gpu_hour" in response.json()["error"]["fields"]
    assert _state(provider.pk) == before


def test_a_job_nested_10000_levels_is_400(buyer, online_node, api_client_for):
    online_node()
    before = _state(buyer.pk)
    body = '{"spec": ' + "[" * 10_000 + "]" * 10_000 + "}"
    response = api_client_for(buyer).generic("POST", "/api/v1/jobs/", body,
                                             content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "out_of_bounds"
    assert _state(buyer.pk) == before
