"""The admin's door: Django's own login form is gone; operators sign in through allauth
(rate-limited) and the admin opens only to a session that passed a second factor."""

import pytest
from allauth.mfa.models import Authenticator
from django.contrib.auth.models import User
from django.test import Client

from banking.models import Organization
from tests.operators import totp_code

PASSWORD = "pw-operator-1"


@pytest.fixture
def operator(db):
    return User.objects.create_superuser("operator", "op@suanli.example", PASSWORD)


@pytest.fixture(autouse=True)
def _fast_hashing(settings):
    # The rate-limit test makes a dozen logins; hashing speed is not what it tests.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def test_the_admin_login_sends_everyone_to_allauths_login(db):
    response = Client().get("/admin/login/?next=/admin/banking/payout/")

    assert response.status_code == 302
    assert response["Location"] == "/login/?next=/admin/banking/payout/"


def test_posting_a_staff_password_to_the_admin_login_signs_nobody_in(operator):
    client = Client()

    response = client.post("/admin/login/", {"username": "operator", "password": PASSWORD,
                                             "next": "/admin/"})

    assert response.status_code == 302
    assert response["Location"].startswith("/login/")
    assert "_auth_user_id" not in client.session
    assert client.get("/admin/").status_code == 302


def test_a_staff_password_without_a_second_factor_does_not_open_the_admin(operator):
    client = Client()

    login = client.post("/login/", {"login": "operator", "password": PASSWORD})
    admin = client.get("/admin/")
    door = client.get(admin["Location"])

    assert login.status_code == 302
    assert client.session["_auth_user_id"] == str(operator.pk)  # signed in to the store
    assert admin.status_code == 302
    assert admin["Location"] == "/admin/login/?next=/admin/"
    assert door["Location"] == "/accounts/2fa/totp/activate/?next=/admin/"
    assert client.get("/admin/banking/organization/").status_code == 302
    assert Authenticator.objects.count() == 0


def test_an_operator_with_a_second_factor_must_enter_it_to_reach_the_admin(operator):
    from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret

    secret = generate_totp_secret()
    TOTP.activate(operator, secret)
    client = Client()

    login = client.post("/login/", {"login": "operator", "password": PASSWORD})
    signed_in_by_password = "_auth_user_id" in client.session
    before = client.get("/admin/")
    wrong = client.post("/accounts/2fa/authenticate/", {"code": "000000"})
    still = client.get("/admin/")
    right = client.post("/accounts/2fa/authenticate/", {"code": totp_code(secret)})
    admin = client.get("/admin/")

    assert login["Location"] == "/accounts/2fa/authenticate/"
    assert (signed_in_by_password, before.status_code) == (False, 302)
    assert wrong.status_code == 200
    assert still.status_code == 302
    assert right.status_code == 302
    assert admin.status_code == 200
    assert "Suanli operations" in admin.content.decode()


def test_a_session_signed_in_before_its_second_factor_is_asked_for_the_code(operator):
    """A forced or older session (password only) with an authenticator: the admin sends it
    to allauth's reauthentication by code, not in."""
    from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret

    secret = generate_totp_secret()
    TOTP.activate(operator, secret)
    client = Client()
    client.force_login(operator)

    admin = client.get("/admin/")
    door = client.get(admin["Location"])
    code = client.post(door["Location"], {"code": totp_code(secret)})

    assert door["Location"] == "/accounts/2fa/reauthenticate/?next=/admin/"
    assert code.status_code == 302
    assert client.get("/admin/").status_code == 200


def test_an_operator_who_removes_the_second_factor_loses_the_admin(db, admin_client,
                                                                    admin_user):
    assert admin_client.get("/admin/").status_code == 200

    Authenticator.objects.filter(user=admin_user).delete()

    assert admin_client.get("/admin/").status_code == 302


@pytest.mark.serial  # its counts are in the cache that parallel workers clear
def test_the_admins_sign_in_is_rate_limited_with_a_429(operator, settings):
    settings.ACCOUNT_RATE_LIMITS = {"login_failed": "5/h/ip,5/h/key"}
    attempts = [Client().post("/login/?next=/admin/", {"login": "operator",
                                                       "password": f"wrong-{i}"})
                for i in range(6)]
    right = Client()
    after = right.post("/login/?next=/admin/", {"login": "operator", "password": PASSWORD})

    assert [a.status_code for a in attempts] == [200] * 5 + [429]
    assert after.status_code == 429
    assert right.get("/admin/").status_code == 302


def test_a_signed_in_operator_acts_and_a_password_only_session_does_not(
        admin_client, make_org, operator):
    org = make_org("Frozen Soon")
    password_only = Client()
    password_only.post("/login/", {"login": "operator", "password": PASSWORD})

    refused = password_only.post("/admin/banking/organization/", {
        "action": "freeze", "_selected_action": [org.pk]})
    unchanged = Organization.objects.get(pk=org.pk).status
    done = admin_client.post("/admin/banking/organization/", {
        "action": "freeze", "_selected_action": [org.pk]})

    assert (refused.status_code, unchanged) == (302, "active")
    assert done.status_code == 302
    assert Organization.objects.get(pk=org.pk).status == "frozen"
