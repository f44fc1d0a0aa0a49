"""The payment gateway boundary: how Suanli reaches a card processor.

Callers ask :func:`get_gateway` for a :class:`PaymentGateway` and exchange plain
dataclasses with it (see :mod:`banking.gateway.interface`). With
``settings.STRIPE_SECRET_KEY`` set it is a :class:`~banking.gateway.stripe_adapter.StripeGateway`
(``settings.STRIPE_API_BASE`` empty means the real Stripe, else e.g. localstripe);
otherwise one process-wide :class:`~banking.gateway.fake.FakeGateway`.
"""

from __future__ import annotations

import threading

from banking.gateway.interface import (
    CardDeclined,
    ChargeInfo,
    GatewayError,
    PaymentGateway,
    PaymentIntentInfo,
    PayoutAccountInfo,
    PayoutTransferInfo,
    RefundInfo,
    SignatureVerificationError,
    WebhookEvent,
)

__all__ = [
    "CardDeclined",
    "ChargeInfo",
    "GatewayError",
    "PaymentGateway",
    "PaymentIntentInfo",
    "PayoutAccountInfo",
    "PayoutTransferInfo",
    "RefundInfo",
    "SignatureVerificationError",
    "WebhookEvent",
    "get_gateway",
    "reset_gateway",
    "set_gateway_for_tests",
]

_lock = threading.Lock()
_override: PaymentGateway | None = None
_cached: PaymentGateway | None = None
_cached_for: tuple[str, str, str] | None = None


def get_gateway() -> PaymentGateway:
    """The gateway configured by settings (or the one a test installed)."""
    global _cached, _cached_for
    if _override is not None:
        return _override
    from django.conf import settings

    secret_key = str(getattr(settings, "STRIPE_SECRET_KEY", "") or "")
    webhook_secret = str(getattr(settings, "STRIPE_WEBHOOK_SECRET", "") or "")
    api_base = str(getattr(settings, "STRIPE_API_BASE", "") or "")
    config = (secret_key, webhook_secret, api_base)
    with _lock:
        if _cached is None or _cached_for != config:
            if secret_key:
                from banking.gateway.stripe_adapter import StripeGateway

                _cached = StripeGateway(secret_key, webhook_secret, api_base or None)
            else:
                from banking.gateway.fake import FAKE_WEBHOOK_SECRET, FakeGateway

                _cached = FakeGateway(webhook_secret=webhook_secret or FAKE_WEBHOOK_SECRET)
            _cached_for = config
        return _cached


def set_gateway_for_tests(gateway: PaymentGateway | None) -> None:
    """Make :func:`get_gateway` return ``gateway`` (``None`` removes the override)."""
    global _override
    with _lock:
        _override = gateway


def reset_gateway() -> None:
    """Forget the override and the cached gateway (the next call reads settings again)."""
    global _override, _cached, _cached_for
    with _lock:
        _override = None
        _cached = None
        _cached_for = None
