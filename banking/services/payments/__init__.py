"""Card top-ups: price quotes, PaymentIntents, fulfilment (exactly once), refunds,
disputes and inbound Stripe webhooks, one module per topic; every public name is
importable from here.

The payment provider is reached only through `banking.gateway.get_gateway()` and never
while a row lock is held: every flow records its intent and commits, calls the gateway,
then locks again, re-checks and records the result (saleor's checkout completion).
"""

from banking.services.payments.customers import stripe_customer_ensure
from banking.services.payments.disputes import dispute_close, dispute_open
from banking.services.payments.pricing import (
    DEFAULT_PRICES,
    MILLION,
    Quote,
    cents_for_tokens,
    token_prices_seed,
    tokens_for_cents,
    tokens_for_refund,
    topup_quote,
)
from banking.services.payments.provider import (
    CardDeclined,
    PaymentProviderError,
    PaymentProviderUnavailable,
    WebhookRejected,
)
from banking.services.payments.refunds import topup_refund, topup_refund_apply
from banking.services.payments.topups import (
    topup_confirm,
    topup_create,
    topup_fulfil,
    topups_sync_pending,
)
from banking.services.payments.webhooks import (
    HANDLED_EVENT_TYPES,
    WebhookReceipt,
    stripe_event_process,
    stripe_events_retry,
    stripe_webhook_receive,
)

__all__ = [
    "DEFAULT_PRICES",
    "HANDLED_EVENT_TYPES",
    "MILLION",
    "CardDeclined",
    "PaymentProviderError",
    "PaymentProviderUnavailable",
    "Quote",
    "WebhookReceipt",
    "WebhookRejected",
    "cents_for_tokens",
    "dispute_close",
    "dispute_open",
    "stripe_customer_ensure",
    "stripe_event_process",
    "stripe_events_retry",
    "stripe_webhook_receive",
    "token_prices_seed",
    "tokens_for_cents",
    "tokens_for_refund",
    "topup_confirm",
    "topup_create",
    "topup_fulfil",
    "topup_quote",
    "topup_refund",
    "topup_refund_apply",
    "topups_sync_pending",
]
