"""One node's hostile beat cannot blind the fleet: through the agents' ASGI door with Redis
write-behind, a value out of bounds is refused before it reaches the buffer, and the
flush writes every other node's beat even when such a beat got in (belt and braces)."""

import json
from typing import Any

import pytest
import redis
from django.conf import settings as django_settings
from django.db import connection
from prometheus_client import REGISTRY

from scheduler.agent_api import heartbeat as heartbeat_answers
from scheduler.agent_api.answers import Answer
from scheduler.models import Node, NodeHeartbeat
from scheduler.services import heartbeat_buffer
from scheduler.services.heartbeat_buffer import LEASE_DUE, PENDING, heartbeats_flush
from scheduler.services.node_tokens import token_hash
from tests.scheduler.asgi_door import through_asgi

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.xdist_group("heartbeat_buffer"),  # one hb:pending per Redis database
    pytest.mark.skipif(connection.vendor != "postgresql" or not django_settings.REDIS_URL,
                       reason="write-behind needs PostgreSQL and Redis"),
]
BEAT = {"free_gpus": 8, "busy_gpus": 0, "utilization": 0.5, "agent_version": "3.0"}
HOSTILE = {**BEAT, "free_gpus": 3_000_000_000}
FLEET = 6


@pytest.fixture(autouse=True)
def write_behind(settings: Any) -> Any:
    settings.AGENT_HEARTBEAT_WRITE_BEHIND = True
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.delete(PENDING, LEASE_DUE)
    yield client
    client.delete(PENDING, LEASE_DUE)


def _beat(node: Node, payload: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    status, body, _ = through_asgi(f"Node {node.token}",  # type: ignore[attr-defined]
                                   json.dumps(payload).encode(), {})
    return status, body


@pytest.fixture
def fleet(online_node: Any, write_behind: redis.Redis) -> list[Node]:
    """Nodes whose tokens Redis knows (their first beat went the synchronous way), with no
    beat buffered yet."""
    nodes = [online_node() for _ in range(FLEET)]
    for node in nodes:
        assert _beat(node, BEAT)[0] == 200
    write_behind.delete(PENDING)
    for node in nodes:
        assert write_behind.exists(f"hb:tok:{token_hash(node.token)}")  # type: ignore[attr-defined]
    return nodes


def _seen(nodes: list[Node]) -> dict[int, Any]:
    return dict(Node.objects.filter(pk__in=[n.pk for n in nodes])
                .values_list("pk", "last_heartbeat_at"))


def _dropped(reason: str) -> float:
    return REGISTRY.get_sample_value("suanli_batch_items_set_aside_total",
                                     {"batch": "heartbeats_flush", "reason": reason}) or 0.0


def test_a_beat_of_three_billion_free_gpus_is_refused_and_the_fleet_is_written(
        fleet, write_behind):
    hostile, others = fleet[0], fleet[1:]
    before = _seen(fleet)
    rows_before = NodeHeartbeat.objects.count()
    hostile_rows = NodeHeartbeat.objects.filter(node=fleet[0]).count()

    status, body = _beat(hostile, HOSTILE)
    answers = [_beat(node, {**BEAT, "agent_version": "3.1"})[0] for node in others]

    assert status == 400
    assert body["error"]["code"] == "invalid"
    assert list(body["error"]["fields"]) == ["free_gpus"]
    assert answers == [200] * len(others)
    pending = write_behind.hgetall(PENDING)
    assert token_hash(hostile.token).encode() not in pending  # type: ignore[attr-defined]
    assert len(pending) == len(others)

    result = heartbeats_flush()

    assert (result.taken, result.written, result.dropped, result.poison) == (
        len(others), len(others), 0, 0)
    after = _seen(fleet)
    assert after[hostile.pk] == before[hostile.pk]
    assert all(after[n.pk] > before[n.pk] for n in others)
    assert set(Node.objects.filter(pk__in=[n.pk for n in others])
               .values_list("agent_version", flat=True)) == {"3.1"}
    # at most one heartbeat row per node and minute: none for the refused beat
    assert NodeHeartbeat.objects.filter(node=hostile).count() == hostile_rows
    assert NodeHeartbeat.objects.count() - rows_before <= len(others)


def _without_the_doors_validation(monkeypatch: pytest.MonkeyPatch) -> None:
    """The door as if it checked nothing but that the body is JSON."""
    def lenient(body: bytes) -> dict[str, Any] | Answer:
        data = json.loads(body)
        return {"free_gpus": data["free_gpus"], "busy_gpus": data["busy_gpus"],
                "utilization": float(data.get("utilization", 0)),
                "agent_version": data.get("agent_version", "")}

    monkeypatch.setattr(heartbeat_answers, "heartbeat_values", lenient)


def test_with_the_doors_validation_removed_the_flush_drops_the_poison_beat(
        fleet, write_behind, monkeypatch):
    _without_the_doors_validation(monkeypatch)
    hostile, others = fleet[0], fleet[1:]
    before = _seen(fleet)
    dropped_before = _dropped("unreadable")

    assert _beat(hostile, HOSTILE)[0] == 200  # it reaches the buffer now
    assert [_beat(node, BEAT)[0] for node in others] == [200] * len(others)
    assert len(write_behind.hgetall(PENDING)) == FLEET

    result = heartbeats_flush()

    assert (result.taken, result.written, result.poison) == (FLEET, len(others), 1)
    assert _dropped("unreadable") == dropped_before + 1
    after = _seen(fleet)
    assert after[hostile.pk] == before[hostile.pk]
    assert all(after[n.pk] > before[n.pk] for n in others)
    assert write_behind.hlen(PENDING) == 0  # dropped, not put back to fail again


def test_with_every_check_removed_the_database_refuses_one_beat_and_writes_the_others(
        fleet, write_behind, monkeypatch):
    """The braces: what neither the door nor the flush's own reading caught, PostgreSQL
    refuses (integer out of range); the flush then writes beat by beat."""
    _without_the_doors_validation(monkeypatch)

    def unchecked(value: bytes) -> Any:
        node, status, at_ms, free, busy, util, version = value.decode().split("|", 6)
        return int(node), status, int(at_ms), int(free), int(busy), float(util), version

    monkeypatch.setattr(heartbeat_buffer, "_parse_one", unchecked)
    hostile, others = fleet[0], fleet[1:]
    before = _seen(fleet)
    dropped_before = _dropped("refused_by_database")

    assert _beat(hostile, HOSTILE)[0] == 200
    assert [_beat(node, BEAT)[0] for node in others] == [200] * len(others)

    result = heartbeats_flush()

    assert (result.taken, result.written, result.poison) == (FLEET, len(others), 1)
    assert _dropped("refused_by_database") == dropped_before + 1
    after = _seen(fleet)
    assert after[hostile.pk] == before[hostile.pk]
    assert all(after[n.pk] > before[n.pk] for n in others)
    assert write_behind.hlen(PENDING) == 0
    # the refused node's token is proven again by its next beat, the synchronous way
    assert not write_behind.exists(f"hb:tok:{token_hash(hostile.token)}")  # type: ignore[attr-defined]


def test_a_heartbeat_past_the_agents_cap_is_413_at_either_door(online_node: Any, client: Any
                                                               ) -> None:
    """The agents' ASGI door and Django's refuse an oversized beat alike: 413
    payload_too_large in the error shape, and the node's row untouched."""
    online_node = online_node()
    before = Node.objects.values().get(pk=online_node.pk)
    beats = NodeHeartbeat.objects.count()
    padding = "x" * (django_settings.AGENT_REQUEST_MAX_BYTES + 1)
    body = json.dumps({"free_gpus": 1, "busy_gpus": 0, "agent_version": padding}).encode()

    status, answer, _ = through_asgi(f"Node {online_node.token}", body, {})
    django = client.post("/api/v1/agent/heartbeat/", body, content_type="application/json",
                         HTTP_AUTHORIZATION=f"Node {online_node.token}")

    assert (status, answer["error"]["code"]) == (413, "payload_too_large")
    assert (django.status_code, django.json()["error"]["code"]) == (413, "payload_too_large")
    assert Node.objects.values().get(pk=online_node.pk) == before
    assert NodeHeartbeat.objects.count() == beats
