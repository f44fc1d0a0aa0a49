"""The audit trail in the admin: read only (the database refuses changes anyway), with
a CSV export of the selected rows or of a filtered list."""

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest, StreamingHttpResponse

from banking.exports import audit_csv_response
from banking.models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ["created_at", "action", "organization_id", "actor", "target",
                    "client_address", "request_id"]
    list_filter = ["action"]
    search_fields = ["actor", "target", "request_id", "=organization_id"]
    date_hierarchy = "created_at"
    actions = ["export_csv"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.action(description="Export selected rows as CSV")
    def export_csv(
        self, request: HttpRequest, queryset: QuerySet[AuditEvent]
    ) -> StreamingHttpResponse:
        return audit_csv_response(queryset.order_by("id"))
