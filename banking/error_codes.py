"""Banking's error codes: the ledger's, lending's and payments'."""

from enum import StrEnum


class BankingErrorCode(StrEnum):
    INSUFFICIENT_FUNDS = "insufficient_funds"
    IDEMPOTENCY_CONFLICT = "idempotency_conflict"
    UNBALANCED_TRANSFER = "unbalanced_transfer"
    HOLD_EXCEEDED = "hold_exceeded"
    HOLD_CLOSED = "hold_closed"
    ALREADY_REVERSED = "already_reversed"
    REVERSAL_OF_REVERSAL = "reversal_of_reversal"
    ORGANIZATION_FROZEN = "organization_frozen"
    ORGANIZATION_DELINQUENT = "organization_delinquent"
    ORGANIZATION_OWES = "organization_owes"
    NOT_REVERSIBLE = "not_reversible"
    ORGANIZATION_NOT_APPROVED = "organization_not_approved"
    NOT_PAYABLE = "not_payable"


class LendingErrorCode(StrEnum):
    NO_CREDIT_LINE = "no_credit_line"
    TERM_EXCEEDS_CREDIT_LINE = "term_exceeds_credit_line"
    CREDIT_LIMIT_EXCEEDED = "credit_limit_exceeded"
    CREDIT_LIMIT_BELOW_USAGE = "credit_limit_below_usage"
    LOAN_CLOSED = "loan_closed"


class PaymentErrorCode(StrEnum):
    CARD_DECLINED = "card_declined"
    CURRENCY_NOT_SUPPORTED = "currency_not_supported"
    TOPUP_BELOW_MINIMUM = "topup_below_minimum"
    TOPUP_ABOVE_MAXIMUM = "topup_above_maximum"
    PAYMENT_PROVIDER_ERROR = "payment_provider_error"
    PAYMENT_PROVIDER_UNAVAILABLE = "payment_provider_unavailable"
    PAYMENT_MISMATCH = "payment_mismatch"
    INVALID_SIGNATURE = "invalid_signature"
    MALFORMED_EVENT = "malformed_event"
    UNKNOWN_PAYMENT = "unknown_payment"
    TOPUP_NOT_REFUNDABLE = "topup_not_refundable"
    PAYOUT_BELOW_MINIMUM = "payout_below_minimum"
    PAYOUT_ACCOUNT_MISSING = "payout_account_missing"
    NOT_A_PROVIDER = "not_a_provider"
    PAYOUT_ACCOUNT_UNVERIFIED = "payout_account_unverified"
    PAYOUT_ACCOUNT_ON_HOLD = "payout_account_on_hold"


class WebhookErrorCode(StrEnum):
    WEBHOOK_URL_REFUSED = "webhook_url_refused"
    WEBHOOK_EVENT_UNKNOWN = "webhook_event_unknown"
    WEBHOOK_LIMIT = "webhook_limit"


class AccessErrorCode(StrEnum):
    """Who may do what: roles of members, scopes and expiry of API keys, the account's
    own state (verified email, second factor)."""

    FORBIDDEN_ROLE = "forbidden_role"
    INSUFFICIENT_SCOPE = "insufficient_scope"
    KEY_EXPIRED = "key_expired"
    EMAIL_UNVERIFIED = "email_unverified"
    MFA_REQUIRED = "mfa_required"
