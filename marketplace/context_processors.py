"""What the base layout needs on every page: the current organization and the user's
other organizations (for the switcher)."""

from typing import Any

from django.http import HttpRequest

from banking.api.authentication import request_organization
from banking.selectors import user_membership_list


def storefront(request: HttpRequest) -> dict[str, Any]:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    organization = getattr(request, "organization", None) or request_organization(request)
    memberships = list(user_membership_list(user_id=user.pk))
    return {
        "current_organization": organization,
        "user_memberships": memberships,
    }
