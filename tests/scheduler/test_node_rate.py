"""One rate limiter for every agent call (scheduler.services.node_rate): one counting rule,
composed into the heartbeat's statement and the buffer's script, counted in Redis or in
the node's row; a node over its rate is refused on every call alike, with the same
Retry-After, and another node is not."""

import time
from typing import Any

import pytest
from django.db import connection
from rest_framework.test import APIClient

from core.sql_names import column_name
from scheduler.models import Assignment, Node
from scheduler.services import heartbeat_buffer, heartbeat_write, node_rate
from scheduler.services.node_rate import (
    COUNT_LUA,
    ROW_COUNT,
    ROW_COUNTED,
    node_call_count,
    node_limit,
    retry_after_s,
    row_count,
)
from scheduler.services.node_tokens import BeatLimit
from scheduler.services.placement import placement_run

BEAT = {"free_gpus": 2, "busy_gpus": 0, "utilization": 0.5, "agent_version": "3.0"}
RATE = "3/h"


def _set_rate(settings: Any, rate: str) -> BeatLimit:
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {
        **settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "node": rate}}
    limit = node_limit()
    # The test's calls must fall in one window: begin in a fresh one if this is about to end.
    left = retry_after_s(limit, int(time.time()))
    if left < 20:
        time.sleep(left + 0.1)
    return limit


def test_every_counter_is_composed_from_the_one_rule():
    # Redis: the buffered beat and the other calls run the same fragment, and count
    # nowhere else in their scripts
    for script in (heartbeat_buffer._BEAT, node_rate._CALL_LUA):
        assert script.startswith(COUNT_LUA)
        assert script.count("INCR") == COUNT_LUA.count("INCR") == 1
    # the node's row: the heartbeat's statements (by id and by token) and the other calls'
    # statement hold the rule's two expressions, and touch the count nowhere else
    count_column = column_name(Node, "beats_in_window")
    in_rule = ROW_COUNTED.count(count_column) + ROW_COUNT.count(count_column)
    for statement in (heartbeat_write._HEARTBEAT_BY_ID, heartbeat_write._HEARTBEAT_BY_TOKEN,
                      node_rate._ROW_CALL_SQL):
        assert ROW_COUNTED in statement and ROW_COUNT in statement
        assert statement.count(count_column) == in_rule


def _decisions(count: Any, limit: BeatLimit, start: int) -> list[int]:
    # three calls and a fourth in one window, one in the next
    return [count(epoch) for epoch in (start, start + 1, start + 2, start + 3,
                                       start + limit.window_s)]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("backend", ["redis", "row"])
def test_each_backend_counts_by_the_same_rule(backend, online_node, settings):
    if backend == "redis" and not settings.REDIS_URL:
        pytest.skip("needs Redis")
    if backend == "row":
        settings.REDIS_URL = ""
    limit = _set_rate(settings, "3/m")
    node = online_node()
    # a window of the past, whole minutes from the epoch: no clock in this test
    start = (int(time.time()) // 60 - 10) * 60

    decisions = _decisions(lambda epoch: node_call_count(node.pk, epoch_s=epoch), limit, start)

    assert decisions == [0, 0, 0, 60 - 3, 0]


def test_the_orm_counts_by_the_same_rule():
    limit = BeatLimit(beats=3, window_s=60)
    start = 6000
    node = Node(beat_window=0, beats_in_window=0)

    def count(epoch: int) -> int:
        counted = row_count(node, node_rate.window_of(limit, epoch), limit.beats)
        return 0 if counted else retry_after_s(limit, epoch)

    assert _decisions(count, limit, start) == [0, 0, 0, 60 - 3, 0]


def _client(node: Node) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Node {node.token}")  # type: ignore[attr-defined]
    return client


def _lease(node: Node) -> Any:
    return _client(node).post("/api/v1/agent/lease/", {}, format="json")


def _usage(node: Node, assignment: Assignment, seq: int) -> Any:
    return _client(node).post(f"/api/v1/agent/assignments/{assignment.pk}/usage/",
                              {"seq": seq, "gpu_seconds": 0}, format="json")


def _log(node: Node, assignment: Assignment) -> Any:
    return _client(node).generic(
        "POST", f"/api/v1/agent/assignments/{assignment.pk}/logs/?offset=0", "flood",
        content_type="application/octet-stream")


def _beat(node: Node) -> Any:
    return _client(node).post("/api/v1/agent/heartbeat/", BEAT, format="json")


def _assert_refused(response: Any, limit: BeatLimit, since: int) -> None:
    assert response.status_code == 429
    body = response.json()
    assert body["error"]["code"] == "throttled"
    retry = int(response.headers["Retry-After"])
    # the rule's own figure, as of the call (the clock may tick once meanwhile)
    assert retry in {retry_after_s(limit, since), retry_after_s(limit, int(time.time()))}
    assert body["error"]["message"] == (
        f"Request was throttled. Expected available in {retry} seconds.")


@pytest.fixture
def placed(submit_job, online_node) -> tuple[Node, Assignment]:
    node = online_node(gpus=2)
    job = submit_job()
    assert placement_run().placed == 1
    return node, Assignment.objects.get(job=job)


def _node_state(node: Node, assignment: Assignment) -> tuple[Any, ...]:
    fresh, lease = Node.objects.get(pk=node.pk), Assignment.objects.get(pk=assignment.pk)
    return (fresh.last_heartbeat_at, fresh.agent_version, lease.last_seq, lease.gpu_seconds,
            lease.lease_expires_at)


@pytest.mark.django_db(transaction=True)
@pytest.mark.xdist_group("heartbeat_buffer")  # the buffer is one per Redis
@pytest.mark.parametrize("backend", ["redis", "row"])
def test_a_node_over_its_rate_is_refused_on_every_call_alike(backend, placed, online_node,
                                                              settings):
    """With Redis the write-behind heartbeat, lease reads, usage reports and log chunks
    share the node's count there; without it, the synchronous heartbeat and the others
    share the node's row."""
    if backend == "redis":
        if not settings.REDIS_URL or connection.vendor != "postgresql":
            pytest.skip("write-behind needs Redis and PostgreSQL")
        settings.AGENT_HEARTBEAT_WRITE_BEHIND = True
    else:
        settings.REDIS_URL = ""
    limit = _set_rate(settings, RATE)
    node, assignment = placed
    other = online_node()
    if backend == "redis":
        assert _beat(node).status_code == 200  # the synchronous beat that proves the token

    # three calls of every kind fill the node's window...
    assert _beat(node).status_code == 200  # buffered with Redis, else in the row
    assert _lease(node).status_code == 200
    assert _usage(node, assignment, seq=1).status_code == 200
    before = _node_state(node, assignment)
    if backend == "redis":
        pending = heartbeat_buffer.buffer_client().hget(heartbeat_buffer.PENDING,
                                                        node.token_hash)
    since = int(time.time())

    # ...and each kind is refused past it, alike
    _assert_refused(_beat(node), limit, since)
    _assert_refused(_lease(node), limit, since)
    _assert_refused(_usage(node, assignment, seq=2), limit, since)
    _assert_refused(_log(node, assignment), limit, since)

    assert _node_state(node, assignment) == before
    if backend == "redis":  # the refused beat was not buffered
        assert heartbeat_buffer.buffer_client().hget(heartbeat_buffer.PENDING,
                                                     node.token_hash) == pending
    # another node is counted on its own
    assert _lease(other).status_code == 200
    assert _beat(other).status_code == 200


@pytest.mark.django_db(transaction=True)
def test_the_synchronous_heartbeat_over_the_rate_is_refused_by_the_same_rule(online_node,
                                                                            settings):
    limit = _set_rate(settings, RATE)
    node, other = online_node(), online_node()
    assert [_beat(node).status_code for _ in range(3)] == [200, 200, 200]
    before = Node.objects.values_list("last_heartbeat_at", "agent_version").get(pk=node.pk)
    since = int(time.time())

    _assert_refused(_beat(node), limit, since)

    assert Node.objects.values_list("last_heartbeat_at", "agent_version"
                                    ).get(pk=node.pk) == before
    assert _beat(other).status_code == 200
