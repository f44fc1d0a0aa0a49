"""Operators sign in to the admin as the site requires: password through allauth's login,
then a TOTP code; the helper does it with real requests, not a forced session."""

import time

from allauth.mfa import app_settings
from allauth.mfa.totp.internal.auth import (
    TOTP,
    format_hotp_value,
    generate_totp_secret,
    hotp_value,
)
from django.contrib.auth.models import User
from django.test import Client


def totp_code(secret: str) -> str:
    """The code an authenticator app shows now."""
    counter = int(time.time()) // app_settings.TOTP_PERIOD
    return format_hotp_value(hotp_value(secret, counter))


def operator_sign_in(client: Client, user: User, password: str) -> Client:
    """Give `user` a TOTP authenticator and sign `client` in with password and code."""
    secret = generate_totp_secret()
    TOTP.activate(user, secret)
    login = client.post("/login/", {"login": user.get_username(), "password": password})
    assert (login.status_code, login["Location"]) == (302, "/accounts/2fa/authenticate/")
    code = client.post("/accounts/2fa/authenticate/", {"code": totp_code(secret)})
    assert code.status_code == 302, code.content.decode()[:2000]
    return client
