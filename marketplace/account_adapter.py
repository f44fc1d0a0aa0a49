"""Where allauth sends a person once they have signed up: a provider-only organization
has no wallet to spend from and its first work is on the portal (registering a node), so
it lands there; every other organization lands on its wallet. A `next` URL still wins
(allauth asks the adapter only when there is none). Signing in keeps LOGIN_REDIRECT_URL:
the browser suites sign in and expect the wallet."""

from allauth.account.adapter import DefaultAccountAdapter
from django.http import HttpRequest
from django.urls import reverse

from banking.api.authentication import request_organization


class StorefrontAccountAdapter(DefaultAccountAdapter):
    def get_signup_redirect_url(self, request: HttpRequest) -> str:
        return landing_url(request)


def landing_url(request: HttpRequest) -> str:
    """The organization's own first page: the portal for a provider-only one."""
    organization = request_organization(request)
    if organization is not None and organization.is_provider and not organization.is_buyer:
        return reverse("store:provider")
    return reverse("store:wallet")
