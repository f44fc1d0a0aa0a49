from banking.models.audit import AuditAction, AuditEvent
from banking.models.auto_topup import AutoTopUp
from banking.models.checks import LedgerCheckpoint, LedgerCheckpointBalance
from banking.models.customers import ApiKey, ApiKeyScope, Invitation, Membership, Organization
from banking.models.ledger import Account, Entry, Hold, Transfer
from banking.models.lending import CreditLine, Installment, Loan, LoanPrepayment
from banking.models.payments import (
    Dispute,
    Payout,
    PayoutAccount,
    StripeCustomer,
    StripeEvent,
    TokenPrice,
    TokenPriceTier,
    TopUp,
)
from banking.models.webhooks import (
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
    WebhookEventType,
    WebhookMessage,
)

__all__ = [
    "Account",
    "ApiKey",
    "ApiKeyScope",
    "AuditAction",
    "AuditEvent",
    "AutoTopUp",
    "CreditLine",
    "Dispute",
    "Entry",
    "Hold",
    "Installment",
    "Invitation",
    "LedgerCheckpoint",
    "LedgerCheckpointBalance",
    "Loan",
    "LoanPrepayment",
    "Membership",
    "Organization",
    "Payout",
    "PayoutAccount",
    "StripeCustomer",
    "StripeEvent",
    "TokenPrice",
    "TokenPriceTier",
    "TopUp",
    "Transfer",
    "WebhookDelivery",
    "WebhookEndpoint",
    "WebhookEvent",
    "WebhookEventType",
    "WebhookMessage",
]
