"""Organizations' outbound webhooks: endpoints, the events they were sent and every
delivery attempt, for operators to answer "did our webhook fire?" (read-only)."""

from django.contrib import admin

from banking.models.webhooks import (
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
    WebhookMessage,
)
from core.read_only_admin import ReadOnlyAdmin


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(ReadOnlyAdmin):
    list_display = ["id", "organization", "url", "is_active", "created_at"]
    list_filter = ["is_active"]
    search_fields = ["url", "organization__name"]
    list_select_related = ["organization"]
    exclude = ["secret"]


@admin.register(WebhookEvent)
class WebhookEventAdmin(ReadOnlyAdmin):
    list_display = ["id", "organization", "type", "key", "created_at"]
    list_filter = ["type"]
    search_fields = ["key", "organization__name"]
    list_select_related = ["organization"]


@admin.register(WebhookMessage)
class WebhookMessageAdmin(ReadOnlyAdmin):
    list_display = ["id", "endpoint", "event", "attempts", "delivered_at", "given_up_at"]
    list_select_related = ["endpoint", "event"]


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdmin):
    list_display = ["id", "message", "attempt", "status_code", "succeeded", "duration_ms",
                    "created_at"]
    list_filter = ["succeeded"]
    list_select_related = ["message"]
