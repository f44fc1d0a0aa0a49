"""The bank's products in the admin: read-only views of what services wrote. Money and
inventory change only through the services (deposits, blocks, accruals), never here."""

from typing import Any

from django.contrib import admin
from django.db.models import Sum
from django.http import HttpRequest

from banking.admin.money_columns import tokens_column
from core.admin_site import dashboard_panel
from core.read_only_admin import ReadOnlyAdmin
from marketplace.models import (
    Advance,
    Block,
    CapacityDeposit,
    InventorySlot,
    LowBalanceAlert,
    PriceHistory,
    SellBack,
    SlaCredit,
    SlaMultiple,
    SlaPenalty,
    YieldAccrual,
)


@admin.register(CapacityDeposit)
class CapacityDepositAdmin(ReadOnlyAdmin):
    list_display = ["id", "provider", "node", "gpu_class", "gpu_count", "start", "end",
                    tokens_column("rate_per_gpu_hour"), tokens_column("total_yield"),
                    tokens_column("earned"), tokens_column("missed_yield"), "status"]
    list_filter = ["status", "gpu_class"]
    search_fields = ["provider__name", "node__name"]
    list_select_related = ["provider", "node", "gpu_class"]


@admin.register(YieldAccrual)
class YieldAccrualAdmin(ReadOnlyAdmin):
    list_display = ["deposit", "interval_start", "online", "coverage", tokens_column("amount"),
                    tokens_column("repaid_advance")]
    list_filter = ["online"]


@admin.register(Advance)
class AdvanceAdmin(ReadOnlyAdmin):
    list_display = ["id", "provider", tokens_column("amount"), tokens_column("outstanding"),
                    "status", "created_at"]
    list_filter = ["status"]
    list_select_related = ["provider"]


@admin.register(InventorySlot)
class InventorySlotAdmin(ReadOnlyAdmin):
    list_display = ["gpu_class", "slot_start", "capacity", "booked"]
    list_filter = ["gpu_class"]
    date_hierarchy = "slot_start"


@admin.register(Block)
class BlockAdmin(ReadOnlyAdmin):
    list_display = ["pk", "organization", "gpu_class", "gpu_count", "start", "end",
                    tokens_column("price"), "payment", "loan", "sold_back"]
    list_filter = ["payment", "gpu_class"]
    search_fields = ["organization__name"]
    list_select_related = ["organization", "gpu_class", "loan"]


@admin.register(SellBack)
class SellBackAdmin(ReadOnlyAdmin):
    list_display = ["id", "block", "gpu_count", "start", "end", tokens_column("credited"),
                    "created_at"]


@admin.register(SlaCredit)
class SlaCreditAdmin(ReadOnlyAdmin):
    list_display = ["block", "interval_start", "undelivered_gpus", tokens_column("amount")]


@admin.register(PriceHistory)
class PriceHistoryAdmin(ReadOnlyAdmin):
    list_display = ["gpu_class", tokens_column("on_demand_rate"), "utilization_permille",
                    "created_at"]
    list_filter = ["gpu_class"]


@admin.register(LowBalanceAlert)
class LowBalanceAlertAdmin(ReadOnlyAdmin):
    list_display = ["organization", tokens_column("threshold"), "armed", "last_sent_at"]


@dashboard_panel
def bank_panel() -> tuple[str, list[tuple[str, Any]]]:
    deposits = CapacityDeposit.objects.filter(status=CapacityDeposit.Status.ACTIVE)
    return "Computing bank", [
        ("Active deposits", deposits.count()),
        ("Deposited GPUs (active)", deposits.aggregate(s=Sum("gpu_count"))["s"] or 0),
        ("Yield earned (all time)", CapacityDeposit.objects.aggregate(s=Sum("earned"))["s"] or 0),
        ("Advances outstanding", Advance.objects.filter(status=Advance.Status.OPEN)
         .aggregate(s=Sum("outstanding"))["s"] or 0),
        ("Blocks sold", Block.objects.count()),
        ("SLA credits paid", SlaCredit.objects.aggregate(s=Sum("amount"))["s"] or 0),
    ]


@admin.register(SlaMultiple)
class SlaMultipleAdmin(admin.ModelAdmin):
    """Setting a new multiple adds a row; rows are never changed, so they are the history."""

    list_display = ["created_at", "multiple_bps", "note"]
    fields = ["multiple_bps", "note"]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(SlaPenalty)
class SlaPenaltyAdmin(ReadOnlyAdmin):
    list_display = ["id", "provider", "deposit", "credit", tokens_column("amount"),
                    tokens_column("outstanding"), "status"]
    list_filter = ["status"]
    list_select_related = ["provider"]
