"""Inbound Stripe webhooks: verified, stored once, processed after commit."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from banking import enqueue
from banking.error_codes import PaymentErrorCode
from banking.gateway import SignatureVerificationError, get_gateway
from banking.models import StripeEvent, TopUp
from banking.services.payments.disputes import dispute_close, dispute_open
from banking.services.payments.provider import WebhookRejected
from banking.services.payments.refunds import topup_refund_apply
from banking.services.payments.topups import topup_fulfil
from core.errors import NotFound

logger = logging.getLogger("suanli.payments")


HANDLED_EVENT_TYPES = frozenset(
    {
        "payment_intent.succeeded",
        "payment_intent.payment_failed",
        "payment_intent.canceled",
        "charge.refunded",
        "charge.dispute.created",
        "charge.dispute.closed",
    }
)


@dataclass(frozen=True)
class WebhookReceipt:
    event_id: str
    type: str
    duplicate: bool
    handled: bool


def _payment_intent_id_of(type_: str, obj: dict[str, Any]) -> str | None:
    value = obj.get("id") if type_.startswith("payment_intent.") else obj.get("payment_intent")
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, str) and value else None


def _topup_of_event(type_: str, obj: dict[str, Any]) -> TopUp | None:
    pi_id = _payment_intent_id_of(type_, obj)
    if pi_id is not None:
        found = TopUp.objects.filter(payment_intent_id=pi_id).first()
        if found is not None:
            return found
    if type_.startswith("payment_intent."):
        # The webhook can beat the recording of the PaymentIntent on its top-up.
        metadata = obj.get("metadata")
        raw = metadata.get("topup_id") if isinstance(metadata, dict) else None
        if isinstance(raw, str) and raw.isdigit():
            return TopUp.objects.filter(pk=int(raw), payment_intent_id__isnull=True).first()
        return None
    charge = obj.get("charge") if type_.startswith("charge.dispute.") else obj.get("id")
    if isinstance(charge, str) and charge:
        return TopUp.objects.filter(charge_id=charge).first()
    return None


def stripe_webhook_receive(*, payload: bytes, signature_header: str) -> WebhookReceipt:
    """Verify, store once under the event id, and queue processing after commit. A
    replayed event changes nothing. Raises `WebhookRejected` (logged) on a bad signature,
    a malformed event or an event about a payment Suanli does not know."""
    try:
        event = get_gateway().webhook_event_parse(payload, signature_header)
    except SignatureVerificationError as exc:
        logger.warning("stripe webhook refused: bad signature (%s)", exc)
        raise WebhookRejected(f"Signature verification failed: {exc}") from exc
    except ValueError as exc:
        logger.warning("stripe webhook refused: malformed event (%s)", exc)
        raise WebhookRejected(str(exc), code=PaymentErrorCode.MALFORMED_EVENT) from exc
    handled = event.type in HANDLED_EVENT_TYPES
    if handled and _topup_of_event(event.type, event.data_object) is None:
        logger.warning(
            "stripe webhook refused: %s %s is about an unknown payment (%s)",
            event.type, event.id, _payment_intent_id_of(event.type, event.data_object),
        )
        raise WebhookRejected(
            "The event is about a payment this service does not know.",
            code=PaymentErrorCode.UNKNOWN_PAYMENT,
        )
    with transaction.atomic():
        stored, created = StripeEvent.objects.get_or_create(
            event_id=event.id,
            defaults={
                "type": event.type,
                "payload": {
                    "id": event.id,
                    "type": event.type,
                    "created": event.created,
                    "livemode": event.livemode,
                    "data": {"object": event.data_object},
                },
                "status": StripeEvent.Status.RECEIVED if handled else StripeEvent.Status.IGNORED,
            },
        )
        if created and handled:
            # The event is stored, so a broker outage must not fail the webhook:
            # `stripe_events_retry` processes events left unprocessed.
            enqueue.stripe_event_process(stored.pk)
    if not created:
        logger.info("stripe webhook %s replayed: nothing to do", event.id)
    return WebhookReceipt(event_id=event.id, type=event.type, duplicate=not created,
                          handled=handled)


def stripe_event_process(*, event_pk: int) -> StripeEvent:
    """Apply one stored event. Safe to run twice: every step is idempotent."""
    event = StripeEvent.objects.filter(pk=event_pk).first()
    if event is None:
        raise NotFound(f"Stripe event {event_pk} is not stored.")
    if event.status in (StripeEvent.Status.PROCESSED, StripeEvent.Status.IGNORED):
        return event
    StripeEvent.objects.filter(pk=event_pk).update(attempts=F("attempts") + 1)
    try:
        _dispatch(event.type, event.payload["data"]["object"])
    except Exception as exc:
        StripeEvent.objects.filter(pk=event_pk).update(
            status=StripeEvent.Status.FAILED, last_error=repr(exc)[:2000]
        )
        raise
    StripeEvent.objects.filter(pk=event_pk).update(
        status=StripeEvent.Status.PROCESSED, processed_at=timezone.now(), last_error=""
    )
    event.refresh_from_db()
    return event


def stripe_events_retry(
    *, older_than_s: int = 300, max_attempts: int = 10, limit: int = 200
) -> int:
    """Process stored events that were never processed (lost task) or failed, oldest
    first. Returns how many are processed now."""
    cutoff = timezone.now() - timedelta(seconds=older_than_s)
    ids = list(
        StripeEvent.objects.filter(
            status__in=[StripeEvent.Status.RECEIVED, StripeEvent.Status.FAILED],
            received_at__lte=cutoff,
            attempts__lt=max_attempts,
        )
        .order_by("id")
        .values_list("id", flat=True)[:limit]
    )
    done = 0
    for event_pk in ids:
        try:
            stripe_event_process(event_pk=event_pk)
            done += 1
        except Exception as exc:  # recorded on the event; the next run tries again
            logger.warning("stripe event %s still fails: %r", event_pk, exc)
    return done


def _dispatch(type_: str, obj: dict[str, Any]) -> None:
    topup = _topup_of_event(type_, obj)
    if topup is None:
        raise NotFound(f"No top-up for this {type_} event.")
    if type_.startswith("payment_intent."):
        topup_fulfil(topup_id=topup.pk, payment_intent_id=_payment_intent_id_of(type_, obj))
    elif type_ == "charge.refunded":
        topup_fulfil(topup_id=topup.pk)
        topup_refund_apply(topup_id=topup.pk, refunded_cents_total=int(obj["amount_refunded"]))
    elif type_ == "charge.dispute.created":
        topup_fulfil(topup_id=topup.pk)
        dispute_open(dispute_id=str(obj["id"]), topup_id=topup.pk,
                     amount_cents=int(obj["amount"]), reason=str(obj.get("reason") or ""))
    elif type_ == "charge.dispute.closed":
        status = obj.get("status")
        if status in ("won", "lost"):
            dispute_close(dispute_id=str(obj["id"]), won=status == "won")
