from banking.models.customers import ApiKey, Membership, Organization
from banking.models.ledger import Account, Entry, Hold, Transfer

__all__ = [
    "Account",
    "ApiKey",
    "Entry",
    "Hold",
    "Membership",
    "Organization",
    "Transfer",
]
