"""The operators' admin site: Django's, with a dashboard on its index and pages the apps
add. Apps contribute a panel with `dashboard_panel` and a page with `admin_page`, so the
site composes every app while no app imports another's admin, and nothing is patched."""

from collections.abc import Callable
from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path

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

    def get_urls(self) -> list[Any]:
        pages: list[URLPattern] = [
            path(route, self.admin_view(view), name=name) for route, view, name in _pages
        ]
        return [*pages, *super().get_urls()]
