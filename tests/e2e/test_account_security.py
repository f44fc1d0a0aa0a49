"""In Chromium: sign up -> the confirmation email -> confirmed -> turn on an
authenticator app (TOTP), after confirming the password again -> log out -> log in again with
the password and a code (an old code refused)."""

import re
import time

import pytest
from allauth.mfa.models import Authenticator
from django.contrib.auth.models import User

from banking.account_security import email_unverified
from banking.models import AuditEvent
from tests.e2e.conftest import UI, totp_code

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser")]

PASSWORD = "correct-horse-42"


def test_sign_up_confirm_enrol_a_second_factor_and_log_in_with_it(ui: UI) -> None:
    # Given a visitor who signs up and follows the emailed link
    ui.sign_up("Careful Co", "cfo@careful.example", PASSWORD)
    user = User.objects.get(email="cfo@careful.example")
    assert email_unverified(user.pk) is False

    # When they turn on an authenticator app with the code it shows, allauth first asks
    # for the password again (before any second factor is added)
    ui.goto("/accounts/2fa/totp/activate/", "activate authenticator")
    assert "/accounts/reauthenticate/" in ui.page.url
    assert Authenticator.objects.filter(user=user).count() == 0
    secret = ui.enrol_totp(PASSWORD)
    assert Authenticator.objects.filter(user=user, type="totp").count() == 1
    # one row for the app and one for the recovery codes allauth makes with it
    recorded = AuditEvent.objects.filter(action="mfa.enabled", actor_id=user.pk)
    assert sorted(e.detail["type"] for e in recorded) == ["recovery_codes", "totp"]
    assert "/accounts/2fa/recovery-codes/" in ui.page.url

    # Then logging in again asks for a code after the password, and takes a fresh one
    ui.page.context.clear_cookies()
    ui.goto("/login/", "login")
    ui.page.fill("#id_login", "cfo@careful.example")
    ui.page.fill("#id_password", PASSWORD)
    ui.page.click("button[type=submit]")
    ui.page.wait_for_url(re.compile(r".*/accounts/2fa/authenticate/$"))
    ui.shot("asked for a code")
    ui.page.fill("#id_code", totp_code(secret, step=-20))  # a code of ten minutes ago
    ui.page.click("main button[type=submit]")
    ui.page.wait_for_load_state()
    ui.shot("an old code refused")
    assert ui.page.url.endswith("/accounts/2fa/authenticate/")
    assert "Incorrect code." in ui.page.inner_text("main")
    assert "Careful Co" not in ui.page.inner_text("header")
    time.sleep(30 - time.time() % 30 + 0.5)  # a code not used before
    ui.page.fill("#id_code", totp_code(secret))
    ui.page.click("button[type=submit]")
    ui.page.wait_for_url(re.compile(r".*/wallet/$"))
    ui.shot("signed in with a second factor")
    assert "Careful Co" in ui.page.inner_text("header")
