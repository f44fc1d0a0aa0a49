"""The payment provider's failures as domain errors a caller can act on, and the one
wrapper every provider call goes through."""

from __future__ import annotations

import logging
from typing import Any

from banking.error_codes import PaymentErrorCode
from banking.gateway import GatewayError
from core.errors import DomainError

logger = logging.getLogger("suanli.payments")


class CardDeclined(DomainError):
    code = PaymentErrorCode.CARD_DECLINED
    status = 402


class PaymentProviderUnavailable(DomainError):
    """The provider could not be reached; repeating the request (same Idempotency-Key)
    is safe."""

    code = PaymentErrorCode.PAYMENT_PROVIDER_UNAVAILABLE
    status = 503


class PaymentProviderError(DomainError):
    code = PaymentErrorCode.PAYMENT_PROVIDER_ERROR
    status = 400


class WebhookRejected(DomainError):
    code = PaymentErrorCode.INVALID_SIGNATURE
    status = 400


def gateway_call(call: Any) -> Any:
    """Run a provider call; turn its failure into a domain error a caller can act on."""
    try:
        return call()
    except GatewayError as exc:
        if exc.retryable:
            logger.warning("payment provider unavailable: %r", exc)
            raise PaymentProviderUnavailable(
                "The payment provider could not be reached; try again (repeating the "
                "request with the same Idempotency-Key is safe)."
            ) from exc
        logger.warning("payment provider refused a call: %r", exc)
        raise PaymentProviderError(exc.message, fields={"provider_code": exc.code}) from exc
