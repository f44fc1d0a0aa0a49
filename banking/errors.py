"""Domain errors. Services raise these; the API's one exception handler renders them as
`{"error": {"code", "message", "fields"}}`. Other apps subclass `DomainError` with codes
of their own."""

from enum import StrEnum
from typing import Any


class ErrorCode(StrEnum):
    INVALID = "invalid"
    NOT_FOUND = "not_found"
    INSUFFICIENT_FUNDS = "insufficient_funds"
    IDEMPOTENCY_CONFLICT = "idempotency_conflict"
    UNBALANCED_TRANSFER = "unbalanced_transfer"
    HOLD_EXCEEDED = "hold_exceeded"
    HOLD_CLOSED = "hold_closed"
    ALREADY_REVERSED = "already_reversed"
    REVERSAL_OF_REVERSAL = "reversal_of_reversal"
    ORGANIZATION_FROZEN = "organization_frozen"
    ORGANIZATION_DELINQUENT = "organization_delinquent"
    PERMISSION_DENIED = "permission_denied"
    NOT_AUTHENTICATED = "not_authenticated"
    THROTTLED = "throttled"
    CONFLICT = "conflict"


class DomainError(Exception):
    """An expected failure a caller can act on. `status` is the HTTP status it maps to."""

    code: str = ErrorCode.INVALID
    status: int = 400

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        fields: dict[str, Any] | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.fields = fields or {}


class InvalidInput(DomainError):
    code: str = ErrorCode.INVALID
    status = 400


class NotFound(DomainError):
    code: str = ErrorCode.NOT_FOUND
    status = 404


class InsufficientFunds(DomainError):
    code: str = ErrorCode.INSUFFICIENT_FUNDS
    status = 402


class IdempotencyConflict(DomainError):
    code: str = ErrorCode.IDEMPOTENCY_CONFLICT
    status = 409


class Conflict(DomainError):
    code: str = ErrorCode.CONFLICT
    status = 409


class PermissionDenied(DomainError):
    code: str = ErrorCode.PERMISSION_DENIED
    status = 403


# Lending (banking/services/lending.py)


class LendingErrorCode(StrEnum):
    NO_CREDIT_LINE = "no_credit_line"
    TERM_EXCEEDS_CREDIT_LINE = "term_exceeds_credit_line"
    CREDIT_LIMIT_EXCEEDED = "credit_limit_exceeded"
    CREDIT_LIMIT_BELOW_USAGE = "credit_limit_below_usage"
    LOAN_CLOSED = "loan_closed"


class NoCreditLine(DomainError):
    code: str = LendingErrorCode.NO_CREDIT_LINE
    status = 403


class TermExceedsCreditLine(DomainError):
    code: str = LendingErrorCode.TERM_EXCEEDS_CREDIT_LINE
    status = 400


class CreditLimitExceeded(DomainError):
    code: str = LendingErrorCode.CREDIT_LIMIT_EXCEEDED
    status = 402


class CreditLimitBelowUsage(DomainError):
    code: str = LendingErrorCode.CREDIT_LIMIT_BELOW_USAGE
    status = 409


class LoanClosed(DomainError):
    code: str = LendingErrorCode.LOAN_CLOSED
    status = 409


class OrganizationDelinquent(DomainError):
    code: str = ErrorCode.ORGANIZATION_DELINQUENT
    status = 403


class OrganizationFrozen(DomainError):
    code: str = ErrorCode.ORGANIZATION_FROZEN
    status = 403
