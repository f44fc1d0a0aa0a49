"""What every storefront page needs: the organization the request acts for."""

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import render

from banking.account_security import account_standing_require
from banking.api.authentication import request_organization
from banking.models import Membership, Organization
from banking.roles import Action, role_allows
from banking.selectors import membership_get
from core.bounds import OutOfBounds, bounded_query
from core.errors import DomainError, NotFound

View = TypeVar("View", bound=Callable[..., HttpResponseBase])
T = TypeVar("T")


def query_text(request: HttpRequest, name: str, *, max_length: int = 64) -> str | None:
    """A query parameter a page reads (a link's preset, a filter), bounded as the API's are;
    one out of bounds (a NUL, too long) is as if not given: the page shows its default
    instead of refusing, since nothing is written from it."""
    try:
        return bounded_query(request.GET, name, max_length=max_length)
    except OutOfBounds:
        return None


class OrganizationRequest(HttpRequest):
    """A request of a signed-in member, as `organization_required` leaves it."""

    user: User  # type: ignore[assignment]
    organization: Organization
    membership: Membership


def organization_required(view: View) -> View:
    """Sign-in required; sets `request.organization` (the member's current organization)
    and `request.membership`. A user who belongs to none sees a page that says so."""

    @login_required
    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        organization = request_organization(request)
        membership = (
            membership_get(user_id=cast(int, request.user.pk), organization_id=organization.pk)
            if organization is not None
            else None
        )
        if organization is None or membership is None:
            return render(request, "marketplace/no_organization.html", status=403)
        request.organization = organization  # type: ignore[attr-defined]
        request.membership = membership  # type: ignore[attr-defined]
        action = page_action(request)
        if action is not None and not role_allows(membership.role, action):
            return forbidden_page(request, action)
        if action is not None:
            try:
                account_standing_require(user_id=cast(int, request.user.pk),
                                         organization=organization, action=action)
            except DomainError as exc:
                return render(request, "marketplace/forbidden.html", {
                    "message": exc.message, "code": exc.code,
                }, status=403)
        return view(request, *args, **kwargs)

    return cast(View, wrapped)


def buyer_required(view: View) -> View:
    """`organization_required`, for a buyer's section (jobs, blocks, loans): a provider-only
    organization is refused the page, not only spared its link, since a URL is typed or
    bookmarked as easily as clicked."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        organization: Organization = request.organization  # type: ignore[attr-defined]
        if not organization.is_buyer:
            return render(request, "marketplace/not_buyer.html", status=403)
        return view(request, *args, **kwargs)

    return organization_required(cast(View, wrapped))


def provider_required(view: View) -> View:
    """`organization_required`, for the provider portal: a buyer-only organization is
    refused it."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        organization: Organization = request.organization  # type: ignore[attr-defined]
        if not organization.is_provider:
            return render(request, "marketplace/provider/not_provider.html",
                          {"nav": "provider"}, status=403)
        return view(request, *args, **kwargs)

    return organization_required(cast(View, wrapped))


def forbidden_page(request: HttpRequest, action: Action) -> HttpResponse:
    membership: Membership = request.membership  # type: ignore[attr-defined]
    return render(request, "marketplace/forbidden.html", {
        "role": membership.get_role_display(), "action": action.label,
    }, status=403)


def _block_action(request: HttpRequest) -> Action:
    if request.POST.get("action") != "buy":
        return Action.READ  # a quote
    return Action.LOANS if request.POST.get("payment") == "financed" else Action.BLOCKS


# What a POST to each storefront page does, in banking.roles' terms; GETs read. Keys and
# members are checked by their services (one's own key or anyone's; owners or not).
PAGE_ACTIONS: dict[str, Callable[[HttpRequest], Action | None]] = {
    "topup": lambda r: Action.TOPUP,
    "topup_pay": lambda r: Action.TOPUP,
    "low_balance_alert": lambda r: Action.TOPUP,
    "jobs": lambda r: Action.JOBS,
    "job_cancel": lambda r: Action.JOBS,
    "blocks": _block_action,
    "block_sell_back": lambda r: Action.BLOCKS,
    "loan_prepay": lambda r: Action.LOANS,
    "node_drain": lambda r: Action.NODES,
    "provider": lambda r: {
        "node": Action.NODES, "deposit": Action.NODES, "advance": Action.LOANS,
        "payout-account": Action.PAYOUT_ACCOUNT, "payout": Action.PAYOUT_REQUEST,
    }.get(r.POST.get("form", ""), Action.READ),
    "api_keys": lambda r: Action.KEYS_OWN,
    "members": lambda r: Action.MEMBERS_MANAGE,
}


def page_action(request: HttpRequest) -> Action | None:
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return None
    match = request.resolver_match
    decide = PAGE_ACTIONS.get(match.url_name or "") if match is not None else None
    return decide(request) if decide is not None else None


def found_or_404(call: Callable[[], T]) -> T:
    """Run a selector or service; its `NotFound` (another organization's object, or
    none at all) becomes the page's 404."""
    try:
        return call()
    except NotFound as exc:
        raise Http404(exc.message) from exc


def can_manage_members(membership: Membership) -> bool:
    return role_allows(membership.role, Action.MEMBERS_MANAGE)


def confirm_page(request: HttpRequest, *, title: str, text: str, button: str,
                 cancel_url: str, cancel_label: str = "Cancel") -> HttpResponse:
    """Ask once before money moves: the same form posted again with `confirm=1` (and the
    same one-time key, so a double click on either page still posts once)."""
    fields = [(k, v) for k, v in request.POST.items()
              if k not in ("csrfmiddlewaretoken", "confirm")]
    return render(request, "marketplace/_confirm.html", {
        "confirm_title": title, "confirm_text": text, "confirm_button": button,
        "confirm_action": request.path, "confirm_fields": fields, "cancel_url": cancel_url,
        "cancel_label": cancel_label,
    })


def confirmed(request: HttpRequest) -> bool:
    return request.POST.get("confirm") == "1"
