"""Under /api/ every failure answers in the one error shape, also those Django answers
before an API view runs (core.api_errors.JsonErrorsUnderApi); the storefront keeps its
HTML pages."""

from typing import Any

import pytest
from django.http import HttpRequest, HttpResponse
from django.test import Client, override_settings
from django.urls import path
from django.views.decorators.http import require_POST

import config.urls
from banking.models import Organization
from scheduler.models import Job


def _boom(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("a bug outside any DRF view")


@require_POST
def _post_only(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


urlpatterns = [
    path("api/v1/test-boom/", _boom),
    path("api/v1/test-post-only/", _post_only),
    path("test-boom/", _boom),
    *config.urls.urlpatterns,
]


def _assert_shape(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "fields"}
    assert body["error"]["code"] == code
    return body


@pytest.mark.parametrize("url", ["/api/v1/no-such-thing/", "/api/v1/jobs/not-a-number/",
                                 "/api/nothing-here", "/api/v2/wallet/"])
def test_an_unmatched_path_under_api_is_a_json_404(db: None, url: str) -> None:
    _assert_shape(Client().get(url), 404, "not_found")


def test_the_storefront_keeps_its_html_404(db: None) -> None:
    response = Client().get("/no-such-page/")

    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


@override_settings(ROOT_URLCONF=__name__)
def test_a_method_django_refuses_under_api_is_a_json_405_with_allow(db: None) -> None:
    response = Client().get("/api/v1/test-post-only/")

    _assert_shape(response, 405, "method_not_allowed")
    assert response["Allow"] == "POST"


def test_a_method_drf_refuses_is_a_json_405(db: None, make_org: Any,
                                           api_client_for: Any) -> None:
    org: Organization = make_org()
    response = api_client_for(org).delete("/api/v1/wallet/")

    _assert_shape(response, 405, "method_not_allowed")
    assert "GET" in response["Allow"]


@override_settings(ROOT_URLCONF=__name__)
def test_an_unhandled_error_under_api_is_a_json_500_that_leaks_nothing(db: None) -> None:
    response = Client(raise_request_exception=False).get("/api/v1/test-boom/")

    body = _assert_shape(response, 500, "server_error")
    assert "RuntimeError" not in response.content.decode()
    assert "outside any DRF view" not in body["error"]["message"]


@override_settings(ROOT_URLCONF=__name__)
def test_an_unhandled_error_elsewhere_stays_html(db: None) -> None:
    response = Client(raise_request_exception=False).get("/test-boom/")

    assert response.status_code == 500
    assert not response["Content-Type"].startswith("application/json")


def test_a_body_past_djangos_limit_is_a_json_413(db: None, settings: Any, make_org: Any,
                                                api_client_for: Any) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    org: Organization = make_org()
    response = api_client_for(org).post("/api/v1/jobs/", {"spec": "x" * 4096}, format="json")

    _assert_shape(response, 413, "payload_too_large")
    assert Job.objects.filter(organization=org).count() == 0
