"""Every role against every money-moving and member-changing action, on the API (as a
signed-in member) and on the storefront's pages. The expected roles are the issue's
words, written out here rather than read from banking.roles: owner everything; admin
all but owners; billing money (top-ups, payouts, the payout account, loans and
financed purchases); developer jobs, wallet blocks, nodes, webhook endpoints and its own
keys; viewer reads. A refusal is `forbidden_role` and changes nothing."""

import json
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from banking.models import (
    ApiKey,
    Loan,
    Membership,
    Organization,
    Payout,
    PayoutAccount,
    TopUp,
    Transfer,
    WebhookEndpoint,
)
from banking.services.customers import membership_add
from marketplace.models import Block, CapacityDeposit
from scheduler.models import Job, Node

OWNER, ADMIN, BILLING, DEVELOPER, VIEWER = "owner", "admin", "billing", "developer", "viewer"
ROLES = [OWNER, ADMIN, BILLING, DEVELOPER, VIEWER]
MONEY = {OWNER, ADMIN, BILLING}
BUILD = {OWNER, ADMIN, DEVELOPER}
MEMBERS = {OWNER, ADMIN}
KEYS = {OWNER, ADMIN, BILLING, DEVELOPER}

_START = (timezone.now() + timedelta(days=2)).replace(minute=0, second=0, microsecond=0)
_BLOCK = {"gpu_class": "H100-80GB", "gpu_count": 1, "start": _START.isoformat(),
          "end": (_START + timedelta(hours=2)).isoformat()}

# (name, method, path, body, roles allowed)
API_CASES = [
    ("topup", "post", "/api/v1/topups/", {"tokens": 10_000_000}, MONEY),
    ("payout-account", "put", "/api/v1/payout-account/",
     {"stripe_account_id": "acct_attacker"}, MONEY),
    ("payout", "post", "/api/v1/payouts/", {"tokens": 10_000_000}, MONEY),
    ("advance", "post", "/api/v1/advances/", {"amount": 1000}, MONEY),
    ("financed-block", "post", "/api/v1/blocks/",
     {**_BLOCK, "payment": "financed", "term_months": 3}, MONEY),
    ("loan-prepay", "post", "/api/v1/loans/999999/prepay/", {}, MONEY),
    ("wallet-block", "post", "/api/v1/blocks/", {**_BLOCK, "payment": "wallet"}, BUILD),
    ("job", "post", "/api/v1/jobs/",
     {"gpu_class": "H100-80GB", "gpu_count": 1, "max_duration_s": 60,
      "spec": {"simulate": {"seconds": 1}}}, BUILD),
    ("node", "post", "/api/v1/nodes/",
     {"name": "n1", "gpu_class": "H100-80GB", "gpu_count": 1, "vram_gb": 80,
      "region": "eu-west"}, BUILD),
    # an allowed role gets past the role check to the URL's own check (a private address)
    ("webhook", "post", "/api/v1/webhooks/",
     {"url": "https://127.0.0.1/hook", "events": ["job.succeeded"]}, BUILD),
]

# (name, path, form, roles allowed)
PAGE_CASES = [
    ("topup", "/wallet/topup/", {"tokens": "10000000"}, MONEY),
    ("payout-account", "/provider/", {"form": "payout-account",
                                      "stripe_account_id": "acct_attacker"}, MONEY),
    ("payout", "/provider/", {"form": "payout", "tokens": "10000000"}, MONEY),
    ("advance", "/provider/", {"form": "advance", "amount": "1000"}, MONEY),
    ("financed-block", "/blocks/", {"action": "buy", "payment": "financed"}, MONEY),
    ("loan-prepay", "/loans/999999/prepay/", {}, MONEY),
    ("wallet-block", "/blocks/", {"action": "buy", "payment": "wallet"}, BUILD),
    ("job", "/jobs/", {"gpu_class": "H100-80GB"}, BUILD),
    ("node", "/provider/", {"form": "node", "name": "n1"}, BUILD),
    ("invite", "/members/", {"email": "new@example.com", "role": "viewer"}, MEMBERS),
    ("api-key", "/api-keys/", {"name": "ci"}, KEYS),
]


@pytest.fixture
def company(make_org: Callable[..., Organization], h100) -> Organization:
    return make_org("Both Inc", provider=True, buyer=True, tokens=50_000_000)


def _member(org: Organization, role: str) -> Client:
    user = User.objects.create_user(username=f"{role}@both.example",
                                     email=f"{role}@both.example", password="pw-Secret-123")
    membership_add(organization_id=org.pk, user=user, role=role)
    client = Client()
    client.force_login(user)
    return client


def _snapshot(org: Organization) -> tuple:
    return (
        TopUp.objects.filter(organization=org).count(),
        Payout.objects.filter(organization=org).count(),
        list(PayoutAccount.objects.filter(organization=org).values_list("stripe_account_id")),
        Transfer.objects.count(),
        Loan.objects.filter(organization=org).count(),
        Block.objects.filter(organization=org).count(),
        CapacityDeposit.objects.count(),
        Job.objects.filter(organization=org).count(),
        Node.objects.filter(provider=org).count(),
        ApiKey.objects.filter(organization=org).count(),
        WebhookEndpoint.objects.filter(organization=org).count(),
        sorted(Membership.objects.filter(organization=org).values_list("user__email", "role")),
    )


def _assert_refused(response, before, org, role):
    assert response.status_code == 403, response.content[:300]
    assert _snapshot(org) == before
    return role


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("name", "method", "path", "body", "allowed"), API_CASES,
                         ids=[c[0] for c in API_CASES])
def test_api_role_matrix(company, role, name, method, path, body, allowed):
    client = _member(company, role)
    before = _snapshot(company)

    response = getattr(client, method)(path, data=json.dumps(body),
                                       content_type="application/json")

    if role in allowed:
        assert response.status_code != 403 or (
            response.json()["error"]["code"] != "forbidden_role"), response.content[:300]
    else:
        _assert_refused(response, before, company, role)
        assert response.json()["error"]["code"] == "forbidden_role"
        assert response.json()["error"]["message"].startswith(f"Your role ({role}) may not")


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("name", "path", "form", "allowed"), PAGE_CASES,
                         ids=[c[0] for c in PAGE_CASES])
def test_page_role_matrix(company, role, name, path, form, allowed):
    client = _member(company, role)
    before = _snapshot(company)

    response = client.post(path, form)

    if role in allowed:
        assert response.status_code != 403, response.content[:300]
    else:
        _assert_refused(response, before, company, role)
        assert 'data-code="forbidden_role"' in response.content.decode()


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("change", ["role", "remove"])
def test_member_changes_by_role(company, role, change):
    client = _member(company, role)
    target = User.objects.create_user(username="dev2@both.example", email="dev2@both.example")
    membership_add(organization_id=company.pk, user=target, role=DEVELOPER)
    before = _snapshot(company)

    body = {"role": VIEWER} if change == "role" else {"remove": "1"}
    response = client.post(f"/members/{target.pk}/", body)

    assert response.status_code == 302
    member = Membership.objects.filter(organization=company, user=target).first()
    if role in MEMBERS:
        if change == "role":
            assert member is not None
            assert member.role == VIEWER
        else:
            assert member is None
    else:
        assert _snapshot(company) == before


def test_only_an_owner_changes_or_removes_an_owner(company):
    admin = _member(company, ADMIN)
    owner = User.objects.create_user(username="o2@both.example", email="o2@both.example")
    membership_add(organization_id=company.pk, user=owner, role=OWNER)

    admin.post(f"/members/{owner.pk}/", {"role": VIEWER})
    admin.post(f"/members/{owner.pk}/", {"remove": "1"})

    assert Membership.objects.get(organization=company, user=owner).role == OWNER


def test_the_last_owner_stays(company):
    owner_client = _member(company, OWNER)
    owner = User.objects.get(username="owner@both.example")

    owner_client.post(f"/members/{owner.pk}/", {"role": VIEWER})

    assert Membership.objects.get(organization=company, user=owner).role == OWNER


def test_a_removed_members_keys_are_revoked_and_refused(company):
    from banking.services.customers import api_key_issue, member_remove

    owner = User.objects.create_user(username="o@both.example", email="o@both.example")
    membership_add(organization_id=company.pk, user=owner, role=OWNER)
    dev = User.objects.create_user(username="d@both.example", email="d@both.example")
    membership_add(organization_id=company.pk, user=dev, role=DEVELOPER)
    key = api_key_issue(organization_id=company.pk, created_by_id=dev.pk)
    other = api_key_issue(organization_id=company.pk, created_by_id=owner.pk)

    member_remove(organization_id=company.pk, actor_id=owner.pk, user_id=dev.pk)

    key.api_key.refresh_from_db()
    other.api_key.refresh_from_db()
    assert key.api_key.revoked_at is not None
    assert other.api_key.revoked_at is None
    response = Client().get("/api/v1/wallet/", HTTP_AUTHORIZATION=f"Api-Key {key.secret}")
    assert response.status_code == 401


def test_a_key_acts_within_its_creators_current_role(company):
    from banking.services.customers import api_key_issue

    billing = User.objects.create_user(username="b@both.example", email="b@both.example")
    membership = membership_add(organization_id=company.pk, user=billing, role=BILLING)
    key = api_key_issue(organization_id=company.pk, created_by_id=billing.pk)
    Membership.objects.filter(pk=membership.pk).update(role=VIEWER)
    before = _snapshot(company)

    response = Client().put("/api/v1/payout-account/",
                            data=json.dumps({"stripe_account_id": "acct_x"}),
                            content_type="application/json",
                            HTTP_AUTHORIZATION=f"Api-Key {key.secret}")

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden_role"
    assert _snapshot(company) == before
