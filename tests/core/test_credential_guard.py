"""Failed credentials are throttled per client address and an unknown secret is answered
from the cache (core.credential_guard), at every door that looks credentials up: API keys
(DRF), node tokens through DRF's agent views, and the agents' fast path behind
config.wsgi / config.asgi."""

import contextlib
import io
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from banking.models import ApiKey, Organization
from banking.services.customers import api_key_issue
from config.wsgi import application
from core import credential_guard
from scheduler.models import Node, NodeHeartbeat
from tests.scheduler.asgi_door import through_asgi

LIMIT = 3
HERE, ELSEWHERE = "203.0.113.7", "198.51.100.9"
BEAT = {"free_gpus": 8, "busy_gpus": 0, "utilization": 0.25, "agent_version": "2.1"}


@pytest.fixture(autouse=True)
def _small_limit(settings: Any) -> None:
    settings.CREDENTIAL_FAILURES_PER_WINDOW = LIMIT
    settings.CREDENTIAL_FAILURE_WINDOW_S = 300
    settings.CREDENTIAL_NEGATIVE_CACHE_S = 60


def _wallet(authorization: str, address: str) -> Any:
    return APIClient().get("/api/v1/wallet/", HTTP_AUTHORIZATION=authorization,
                           REMOTE_ADDR=address)


def _assert_throttled(response: Any) -> None:
    assert response.status_code == 429
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == "throttled"
    assert body["error"]["fields"] == {}
    assert 1 <= int(response.headers["Retry-After"]) <= 300


@pytest.fixture
def count_queries(monkeypatch: Any) -> Callable[[Callable[[], Any]], tuple[Any, int]]:
    """Queries made by a call: Django's, and those of the agents' statements, which go
    through a cursor of their own (core.database.server_bound_cursor): the token lookup's
    in scheduler.services.nodes, and the heartbeat's, which finds its node by token in
    the same statement that records the beat (scheduler.services.heartbeat_write)."""
    from scheduler.services import heartbeat_write, nodes

    bound = {"n": 0}
    real = nodes.server_bound_cursor

    @contextlib.contextmanager
    def counted() -> Iterator[Any]:
        bound["n"] += 1
        with real() as cursor:
            yield cursor

    monkeypatch.setattr(nodes, "server_bound_cursor", counted)
    monkeypatch.setattr(heartbeat_write, "server_bound_cursor", counted)

    def run(call: Callable[[], Any]) -> tuple[Any, int]:
        bound["n"] = 0
        with CaptureQueriesContext(connection) as queries:
            result = call()
        return result, len(queries.captured_queries) + bound["n"]

    return run


def test_api_keys_are_throttled_after_failures_from_one_address_only(
        db: None, make_org: Callable[..., Organization]) -> None:
    org = make_org(tokens=5)
    good = api_key_issue(organization_id=org.pk)
    key = ApiKey.objects.get(organization=org)
    before = (key.last_used_at, key.last_used_ip)

    for n in range(LIMIT):
        refused = _wallet(f"Api-Key sk_guess{n}_{'x' * 20}", HERE)
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "not_authenticated"

    # Even the right key is refused from that address now, and nothing records its use.
    _assert_throttled(_wallet(f"Api-Key {good.secret}", HERE))
    _assert_throttled(_wallet("Api-Key sk_another_guess", HERE))
    key.refresh_from_db()
    assert (key.last_used_at, key.last_used_ip) == before

    # Another address is not affected.
    fine = _wallet(f"Api-Key {good.secret}", ELSEWHERE)
    assert fine.status_code == 200
    assert fine.json()["available"] == 5


def test_one_wrong_key_retried_is_one_failure_not_many(db: None) -> None:
    """A client stuck on one stale secret guesses nothing; it must not lock out its
    address (a NAT shared with every other node of its provider)."""
    for _ in range(LIMIT * 3):
        assert _wallet("Api-Key sk_stale_secret", HERE).status_code == 401


def test_an_unknown_api_keys_second_try_makes_no_query(
        db: None, count_queries: Callable[..., tuple[Any, int]]) -> None:
    first, first_queries = count_queries(lambda: _wallet("Api-Key sk_unknown_secret", HERE))
    second, second_queries = count_queries(lambda: _wallet("Api-Key sk_unknown_secret", HERE))

    assert (first.status_code, second.status_code) == (401, 401)
    assert first_queries == 1
    assert second_queries == 0


def test_node_tokens_through_drf_are_throttled_per_address(
        online_node: Callable[..., Node], agent_client: Callable[[Node], APIClient]) -> None:
    node = online_node()
    path = "/api/v1/agent/assignments/1/usage/"
    for n in range(LIMIT):
        refused = APIClient().post(path, {}, format="json", REMOTE_ADDR=HERE,
                                   HTTP_AUTHORIZATION=f"Node nt_guess{n}_secret")
        assert refused.status_code == 401

    _assert_throttled(agent_client(node).post(path, {}, format="json", REMOTE_ADDR=HERE))
    # From elsewhere the token works (404: no such assignment, after authenticating).
    elsewhere = agent_client(node).post(path, {}, format="json", REMOTE_ADDR=ELSEWHERE)
    assert elsewhere.status_code in (400, 404)


@pytest.mark.parametrize("path", ["/api/v1/agent/lease/", "/api/v1/agent/heartbeat/",
                                  "/api/v1/agent/assignments/1/usage/"])
def test_an_unknown_node_tokens_second_try_makes_no_query(
        db: None, path: str, count_queries: Callable[..., tuple[Any, int]]) -> None:
    def call() -> Any:
        return APIClient().post(path, BEAT, format="json", REMOTE_ADDR=HERE,
                                HTTP_AUTHORIZATION="Node nt_unknown_secret")

    first, first_queries = count_queries(call)
    second, second_queries = count_queries(call)

    assert (first.status_code, second.status_code) == (401, 401)
    assert first_queries == 1
    assert second_queries == 0


def _wsgi_beat(authorization: str, address: str) -> tuple[int, dict[str, Any], dict[str, str]]:
    body = json.dumps(BEAT).encode()
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "POST", "PATH_INFO": "/api/v1/agent/heartbeat/",
        "CONTENT_TYPE": "application/json", "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body), "SERVER_NAME": "testserver", "SERVER_PORT": "80",
        "wsgi.url_scheme": "http", "REMOTE_ADDR": address, "HTTP_AUTHORIZATION": authorization,
    }
    started: list[Any] = []
    chunks = application(environ, lambda status, headers: started.append((status, headers)))
    status, headers = started[0]
    return int(status.split()[0]), json.loads(b"".join(chunks)), dict(headers)


@pytest.mark.django_db(transaction=True)
def test_the_agents_fast_path_is_throttled_per_address(
        online_node: Callable[..., Node]) -> None:
    node = online_node()
    beats = NodeHeartbeat.objects.filter(node=node).count()
    for n in range(LIMIT):
        assert _wsgi_beat(f"Node nt_guess{n}_secret", HERE)[0] == 401
    # The next lookup from that address finds it throttled (refused as unknown, no query),
    # and from then on this process refuses it at its entry point.
    assert _wsgi_beat(f"Node {node.token}", HERE)[0] == 401  # type: ignore[attr-defined]
    status, body, headers = _wsgi_beat(f"Node {node.token}", HERE)  # type: ignore[attr-defined]

    assert status == 429
    assert body["error"]["code"] == "throttled"
    assert 1 <= int(headers["Retry-After"]) <= 300
    assert NodeHeartbeat.objects.filter(node=node).count() == beats
    assert Node.objects.get(pk=node.pk).last_heartbeat_at == node.last_heartbeat_at
    # Another address beats as ever.
    assert _wsgi_beat(f"Node {node.token}", ELSEWHERE)[0] == 200  # type: ignore[attr-defined]


@pytest.mark.django_db(transaction=True)
def test_the_agents_asgi_door_is_throttled_per_address(
        online_node: Callable[..., Node]) -> None:
    node = online_node()
    body = json.dumps(BEAT).encode()
    for n in range(LIMIT + 1):  # through_asgi comes from 127.0.0.1
        assert through_asgi(f"Node nt_guess{n}_secret", body, {})[0] == 401
    status, answer, headers = through_asgi(f"Node {node.token}", body, {})  # type: ignore[attr-defined]

    assert status == 429
    assert answer["error"]["code"] == "throttled"
    assert int(headers["Retry-After"]) >= 1
    assert Node.objects.get(pk=node.pk).last_heartbeat_at == node.last_heartbeat_at


def test_without_the_cache_the_guard_steps_aside(db: None, monkeypatch: Any) -> None:
    """Redis down: authentication still works (by the database), it is only unguarded."""
    import redis

    class Down:
        def __getattr__(self, name: str) -> Any:
            def fail(*args: Any, **kwargs: Any) -> Any:
                raise redis.ConnectionError("down")
            return fail

    monkeypatch.setattr(credential_guard, "_cache", lambda: Down())
    assert _wallet("Api-Key sk_unknown_secret", HERE).status_code == 401
