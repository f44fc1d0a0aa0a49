from banking.models.auto_topup import AutoTopUp
from banking.models.customers import ApiKey, Membership, Organization
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
    "AutoTopUp",
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
