"""Accounts, transfers, entries and holds (read-only, reversals by action), the ledger's
health page and its dashboard panel."""

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet, Sum
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from banking.admin.money_columns import tokens_column
from banking.models import (
    Account,
    Entry,
    Hold,
    LedgerCheckpoint,
    LedgerCheckpointBalance,
    Transfer,
)
from banking.models.ledger import AccountPurpose
from banking.services.ledger import transfer_reverse
from banking.services.ledger_checks import ledger_check_run
from core.admin_site import admin_page, dashboard_panel
from core.errors import DomainError
from core.read_only_admin import ActionsOnlyAdmin, ReadOnlyAdmin


@admin.register(Account)
class AccountAdmin(ReadOnlyAdmin):
    list_display = ["id", "organization", "purpose", tokens_column("balance"),
                    tokens_column("floor"), "updated_at"]
    list_filter = ["purpose"]
    search_fields = ["organization__name", "purpose"]
    list_select_related = ["organization"]


class EntryInline(admin.TabularInline):
    model = Entry
    extra = 0
    fields = readonly_fields = ("account", "amount")
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Transfer)
class TransferAdmin(ActionsOnlyAdmin):
    list_display = ["id", "kind", "reference", "memo", "reverses", "created_at"]
    list_filter = ["kind", "created_at"]
    search_fields = ["idempotency_key", "reference", "memo"]
    date_hierarchy = "created_at"
    inlines = [EntryInline]
    actions = ["post_reversal"]

    @admin.action(description="Post a reversal of the selected transfers")
    def post_reversal(self, request: HttpRequest, queryset: QuerySet[Transfer]) -> None:
        done = 0
        for transfer in queryset.order_by("id"):
            try:
                transfer_reverse(
                    transfer_id=transfer.pk,
                    memo=f"Reversal of #{transfer.pk} by {request.user}",
                )
                done += 1
            except DomainError as exc:
                self.message_user(request, f"#{transfer.pk}: {exc.message}", messages.ERROR)
        if done:
            self.message_user(request, f"Posted {done} reversal(s).", messages.SUCCESS)


@admin.register(Entry)
class EntryAdmin(ReadOnlyAdmin):
    list_display = ["id", "transfer", "account", tokens_column("amount")]
    list_filter = ["account__purpose"]
    search_fields = ["transfer__reference", "account__organization__name"]
    list_select_related = ["transfer", "account__organization"]


@admin.register(Hold)
class HoldAdmin(ReadOnlyAdmin):
    list_display = ["id", "organization", tokens_column("amount"), tokens_column("captured"),
                    tokens_column("released"), "status", "reference", "expires_at"]
    list_filter = ["status"]
    search_fields = ["reference", "organization__name"]
    list_select_related = ["organization"]


@admin.register(LedgerCheckpoint)
class LedgerCheckpointAdmin(ReadOnlyAdmin):
    list_display = ["id", "created_at", "full", "transfer_bound", "entry_bound",
                    "entries_total"]


@admin.register(LedgerCheckpointBalance)
class LedgerCheckpointBalanceAdmin(ReadOnlyAdmin):
    list_display = ["account", "entries_total"]
    # The page counts nothing: one row per account, hundreds of thousands of them.
    show_full_result_count = False


@admin_page("ledger-health/", name="ledger-health")
def ledger_health_view(request: HttpRequest) -> HttpResponse:
    # What was posted since the last clean checkpoint, as the periodic check reads it:
    # a look, so it records no checkpoint (the periodic task does).
    run = ledger_check_run(advance=False)
    context = {
        **admin.site.each_context(request),
        "title": "Ledger health",
        "violations": run.violations,
        "since": run.since,
    }
    return TemplateResponse(request, "admin/banking/ledger_health.html", context)


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
