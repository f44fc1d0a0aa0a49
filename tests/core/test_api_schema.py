"""The served OpenAPI schema is valid OpenAPI 3, documents each operation's refusals in
the error shape, each paged list as its page, a job's spec as one of its two kinds, and
the same bounds the serializers enforce."""

from typing import Any

import pytest
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.plumbing import ResolvedComponent
from openapi_schema_validator import OAS30Validator
from openapi_spec_validator import validate
from rest_framework import serializers
from rest_framework.test import APIClient

from suanli_agent.workload_spec import MAX_SIMULATED_S, SpecError, spec_check

METHODS = ("get", "post", "put", "patch", "delete")


@pytest.fixture(scope="module")
def served(django_db_setup: None, django_db_blocker: Any) -> dict[str, Any]:
    with django_db_blocker.unblock():
        response = APIClient().get("/api/v1/schema/",
                                   HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    return response.json()  # type: ignore[no-any-return]


def _operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(p, m, op) for p, ops in schema["paths"].items() for m, op in ops.items()
            if m in METHODS]


def test_the_served_schema_is_valid_openapi_3(served: dict[str, Any]) -> None:
    assert served["openapi"].startswith("3.")
    validate(served)  # raises on the first violation


def test_security_requirements_are_objects_and_agents_use_their_token(
        served: dict[str, Any]) -> None:
    for path, method, op in _operations(served):
        assert all(isinstance(r, dict) for r in op.get("security", [])), (path, method)
    for path in ("/api/v1/agent/heartbeat/", "/api/v1/agent/lease/",
                 "/api/v1/agent/assignments/{assignment_id}/usage/"):
        assert served["paths"][path]["post"]["security"] == [{"NodeToken": []}]


def test_every_operation_documents_its_refusals_in_the_error_shape(
        served: dict[str, Any]) -> None:
    error = served["components"]["schemas"]["Error"]
    assert error["required"] == ["error"]
    assert error["properties"]["error"]["required"] == ["code", "message", "fields"]
    for path, method, op in _operations(served):
        refusals = {int(s): r for s, r in op["responses"].items() if s.startswith("4")}
        assert {400, 401, 429} <= set(refusals), (path, method)
        for status, answer in refusals.items():
            schema = answer["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/Error"}, (path, method, status)
        assert "`not_authenticated`" in refusals[401]["description"]
        assert "`throttled`" in refusals[429]["description"]
    jobs = served["paths"]["/api/v1/jobs/"]["post"]["responses"]
    assert "`insufficient_funds`" in jobs["402"]["description"]
    assert "`invalid_spec`" in jobs["400"]["description"]
    assert "`payload_too_large`" in jobs["413"]["description"]


def _endpoints() -> list[tuple[str, str, Any]]:
    generator = SchemaGenerator()
    generator._initialise_endpoints()
    return [(path, method, view)
            for path, _, method, view in generator._get_paths_and_endpoints()]


def test_each_paged_list_is_documented_as_its_page(served: dict[str, Any]) -> None:
    paged = [(p, v) for p, m, v in _endpoints()
             if m == "GET" and getattr(v, "pagination_class", None) is not None]
    assert len(paged) >= 10
    schemas = served["components"]["schemas"]
    for path, _ in paged:
        ok = served["paths"][path]["get"]["responses"]["200"]
        ref = ok["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
        page = schemas[ref]
        assert {"next", "previous", "results"} <= set(page["properties"]), path
        assert page["properties"]["results"]["type"] == "array", path


def test_bounds_in_the_schema_are_the_serializers(db: None) -> None:
    generator = SchemaGenerator()
    schema = generator.get_schema(request=None, public=True)
    compared = 0
    for component in generator.registry._components.values():
        if component.type != ResolvedComponent.SCHEMA or component.schema is None:
            continue
        serializer = component.object
        if not isinstance(serializer, serializers.BaseSerializer) or not hasattr(
                serializer, "fields"):
            continue
        properties = schema["components"]["schemas"][component.name].get("properties", {})
        for name, field in serializer.fields.items():
            documented = properties.get(name)
            if documented is None or (field.read_only and component.name.endswith("Request")):
                continue
            # A field that may also be blank or null is documented as one of its forms.
            forms = [documented, *documented.get("oneOf", []), *documented.get("allOf", [])]
            length = "maxItems" if isinstance(field, serializers.ListField) else "maxLength"
            for attribute, keyword in (("min_value", "minimum"), ("max_value", "maximum"),
                                       ("max_length", length)):
                bound = getattr(field, attribute, None)
                if bound is not None:
                    assert bound in [f.get(keyword) for f in forms], (component.name, name)
                    compared += 1
    assert compared >= 10


SIMULATE_OK = [{"simulate": {"seconds": 0}}, {"simulate": {"seconds": MAX_SIMULATED_S,
                                                            "exit_code": 3}}]
COMMAND_OK = [{"command": "echo hi"}, {"command": ["python", "-c", "print(1)"],
                                        "image": "registry.example.com:5000/team/train:1.2",
                                        "network": "internet", "environment": {"A": "b"}}]
REFUSED = [
    {},
    {"simulate": {"seconds": MAX_SIMULATED_S + 1}},
    {"simulate": {"seconds": -1}},
    {"simulate": {"seconds": 1}, "command": "echo"},
    {"command": "echo", "unknown": 1},
    {"command": ""},
    {"command": "a\x00b"},
    {"command": []},
    {"command": "echo", "network": "host"},
    {"command": "echo", "image": "-v /:/host"},
    {"command": "echo", "environment": {"A": "b\nc"}},
]


@pytest.mark.parametrize("spec", SIMULATE_OK + COMMAND_OK + REFUSED)
def test_the_spec_schema_accepts_what_the_server_accepts(served: dict[str, Any],
                                                         spec: dict[str, Any]) -> None:
    field = served["components"]["schemas"]["JobInputRequest"]["properties"]["spec"]
    assert [kind["title"] for kind in field["oneOf"]] == ["simulate", "command"]
    try:
        spec_check(spec)
        accepted = True
    except SpecError:
        accepted = False
    documented = OAS30Validator(field).is_valid(spec)

    assert documented == accepted
    assert accepted == (spec in SIMULATE_OK + COMMAND_OK)
