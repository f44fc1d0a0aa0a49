"""POST /webhooks/stripe/: verify, store once, answer at once; a task does the work."""

import logging

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from banking.services.payments import WebhookRejected, stripe_webhook_receive
from core.api_errors import error_body

logger = logging.getLogger("suanli.payments")


@csrf_exempt
@require_POST
def stripe_webhook(request: HttpRequest) -> JsonResponse:
    try:
        receipt = stripe_webhook_receive(
            payload=request.body,
            signature_header=request.headers.get("Stripe-Signature", ""),
        )
    except WebhookRejected as exc:
        logger.warning(
            "stripe webhook from %s answered %s %s (%d bytes)",
            request.META.get("REMOTE_ADDR", "?"), exc.status, exc.code, len(request.body),
        )
        return JsonResponse(error_body(exc.code, exc.message), status=exc.status)
    return JsonResponse(
        {
            "received": True,
            "event_id": receipt.event_id,
            "duplicate": receipt.duplicate,
            "handled": receipt.handled,
        }
    )
