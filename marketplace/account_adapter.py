"""Where allauth sends a person once they are signed up or signed in: a provider-only
organization has no wallet to spend from and its work is on the portal, so it lands
there; every other organization lands on its wallet. A `next` URL still wins (allauth
asks the adapter only when there is none)."""

from allauth.account.adapter import DefaultAccountAdapter
from django.http import HttpRequest
from django.urls import reverse

from banking.api.authentication import request_organization


class StorefrontAccountAdapter(DefaultAccountAdapter):
    def get_login_redirect_url(self, request: HttpRequest) -> str:
        return landing_url(request)

    def get_signup_redirect_url(self, request: HttpRequest) -> str:
        return landing_url(request)


def landing_url(request: HttpRequest) -> str:
    organization = request_organization(request)
    if organization is not None and organization.is_provider and not organization.is_buyer:
        return reverse("store:provider")
    return reverse("store:wallet")
