"""Token prices, top-ups, Stripe events, disputes, payouts and their dashboard panel."""

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from banking.admin.money_columns import tokens_column
from banking.gateway import GatewayError
from banking.models import (
    AutoTopUp,
    Dispute,
    Payout,
    PayoutAccount,
    StripeCustomer,
    StripeEvent,
    TokenPrice,
    TokenPriceTier,
    TopUp,
)
from banking.services.payments import stripe_event_process, topup_fulfil, topup_refund
from banking.services.payouts import payout_approve, payout_execute, payout_reject
from core.admin_site import dashboard_panel
from core.errors import DomainError
from core.read_only_admin import ActionsOnlyAdmin, ReadOnlyAdmin


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
class TopUpAdmin(ActionsOnlyAdmin):
    list_display = ["id", "organization", "status", "amount_cents", "currency",
                    tokens_column("tokens"), "refunded_cents", "payment_intent_id", "created_at"]
    list_filter = ["status", "currency"]
    search_fields = ["payment_intent_id", "charge_id", "organization__name"]
    list_select_related = ["organization"]
    actions = ["sync_from_stripe", "refund_in_full"]

    @admin.action(description="Check with Stripe and credit if paid")
    def sync_from_stripe(self, request: HttpRequest, queryset: QuerySet[TopUp]) -> None:
        _each(self, request, queryset.order_by("id"),
              lambda t: topup_fulfil(topup_id=t.pk), "Checked")

    @admin.action(description="Refund the rest of the selected top-ups (takes the tokens back)")
    def refund_in_full(self, request: HttpRequest, queryset: QuerySet[TopUp]) -> None:
        _each(self, request, queryset.order_by("id"),
              lambda t: topup_refund(topup_id=t.pk), "Refunded")


@admin.register(StripeEvent)
class StripeEventAdmin(ActionsOnlyAdmin):
    list_display = ["event_id", "type", "status", "attempts", "received_at", "processed_at"]
    list_filter = ["status", "type"]
    search_fields = ["event_id"]
    actions = ["reprocess"]

    @admin.action(description="Process the selected events again")
    def reprocess(self, request: HttpRequest, queryset: QuerySet[StripeEvent]) -> None:
        _each(self, request, queryset.order_by("id"),
              lambda e: stripe_event_process(event_pk=e.pk), "Processed")


@admin.register(Dispute)
class DisputeAdmin(ReadOnlyAdmin):
    list_display = ["dispute_id", "topup", "amount_cents", tokens_column("tokens"), "status",
                    "created_at"]
    list_filter = ["status"]


@admin.register(StripeCustomer)
class StripeCustomerAdmin(ReadOnlyAdmin):
    list_display = ["customer_id", "organization", "created_at"]
    search_fields = ["customer_id", "organization__name"]


@admin.register(PayoutAccount)
class PayoutAccountAdmin(admin.ModelAdmin):
    list_display = ["organization", "stripe_account_id", tokens_column("auto_payout_threshold"),
                    "updated_at"]
    search_fields = ["organization__name", "stripe_account_id"]


@admin.register(Payout)
class PayoutAdmin(ActionsOnlyAdmin):
    list_display = ["id", "organization", "status", tokens_column("tokens"), "amount_cents",
                    "currency", "destination", "failure_message", "created_at"]
    list_filter = ["status", "is_sweep"]
    search_fields = ["organization__name", "stripe_transfer_id", "destination"]
    list_select_related = ["organization"]
    actions = ["approve", "reject", "execute_now"]

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


@admin.register(AutoTopUp)
class AutoTopUpAdmin(ReadOnlyAdmin):
    """Organizations' auto top-up settings, set by their owners on the wallet page; shown
    here so an operator can see why one paused."""

    list_display = ["organization", "enabled", tokens_column("threshold"), "amount_cents",
                    "currency", "paused_at", "paused_reason", "last_attempt_at"]
    list_filter = ["enabled"]
    list_select_related = ["organization"]
    search_fields = ["organization__name"]
