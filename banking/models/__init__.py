from banking.models.audit import AuditAction, AuditEvent
from banking.models.customers import ApiKey, ApiKeyScope, Membership, Organization
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

__all__ = [
    "Account",
    "ApiKey",
    "ApiKeyScope",
    "AuditAction",
    "AuditEvent",
    "CreditLine",
    "Dispute",
    "Entry",
    "Hold",
    "Installment",
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
]
