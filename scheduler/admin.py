from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from banking.admin.money_columns import tokens_column
from core.admin_site import dashboard_panel
from core.read_only_admin import ReadOnlyAdmin
from scheduler.models import (
    Assignment,
    AssignmentLog,
    GpuClass,
    Job,
    JobOutput,
    LogChunk,
    Node,
    NodeFault,
    NodeHeartbeat,
    PlatformFee,
    Reservation,
    UsageRecord,
)
from scheduler.selectors import jobs_by_state
from scheduler.services.nodes import node_approve, node_drain
from scheduler.services.settlement import usage_settlement_resume


@admin.register(GpuClass)
class GpuClassAdmin(admin.ModelAdmin):
    list_display = ["name", "vendor", "vram_gb", tokens_column("on_demand_rate"),
                    tokens_column("block_rate"), tokens_column("deposit_rate"),
                    tokens_column("min_rate"), tokens_column("max_rate"), "updated_at"]
    search_fields = ["name", "vendor"]


@admin.register(Node)
class NodeAdmin(admin.ModelAdmin):
    # `flag`: set by the services when they take a node out of service for an operator
    # to look at (repeated implausible usage, scheduler.services.plausibility).
    list_display = ["name", "provider", "gpu_class", "gpu_count", "free_gpus", "region",
                    "status", "flag", "mode", "isolation", "container_runtime", "network",
                    "is_approved", "reliability", "last_heartbeat_at"]
    list_filter = ["flag", "status", "mode", "isolation", "network", "is_approved",
                   "gpu_class", "region"]
    search_fields = ["name", "provider__name", "region"]
    list_select_related = ["provider", "gpu_class"]
    readonly_fields = ["free_gpus", "token_prefix", "token_hash", "last_heartbeat_at",
                       "utilization", "agent_version", "status", "is_approved", "isolation",
                       "container_runtime", "runtime_version", "network", "host_execution",
                       "default_image", "flag", "flagged_at"]
    actions = ["approve", "drain"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # nodes are registered by providers and get their token then

    @admin.action(description="Approve selected nodes")
    def approve(self, request: HttpRequest, queryset: QuerySet[Node]) -> None:
        for node in queryset:
            node_approve(node_id=node.pk)
        self.message_user(request, f"Approved {queryset.count()} node(s).", messages.SUCCESS)

    @admin.action(description="Drain selected nodes (no new work)")
    def drain(self, request: HttpRequest, queryset: QuerySet[Node]) -> None:
        for node in queryset:
            node_drain(node_id=node.pk)
        self.message_user(request, f"Draining {queryset.count()} node(s).", messages.SUCCESS)


class AssignmentInline(admin.TabularInline):
    model = Assignment
    extra = 0
    fields = readonly_fields = ("node", "state", "gpu_count", "gpu_seconds", "charged", "fee",
                                "last_seq", "lease_expires_at", "reason")
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ["id", "organization", "gpu_class", "gpu_count", "state", "priority", "attempts",
                    "node", tokens_column("rate_per_gpu_hour"), tokens_column("hold_amount"),
                    "created_at"]
    list_filter = ["state", "gpu_class"]
    search_fields = ["organization__name", "id"]
    list_select_related = ["organization", "gpu_class", "node"]
    inlines = [AssignmentInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Reservation)
class ReservationAdmin(admin.ModelAdmin):
    list_display = ["id", "organization", "gpu_class", "gpu_count", "start", "end", "status"]
    list_filter = ["status", "gpu_class"]
    search_fields = ["organization__name", "reference"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(Assignment)
class AssignmentAdmin(admin.ModelAdmin):
    # Parked: usage settlement could not settle it and went on without it
    # (scheduler.services.settlement); the reason says what to mend.
    list_display = ["id", "job", "node", "gpu_count", "state", "gpu_seconds",
                    tokens_column("charged"), tokens_column("fee"), "lease_expires_at",
                    "settlement_parked_at", "created_at"]
    list_filter = ["state", ("settlement_parked_at", admin.EmptyFieldListFilter)]
    search_fields = ["job__id", "node__name"]
    list_select_related = ["job", "node"]
    actions = ["settle_again"]

    @admin.action(description="Settle parked usage again (once its cause is mended)")
    def settle_again(self, request: HttpRequest, queryset: QuerySet[Assignment]) -> None:
        resumed = usage_settlement_resume(assignment_ids=queryset.values_list("id", flat=True))
        self.message_user(request, f"{resumed} parked assignment(s) go back to settlement.",
                          messages.SUCCESS)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(NodeHeartbeat)
class NodeHeartbeatAdmin(admin.ModelAdmin):
    list_display = ["node", "at", "free_gpus", "busy_gpus"]
    search_fields = ["node__name"]
    date_hierarchy = "at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(UsageRecord)
class UsageRecordAdmin(ReadOnlyAdmin):
    list_display = ["assignment", "seq", "gpu_seconds", "ai_tokens", "created_at"]
    search_fields = ["assignment__id"]


@dashboard_panel
def jobs_panel() -> tuple[str, list[tuple[str, Any]]]:
    counts = jobs_by_state()
    return "Jobs by state", [(state.label, counts.get(state.value, 0)) for state in Job.State]


@admin.register(AssignmentLog)
class AssignmentLogAdmin(ReadOnlyAdmin):
    """The index of a run's log; its bytes are in object storage."""

    list_display = ["assignment", "job", "attempt", "size", "updated_at", "purged_at"]
    list_select_related = ["job"]
    search_fields = ["job__id"]


@admin.register(LogChunk)
class LogChunkAdmin(ReadOnlyAdmin):
    list_display = ["id", "log", "offset", "length", "storage_name", "created_at"]


@admin.register(JobOutput)
class JobOutputAdmin(ReadOnlyAdmin):
    list_display = ["id", "job", "name", "size", "state", "uploaded_at", "purged_at"]
    list_filter = ["state"]
    list_select_related = ["job"]


@admin.register(PlatformFee)
class PlatformFeeAdmin(admin.ModelAdmin):
    """A new fee is a new row (globally, or for one GPU class); rows are never changed, so
    the list is the fee's history. Jobs lock the fee in force when they are submitted."""

    list_display = ["created_at", "gpu_class", "fee_bps"]
    list_filter = ["gpu_class"]
    fields = ["gpu_class", "fee_bps"]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(NodeFault)
class NodeFaultAdmin(admin.ModelAdmin):
    """The evidence reliability falls with; written by the services only."""

    list_display = ["at", "node", "kind"]
    list_filter = ["kind"]
    list_select_related = ["node"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
