"""Heartbeats and lease reads are answered by the DRF views (through Django's test client,
and through the site's WSGI application, config.wsgi, which has no fast path of its own)
and by the fast path in front of Django on the agents' server (config.asgi.application):
all must answer every request the same way (and as DRF answers any agent call), and a
refused request must change nothing."""

import io
import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from rest_framework.fields import DateTimeField
from rest_framework.test import APIClient

from config.wsgi import application
from scheduler.agent_api.bodies import validated as _validated
from scheduler.agent_api.serializers import HeartbeatInputSerializer
from scheduler.models import Assignment, Node, NodeHeartbeat
from scheduler.services.placement import placement_run
from tests.scheduler.asgi_door import through_asgi as _through_asgi

pytestmark = pytest.mark.django_db(transaction=True)

Reply = tuple[int, dict[str, Any], dict[str, str]]
BEAT = {"free_gpus": 8, "busy_gpus": 0, "utilization": 0.25, "agent_version": "2.1"}


HEARTBEAT, LEASE = "/api/v1/agent/heartbeat/", "/api/v1/agent/lease/"


def _through_drf(authorization: str | None, body: bytes, headers: dict[str, str],
                 path: str = HEARTBEAT) -> Reply:
    client = APIClient()
    extra = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in headers.items()}
    if authorization is not None:
        extra["HTTP_AUTHORIZATION"] = authorization
    response = client.generic("POST", path, body.decode(),
                              content_type="application/json", **extra)  # type: ignore[arg-type]
    return response.status_code, response.json(), dict(response.headers)


def _through_wsgi(authorization: str | None, body: bytes, headers: dict[str, str],
                  path: str = HEARTBEAT) -> Reply:
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "POST", "PATH_INFO": path,
        "CONTENT_TYPE": "application/json", "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body), "SERVER_NAME": "testserver", "SERVER_PORT": "80",
        "wsgi.url_scheme": "http",
    }
    environ.update({f"HTTP_{k.upper().replace('-', '_')}": v for k, v in headers.items()})
    if authorization is not None:
        environ["HTTP_AUTHORIZATION"] = authorization
    started: list[Any] = []
    chunks = application(environ, lambda status, hdrs: started.append((status, hdrs)))  # type: ignore[arg-type]
    status, hdrs = started[0]
    return int(status.split()[0]), json.loads(b"".join(chunks)), dict(hdrs)


Door = Callable[..., Reply]
DOORS = {"drf": _through_drf, "wsgi": _through_wsgi, "asgi": _through_asgi}


@pytest.fixture(params=list(DOORS))
def door(request: pytest.FixtureRequest) -> Door:
    through = DOORS[request.param]

    def post(authorization: str | None, payload: Any = BEAT, *, raw: bytes | None = None,
             headers: dict[str, str] | None = None) -> Reply:
        body = raw if raw is not None else json.dumps(payload).encode()
        return through(authorization, body, headers or {})

    return post


@pytest.fixture(params=list(DOORS))
def lease_door(request: pytest.FixtureRequest) -> Door:
    through = DOORS[request.param]

    def post(authorization: str | None, *, headers: dict[str, str] | None = None) -> Reply:
        return through(authorization, b"", headers or {}, path=LEASE)

    return post


@pytest.fixture
def offline_node(online_node) -> Node:
    node = online_node()
    Node.objects.filter(pk=node.pk).update(status=Node.Status.OFFLINE, last_heartbeat_at=None,
                                           beat_window=0, beats_in_window=0)
    NodeHeartbeat.objects.filter(node=node).delete()
    return node


def _state(node: Node) -> tuple[Any, ...]:
    fresh = Node.objects.get(pk=node.pk)
    return (fresh.status, fresh.last_heartbeat_at, fresh.utilization, fresh.agent_version,
            NodeHeartbeat.objects.filter(node=node).count())


def test_a_heartbeat_turns_the_node_online_through_either_door(door, offline_node):
    status, body, headers = door(f"Node {offline_node.token}")

    assert status == 200
    assert (body["status"], body["next_heartbeat_s"]) == ("online", 10)
    assert body["server_time"].endswith("Z")
    assert headers["Content-Type"] == "application/json"
    fresh = Node.objects.get(pk=offline_node.pk)
    assert (fresh.status, fresh.utilization, fresh.agent_version) == ("online", 0.25, "2.1")
    assert fresh.last_heartbeat_at is not None
    assert NodeHeartbeat.objects.filter(node=offline_node, free_gpus=8).count() == 1


@pytest.mark.parametrize("authorization, message", [
    (None, "Authentication credentials were not provided."),
    ("Api-Key abc", "Invalid node token."),
    ("Node", "Invalid node token."),
    ("Node nt_nope", "Invalid node token."),
    ("Node nt_abc_wrongsecret", "Invalid node token."),
])
def test_no_valid_token_is_401_and_changes_nothing(door, offline_node, authorization, message):
    before = _state(offline_node)

    status, body, headers = door(authorization)

    assert status == 401
    assert body == {"error": {"code": "not_authenticated", "message": message, "fields": {}}}
    assert headers["WWW-Authenticate"] == "Node"
    assert _state(offline_node) == before


def test_another_nodes_secret_behind_a_valid_prefix_is_401(door, offline_node, online_node):
    other = online_node()
    prefix = offline_node.token.split("_")[1]
    forged = f"nt_{prefix}_{other.token.split('_', 2)[2]}"
    before = _state(offline_node)

    assert door(f"Node {forged}")[0] == 401
    assert _state(offline_node) == before


def test_a_disabled_nodes_token_is_401(door, offline_node):
    Node.objects.filter(pk=offline_node.pk).update(status=Node.Status.DISABLED)
    before = _state(offline_node)

    assert door(f"Node {offline_node.token}")[0] == 401
    assert _state(offline_node) == before


@pytest.mark.parametrize("payload, field", [
    ({"busy_gpus": 0}, "free_gpus"),
    ({"free_gpus": -1, "busy_gpus": 0}, "free_gpus"),
    ({"free_gpus": "many", "busy_gpus": 0}, "free_gpus"),
    ({"free_gpus": 1, "busy_gpus": 0, "utilization": 1.5}, "utilization"),
    ([1, 2], "non_field_errors"),
])
def test_a_bad_body_is_400_with_the_field_and_changes_nothing(door, offline_node, payload,
                                                               field):
    before = _state(offline_node)

    status, body, _ = door(f"Node {offline_node.token}", payload)

    assert status == 400
    assert body["error"]["code"] == "invalid"
    assert list(body["error"]["fields"]) == [field]
    assert _state(offline_node) == before


def test_malformed_json_is_400_and_changes_nothing(door, offline_node):
    before = _state(offline_node)

    status, body, _ = door(f"Node {offline_node.token}", raw=b'{"free_gpus": ')

    assert (status, body["error"]["code"]) == (400, "invalid")
    assert _state(offline_node) == before


def test_beats_over_the_nodes_rate_are_429_and_record_nothing(door, offline_node, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {
        **settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "node": "3/min"}}
    token = f"Node {offline_node.token}"
    assert [door(token)[0] for _ in range(3)] == [200, 200, 200]
    before = _state(offline_node)

    status, body, headers = door(token, {**BEAT, "agent_version": "flood"})

    if status == 200:  # the minute turned between the beats: a new window, rightly allowed
        pytest.skip("the rate window rolled over during the test")
    assert status == 429
    assert body["error"]["code"] == "throttled"
    assert 1 <= int(headers["Retry-After"]) <= 60
    assert _state(offline_node) == before


def test_the_request_id_is_kept(door, offline_node):
    _, _, headers = door(f"Node {offline_node.token}", headers={"X-Request-ID": "beat-42"})

    assert headers["X-Request-ID"] == "beat-42"


def test_the_fast_path_leaves_every_other_request_to_django(offline_node):
    def call(method: str, path: str) -> tuple[str, bytes]:
        started: list[str] = []
        environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "SERVER_NAME": "testserver",
                   "SERVER_PORT": "80", "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(),
                   "HTTP_AUTHORIZATION": f"Node {offline_node.token}"}
        chunks = application(environ, lambda status, headers: started.append(status))  # type: ignore[arg-type]
        return started[0], b"".join(chunks)

    status, _ = call("GET", "/api/v1/agent/heartbeat/")  # not a POST: Django's 405
    assert status.startswith("405")
    status, _ = call("GET", "/api/v1/agent/lease/")
    assert status.startswith("405")
    status, body = call("POST", "/api/v1/agent/assignments/999999/usage/")  # DRF's
    assert status.startswith("400") and json.loads(body)["error"]["code"] == "invalid"


def test_the_asgi_fast_path_leaves_every_other_request_to_django(offline_node):
    token = f"Node {offline_node.token}"
    status, _, _ = _through_asgi(token, b"", {}, method="GET")  # not a POST: Django's 405
    assert status == 405
    status, _, _ = _through_asgi(token, b"", {}, path=LEASE, method="GET")
    assert status == 405
    status, body, _ = _through_asgi(token, b"{}", {},
                                    path="/api/v1/agent/assignments/999999/usage/")
    assert status == 400 and body["error"]["code"] == "invalid"


@pytest.mark.parametrize("through", [_through_wsgi, _through_asgi], ids=["wsgi", "asgi"])
@pytest.mark.parametrize("path, target", [
    (HEARTBEAT, "scheduler.agent_api.heartbeat.node_heartbeat"),
    (LEASE, "scheduler.agent_api.lease.node_lease")])
def test_an_unexpected_failure_is_a_500_in_the_api_shape(offline_node, monkeypatch, through,
                                                         path, target):
    def broken(**_: Any) -> None:
        raise RuntimeError("database gone")

    monkeypatch.setattr(target, broken)

    status, body, _ = through(f"Node {offline_node.token}", json.dumps(BEAT).encode(), {},
                              path=path)

    assert status == 500
    assert body["error"]["code"] == "server_error"
    assert Node.objects.filter(pk=offline_node.pk).exists()  # the connection still serves


def test_a_lease_lists_the_nodes_work_through_every_door(submit_job, lease_door, online_node):
    node = online_node(gpus=2)
    job = submit_job()
    assert placement_run().placed == 1
    a = Assignment.objects.get(job=job)

    status, body, headers = lease_door(f"Node {node.token}", headers={"X-Request-ID": "l-7"})

    assert status == 200
    assert body == {"assignments": [{
        "id": a.pk, "job_id": job.pk, "gpu_count": 1, "spec": {"simulate": {"seconds": 60}},
        "max_duration_s": 600,
        "lease_expires_at": DateTimeField().to_representation(a.lease_expires_at),
    }], "kill": []}
    assert (headers["Content-Type"], headers["X-Request-ID"]) == ("application/json", "l-7")


def _drf_agent_call(authorization: str | None) -> Reply:
    """What DRF answers any agent call (here a usage report) with this Authorization."""
    return _through_drf(authorization, b"{}", {}, path="/api/v1/agent/assignments/1/usage/")


@pytest.mark.parametrize("authorization", [None, "Api-Key abc", "Node", "Node nt_0_bogus",
                                           "Bearer x"])
def test_a_lease_without_a_valid_token_is_refused_as_drf_refuses_any_agent_call(
    lease_door, offline_node, authorization
):
    status, body, headers = lease_door(authorization)

    drf_status, drf_body, drf_headers = _drf_agent_call(authorization)
    assert (status, body) == (drf_status, drf_body)
    assert status == 401
    assert headers["WWW-Authenticate"] == drf_headers["WWW-Authenticate"] == "Node"


def test_a_disabled_nodes_lease_is_refused_as_drf_refuses_it(lease_door, offline_node):
    Node.objects.filter(pk=offline_node.pk).update(status=Node.Status.DISABLED)
    token = f"Node {offline_node.token}"

    status, body, _ = lease_door(token)

    assert (status, body) == _drf_agent_call(token)[:2]
    assert body["error"]["message"] == "Invalid node token."


def test_lease_reads_over_the_nodes_rate_are_429(submit_job, lease_door, online_node,
                                                 settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {
        **settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "node": "2/h"}}
    node = online_node(gpus=2)
    token = f"Node {node.token}"
    assert [lease_door(token)[0] for _ in range(2)] == [200, 200]
    submit_job()
    assert placement_run().placed == 1

    status, body, headers = lease_door(token)

    if status == 200:  # the hour turned between the reads: a new window, rightly allowed
        pytest.skip("the rate window rolled over during the test")
    assert status == 429
    assert body["error"]["code"] == "throttled"
    assert 1 <= int(headers["Retry-After"]) <= 3600
    assert "assignments" not in body
    # the calls share one budget per node, as every agent call does under DRF
    assert _drf_agent_call(token)[0] == 429


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 10**6) | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner,
                                                                 max_size=3),
    max_leaves=6,
)


_count = st.integers(-2, 10**6) | st.booleans() | st.floats(-1, 10) | st.text("0123 .", max_size=3)
# Heartbeats shaped as agents send them, with every field now and then off
_agent_beats = st.fixed_dictionaries(
    {"free_gpus": _count, "busy_gpus": _count},
    optional={
        "utilization": st.floats(-0.5, 1.5) | st.integers(-1, 2) | st.booleans() | st.none(),
        "agent_version": st.text(" \t1.0ab\x00", max_size=6) | st.integers(0, 9),
        "gpus": st.lists(st.dictionaries(st.sampled_from(["index", "name", "memory_mb"]),
                                         st.integers(0, 81920) | st.text(max_size=5)),
                         max_size=8) | st.lists(st.integers(), max_size=2),
        "running": st.lists(st.integers(-5, 10**9) | st.booleans() | st.text("12", max_size=2),
                            max_size=4),
        "other": _json_values,
    },
)


@hypothesis_settings(max_examples=500, deadline=None)
@given(st.dictionaries(st.sampled_from(["free_gpus", "busy_gpus", "utilization",
                                        "agent_version", "gpus", "running", "other"]),
                       _json_values, max_size=7)
       | _agent_beats | _json_values)
def test_the_fast_validation_agrees_with_the_serializer(data):
    values, errors = _validated(data)
    serializer = HeartbeatInputSerializer(data=data)

    assert serializer.is_valid() == (not errors)
    if errors:
        assert json.dumps(errors, default=str, sort_keys=True) == json.dumps(
            serializer.errors, default=str, sort_keys=True)
    else:
        assert values == serializer.validated_data
