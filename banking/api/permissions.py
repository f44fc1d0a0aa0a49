from typing import Any

from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from banking.api.authentication import request_organization


class HasOrganization(BasePermission):
    """The caller acts for an organization; views read it from `request.organization`."""

    message = "Authenticate with an API key of an organization."

    def has_permission(self, request: Request, view: Any) -> bool:
        org = request_organization(request)
        if org is None:
            return False
        request.organization = org  # type: ignore[attr-defined]
        return True


class IsProvider(HasOrganization):
    message = "Only provider organizations may do this."

    def has_permission(self, request: Request, view: Any) -> bool:
        return super().has_permission(request, view) and request.organization.is_provider  # type: ignore[attr-defined]


class IsBuyer(HasOrganization):
    message = "Only buyer organizations may do this."

    def has_permission(self, request: Request, view: Any) -> bool:
        return super().has_permission(request, view) and request.organization.is_buyer  # type: ignore[attr-defined]
