from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet, Sum
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from banking.gateway import GatewayError
from banking.invariants import ledger_verify
from banking.models import (
    Account,
    ApiKey,
    CreditLine,
    Dispute,
    Entry,
    Hold,
    Installment,
    Loan,
    LoanPrepayment,
    Membership,
    Organization,
    Payout,
    PayoutAccount,
    StripeCustomer,
    StripeEvent,
    TokenPrice,
    TokenPriceTier,
    TopUp,
    Transfer,
)
from banking.models.ledger import AccountPurpose
from banking.services.customers import organization_approve, organization_set_status
from banking.services.ledger import transfer_reverse
from banking.services.lending import credit_line_set, installments_collect, loan_write_off
from banking.services.payments import (
    stripe_event_process,
    topup_fulfil,
    topup_refund,
)
from banking.services.payouts import payout_approve, payout_execute, payout_reject
from banking.services.standing import organization_block_reasons
from core.admin_site import admin_page, dashboard_panel
from core.errors import DomainError


class ReadOnlyAdmin(admin.ModelAdmin):
    """The ledger is append-only: the admin shows it and never edits it."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


class AccountInline(admin.TabularInline):
    model = Account
    extra = 0
    fields = readonly_fields = ("purpose", "balance", "floor")
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ["name", "is_buyer", "is_provider", "is_approved", "status", "blocked_because",
                    "created_at"]
    list_filter = ["status", "is_buyer", "is_provider", "is_approved"]
    search_fields = ["name"]
    readonly_fields = ["status", "blocked_because", "created_at", "updated_at"]
    inlines = [MembershipInline, AccountInline]
    actions = ["approve", "freeze", "unfreeze"]

    @admin.display(description="blocked because")
    def blocked_because(self, obj: Organization) -> str:
        return "; ".join(organization_block_reasons(obj)) or "-"

    @admin.action(description="Approve selected organizations")
    def approve(self, request: HttpRequest, queryset: QuerySet[Organization]) -> None:
        for org in queryset:
            organization_approve(organization_id=org.pk)
        self.message_user(request, f"Approved {queryset.count()} organization(s).")

    @admin.action(description="Freeze selected organizations")
    def freeze(self, request: HttpRequest, queryset: QuerySet[Organization]) -> None:
        for org in queryset:
            organization_set_status(organization_id=org.pk, status=Organization.Status.FROZEN)
        self.message_user(request, f"Froze {queryset.count()} organization(s).")

    @admin.action(description="Unfreeze selected organizations")
    def unfreeze(self, request: HttpRequest, queryset: QuerySet[Organization]) -> None:
        for org in queryset.filter(status=Organization.Status.FROZEN):
            organization_set_status(organization_id=org.pk, status=Organization.Status.ACTIVE)
        self.message_user(request, "Unfroze the frozen ones among the selected.")


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "organization", "role", "created_at"]
    list_filter = ["role"]
    search_fields = ["user__username", "user__email", "organization__name"]
    autocomplete_fields = ["user", "organization"]


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ["prefix", "name", "organization", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["revoked_at"]
    search_fields = ["prefix", "name", "organization__name"]
    readonly_fields = ["organization", "prefix", "key_hash", "created_at", "last_used_at"]
    fields = ["organization", "name", "prefix", "key_hash", "created_at", "last_used_at",
              "revoked_at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # keys are issued by the organization and shown to it once


@admin.register(Account)
class AccountAdmin(ReadOnlyAdmin):
    list_display = ["id", "organization", "purpose", "balance", "floor", "updated_at"]
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
class TransferAdmin(ReadOnlyAdmin):
    list_display = ["id", "kind", "reference", "memo", "reverses", "created_at"]
    list_filter = ["kind", "created_at"]
    search_fields = ["idempotency_key", "reference", "memo"]
    date_hierarchy = "created_at"
    inlines = [EntryInline]
    actions = ["post_reversal"]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Lets the change list run actions; every field stays read-only.
        return obj is None and super(ReadOnlyAdmin, self).has_change_permission(request)

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
    list_display = ["id", "transfer", "account", "amount"]
    list_filter = ["account__purpose"]
    search_fields = ["transfer__reference", "account__organization__name"]
    list_select_related = ["transfer", "account__organization"]


@admin.register(Hold)
class HoldAdmin(ReadOnlyAdmin):
    list_display = ["id", "organization", "amount", "captured", "released", "status",
                    "reference", "expires_at"]
    list_filter = ["status"]
    search_fields = ["reference", "organization__name"]
    list_select_related = ["organization"]


# Lending


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
    list_display = ["organization", "limit", "apr_bps", "max_term_months", "updated_at"]
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
class LoanAdmin(ReadOnlyAdmin):
    list_display = ["id", "organization", "principal", "apr_bps", "term_months", "status",
                    "reference", "created_at"]
    list_filter = ["status"]
    search_fields = ["organization__name", "reference", "idempotency_key"]
    list_select_related = ["organization"]
    inlines = [InstallmentInline]
    actions = ["write_off", "collect_due_installments"]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Lets the change list run actions; every field stays read-only.
        return obj is None and super(ReadOnlyAdmin, self).has_change_permission(request)

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
    list_display = ["id", "loan", "principal", "interest", "requested_amount", "created_at"]
    search_fields = ["idempotency_key", "loan__organization__name"]


@admin_page("ledger-health/", name="ledger-health")
def ledger_health_view(request: HttpRequest) -> HttpResponse:
    violations = ledger_verify()
    context = {
        **admin.site.each_context(request),
        "title": "Ledger health",
        "violations": violations,
        "accounts": Account.objects.count(),
        "transfers": Transfer.objects.count(),
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


# Payments


class TokenPriceTierInline(admin.TabularInline):
    model = TokenPriceTier
    extra = 0


@admin.register(TokenPrice)
class TokenPriceAdmin(admin.ModelAdmin):
    list_display = ["currency", "cents_per_million", "min_amount_cents", "max_amount_cents",
                    "is_active", "updated_at"]
    inlines = [TokenPriceTierInline]


def _each(modeladmin: admin.ModelAdmin, request: HttpRequest, rows: Any, action: Any,
          done: str) -> None:
    ok = 0
    for row in rows:
        try:
            action(row)
            ok += 1
        except (DomainError, GatewayError) as exc:
            modeladmin.message_user(request, f"#{row.pk}: {exc.message}", messages.ERROR)
    if ok:
        modeladmin.message_user(request, f"{done}: {ok}.", messages.SUCCESS)


@admin.register(TopUp)
class TopUpAdmin(ReadOnlyAdmin):
    list_display = ["id", "organization", "status", "amount_cents", "currency", "tokens",
                    "refunded_cents", "payment_intent_id", "created_at"]
    list_filter = ["status", "currency"]
    search_fields = ["payment_intent_id", "charge_id", "organization__name"]
    list_select_related = ["organization"]
    actions = ["sync_from_stripe", "refund_in_full"]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return obj is None and super(ReadOnlyAdmin, self).has_change_permission(request)

    @admin.action(description="Check with Stripe and credit if paid")
    def sync_from_stripe(self, request: HttpRequest, queryset: QuerySet[TopUp]) -> None:
        _each(self, request, queryset.order_by("id"),
              lambda t: topup_fulfil(topup_id=t.pk), "Checked")

    @admin.action(description="Refund the rest of the selected top-ups (takes the tokens back)")
    def refund_in_full(self, request: HttpRequest, queryset: QuerySet[TopUp]) -> None:
        _each(self, request, queryset.order_by("id"),
              lambda t: topup_refund(topup_id=t.pk), "Refunded")


@admin.register(StripeEvent)
class StripeEventAdmin(ReadOnlyAdmin):
    list_display = ["event_id", "type", "status", "attempts", "received_at", "processed_at"]
    list_filter = ["status", "type"]
    search_fields = ["event_id"]
    actions = ["reprocess"]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return obj is None and super(ReadOnlyAdmin, self).has_change_permission(request)

    @admin.action(description="Process the selected events again")
    def reprocess(self, request: HttpRequest, queryset: QuerySet[StripeEvent]) -> None:
        _each(self, request, queryset.order_by("id"),
              lambda e: stripe_event_process(event_pk=e.pk), "Processed")


@admin.register(Dispute)
class DisputeAdmin(ReadOnlyAdmin):
    list_display = ["dispute_id", "topup", "amount_cents", "tokens", "status", "created_at"]
    list_filter = ["status"]


@admin.register(StripeCustomer)
class StripeCustomerAdmin(ReadOnlyAdmin):
    list_display = ["customer_id", "organization", "created_at"]
    search_fields = ["customer_id", "organization__name"]


@admin.register(PayoutAccount)
class PayoutAccountAdmin(admin.ModelAdmin):
    list_display = ["organization", "stripe_account_id", "auto_payout_threshold", "updated_at"]
    search_fields = ["organization__name", "stripe_account_id"]


@admin.register(Payout)
class PayoutAdmin(ReadOnlyAdmin):
    list_display = ["id", "organization", "status", "tokens", "amount_cents", "currency",
                    "destination", "failure_message", "created_at"]
    list_filter = ["status", "is_sweep"]
    search_fields = ["organization__name", "stripe_transfer_id", "destination"]
    list_select_related = ["organization"]
    actions = ["approve", "reject", "execute_now"]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return obj is None and super(ReadOnlyAdmin, self).has_change_permission(request)

    @admin.action(description="Approve the selected payouts (executed by a task)")
    def approve(self, request: HttpRequest, queryset: QuerySet[Payout]) -> None:
        user_id = getattr(request.user, "pk", None)
        _each(self, request, queryset.order_by("id"),
              lambda p: payout_approve(payout_id=p.pk, approved_by_id=user_id), "Approved")

    @admin.action(description="Reject the selected payouts (tokens back to the wallet)")
    def reject(self, request: HttpRequest, queryset: QuerySet[Payout]) -> None:
        _each(self, request, queryset.order_by("id"),
              lambda p: payout_reject(payout_id=p.pk, reason=f"Rejected by {request.user}"),
              "Rejected")

    @admin.action(description="Execute the selected approved payouts now")
    def execute_now(self, request: HttpRequest, queryset: QuerySet[Payout]) -> None:
        _each(self, request, queryset.order_by("id"),
              lambda p: payout_execute(payout_id=p.pk), "Executed")


@dashboard_panel
def payments_panel() -> tuple[str, list[tuple[str, Any]]]:
    """What needs an operator: payouts to approve, failures, open disputes."""
    return "Payments", [
        ("Payouts awaiting approval",
         Payout.objects.filter(status=Payout.Status.PENDING_APPROVAL).count()),
        ("Payouts failed", Payout.objects.filter(status=Payout.Status.FAILED).count()),
        ("Top-ups awaiting payment", TopUp.objects.filter(status=TopUp.Status.PENDING).count()),
        ("Stripe events failed to process",
         StripeEvent.objects.filter(status=StripeEvent.Status.FAILED).count()),
        ("Open disputes", Dispute.objects.filter(status=Dispute.Status.OPEN).count()),
    ]
