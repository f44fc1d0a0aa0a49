"""The operators' admin site: Django's, with a dashboard on its index and pages the apps
add. Apps contribute a panel with `dashboard_panel` and a page with `admin_page`, so the
site composes every app while no app imports another's admin, and nothing is patched.

Operators sign in through allauth like everyone else, so its failed-login rate limit
guards the admin too, and the admin opens only to a session that passed a second factor
(allauth.mfa): a staff password alone moves no money."""

from collections.abc import Callable
from typing import Any

from allauth.account.authentication import get_authentication_records
from allauth.mfa.models import Authenticator
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.auth import REDIRECT_FIELD_NAME
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse

Panel = Callable[[], tuple[str, list[tuple[str, Any]]]]
_panels: list[Panel] = []
_pages: list[tuple[str, Callable[[HttpRequest], HttpResponse], str]] = []


def dashboard_panel(fn: Panel) -> Panel:
    """Adds a panel (a title and rows of label and value) to the admin index."""
    _panels.append(fn)
    return fn


def admin_page(route: str, *, name: str) -> Callable[
    [Callable[[HttpRequest], HttpResponse]], Callable[[HttpRequest], HttpResponse]
]:
    """Serves a view at /admin/<route> to staff, under the URL name `admin:<name>`."""

    def register(view: Callable[[HttpRequest], HttpResponse]) -> Callable[
        [HttpRequest], HttpResponse
    ]:
        _pages.append((route, view, name))
        return view

    return register


class SuanliAdminSite(admin.AdminSite):
    site_header = "Suanli operations"
    site_title = "Suanli admin"
    index_title = "Bank and scheduler"

    def index(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> TemplateResponse:
        panels = [panel() for panel in _panels]
        return super().index(
            request, extra_context={**(extra_context or {}), "dashboard_panels": panels}
        )

    def has_permission(self, request: HttpRequest) -> bool:
        return super().has_permission(request) and _second_factor_passed(request)

    def login(  # type: ignore[override]
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """Django's own login form (no rate limit, no second factor) is never served, nor
        does a POST here sign anyone in: everyone is sent on to allauth's pages, which
        check `next` against this site before following it."""
        next_url = request.GET.get(REDIRECT_FIELD_NAME) or reverse("admin:index",
                                                                   current_app=self.name)
        user = request.user
        if user.is_active and user.is_staff:
            if Authenticator.objects.filter(user_id=user.pk).exists():
                return redirect_to_login(next_url, login_url=reverse("mfa_reauthenticate"))
            messages.info(request, "The admin needs a second factor: set up an "
                                   "authenticator app, then open the admin again.")
            return redirect_to_login(next_url, login_url=reverse("mfa_activate_totp"))
        return redirect_to_login(next_url, login_url=settings.LOGIN_URL)

    def get_urls(self) -> list[Any]:
        pages: list[URLPattern] = [
            path(route, self.admin_view(view), name=name) for route, view, name in _pages
        ]
        return [*pages, *super().get_urls()]


def _second_factor_passed(request: HttpRequest) -> bool:
    """This session passed a second factor, and the user still has one (an operator who
    removes theirs loses the admin at once)."""
    records = get_authentication_records(request, request.user)  # type: ignore[arg-type]
    return any(record.get("method") == "mfa" for record in records) and (
        Authenticator.objects.filter(user_id=request.user.pk).exists())
