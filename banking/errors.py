"""Banking's domain errors, on the kernel's `DomainError` (core.errors); their codes are
in banking.error_codes."""

from banking.error_codes import BankingErrorCode, LendingErrorCode
from core.errors import DomainError


class InsufficientFunds(DomainError):
    code: str = BankingErrorCode.INSUFFICIENT_FUNDS
    status = 402


class IdempotencyConflict(DomainError):
    code: str = BankingErrorCode.IDEMPOTENCY_CONFLICT
    status = 409


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
    code: str = BankingErrorCode.ORGANIZATION_DELINQUENT
    status = 403


class OrganizationFrozen(DomainError):
    code: str = BankingErrorCode.ORGANIZATION_FROZEN
    status = 403


class OrganizationNotApproved(DomainError):
    code: str = BankingErrorCode.ORGANIZATION_NOT_APPROVED
    status = 403


class OrganizationCannotSpend(DomainError):
    code: str = BankingErrorCode.ORGANIZATION_OWES
    status = 402
