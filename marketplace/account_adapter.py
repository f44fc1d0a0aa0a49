"""What the storefront changes in allauth's account flows.

Where allauth sends a person once they have signed up: a provider-only organization
has no wallet to spend from and its first work is on the portal (registering a node), so
it lands there; every other organization lands on its wallet. A `next` URL still wins
(allauth asks the adapter only when there is none). Signing in keeps LOGIN_REDIRECT_URL:
the browser suites sign in and expect the wallet.

Past the failed-login rate the answer is a 429. Invitations (banking's `Invitation`) turn
into memberships only once the invitee, signed up with its own password, confirms the
invited address."""

from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from allauth.account.models import EmailAddress
from allauth.account.utils import has_verified_email
from allauth.core.exceptions import ImmediateHttpResponse
from allauth.core.ratelimit import respond_429
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.urls import reverse

from banking.api.authentication import request_organization
from banking.selectors import invitation_open_exists
from banking.services.customers import invitation_accept


class StorefrontAccountAdapter(DefaultAccountAdapter):
    def get_signup_redirect_url(self, request: HttpRequest) -> str:
        return landing_url(request)

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

    def pre_login(self, request: HttpRequest, user: AbstractBaseUser, **kwargs: Any
                  ) -> HttpResponse | None:
        """Email verification is optional for people who open their own account, but an
        invitee is someone else's word about an address: it signs in only once it has
        confirmed it (at sign-up, and at every login until then the link is sent again)."""
        response = super().pre_login(request, user, **kwargs)
        if response is not None:
            return response
        email = getattr(user, "email", "")
        if email and invitation_open_exists(email=email) and not has_verified_email(
                user, email):
            address = EmailAddress.objects.filter(user_id=user.pk, email__iexact=email).first()
            if address is not None:
                address.send_confirmation(request, signup=bool(kwargs.get("signup")))
            return self.respond_email_verification_sent(request, user)
        return None

    def confirm_email(self, request: HttpRequest, email_address: EmailAddress) -> bool:
        """A confirmed address takes up its open invitations."""
        confirmed = super().confirm_email(request, email_address)
        if confirmed:
            invitation_accept(user_id=email_address.user_id, email=email_address.email)
        return confirmed


def landing_url(request: HttpRequest) -> str:
    """The organization's own first page: the portal for a provider-only one."""
    organization = request_organization(request)
    if organization is not None and organization.is_provider and not organization.is_buyer:
        return reverse("store:provider")
    return reverse("store:wallet")
