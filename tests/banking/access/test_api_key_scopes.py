"""Scoped API keys: scopes no wider than the creator's role, an optional expiry,
`403 insufficient_scope` naming the scope, `401 key_expired`, last use (time and
address) recorded, and each operation's scope in the OpenAPI schema."""

import json
from datetime import timedelta

import pytest
import time_machine
import yaml
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from banking.models import ApiKey, Payout, PayoutAccount, TopUp, Transfer, WebhookEndpoint
from banking.services.customers import api_key_issue, membership_add
from banking.services.webhooks import webhook_endpoint_create
from core.errors import InvalidInput, PermissionDenied


def _call(key: str, method: str, path: str, body: dict | None = None, **extra):
    return getattr(Client(), method)(path, data=json.dumps(body or {}),
                                     content_type="application/json",
                                     HTTP_AUTHORIZATION=f"Api-Key {key}", **extra)


def _money(org) -> tuple:
    return (TopUp.objects.filter(organization=org).count(),
            Payout.objects.filter(organization=org).count(),
            PayoutAccount.objects.filter(organization=org).count(), Transfer.objects.count())


@pytest.fixture
def company(make_org):
    return make_org("Scoped Co", provider=True, buyer=True, tokens=50_000_000)


def _member(org, role: str) -> User:
    user = User.objects.create_user(username=f"{role}@scoped.example",
                                    email=f"{role}@scoped.example")
    membership_add(organization_id=org.pk, user=user, role=role)
    return user


def test_a_jobs_only_key_cannot_top_up_or_pay_out(company, h100):
    key = api_key_issue(organization_id=company.pk, scopes=["jobs"]).secret
    before = _money(company)

    topup = _call(key, "post", "/api/v1/topups/", {"tokens": 10_000_000})
    payout = _call(key, "post", "/api/v1/payouts/", {"tokens": 10_000_000})
    account = _call(key, "put", "/api/v1/payout-account/", {"stripe_account_id": "acct_x"})

    assert topup.status_code == 403
    assert topup.json()["error"] == {"code": "insufficient_scope",
                                     "message": "This API key lacks the `billing` scope.",
                                     "fields": {"scope": ["billing"]}}
    assert payout.status_code == 403
    assert payout.json()["error"]["fields"] == {"scope": ["payouts"]}
    assert account.json()["error"]["code"] == "insufficient_scope"
    assert _money(company) == before


def test_a_jobs_only_key_submits_jobs_but_reads_nothing(company, h100, online_node,
                                                        settings, monkeypatch):
    settings.SCHEDULER_AUTO_APPROVE_NODES = True
    monkeypatch.setattr("scheduler.enqueue.placement_run", lambda: None)
    online_node()
    key = api_key_issue(organization_id=company.pk, scopes=["jobs"]).secret

    job = _call(key, "post", "/api/v1/jobs/", {"gpu_class": "H100-80GB", "gpu_count": 1,
                                               "max_duration_s": 60,
                                               "spec": {"simulate": {"seconds": 1}}})
    wallet = Client().get("/api/v1/wallet/", HTTP_AUTHORIZATION=f"Api-Key {key}")

    assert job.status_code == 201, job.content
    assert job["Location"] == f"/api/v1/jobs/{job.json()['id']}/"
    assert wallet.status_code == 403
    assert wallet.json()["error"]["fields"] == {"scope": ["read"]}


def test_a_read_only_key_neither_registers_nor_removes_webhooks(company):
    endpoint = webhook_endpoint_create(organization_id=company.pk, url="https://h.example/",
                                       events=["job.succeeded"],
                                       resolve=lambda host, port: ["93.184.215.14"]).endpoint
    key = api_key_issue(organization_id=company.pk, scopes=["read"]).secret

    created = _call(key, "post", "/api/v1/webhooks/", {"url": "https://hooks.example.com/",
                                                      "events": ["job.failed"]})
    deleted = _call(key, "delete", f"/api/v1/webhooks/{endpoint.pk}/")

    assert created.status_code == 403
    assert created.json()["error"]["fields"] == {"scope": ["jobs"]}
    assert deleted.status_code == 403
    assert deleted.json()["error"]["code"] == "insufficient_scope"
    assert list(WebhookEndpoint.objects.values_list("pk", "is_active")) == [(endpoint.pk, True)]


def test_a_members_key_is_bounded_by_their_role(company):
    developer = _member(company, "developer")

    default = api_key_issue(organization_id=company.pk, created_by_id=developer.pk)
    with pytest.raises(PermissionDenied, match=r"cannot grant the scope\(s\) payouts") as exc:
        api_key_issue(organization_id=company.pk, created_by_id=developer.pk,
                      scopes=["jobs", "payouts"])

    assert default.api_key.scopes == ["read", "jobs", "blocks", "provider"]
    assert exc.value.code == "insufficient_scope"
    assert ApiKey.objects.filter(organization=company).count() == 1


def test_a_viewer_creates_no_keys(company):
    viewer = _member(company, "viewer")

    with pytest.raises(PermissionDenied, match=r"Your role \(viewer\) may not create"):
        api_key_issue(organization_id=company.pk, created_by_id=viewer.pk, scopes=["read"])

    assert ApiKey.objects.filter(organization=company).count() == 0


@pytest.mark.parametrize("days", [-1, 0, 731])
def test_an_expiry_is_in_the_future_and_within_two_years(company, days):
    with pytest.raises(InvalidInput, match="expires in the future and within two years"):
        api_key_issue(organization_id=company.pk,
                      expires_at=timezone.now() + timedelta(days=days))
    assert ApiKey.objects.count() == 0


@pytest.mark.parametrize("scopes", [[], ["root"], ["read", "everything"]])
def test_unknown_or_no_scopes_are_refused(company, scopes):
    with pytest.raises(InvalidInput, match="Pick one or more scopes"):
        api_key_issue(organization_id=company.pk, scopes=scopes)
    assert ApiKey.objects.count() == 0


def test_an_expired_key_is_refused_with_key_expired(company):
    issued = api_key_issue(organization_id=company.pk,
                           expires_at=timezone.now() + timedelta(days=1))
    before = _money(company)

    ok = Client().get("/api/v1/wallet/", HTTP_AUTHORIZATION=f"Api-Key {issued.secret}")
    with time_machine.travel(timezone.now() + timedelta(days=1, seconds=1)):
        expired = _call(issued.secret, "post", "/api/v1/topups/", {"tokens": 10_000_000})

    assert ok.status_code == 200
    assert expired.status_code == 401
    assert expired.json()["error"]["code"] == "key_expired"
    assert expired.json()["error"]["message"].startswith("This API key expired at ")
    assert _money(company) == before


def test_last_use_records_time_and_address(company):
    issued = api_key_issue(organization_id=company.pk)

    Client().get("/api/v1/wallet/", HTTP_AUTHORIZATION=f"Api-Key {issued.secret}",
                 REMOTE_ADDR="203.0.113.7")
    first = ApiKey.objects.get(pk=issued.api_key.pk)
    Client().get("/api/v1/wallet/", HTTP_AUTHORIZATION=f"Api-Key {issued.secret}",
                 REMOTE_ADDR="198.51.100.9")
    second = ApiKey.objects.get(pk=issued.api_key.pk)

    assert first.last_used_ip == "203.0.113.7"
    assert first.last_used_at is not None
    assert second.last_used_ip == "198.51.100.9"


def test_the_storefront_creates_a_scoped_expiring_key(company):
    billing = _member(company, "billing")
    client = Client()
    client.force_login(billing)

    refused = client.post("/api-keys/", {"name": "ci", "scopes": ["jobs"]})
    created = client.post("/api-keys/", {"name": "ci", "scopes": ["billing", "read"],
                                         "expires_in_days": "30"})

    assert refused.status_code == 200
    assert "cannot grant the scope(s) jobs" in refused.content.decode()
    assert created.status_code == 302
    key = ApiKey.objects.get(organization=company)
    assert key.scopes == ["read", "billing"]
    assert key.created_by == billing
    assert key.expires_at is not None
    assert timedelta(days=29) < key.expires_at - timezone.now() <= timedelta(days=30)


def test_the_schema_documents_each_operations_scope(tmp_path):
    path = tmp_path / "schema.yml"
    call_command("spectacular", "--file", str(path))
    schema = yaml.safe_load(path.read_text())
    paths = schema["paths"]

    assert paths["/api/v1/topups/"]["post"]["x-required-scope"] == "billing"
    assert paths["/api/v1/payouts/"]["post"]["x-required-scope"] == "payouts"
    assert paths["/api/v1/payout-account/"]["put"]["x-required-scope"] == "payouts"
    assert paths["/api/v1/jobs/"]["post"]["x-required-scope"] == "jobs"
    assert paths["/api/v1/nodes/"]["post"]["x-required-scope"] == "provider"
    assert paths["/api/v1/wallet/"]["get"]["x-required-scope"] == "read"
    assert paths["/api/v1/webhooks/"]["post"]["x-required-scope"] == "jobs"
    assert paths["/api/v1/webhooks/{webhook_id}/"]["delete"]["x-required-scope"] == "jobs"
    # signed URLs: the token is the credential, and the schema says so
    download = paths["/api/v1/objects/download/{token}/"]["get"]
    assert download["x-required-scope"] == "none"
    assert "security" not in download
    assert "signed token in the URL is the credential" in download["description"]
    assert "API key scope: `billing`." in paths["/api/v1/topups/"]["post"]["description"]
    unscoped = [
        f"{method.upper()} {route}" for route, operations in paths.items()
        for method, operation in operations.items()
        if route.startswith("/api/v1/") and "/agent/" not in route
        and {} not in operation.get("security", [])  # anonymous readers too: public
        and "x-required-scope" not in operation
    ]
    assert unscoped == []
