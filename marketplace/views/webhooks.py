"""The organization's webhook endpoints and every delivery attempt, on a page. Endpoints
are registered through the API (`POST /api/v1/webhooks/`); the page shows what was sent
and what came back."""

from django.http import HttpResponse
from django.shortcuts import render

from banking.models import WebhookDelivery, WebhookEndpoint
from marketplace.views.base import OrganizationRequest, organization_required


@organization_required
def webhook_deliveries(request: OrganizationRequest) -> HttpResponse:
    endpoints = list(WebhookEndpoint.objects.filter(organization=request.organization,
                                                    is_active=True).order_by("id"))
    deliveries = list(WebhookDelivery.objects.filter(
        message__endpoint__organization=request.organization)
        .select_related("message__event", "message__endpoint").order_by("-id")[:100])
    return render(request, "marketplace/webhooks/deliveries.html",
                  {"nav": "webhooks", "endpoints": endpoints, "deliveries": deliveries})
