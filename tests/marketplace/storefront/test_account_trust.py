"""Accounts a company can trust: an unconfirmed email cannot act (`email_unverified`)
until its link is followed; the sixth wrong password in a minute is refused (429); a second
factor where the organization asks for one, or where money can leave."""

import re

import pytest
from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret
from django.contrib.auth.models import User
from django.core import mail
from django.test import Client

from banking.models import ApiKey, AuditEvent, Membership, PayoutAccount
from banking.services.customers import api_key_issue, membership_add
from core.errors import PermissionDenied

PASSWORD = "correct-horse-42"


def _sign_up(client: Client, email: str = "cfo@victim.example") -> User:
    response = client.post("/signup/", {"organization_name": "Victim Inc", "kind": "both",
                                        "email": email, "password1": PASSWORD})
    assert response.status_code == 302
    return User.objects.get(email=email)


def _confirmation_link() -> str:
    [message] = [m for m in mail.outbox if "confirm" in m.subject.lower()]
    found = re.search(r"http://testserver(/accounts/confirm-email/\S+/)", str(message.body))
    assert found is not None
    return found.group(1)


def test_an_unverified_account_creates_no_key_until_it_confirms_its_email(db):
    client = Client()
    user = _sign_up(client)

    page = client.post("/api-keys/", {"name": "mine"})
    with pytest.raises(PermissionDenied, match="Confirm your email address first") as exc:
        api_key_issue(organization_id=user.memberships.get().organization_id,
                      created_by_id=user.pk)

    assert page.status_code == 403
    assert 'data-code="email_unverified"' in page.content.decode()
    assert exc.value.code == "email_unverified"
    assert ApiKey.objects.count() == 0

    client.get(_confirmation_link())
    created = client.post("/api-keys/", {"name": "mine"})

    assert created.status_code == 302
    assert ApiKey.objects.filter(created_by=user).count() == 1


def test_an_unverified_account_cannot_spend_through_the_api(db):
    client = Client()
    _sign_up(client)

    response = client.post("/api/v1/topups/", {"tokens": 10_000_000},
                           content_type="application/json")

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "email_unverified"


@pytest.fixture
def login_window(settings):
    """The configured count (5 in a minute), counted over an hour so that a slow machine
    cannot let the minute pass between the attempts; fast hashing for the same reason."""
    assert settings.ACCOUNT_RATE_LIMITS["login_failed"] == "5/m/ip,5/m/key"
    settings.ACCOUNT_RATE_LIMITS = {"login_failed": "5/h/ip,5/h/key"}
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


# The counts live in Redis; each parallel worker has a database of its own there
# (tests/environment.py), so a neighbour's cache.clear() cannot reset them.
def test_the_sixth_wrong_password_in_a_minute_is_refused_with_a_429(db, login_window):
    _sign_up(Client(), email="ada@lumen.example")
    attempts = [
        Client().post("/login/", {"login": "ada@lumen.example", "password": f"wrong-{i}"})
        for i in range(6)
    ]
    right = Client()
    after = right.post("/login/", {"login": "ada@lumen.example", "password": PASSWORD})

    wrong = "The email address and/or password you specified are not correct."
    refused = "Too many failed login attempts. Try again later."
    assert [a.status_code for a in attempts] == [200] * 5 + [429]
    assert [wrong in a.content.decode() for a in attempts] == [True] * 5 + [False]
    assert refused in attempts[5].content.decode()
    assert after.status_code == 429  # even the right password, for a minute
    assert right.get("/wallet/").status_code == 302  # not signed in
    assert "_auth_user_id" not in right.session


def test_the_limit_counts_per_account_whatever_the_address(db, login_window):
    """Five wrong passwords from five addresses still close the account's door."""
    _sign_up(Client(), email="ada@lumen.example")
    attempts = [
        Client(REMOTE_ADDR=f"198.51.100.{i}").post(
            "/login/", {"login": "ada@lumen.example", "password": f"wrong-{i}"})
        for i in range(6)
    ]
    other = Client(REMOTE_ADDR="198.51.100.1").post(
        "/login/", {"login": "bo@lumen.example", "password": "wrong"})

    assert [a.status_code for a in attempts] == [200] * 5 + [429]
    assert other.status_code == 200  # another account from a used address: not yet


def test_the_demo_users_log_in_by_username(db):
    User.objects.create_user(username="buyer", password=PASSWORD)
    client = Client()

    response = client.post("/login/", {"login": "buyer", "password": PASSWORD})

    assert response.status_code == 302


def _money_mover(org, role="billing") -> tuple[User, Client]:
    user = User.objects.create_user(username=f"{role}@co.example", email=f"{role}@co.example")
    membership_add(organization_id=org.pk, user=user, role=role)
    client = Client()
    client.force_login(user)
    return user, client


def test_with_a_payout_account_moving_money_needs_a_second_factor(make_org):
    org = make_org("Payee Co", provider=True, tokens=40_000_000)
    PayoutAccount.objects.create(organization=org, stripe_account_id="acct_real")
    user, client = _money_mover(org)

    refused = client.put("/api/v1/payout-account/", {"stripe_account_id": "acct_thief"},
                         content_type="application/json")
    TOTP.activate(user, generate_totp_secret())
    allowed = client.put("/api/v1/payout-account/", {"stripe_account_id": "acct_new"},
                         content_type="application/json")

    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "mfa_required"
    assert allowed.status_code == 200
    assert PayoutAccount.objects.get(organization=org).stripe_account_id == "acct_new"


def test_owners_can_require_a_second_factor_of_every_member(make_org, h100):
    org = make_org("Strict Co")
    _, owner_client = _money_mover(org, role="owner")
    _, dev_client = _money_mover(org, role="developer")

    owner_client.post("/organization/security/", {"require_mfa": "1"})
    refused = dev_client.post("/jobs/", {"gpu_class": "H100-80GB"})

    org.refresh_from_db()
    assert org.require_mfa is True
    assert refused.status_code == 403
    assert 'data-code="mfa_required"' in refused.content.decode()
    assert [e.detail for e in AuditEvent.objects.filter(action="mfa.policy_changed")] == [
        {"require_mfa": True}]


def test_a_developer_cannot_require_a_second_factor(make_org):
    org = make_org("Lax Co")
    _, dev_client = _money_mover(org, role="developer")

    dev_client.post("/organization/security/", {"require_mfa": "1"})

    org.refresh_from_db()
    assert org.require_mfa is False
    assert not AuditEvent.objects.filter(action="mfa.policy_changed").exists()
    assert Membership.objects.filter(organization=org).count() == 1
    assert Authenticator.objects.count() == 0
