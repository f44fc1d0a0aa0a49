"""What the storefront changes in allauth's account flows."""

from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from allauth.core.exceptions import ImmediateHttpResponse
from allauth.core.ratelimit import respond_429
from django.core.exceptions import ValidationError
from django.http import HttpRequest


class AccountAdapter(DefaultAccountAdapter):
    def pre_authenticate(self, request: HttpRequest, **credentials: Any) -> None:
        """Past the failed-login rate (ACCOUNT_RATE_LIMITS["login_failed"]) the answer is a
        429, not a form error: a script that guesses passwords reads status codes, and a
        200 tells it nothing stopped it. allauth still refuses the attempt before checking
        the password, the right one included."""
        try:
            super().pre_authenticate(request, **credentials)
        except ValidationError as exc:
            if exc.code == "too_many_login_attempts":
                raise ImmediateHttpResponse(respond_429(request)) from exc
            raise
