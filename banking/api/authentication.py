"""`Authorization: Api-Key <key>`: the caller acts for the key's organization."""

from dataclasses import dataclass

from django.http import HttpRequest
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from banking.models import ApiKey, Organization
from banking.services.customers import api_key_authenticate
from core.client_address import client_address
from core.credential_guard import credential_lookup


@dataclass
class OrganizationPrincipal:
    """What `request.user` is for a call made with an API key."""

    organization: Organization
    api_key: ApiKey
    is_authenticated: bool = True
    is_active: bool = True
    is_staff: bool = False
    is_superuser: bool = False

    @property
    def pk(self) -> str:
        return f"key:{self.api_key.prefix}"


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Api-Key"

    def authenticate(self, request: Request) -> tuple[OrganizationPrincipal, ApiKey] | None:
        header = request.META.get("HTTP_AUTHORIZATION", "")
        scheme, _, raw = header.partition(" ")
        if scheme != self.keyword:
            return None
        address = client_address(request)
        api_key = credential_lookup(
            "api_key", raw.strip(),
            lambda: api_key_authenticate(raw, client_ip=address), address=address,
            refuse_throttled=True)
        if api_key is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked API key.")
        return OrganizationPrincipal(organization=api_key.organization, api_key=api_key), api_key

    def authenticate_header(self, request: Request) -> str:
        return self.keyword


def request_organization(request: Request | HttpRequest) -> Organization | None:
    """The organization a request acts for: the API key's, or the signed-in member's
    current one (the first membership unless the session picked another)."""
    user = getattr(request, "user", None)
    if isinstance(user, OrganizationPrincipal):
        return user.organization
    if user is None or not user.is_authenticated:
        return None
    memberships = user.memberships.select_related("organization").order_by("id")
    chosen = getattr(request, "session", {}).get("organization_id")
    if chosen:
        picked = memberships.filter(organization_id=chosen).first()
        if picked is not None:
            return picked.organization
    first = memberships.first()
    return first.organization if first else None
