"""The operators' dashboard on the admin index: tokens in circulation, held and owed, the
system accounts, and what each app adds (jobs by state, ...).

Lives in config because it composes every app; apps add panels by registering a callable
with `dashboard_panel`, so banking never imports the apps built on it.
"""

from collections.abc import Callable
from typing import Any

from django.contrib import admin
from django.db.models import Sum
from django.http import HttpRequest
from django.template.response import TemplateResponse

from banking.models import Account
from banking.models.ledger import AccountPurpose

Panel = Callable[[], tuple[str, list[tuple[str, Any]]]]
_panels: list[Panel] = []


def dashboard_panel(fn: Panel) -> Panel:
    _panels.append(fn)
    return fn


@dashboard_panel
def ledger_panel() -> tuple[str, list[tuple[str, Any]]]:
    totals = dict(
        Account.objects.filter(organization__isnull=False)
        .values_list("purpose")
        .annotate(total=Sum("balance"))
    )
    wallet = totals.get(AccountPurpose.WALLET, 0) or 0
    held = totals.get(AccountPurpose.HELD, 0) or 0
    owed = -(totals.get(AccountPurpose.CREDIT, 0) or 0) - (totals.get(AccountPurpose.DEBT, 0) or 0)
    rows: list[tuple[str, Any]] = [
        ("Tokens in circulation (wallets + held)", wallet + held),
        ("Available in wallets", wallet),
        ("Held", held),
        ("Owed to the bank (credit + debt)", owed),
    ]
    rows += [
        (f"System: {a.get_purpose_display()}", a.balance)
        for a in Account.objects.filter(organization__isnull=True).order_by("purpose")
    ]
    return "Ledger", rows


def dashboard_panels() -> list[tuple[str, list[tuple[str, Any]]]]:
    return [panel() for panel in _panels]


_original_index = admin.site.index


def index_with_dashboard(
    request: HttpRequest, extra_context: dict[str, Any] | None = None
) -> TemplateResponse:
    context = {**(extra_context or {}), "dashboard_panels": dashboard_panels()}
    return _original_index(request, extra_context=context)


admin.site.index = index_with_dashboard  # type: ignore[method-assign]
