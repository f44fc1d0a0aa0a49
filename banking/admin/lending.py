"""Credit lines (saved through `credit_line_set`), loans and their installments."""

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from banking.admin.money_columns import tokens_column
from banking.models import Account, CreditLine, Installment, Loan, LoanPrepayment
from banking.services.lending import credit_line_set, installments_collect, loan_write_off
from core.errors import DomainError
from core.read_only_admin import ActionsOnlyAdmin, ReadOnlyAdmin


class CreditLineForm(forms.ModelForm):
    class Meta:
        model = CreditLine
        fields = ["organization", "limit", "apr_bps", "max_term_months"]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        org = data.get("organization") or getattr(self.instance, "organization", None)
        limit = data.get("limit")
        if org is not None and limit is not None:
            credit = Account.objects.filter(organization=org, purpose="credit").first()
            used = -credit.balance if credit is not None else 0
            if limit < used:
                self.add_error("limit", f"{used} tokens are already drawn; the limit cannot "
                                        "go below.")
        return data


@admin.register(CreditLine)
class CreditLineAdmin(admin.ModelAdmin):
    """Saving goes through `credit_line_set`, which also moves the credit account's
    floor; the row is never saved directly."""

    form = CreditLineForm
    list_display = ["organization", tokens_column("limit"), "apr_bps", "max_term_months",
                    "updated_at"]
    search_fields = ["organization__name"]
    list_select_related = ["organization"]
    autocomplete_fields = ["organization"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return ["organization"] if obj is not None else []

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # set the limit to 0 instead: loans keep pointing at the line's owner

    def save_model(self, request: HttpRequest, obj: CreditLine, form: Any, change: bool) -> None:
        try:
            saved = credit_line_set(
                organization_id=obj.organization_id,
                limit=obj.limit,
                apr_bps=obj.apr_bps,
                max_term_months=obj.max_term_months,
            )
        except DomainError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return
        obj.pk = saved.pk


class InstallmentInline(admin.TabularInline):
    model = Installment
    extra = 0
    fields = readonly_fields = ("number", "due_date", "principal", "interest", "status",
                                "interest_waived", "paid_at", "paid_transfer")
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Loan)
class LoanAdmin(ActionsOnlyAdmin):
    list_display = ["id", "organization", tokens_column("principal"), "apr_bps", "term_months",
                    "status", "reference", "created_at"]
    list_filter = ["status"]
    search_fields = ["organization__name", "reference", "idempotency_key"]
    list_select_related = ["organization"]
    inlines = [InstallmentInline]
    actions = ["write_off", "collect_due_installments"]

    @admin.action(description="Write off the selected loans (book the unpaid principal as a loss)")
    def write_off(self, request: HttpRequest, queryset: QuerySet[Loan]) -> None:
        done = 0
        for loan in queryset.order_by("id"):
            try:
                loan_write_off(loan_id=loan.pk, memo=f"Write-off of loan #{loan.pk} by "
                                                     f"{request.user}")
                done += 1
            except DomainError as exc:
                self.message_user(request, f"#{loan.pk}: {exc.message}", messages.ERROR)
        if done:
            self.message_user(request, f"Wrote off {done} loan(s).", messages.SUCCESS)

    @admin.action(description="Collect every installment due today (all loans)")
    def collect_due_installments(self, request: HttpRequest, queryset: QuerySet[Loan]) -> None:
        result = installments_collect()
        self.message_user(
            request,
            f"Collected {result.paid} installment(s), {result.tokens} tokens; "
            f"{result.newly_overdue} newly overdue.",
            messages.SUCCESS,
        )


@admin.register(LoanPrepayment)
class LoanPrepaymentAdmin(ReadOnlyAdmin):
    list_display = ["id", "loan", tokens_column("principal"), tokens_column("interest"),
                    tokens_column("requested_amount"), "created_at"]
    search_fields = ["idempotency_key", "loan__organization__name"]
