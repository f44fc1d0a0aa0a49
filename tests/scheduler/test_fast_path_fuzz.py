"""The agents' fast path under extreme values (Hypothesis): integers past 2^63, negative,
floats, NaN, NUL in strings, long lists, deep nesting, wrong types, through the ASGI door
and the DRF view. Never a 500; every refusal in the API's one error shape, with nothing
of the node changed."""

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from scheduler.models import Node, NodeHeartbeat
from tests.scheduler.asgi_door import through_asgi

pytestmark = pytest.mark.django_db(transaction=True)

HEARTBEAT, LEASE = "/api/v1/agent/heartbeat/", "/api/v1/agent/lease/"

_extreme_ints = st.sampled_from([-1, -(2**63), 2**31 - 1, 2**31, 3_000_000_000, 2**63 - 1,
                                 2**63, 2**64, 10**40]) | st.integers()
_scalars = (st.none() | st.booleans() | _extreme_ints
            | st.floats(allow_nan=True, allow_infinity=True)
            | st.text(max_size=20) | st.just("\x00") | st.text(alphabet="\x00a", max_size=5))
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=5), inner,
                                                                max_size=4),
    max_leaves=12,
)
_fields = st.sampled_from(["free_gpus", "busy_gpus", "utilization", "agent_version", "gpus",
                           "running", "isolation", "\x00"])
_beats = st.dictionaries(_fields, _values, max_size=8) | st.fixed_dictionaries(
    {"free_gpus": _extreme_ints | _scalars, "busy_gpus": _extreme_ints | _scalars},
    optional={"utilization": _scalars, "agent_version": _scalars,
              "gpus": st.lists(st.dictionaries(st.text(max_size=4), _values, max_size=3),
                               max_size=80) | _values,
              "running": st.lists(_extreme_ints, max_size=80) | _values,
              "isolation": st.dictionaries(st.sampled_from(["kind", "runtime", "network",
                                                            "default_image"]), _values)
              | _values})


def _drf(token: str, body: bytes, path: str = HEARTBEAT, query: str = "") -> tuple[int, Any]:
    response = APIClient().generic("POST", path + (f"?{query}" if query else ""),
                                   body,  # type: ignore[arg-type]
                                   content_type="application/json",
                                   HTTP_AUTHORIZATION=f"Node {token}")
    return response.status_code, response.json()


def _asgi(token: str, body: bytes, path: str = HEARTBEAT, query: str = "") -> tuple[int, Any]:
    status, answer, _ = through_asgi(f"Node {token}", body, {}, path=path,
                                     query=query.encode())
    return status, answer


def _state(node: Node) -> tuple[Any, ...]:
    fresh = Node.objects.get(pk=node.pk)
    return (fresh.status, fresh.last_heartbeat_at, fresh.utilization, fresh.agent_version,
            fresh.isolation, fresh.gpus_reported, NodeHeartbeat.objects.filter(node=node).count())


def _assert_answered(status: int, answer: Any) -> None:
    assert status in (200, 400, 429), (status, answer)
    if status != 200:
        assert set(answer) == {"error"}
        assert set(answer["error"]) == {"code", "message", "fields"}
        assert isinstance(answer["error"]["code"], str) and answer["error"]["code"]


@pytest.fixture
def node(online_node: Any) -> Node:
    return online_node()


@pytest.mark.parametrize("door", [_asgi, _drf], ids=["asgi", "drf"])
@hypothesis_settings(max_examples=150, deadline=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture,
                                            HealthCheck.too_slow])
@given(beat=_beats | _values)
def test_any_heartbeat_body_is_answered_never_a_500(door, node, beat):
    body = json.dumps(beat, allow_nan=True).encode()
    before = _state(node)

    status, answer = door(node.token, body)  # type: ignore[attr-defined]

    _assert_answered(status, answer)
    if status != 200:
        assert _state(node) == before


@pytest.mark.parametrize("door", [_asgi, _drf], ids=["asgi", "drf"])
@pytest.mark.parametrize("raw", [
    b'{"free_gpus": 3000000000, "busy_gpus": 0}',
    b'{"free_gpus": 2147483648, "busy_gpus": 0}',
    b'{"free_gpus": 9223372036854775808, "busy_gpus": 0}',
    b'{"free_gpus": -1, "busy_gpus": 0}',
    b'{"free_gpus": 1, "busy_gpus": 0, "utilization": NaN}',
    b'{"free_gpus": 1, "busy_gpus": 0, "utilization": Infinity}',
    b'{"free_gpus": 1, "busy_gpus": 0, "utilization": "nan"}',
    b'{"free_gpus": 1, "busy_gpus": 0, "utilization": 1' + b"0" * 400 + b"}",
    b'{"free_gpus": 1' + b"0" * 5000 + b', "busy_gpus": 0}',
    b'{"free_gpus": 1, "busy_gpus": 0, "agent_version": "1.0\\u0000"}',
    b'{"free_gpus": 1, "busy_gpus": 0, "agent_version": "' + b"v" * 65 + b'"}',
    b'{"free_gpus": 1, "busy_gpus": 0, "gpus": [{"name": "H100\\u0000"}]}',
    b'{"free_gpus": 1, "busy_gpus": 0, "running": [9223372036854775808]}',
    b'{"free_gpus": 1, "busy_gpus": 0, "running": [' + b"1," * 5000 + b"1]}",
    b'{"free_gpus": 1, "busy_gpus": 0, "gpus": ' + b"[" * 10000 + b"]" * 10000 + b"}",
    b"[" * 30000 + b"]" * 30000,
    b'"\\u0000"',
    b"\xff\xfe",
])
def test_extreme_values_are_refused_with_400_and_change_nothing(door, node, raw):
    before = _state(node)

    status, answer = door(node.token, raw)  # type: ignore[attr-defined]

    assert status == 400, answer
    _assert_answered(status, answer)
    assert _state(node) == before


@pytest.mark.parametrize("door", [_asgi, _drf], ids=["asgi", "drf"])
@hypothesis_settings(max_examples=60, deadline=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(wait=(st.text(max_size=12) | _extreme_ints.map(str)
             | st.sampled_from(["%00", "0", "-1", "1e3", "\u0661", "9" * 5000]))
       .filter(lambda w: not (w.isascii() and w.isdigit() and 0 < len(w) < 7
                              and 1 <= int(w) <= 3600)))  # a valid wait would wait
def test_a_lease_waits_bound_is_answered_never_a_500(door, node, wait):
    status, answer = door(node.token, b"", path=LEASE,  # type: ignore[attr-defined]
                          query=f"wait={wait}")

    # 503: this door does not hold waits (Django's view, or Redis not configured)
    assert status in (200, 400, 429, 503), (status, answer)
    if status != 200:
        assert set(answer) == {"error"}
