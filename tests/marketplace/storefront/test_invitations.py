"""An invitation to an address with no account: no user is made for it; the emailed link
opens allauth's sign-up for that address alone, the invitee chooses its password, and it
signs in and joins only once it has confirmed the address through allauth's link."""

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.core import mail
from django.test import Client

from banking.invitation_tokens import invitation_token
from banking.models import AuditEvent, Invitation, Membership, Organization

PASSWORD = "correct-horse-42"
INVITEE = "bo@acme.example"


@pytest.fixture(autouse=True)
def _fast_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def invited(org, owner_client, django_capture_on_commit_callbacks) -> str:
    """The path of the link the invitee was emailed."""
    with django_capture_on_commit_callbacks(execute=True):
        owner_client.post("/members/", {"email": "Bo@Acme.example", "role": "billing"})
    [message] = mail.outbox
    found = re.search(r"http://testserver(/invitations/\S+/)", str(message.body))
    assert found is not None
    mail.outbox.clear()
    return found.group(1)


def _confirmation_link(to: str) -> str:
    [message] = [m for m in mail.outbox if m.to == [to] and "confirm" in m.subject.lower()]
    found = re.search(r"http://testserver(/accounts/confirm-email/\S+/)", str(message.body))
    assert found is not None
    return found.group(1)


def _counts() -> tuple[int, int, int, int]:
    return (User.objects.count(), Membership.objects.count(), Organization.objects.count(),
            Invitation.objects.filter(accepted_at=None).count())


def test_the_link_asks_only_for_a_password_for_the_invited_address(org, invited):
    page = Client().get(invited)

    assert page.status_code == 200
    form = page.context["form"]
    assert list(form.fields) == ["email", "password1"]
    assert (form.fields["email"].initial, form.fields["email"].disabled) == (INVITEE, True)
    assert "Join Acme AI" in page.content.decode()


def test_signing_up_from_the_link_sends_the_confirmation_and_signs_nobody_in(org, invited):
    users, members, orgs, _ = _counts()
    client = Client()

    response = client.post(invited, {"email": "thief@evil.example", "password1": PASSWORD})

    assert response.status_code == 302
    assert response["Location"] == "/accounts/confirm-email/"
    assert "_auth_user_id" not in client.session
    user = User.objects.get(email=INVITEE)  # the posted address was not taken
    assert not User.objects.filter(email="thief@evil.example").exists()
    assert user.check_password(PASSWORD)
    assert _counts() == (users + 1, members, orgs, 1)  # no organization of its own
    assert _confirmation_link(INVITEE).startswith("/accounts/confirm-email/")


def test_until_it_confirms_the_invitee_cannot_sign_in(org, invited):
    Client().post(invited, {"password1": PASSWORD})
    mail.outbox.clear()
    client = Client()

    response = client.post("/login/", {"login": INVITEE, "password": PASSWORD})

    assert response.status_code == 302
    assert response["Location"] == "/accounts/confirm-email/"
    assert "_auth_user_id" not in client.session
    assert client.get("/wallet/").status_code == 302
    assert _confirmation_link(INVITEE)  # sent again
    assert not Membership.objects.filter(user__email=INVITEE).exists()


def test_confirming_the_address_makes_the_membership_and_opens_the_door(org, invited):
    Client().post(invited, {"password1": PASSWORD})
    client = Client()

    confirmed = client.get(_confirmation_link(INVITEE))
    login = client.post("/login/", {"login": INVITEE, "password": PASSWORD})
    wallet = client.get("/wallet/")

    assert confirmed.status_code == 302
    assert login.status_code == 302
    membership = Membership.objects.get(user__email=INVITEE)
    assert (membership.organization_id, membership.role) == (org.pk, "billing")
    assert Invitation.objects.get(organization=org).accepted_at is not None
    assert wallet.status_code == 200
    assert wallet.context["request"].organization == org
    [joined] = AuditEvent.objects.filter(action="member.joined")
    assert (joined.organization_id, joined.actor_id, joined.detail["role"]) == (
        org.pk, membership.user_id, "billing")


def test_a_used_link_no_longer_opens(org, invited):
    Client().post(invited, {"password1": PASSWORD})
    Client().get(_confirmation_link(INVITEE))

    again = Client().post(invited, {"password1": "another-horse-43"})

    assert again.status_code == 404
    assert User.objects.get(email=INVITEE).check_password(PASSWORD)


@pytest.mark.parametrize("token", ["1", "1:abc:def", "x" * 201])
def test_a_forged_link_is_a_404_that_creates_nothing(org, invited, token):
    before = _counts()

    page = Client().get(f"/invitations/{token}/")
    post = Client().post(f"/invitations/{token}/", {"password1": PASSWORD})

    assert (page.status_code, post.status_code) == (404, 404)
    assert 'data-code="invitation_invalid"' in page.content.decode()
    assert _counts() == before


def test_an_expired_link_is_a_404(org, invited, settings):
    invitation = Invitation.objects.get(organization=org)
    settings.INVITATION_MAX_AGE_S = int(timedelta(days=14).total_seconds())
    fresh = Client().get(f"/invitations/{invitation_token(invitation.pk)}/")
    settings.INVITATION_MAX_AGE_S = -1

    expired = Client().post(invited, {"password1": PASSWORD})

    assert (fresh.status_code, expired.status_code) == (200, 404)
    assert not User.objects.filter(email=INVITEE).exists()


def test_inviting_again_keeps_one_invitation_at_the_newest_role(org, owner_client, invited):
    owner_client.post("/members/", {"email": INVITEE, "role": "viewer"})

    assert list(Invitation.objects.values_list("email", "role")) == [(INVITEE, "viewer")]


def test_an_account_that_never_confirmed_the_address_joins_only_once_it_does(
        org, owner_client, django_capture_on_commit_callbacks):
    """Anyone may sign up with any address: a squatter's unconfirmed account for the
    invited address does not become a member by the invitation."""
    squatter = Client()
    squatter.post("/signup/", {"organization_name": "Squat", "kind": "buyer",
                               "email": INVITEE, "password1": PASSWORD})
    mail.outbox.clear()

    with django_capture_on_commit_callbacks(execute=True):
        owner_client.post("/members/", {"email": INVITEE, "role": "billing"})
    login = Client().post("/login/", {"login": INVITEE, "password": PASSWORD})

    assert not Membership.objects.filter(organization=org, user__email=INVITEE).exists()
    assert Invitation.objects.get(organization=org).accepted_at is None
    assert "http://testserver/login/" in mail.outbox[0].body
    assert login["Location"] == "/accounts/confirm-email/"  # not in until it confirms

    Client().get(_confirmation_link(INVITEE))

    assert Membership.objects.get(organization=org, user__email=INVITEE).role == "billing"
