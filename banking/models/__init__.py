from banking.models.customers import ApiKey, Membership, Organization
from banking.models.ledger import Account, Entry, Hold, Transfer
from banking.models.lending import CreditLine, Installment, Loan, LoanPrepayment

__all__ = [
    "Account",
    "ApiKey",
    "CreditLine",
    "Entry",
    "Hold",
    "Installment",
    "Loan",
    "LoanPrepayment",
    "Membership",
    "Organization",
    "Transfer",
]
