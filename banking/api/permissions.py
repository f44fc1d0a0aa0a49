"""Who may call an API view: the caller acts for an organization (`HasOrganization`), and
within the role of the member (or of the key's creator) and the key's scopes for the
view's action (banking.roles). A view names its actions per method in `role_actions`;
safe methods read. The first refusal names what is missing: `forbidden_role` or
`insufficient_scope`."""

from typing import Any

from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request

from banking.account_security import account_standing_require
from banking.api.authentication import OrganizationPrincipal, request_organization
from banking.error_codes import AccessErrorCode
from banking.models import Membership
from banking.roles import ACTION_SCOPE, Action, forbidden_role, role_allows
from core.errors import PermissionDenied


def view_action(view: Any, method: str) -> Action | None:
    """The action a method of the view does; None: the view checks it itself."""
    actions: dict[str, Action | None] = getattr(view, "role_actions", {})
    if method in actions:
        return actions[method]
    return Action.READ if method in SAFE_METHODS else None


def request_role(request: Request) -> str | None:
    """The role the request acts with: the member's, or the API key's creator's (an
    operator-issued key, with no creator, is bounded by its scopes only)."""
    cached = getattr(request, "_organization_role", "")
    if cached != "":
        return cached
    org = request.organization  # type: ignore[attr-defined]
    user = request.user
    user_id = user.api_key.created_by_id if isinstance(user, OrganizationPrincipal) else user.pk
    role: str | None
    if user_id is None:
        role = Membership.Role.OWNER
    else:
        role = (
            Membership.objects.filter(organization_id=org.pk, user_id=user_id)
            .values_list("role", flat=True)
            .first()
        )
    request._organization_role = role  # type: ignore[attr-defined]
    return role


def action_check(request: Request, action: Action) -> None:
    """Refuse `action` to this request unless its role and its key's scopes allow it."""
    user = request.user
    if isinstance(user, OrganizationPrincipal):
        scope = ACTION_SCOPE.get(action)
        if scope is None:
            raise PermissionDenied(
                f"API keys may not {action.label}; do it in the storefront.",
                code=AccessErrorCode.FORBIDDEN_ROLE,
            )
        if scope not in user.api_key.scopes:
            raise PermissionDenied(
                f"This API key lacks the `{scope}` scope.",
                code=AccessErrorCode.INSUFFICIENT_SCOPE,
                fields={"scope": [scope]},
            )
    role = request_role(request)
    if role is None:
        raise PermissionDenied(
            "The key's creator is no longer a member.", code=AccessErrorCode.FORBIDDEN_ROLE
        )
    if not role_allows(role, action):
        raise forbidden_role(role, action)
    if not isinstance(user, OrganizationPrincipal) and user is not None and user.pk is not None:
        organization = request.organization  # type: ignore[attr-defined]
        account_standing_require(user_id=user.pk, organization=organization,
                                 action=action)


class HasOrganization(BasePermission):
    """The caller acts for an organization; views read it from `request.organization`."""

    message = "Authenticate with an API key of an organization."

    def has_permission(self, request: Request, view: Any) -> bool:
        org = request_organization(request)
        if org is None:
            return False
        request.organization = org  # type: ignore[attr-defined]
        action = view_action(view, request.method or "GET")
        if action is not None:
            action_check(request, action)
        return True


class IsProvider(HasOrganization):
    message = "Only provider organizations may do this."

    def has_permission(self, request: Request, view: Any) -> bool:
        return super().has_permission(request, view) and request.organization.is_provider  # type: ignore[attr-defined]


class IsBuyer(HasOrganization):
    message = "Only buyer organizations may do this."

    def has_permission(self, request: Request, view: Any) -> bool:
        return super().has_permission(request, view) and request.organization.is_buyer  # type: ignore[attr-defined]
