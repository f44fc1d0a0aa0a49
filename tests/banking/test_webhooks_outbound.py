"""Outbound webhook endpoints: https only, never to private addresses in production
(checked at registration and again at delivery), the API's matrix, the signature."""

import pytest

from banking.models import WebhookDelivery, WebhookEndpoint, WebhookMessage
from banking.services.webhooks import (
    signature_header,
    signature_verify,
    url_check,
    webhook_deliver,
    webhook_endpoint_create,
    webhook_event_emit,
)
from core.errors import DomainError

PUBLIC = "93.184.216.34"


def resolver(*addresses):
    return lambda host, port: list(addresses)


@pytest.fixture
def production(settings):
    settings.WEBHOOKS_DEVELOPMENT = False
    return settings


@pytest.mark.parametrize("address", ["10.0.0.5", "127.0.0.1", "169.254.169.254", "192.168.1.1",
                                     "172.16.0.1", "::1", "fc00::1", "fe80::1", "0.0.0.0",
                                     "100.64.0.1", "224.0.0.1"])
def test_private_loopback_and_link_local_addresses_are_refused_in_production(production,
                                                                             address):
    with pytest.raises(DomainError, match="not a public address") as refused:
        url_check("https://hooks.example.com/x", resolve=resolver(PUBLIC, address))
    assert refused.value.code == "webhook_url_refused"


@pytest.mark.parametrize("url", ["http://hooks.example.com/x", "ftp://hooks.example.com/",
                                 "https://user:pw@hooks.example.com/", "https:///nohost",
                                 "https://hooks.example.com:99999/", "x" * 501])
def test_urls_that_are_not_plain_https_are_refused(production, url):
    with pytest.raises(DomainError) as refused:
        url_check(url, resolve=resolver(PUBLIC))
    assert refused.value.code == "webhook_url_refused"


def test_development_allows_http_to_loopback_only(settings):
    settings.WEBHOOKS_DEVELOPMENT = True
    assert url_check("http://localhost:9/x", resolve=resolver("127.0.0.1")) == ("localhost",
                                                                              "127.0.0.1")
    with pytest.raises(DomainError, match="must be https"):
        url_check("http://hooks.example.com/x", resolve=resolver(PUBLIC))


def test_a_public_https_url_passes(production):
    assert url_check("https://hooks.example.com/x", resolve=resolver(PUBLIC)) == (
        "hooks.example.com", PUBLIC)


def test_the_api_registers_lists_and_deletes_and_refuses_private_urls(org, api_client_for,
                                                                     production, make_org):
    client = api_client_for(org)
    refused = client.post("/api/v1/webhooks/", {"url": "https://127.0.0.1/hook",
                                                "events": ["job.succeeded"]}, format="json")
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "webhook_url_refused"
    unknown = client.post("/api/v1/webhooks/", {"url": "https://127.0.0.1/hook",
                                                "events": ["job.exploded"]}, format="json")
    assert unknown.status_code == 400
    assert WebhookEndpoint.objects.count() == 0
    created = webhook_endpoint_create(organization_id=org.pk, url="https://hooks.example.com/",
                                      events=["job.failed", "job.succeeded"],
                                      resolve=resolver(PUBLIC))
    assert created.secret.startswith("whsec_")
    listed = client.get("/api/v1/webhooks/").json()
    assert [(w["id"], w["events"]) for w in listed] == [
        (created.endpoint.pk, ["job.failed", "job.succeeded"])]
    assert "secret" not in listed[0]
    stranger = api_client_for(make_org())
    assert stranger.get(f"/api/v1/webhooks/{created.endpoint.pk}/deliveries/").status_code == 404
    assert stranger.delete(f"/api/v1/webhooks/{created.endpoint.pk}/").status_code == 404
    assert WebhookEndpoint.objects.get().is_active is True
    assert client.get(f"/api/v1/webhooks/{created.endpoint.pk}/deliveries/").json() == []
    assert client.delete(f"/api/v1/webhooks/{created.endpoint.pk}/").status_code == 204
    assert client.get("/api/v1/webhooks/").json() == []


def test_a_url_that_resolves_privately_at_delivery_is_not_called(org, production):
    created = webhook_endpoint_create(organization_id=org.pk, url="https://hooks.example.com/",
                                      events=["job.succeeded"], resolve=resolver(PUBLIC))
    event = webhook_event_emit(organization_id=org.pk, type="job.succeeded", key="job:1",
                               data={"object": {"id": 1}})
    assert event is not None
    message = WebhookMessage.objects.get(event=event, endpoint=created.endpoint)
    # The name now points inside the network (DNS rebinding): refused, and never retried
    assert webhook_deliver(message_id=message.pk, resolve=resolver("10.1.2.3")) is False
    [attempt] = WebhookDelivery.objects.all()
    assert (attempt.status_code, attempt.succeeded) == (None, False)
    assert "not a public address" in attempt.error
    message.refresh_from_db()
    assert message.given_up_at is not None and message.delivered_at is None
    assert webhook_deliver(message_id=message.pk, resolve=resolver(PUBLIC)) is False
    assert WebhookDelivery.objects.count() == 1


def test_an_event_is_emitted_once_per_key(org, production):
    webhook_endpoint_create(organization_id=org.pk, url="https://hooks.example.com/",
                            events=["job.succeeded"], resolve=resolver(PUBLIC))
    first = webhook_event_emit(organization_id=org.pk, type="job.succeeded", key="k",
                               data={})
    again = webhook_event_emit(organization_id=org.pk, type="job.succeeded", key="k",
                               data={})
    assert first is not None and again is not None and first.pk == again.pk
    assert WebhookMessage.objects.count() == 1
    assert webhook_event_emit(organization_id=org.pk, type="job.failed", key="f",
                              data={}) is None  # nobody asked for it


def test_signatures_verify_and_expire():
    header = signature_header("whsec_x", b'{"a":1}', 1_700_000_000)
    assert signature_verify("whsec_x", b'{"a":1}', header, now=1_700_000_100)
    assert not signature_verify("whsec_x", b'{"a":2}', header, now=1_700_000_100)
    assert not signature_verify("whsec_y", b'{"a":1}', header, now=1_700_000_100)
    assert not signature_verify("whsec_x", b'{"a":1}', header, now=1_700_001_000)
