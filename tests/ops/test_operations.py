"""/healthz, /metrics, request ids and per-key throttling."""

import pytest
from django.core.cache import cache
from django.test import override_settings
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from banking.models import Transfer


def test_healthz_is_ok_when_database_and_cache_answer(client, db):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "cache": "ok"}}


def test_healthz_is_503_and_says_what_failed_when_the_cache_is_down(client, db):
    broken = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
        }
    }
    with override_settings(CACHES=broken):  # Django drops its cache handles on change
        response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["cache"].startswith("error:")


def test_metrics_are_prometheus_text(client, db):
    client.get("/healthz")
    response = client.get("/metrics")
    assert response.status_code == 200
    assert b"suanli_http_requests_total" in response.content


def test_every_response_carries_a_request_id(client, db):
    assert len(client.get("/healthz")["X-Request-ID"]) == 32
    assert client.get("/healthz", HTTP_X_REQUEST_ID="abc-123")["X-Request-ID"] == "abc-123"


@pytest.fixture
def three_per_minute(monkeypatch):
    rates = {**api_settings.DEFAULT_THROTTLE_RATES, "api_key": "3/min"}
    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", rates)
    cache.clear()


def test_an_api_key_over_its_rate_gets_429_with_retry_after(
    make_org, api_client_for, three_per_minute
):
    org = make_org(tokens=1)
    client = api_client_for(org)
    other = api_client_for(make_org())
    before = Transfer.objects.count()
    codes = [client.get("/api/v1/wallet/").status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    limited = client.get("/api/v1/wallet/")
    assert limited.json()["error"]["code"] == "throttled"
    assert 0 < int(limited["Retry-After"]) <= 60
    assert other.get("/api/v1/wallet/").status_code == 200  # counted per key
    assert Transfer.objects.count() == before


def test_unknown_api_paths_use_the_error_shape(make_org, api_client_for):
    response = api_client_for(make_org()).post("/api/v1/wallet/", {}, format="json")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_the_openapi_schema_and_docs_are_served(client, db):
    schema = client.get("/api/v1/schema/")
    assert schema.status_code == 200
    assert b"/api/v1/wallet/transfers/" in schema.content
    docs = client.get("/api/docs/")
    assert docs.status_code == 200
    assert b"swagger-ui" in docs.content
    assert b"cdn.jsdelivr" not in docs.content
