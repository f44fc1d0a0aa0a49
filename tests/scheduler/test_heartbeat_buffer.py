"""Write-behind heartbeats, on real Redis and PostgreSQL: a known token's beat is counted
and kept in Redis, and `heartbeats_flush` writes it to PostgreSQL with the time it
arrived; what the flush finds (a node approved, disabled, gone) reaches the agents."""

import asyncio
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
import redis
from django.conf import settings as django_settings
from django.db import connection, transaction
from django.utils import timezone
from rest_framework.test import APIClient

from scheduler.models import Assignment, Job, Node, NodeHeartbeat
from scheduler.services import heartbeat_buffer
from scheduler.services.heartbeat_buffer import LEASE_DUE, PENDING, heartbeats_flush
from scheduler.services.jobs import job_cancel
from scheduler.services.lease_hints import leases_changed
from scheduler.services.leases import leases_expire
from scheduler.services.nodes import node_retire
from scheduler.services.placement import placement_run
from tests.scheduler.asgi_door import asgi_request, through_asgi

pytestmark = [
    pytest.mark.django_db(transaction=True),
    # One Redis buffer (hb:pending) for the whole machine: these tests take turns.
    pytest.mark.xdist_group("heartbeat_buffer"),
    pytest.mark.skipif(connection.vendor != "postgresql" or not django_settings.REDIS_URL,
                       reason="write-behind needs PostgreSQL and Redis"),
]
BEAT = {"free_gpus": 8, "busy_gpus": 0, "utilization": 0.5, "agent_version": "3.0"}


@pytest.fixture(autouse=True)
def write_behind(settings):
    settings.AGENT_HEARTBEAT_WRITE_BEHIND = True
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.delete(PENDING, LEASE_DUE)
    yield client
    client.delete(PENDING, LEASE_DUE)


@pytest.fixture
def kicks(monkeypatch) -> list[int]:
    kicked: list[int] = []
    monkeypatch.setattr("scheduler.enqueue.placement_run", lambda: kicked.append(1))
    return kicked


def _beat(node: Node, door: str = "drf", **fields) -> tuple[int, dict]:
    if door == "asgi":
        status, body, _ = through_asgi(f"Node {node.token}",  # type: ignore[attr-defined]
                                       json.dumps({**BEAT, **fields}).encode(), {})
        return status, body
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Node {node.token}")  # type: ignore[attr-defined]
    response = client.post("/api/v1/agent/heartbeat/", {**BEAT, **fields}, format="json")
    return response.status_code, response.json()


def _pending(write_behind: redis.Redis) -> dict[str, str]:
    raw: dict[bytes, bytes] = write_behind.hgetall(PENDING)  # type: ignore[assignment]
    return {k.decode(): v.decode() for k, v in raw.items()}


@pytest.mark.parametrize("door", ["drf", "asgi"])
def test_the_first_beat_is_written_at_once_and_later_ones_at_the_flush(online_node,
                                                                        write_behind, door):
    node = online_node()
    first_status, _ = _beat(node, door)  # Redis does not know the token yet: synchronous
    first_seen = Node.objects.get(pk=node.pk).last_heartbeat_at

    status, body = _beat(node, door, utilization=0.9, agent_version="3.1")

    assert (first_status, status, body["status"]) == (200, 200, "online")
    fresh = Node.objects.get(pk=node.pk)
    assert (fresh.last_heartbeat_at, fresh.agent_version) == (first_seen, "3.0")
    assert list(_pending(write_behind)) == [node.token_hash]

    flushed = heartbeats_flush()

    assert (flushed.taken, flushed.written, flushed.dropped) == (1, 1, 0)
    fresh = Node.objects.get(pk=node.pk)
    assert first_seen is not None and fresh.last_heartbeat_at is not None
    assert fresh.last_heartbeat_at > first_seen
    assert (fresh.utilization, fresh.agent_version) == (0.9, "3.1")
    assert _pending(write_behind) == {}
    assert heartbeats_flush().taken == 0  # nothing twice


def test_the_flush_extends_leases_and_keeps_a_beat_per_minute(submit_job, online_node):
    node = online_node(gpus=2)
    job = submit_job()
    assert placement_run().placed == 1
    _beat(node)
    stale = timezone.now() - timedelta(seconds=1)
    Assignment.objects.filter(job=job).update(lease_expires_at=stale)
    NodeHeartbeat.objects.filter(node=node).delete()
    _beat(node, free_gpus=1, busy_gpus=1)

    heartbeats_flush()

    assignment = Assignment.objects.get(job=job)
    assert assignment.lease_expires_at > timezone.now() + timedelta(seconds=20)
    assert list(NodeHeartbeat.objects.filter(node=node).values_list("free_gpus", "busy_gpus")
                ) == [(1, 1)]
    assert Job.objects.get(pk=job.pk).state in ("placed", "running")


def test_an_approval_seen_by_the_flush_turns_the_node_online_and_asks_for_placement(
    online_node, write_behind, kicks
):
    node = online_node()
    _beat(node)
    Node.objects.filter(pk=node.pk).update(status=Node.Status.OFFLINE)

    status, body = _beat(node)  # buffered, answered with what Redis knows
    assert (status, body["status"]) == (200, "online")
    result = heartbeats_flush()

    assert result.turned_online == 1
    assert kicks == [1]
    assert Node.objects.get(pk=node.pk).status == "online"


def test_a_status_changed_in_postgresql_reaches_the_agent_after_a_flush(online_node):
    node = online_node()
    _beat(node)
    Node.objects.filter(pk=node.pk).update(status=Node.Status.DRAINING)
    assert _beat(node)[1]["status"] == "online"  # Redis cannot know yet

    heartbeats_flush()

    assert _beat(node)[1]["status"] == "draining"
    assert Node.objects.get(pk=node.pk).status == "draining"


def test_a_retired_nodes_token_stops_at_once(online_node, provider):
    node = online_node()
    assert _beat(node)[0] == 200
    node_retire(provider_id=provider.pk, node_id=node.pk)

    assert _beat(node)[0] == 401


def test_a_node_disabled_behind_redis_back_is_dropped_by_the_next_flush(online_node,
                                                                          write_behind):
    node = online_node()
    assert _beat(node)[0] == 200
    Node.objects.filter(pk=node.pk).update(status=Node.Status.DISABLED)
    assert _beat(node)[0] == 200  # Redis cannot know yet
    seen = Node.objects.get(pk=node.pk).last_heartbeat_at

    flushed = heartbeats_flush()

    assert (flushed.written, flushed.dropped) == (0, 1)
    assert Node.objects.get(pk=node.pk).last_heartbeat_at == seen
    assert _beat(node)[0] == 401


def test_over_the_rate_nothing_is_buffered(online_node, write_behind, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {
        **settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "node": "2/min"}}
    node = online_node()
    Node.objects.filter(pk=node.pk).update(beat_window=0, beats_in_window=0)
    assert _beat(node)[0] == 200  # synchronous, counted in PostgreSQL
    assert [_beat(node)[0] for _ in range(2)] == [200, 200]  # counted in Redis from here
    write_behind.delete(PENDING)

    statuses = [_beat(node, agent_version="flood")[0] for _ in range(3)]

    if 200 in statuses:
        pytest.skip("the rate window rolled over during the test")
    assert statuses == [429, 429, 429]
    assert _pending(write_behind) == {}


def test_beats_past_the_redis_pool_wait_their_turn_instead_of_falling_back(
        online_node, write_behind, settings, caplog):
    """More beats in flight in one worker than its Redis pool has connections: each waits
    for a connection (core.loop_redis). A pool that refuses them sent each such beat the
    synchronous way, a PostgreSQL write per beat, at the very moment the fleet was busiest."""
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {
        **settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "node": "100000/min"}}
    settings.REDIS_ASYNC_POOL_SIZE = 2
    node = online_node()
    assert _beat(node, "asgi")[0] == 200  # synchronous: Redis learns the token
    write_behind.delete(PENDING)
    seen_before = Node.objects.get(pk=node.pk).last_heartbeat_at
    body = json.dumps({**BEAT, "agent_version": "crowd"}).encode()

    async def crowd() -> tuple[list[int], int]:
        from core.loop_redis import loop_redis

        replies = await asyncio.gather(*(
            asgi_request(f"Node {node.token}", body, {}) for _ in range(200)))
        pool: Any = loop_redis().connection_pool
        opened = len(pool._available_connections) + len(pool._in_use_connections)
        return [status for status, _, _ in replies], opened

    with (caplog.at_level(logging.WARNING, logger="scheduler.agent_api.heartbeat"),
          ThreadPoolExecutor(max_workers=1) as thread):
        statuses, opened = thread.submit(asyncio.run, crowd()).result()

    assert statuses == [200] * 200
    assert opened <= 2
    assert "heartbeat buffer unavailable" not in caplog.text
    assert Node.objects.get(pk=node.pk).last_heartbeat_at == seen_before  # none written
    assert list(_pending(write_behind)) == [node.token_hash]


def test_beats_that_could_not_be_written_go_back_and_a_newer_beat_wins(online_node,
                                                                         write_behind,
                                                                         monkeypatch):
    first, second = online_node(), online_node()
    _beat(first)
    _beat(second)
    _beat(first, agent_version="old")
    _beat(second, agent_version="kept")

    def database_down(beats):
        # meanwhile, a newer beat of the first node arrives
        _beat(first, agent_version="new")
        raise RuntimeError("database down")

    monkeypatch.setattr(heartbeat_buffer, "heartbeats_write", database_down)
    with pytest.raises(RuntimeError):
        heartbeats_flush()
    monkeypatch.undo()
    pending = _pending(write_behind)
    assert pending[first.token_hash].endswith("|new")
    assert pending[second.token_hash].endswith("|kept")

    heartbeats_flush()

    assert Node.objects.get(pk=first.pk).agent_version == "new"
    assert Node.objects.get(pk=second.pk).agent_version == "kept"


def test_the_flush_is_a_scheduled_task_on_a_queue_the_worker_consumes():
    from config.celery import app

    entry = django_settings.CELERY_BEAT_SCHEDULE["heartbeats"]
    assert entry["task"] == "scheduler.heartbeats_flush"
    app.autodiscover_tasks(force=True)  # what a worker finds in the apps' tasks modules
    assert entry["task"] in app.tasks
    assert django_settings.CELERY_TASK_ROUTES["scheduler.heartbeats_flush"]["queue"] == "default"
    assert json.dumps(entry["schedule"]) == json.dumps(django_settings.AGENT_HEARTBEAT_FLUSH_S)


@pytest.mark.parametrize("door", ["drf", "asgi"])
def test_with_redis_down_beats_are_written_the_synchronous_way(online_node, monkeypatch, door):
    node = online_node()
    _beat(node, door)

    def unreachable() -> None:
        raise redis.ConnectionError("Connection refused")

    monkeypatch.setattr(heartbeat_buffer, "_scripts", unreachable)
    monkeypatch.setattr(heartbeat_buffer, "loop_pipeline", unreachable)
    before = Node.objects.get(pk=node.pk).last_heartbeat_at

    status, body = _beat(node, door, agent_version="3.9")

    assert (status, body["status"]) == (200, "online")
    fresh = Node.objects.get(pk=node.pk)
    assert fresh.agent_version == "3.9"
    assert before is not None and fresh.last_heartbeat_at is not None
    assert fresh.last_heartbeat_at > before


def _lease(node: Node) -> dict:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Node {node.token}")  # type: ignore[attr-defined]
    response = client.post("/api/v1/agent/lease/", {}, format="json")
    assert response.status_code == 200
    return response.json()


@pytest.mark.parametrize("door", ["drf", "asgi"])
def test_a_buffered_beat_says_whether_the_nodes_lease_changed(submit_job, online_node, buyer,
                                                              door):
    node = online_node(gpus=2)
    assert _beat(node, door)[1]["lease_due"] is True  # synchronous: always due
    _lease(node)
    assert _beat(node, door)[1]["lease_due"] is False

    job = submit_job()
    assert _beat(node, door)[1]["lease_due"] is False  # queued, not placed yet
    assert placement_run().placed == 1

    assert [_beat(node, door)[1]["lease_due"] for _ in range(2)] == [True, True]
    assert [a["job_id"] for a in _lease(node)["assignments"]] == [job.pk]
    assert _beat(node, door)[1]["lease_due"] is False

    job_cancel(organization_id=buyer.pk, job_id=job.pk)

    assert _beat(node, door)[1]["lease_due"] is True
    leased = _lease(node)
    assert leased["assignments"] == []
    assert leased["kill"] == [Assignment.objects.get(job=job).pk]
    assert _beat(node, door)[1]["lease_due"] is False


def test_a_change_that_rolls_back_marks_no_lease(submit_job, online_node):
    node = online_node(gpus=2)
    _beat(node)
    _lease(node)
    submit_job()

    with pytest.raises(RuntimeError), transaction.atomic():
        assert placement_run().placed == 1
        raise RuntimeError("the cycle fails after placing")

    assert not Assignment.objects.exists()
    assert _beat(node)[1]["lease_due"] is False
    assert placement_run().placed == 1
    assert _beat(node)[1]["lease_due"] is True


def test_a_node_back_from_silence_is_told_its_lost_work_changed(submit_job, online_node):
    node = online_node(gpus=2)
    _beat(node)
    submit_job()
    assert placement_run().placed == 1
    _lease(node)
    assert _beat(node)[1]["lease_due"] is False
    write_behind_pending = redis.Redis.from_url(django_settings.REDIS_URL)
    write_behind_pending.delete(PENDING)  # the silence: no beat reaches PostgreSQL
    long_ago = timezone.now() - timedelta(minutes=5)
    Node.objects.filter(pk=node.pk).update(last_heartbeat_at=long_ago)
    Assignment.objects.update(lease_expires_at=long_ago)

    assert leases_expire().assignments_lost == 1

    answer = _beat(node)[1]  # its token is still known: answered from Redis
    assert answer["lease_due"] is True
    assert _lease(node)["kill"] == [Assignment.objects.get().pk]


def test_with_redis_down_a_lease_is_read_and_work_placed_all_the_same(submit_job, online_node,
                                                                        monkeypatch):
    node = online_node(gpus=2)
    _beat(node)

    def unreachable() -> None:
        raise redis.ConnectionError("Connection refused")

    monkeypatch.setattr(heartbeat_buffer, "_scripts", unreachable)
    job = submit_job()
    assert placement_run().placed == 1  # the hint is lost, not the placement

    status, body = _beat(node)
    assert (status, body["lease_due"]) == (200, True)  # answered from PostgreSQL
    assert [a["job_id"] for a in _lease(node)["assignments"]] == [job.pk]


def test_a_retired_nodes_mark_goes_with_it(online_node, provider, write_behind):
    node, other = online_node(), online_node()
    with transaction.atomic():
        leases_changed([node.pk, other.pk])
    assert write_behind.smembers(LEASE_DUE) == {str(node.pk).encode(), str(other.pk).encode()}

    node_retire(provider_id=provider.pk, node_id=node.pk)

    assert write_behind.smembers(LEASE_DUE) == {str(other.pk).encode()}
