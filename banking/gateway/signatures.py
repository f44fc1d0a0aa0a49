"""The ``Stripe-Signature`` scheme, shared by every gateway and by tests.

Header: ``t=<unix ts>,v1=<hex HMAC-SHA256(secret, f"{t}.{payload}")>`` (several ``v1``
entries are allowed, e.g. during secret rotation). A signature is accepted when one
``v1`` matches and the timestamp is no more than ``tolerance`` seconds old.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time

from banking.gateway.interface import SignatureVerificationError, WebhookEvent

DEFAULT_TOLERANCE_SECONDS = 300


def compute_signature(payload: bytes, *, secret: str, timestamp: int) -> str:
    signed = str(timestamp).encode("ascii") + b"." + payload
    return hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()


def sign_payload(payload: bytes, *, secret: str, timestamp: int | None = None) -> str:
    """Return a ``Stripe-Signature`` header value for ``payload``."""
    ts = int(time.time()) if timestamp is None else timestamp
    return f"t={ts},v1={compute_signature(payload, secret=secret, timestamp=ts)}"


def verify_signature(
    payload: bytes,
    signature_header: str,
    *,
    secret: str,
    tolerance: int = DEFAULT_TOLERANCE_SECONDS,
    now: int | None = None,
) -> int:
    """Check ``signature_header`` against ``payload``; return its timestamp.

    Raises :class:`SignatureVerificationError` when the header is malformed, no ``v1``
    signature matches, or the timestamp is more than ``tolerance`` seconds old.
    """
    if not secret:
        raise SignatureVerificationError("No webhook secret is configured.")
    timestamp: int | None = None
    candidates: list[str] = []
    for item in signature_header.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep:
            continue
        if key == "t":
            try:
                timestamp = int(value)
            except ValueError:
                raise SignatureVerificationError(
                    "Malformed timestamp in signature header."
                ) from None
        elif key == "v1":
            candidates.append(value)
    if timestamp is None:
        raise SignatureVerificationError("No timestamp in signature header.")
    if not candidates:
        raise SignatureVerificationError("No v1 signature in signature header.")
    expected = compute_signature(payload, secret=secret, timestamp=timestamp)
    if not any(hmac.compare_digest(expected, candidate) for candidate in candidates):
        raise SignatureVerificationError("No signature matches the payload.")
    current = int(time.time()) if now is None else now
    if tolerance > 0 and timestamp < current - tolerance:
        raise SignatureVerificationError("Timestamp outside the tolerance zone.")
    return timestamp


def webhook_event_parse_signed(
    payload: bytes,
    signature_header: str,
    *,
    secret: str,
    tolerance: int = DEFAULT_TOLERANCE_SECONDS,
) -> WebhookEvent:
    """Verify then parse a webhook body into a :class:`WebhookEvent`."""
    verify_signature(payload, signature_header, secret=secret, tolerance=tolerance)
    try:
        body = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"Webhook payload is not JSON: {exc}") from exc
    if not isinstance(body, dict) or not isinstance(body.get("data"), dict):
        raise ValueError("Webhook payload is not an event.")
    data_object = body["data"].get("object")
    if not isinstance(body.get("id"), str) or not isinstance(body.get("type"), str):
        raise ValueError("Webhook event has no id or type.")
    if not isinstance(data_object, dict):
        raise ValueError("Webhook event has no data object.")
    return WebhookEvent(
        id=body["id"],
        type=body["type"],
        created=int(body.get("created") or 0),
        data_object=data_object,
        livemode=bool(body.get("livemode", False)),
    )
