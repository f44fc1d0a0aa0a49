"""Every value a stranger sends is bounded where it enters: the field kinds of core.bounds,
request bodies capped before parsing and JSON parsed bounded (core.request_bounds), through
Django's test client and through live server processes on both doors."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any

import pytest
from django import forms
from rest_framework import serializers

from banking.models import Transfer
from banking.selectors import wallet_get
from core.bounds import (
    BIGINT_MAX,
    INTEGER_MAX,
    BoundedIntegerField,
    BoundedIntegerFormField,
    BoundedJSONField,
    OutOfBounds,
    bounded_int,
    bounded_json,
    bounded_query,
    bounded_text,
)
from marketplace.models import LowBalanceAlert
from scheduler.models import Assignment, Job
from tests.core.body_sender import MIB, memory_kib, post_oversized, server

NESTED_10000 = "[" * 10_000 + "]" * 10_000


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


# --- the field kinds, one by one ---------------------------------------------------------

@pytest.mark.parametrize("value", [-1, 2**31, 2**63, True, 1.0, "1", None])
def test_bounded_int_refuses_what_is_not_an_integer_within_its_range(value):
    with pytest.raises(OutOfBounds, match="gpu_count: must be") as refused:
        bounded_int(value, field="gpu_count", minimum=0, maximum=INTEGER_MAX)
    assert refused.value.code == "out_of_bounds"
    assert refused.value.status == 400
    assert list(refused.value.fields) == ["gpu_count"]


def test_bounded_int_takes_both_ends_of_its_range():
    assert bounded_int(0, field="n", minimum=0, maximum=INTEGER_MAX) == 0
    assert bounded_int(INTEGER_MAX, field="n", minimum=0, maximum=INTEGER_MAX) == INTEGER_MAX
    assert bounded_int(BIGINT_MAX, field="n") == BIGINT_MAX


@pytest.mark.parametrize(("value", "problem"), [
    ("a\x00b", "NUL"), ("x" * 65, "at most 64"), (b"bytes", "a string"), (7, "a string")])
def test_bounded_text_refuses_nul_overlong_and_non_strings(value, problem):
    with pytest.raises(OutOfBounds, match=problem):
        bounded_text(value, field="name", max_length=64)


@pytest.mark.parametrize(("value", "problem"), [
    (nested(17), "nested at most 16"),
    ({"k": "v\x00"}, "NUL"),
    ({"k\x00": 1}, "NUL"),
    ([2**63], "integer out of range"),
    ({"blob": "x" * (64 * 1024)}, "at most 65536 bytes"),
])
def test_bounded_json_refuses_deep_big_nul_and_huge_integers(value, problem):
    with pytest.raises(OutOfBounds, match=problem):
        bounded_json(value, field="spec")


def test_bounded_json_walks_a_10000_level_value_without_recursing():
    # json_problem walks with a stack of its own: no RecursionError whatever the depth.
    with pytest.raises(OutOfBounds, match="nested at most 16"):
        bounded_json(nested(10_000), field="spec")


def test_bounded_query_refuses_nul_and_length_and_passes_absence():
    assert bounded_query({}, "state") is None
    assert bounded_query({"state": "queued"}, "state") == "queued"
    with pytest.raises(OutOfBounds, match="NUL"):
        bounded_query({"state": "\x00"}, "state")
    with pytest.raises(OutOfBounds, match="at most 64"):
        bounded_query({"state": "q" * 65}, "state")


class _Kinds(serializers.Serializer):
    count = BoundedIntegerField(max_value=INTEGER_MAX)
    spec = BoundedJSONField(required=False)


@pytest.mark.parametrize("data", [
    {"count": 2**31}, {"count": 2**63}, {"count": -1}, {"count": 1.5}, {"count": True},
    {"count": 1, "spec": nested(17)}, {"count": 1, "spec": {"a": "\x00"}},
])
def test_the_serializer_kinds_refuse_the_extremes(data):
    s = _Kinds(data=data)
    assert not s.is_valid()
    assert set(s.errors) <= {"count", "spec"}


class _Form(forms.Form):
    count = BoundedIntegerFormField(max_value=INTEGER_MAX)
    name = forms.CharField(max_length=10)


@pytest.mark.parametrize("data", [
    {"count": str(2**31), "name": "a"}, {"count": str(2**63), "name": "a"},
    {"count": "-1", "name": "a"}, {"count": "1", "name": "a\x00"},
    {"count": "1", "name": "a" * 11},
])
def test_the_form_kinds_refuse_the_extremes(data):
    assert not _Form(data=data).is_valid()


# --- request bodies through Django ---------------------------------------------------------

def _unchanged(before: dict[str, Any], buyer: Any) -> None:
    assert Job.objects.count() == before["jobs"]
    assert Transfer.objects.count() == before["transfers"]
    assert wallet_get(organization_id=buyer.pk) == before["balances"]


def _snapshot(buyer: Any) -> dict[str, Any]:
    return {"jobs": Job.objects.count(), "transfers": Transfer.objects.count(),
            "balances": wallet_get(organization_id=buyer.pk)}


@pytest.mark.django_db
def test_a_body_over_the_api_cap_is_413_before_it_is_read(buyer, api_client_for):
    before = _snapshot(buyer)
    client = api_client_for(buyer)
    # A declared length over the cap: refused on the header alone (the payload is never
    # read, so the test client's is small).
    response = client.generic("POST", "/api/v1/jobs/", b"{}", content_type="application/json",
                              CONTENT_LENGTH=str(10 * MIB))
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    _unchanged(before, buyer)


@pytest.mark.django_db
def test_a_chunked_body_is_counted_and_refused_past_the_cap(buyer, api_client_for, settings):
    before = _snapshot(buyer)
    stream = io.BytesIO(b"[" * (10 * MIB))
    response = api_client_for(buyer).generic(
        "POST", "/api/v1/jobs/", b"", content_type="application/json",
        CONTENT_LENGTH="", HTTP_TRANSFER_ENCODING="chunked", **{"wsgi.input": stream})
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    # Read one byte past the cap, no further.
    assert stream.tell() == settings.API_REQUEST_MAX_BYTES + 1
    _unchanged(before, buyer)


@pytest.mark.django_db
def test_a_chunked_body_within_the_cap_is_parsed(buyer, api_client_for):
    body = json.dumps({"threshold": 5000}).encode()
    response = api_client_for(buyer).generic(
        "PUT", "/api/v1/alerts/low-balance/", b"", content_type="application/json",
        CONTENT_LENGTH="", HTTP_TRANSFER_ENCODING="chunked", **{"wsgi.input": io.BytesIO(body)})
    assert response.status_code == 200, response.content
    assert LowBalanceAlert.objects.get(organization=buyer).threshold == 5000


@pytest.mark.django_db
def test_an_agent_call_has_the_smaller_cap(online_node, agent_client, settings):
    node = online_node()
    body = json.dumps({"seq": 1, "gpu_seconds": 1, "pad": "x" * (70 * 1024)}).encode()
    assert settings.AGENT_REQUEST_MAX_BYTES < len(body) < settings.API_REQUEST_MAX_BYTES
    response = agent_client(node).post("/api/v1/agent/assignments/1/usage/", body,
                                       content_type="application/json")
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert Assignment.objects.count() == 0


@pytest.mark.django_db
def test_a_negative_content_length_is_refused(buyer, api_client_for):
    response = api_client_for(buyer).generic("POST", "/api/v1/jobs/", b"{}",
                                             content_type="application/json",
                                             CONTENT_LENGTH="-1")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"
    assert Job.objects.count() == 0


@pytest.mark.django_db
def test_a_10000_level_json_body_is_400_not_500(buyer, api_client_for):
    before = _snapshot(buyer)
    response = api_client_for(buyer).generic("POST", "/api/v1/jobs/", NESTED_10000,
                                             content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "out_of_bounds"
    assert "nested at most" in response.json()["error"]["message"]
    _unchanged(before, buyer)


@pytest.mark.django_db
@pytest.mark.parametrize(("body", "code"), [
    ('{"spec": NaN}', "invalid"),
    ('{"spec": {"command": "a\\u0000b"}}', "invalid_spec"),
    ('{"spec": {"command": "id", "environment": {"A": "\\u0000"}}}', "invalid_spec"),
    ('{"gpu_count": ' + "9" * 5000 + "}", "invalid"),
    ('{"gpu_count": 9223372036854775808}', "invalid"),
    (json.dumps(nested(40)), "out_of_bounds"),
    (b"\xff\xfe", "invalid"),
])
def test_a_hostile_json_body_is_refused_with_its_code(buyer, api_client_for, body, code):
    before = _snapshot(buyer)
    response = api_client_for(buyer).generic("POST", "/api/v1/jobs/", body,
                                             content_type="application/json")
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == code
    _unchanged(before, buyer)


# --- live server processes: memory stays flat -----------------------------------------------

@pytest.mark.serial
@pytest.mark.parametrize("door", ["wsgi", "asgi"])
def test_a_64_mib_body_is_413_without_the_server_growing(door, tmp_path: Path):
    """gunicorn's sync worker on config.wsgi and uvicorn on config.asgi, each its own
    process: a 64 MiB body, declared and chunked, is refused while the server's peak
    resident memory (VmHWM) grows by less than 4 MiB."""
    with server(door, tmp_path / f"{door}.log") as (port, pid):
        # Warm up first: what the first requests load (URLs, JSON rendering) is not the
        # body's cost.
        for chunked in (False, True):
            assert post_oversized(port, "/api/v1/jobs/", 2 * MIB, chunked=chunked)[0] == 413
        before = memory_kib(pid)
        for chunked in (False, True):
            started = time.monotonic()
            status, body = post_oversized(port, "/api/v1/jobs/", 64 * MIB, chunked=chunked)
            elapsed = time.monotonic() - started
            after = memory_kib(pid)
            print(f"{door} chunked={chunked}: {status} in {elapsed * 1000:.0f} ms, "
                  f"VmHWM {before['VmHWM']} -> {after['VmHWM']} KiB, "
                  f"VmRSS {before['VmRSS']} -> {after['VmRSS']} KiB")
            assert status == 413
            assert json.loads(body)["error"]["code"] == "payload_too_large"
            assert after["VmHWM"] - before["VmHWM"] < 4 * 1024
            assert after["VmRSS"] - before["VmRSS"] < 4 * 1024
