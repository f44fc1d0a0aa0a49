"""Reads for lending: credit lines, loans with their schedules, and quotes. Every read that
an organization can reach is scoped to that organization."""

from dataclasses import dataclass
from datetime import date

from django.db.models import Prefetch, Q, QuerySet, Sum, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from banking.amortization import ScheduleError, ScheduleRow, add_months, annuity_schedule
from banking.errors import (
    CreditLimitExceeded,
    NoCreditLine,
    TermExceedsCreditLine,
)
from banking.models import Account, CreditLine, Installment, Loan, Organization
from banking.models.ledger import AccountPurpose
from banking.standing import organization_standing_check as _standing_check
from core.errors import InvalidInput, NotFound

UNPAID = (Installment.Status.DUE, Installment.Status.OVERDUE)


@dataclass(frozen=True)
class CreditLineSummary:
    limit: int
    apr_bps: int
    max_term_months: int
    used: int

    @property
    def available(self) -> int:
        return max(0, self.limit - self.used)


@dataclass(frozen=True)
class LoanQuote:
    principal: int
    apr_bps: int
    term_months: int
    payment: int
    schedule: list[ScheduleRow]

    @property
    def total_interest(self) -> int:
        return sum(row.interest for row in self.schedule)

    @property
    def total(self) -> int:
        return self.principal + self.total_interest


def first_due_default(today: date) -> date:
    """A loan taken today is first due one month later (same day, clamped)."""
    return add_months(today, 1)


def first_due_resolve(first_due: date | None, today: date) -> date:
    """The first due date of a loan made `today`: the one asked for, which must fall after
    today (a loan is never born overdue), or by default one month later."""
    if first_due is None:
        return first_due_default(today)
    if first_due <= today:
        raise InvalidInput(
            "The first installment must fall due after today.",
            fields={"first_due": [f"After {today.isoformat()}."]},
        )
    return first_due


def credit_line_get(*, organization_id: int) -> CreditLineSummary:
    line = CreditLine.objects.filter(organization_id=organization_id).first()
    if line is None:
        raise NoCreditLine("This organization has no credit line.", status=404)
    credit = Account.objects.filter(
        organization_id=organization_id, purpose=AccountPurpose.CREDIT
    ).only("balance").first()
    return CreditLineSummary(
        limit=line.limit,
        apr_bps=line.apr_bps,
        max_term_months=line.max_term_months,
        used=-credit.balance if credit is not None else 0,
    )


def organization_standing_check(organization: Organization) -> None:
    """Refuse new credit to a frozen or delinquent organization."""
    _standing_check(organization.status, before="taking new credit")


def loan_terms_check(
    *, credit_line: CreditLine | None, principal: int, term_months: int, available: int
) -> None:
    """The rules a new loan must meet against the credit line, in the order they are
    reported: a credit line, a term within it, a principal within what is left of it."""
    if isinstance(principal, bool) or not isinstance(principal, int) or principal <= 0:
        raise InvalidInput(
            "principal must be a positive whole number of tokens.",
            fields={"principal": ["Must be a positive whole number."]},
        )
    if isinstance(term_months, bool) or not isinstance(term_months, int) or term_months <= 0:
        raise InvalidInput(
            "term_months must be a positive whole number.",
            fields={"term_months": ["Must be a positive whole number."]},
        )
    if credit_line is None:
        raise NoCreditLine("This organization has no credit line; ask us for one.")
    if term_months > credit_line.max_term_months:
        raise TermExceedsCreditLine(
            f"The longest term of this credit line is {credit_line.max_term_months} months.",
            fields={"term_months": [f"At most {credit_line.max_term_months}."]},
        )
    if principal > available:
        raise CreditLimitExceeded(
            f"{principal} tokens asked, {available} available on the credit line.",
            fields={"available": available, "requested": principal},
        )


def schedule_build(
    *, principal: int, apr_bps: int, term_months: int, first_due: date
) -> list[ScheduleRow]:
    """`annuity_schedule` with its refusals as domain errors."""
    try:
        return annuity_schedule(
            principal=principal, apr_bps=apr_bps, term_months=term_months, first_due=first_due
        )
    except ScheduleError as exc:
        raise InvalidInput(str(exc), fields={"principal": [str(exc)]}) from exc


def loan_quote(
    *, organization_id: int, principal: int, term_months: int, first_due: date | None = None
) -> LoanQuote:
    """The schedule `loan_originate` would create now, with the same checks; writes
    nothing."""
    organization = Organization.objects.filter(pk=organization_id).first()
    if organization is None:
        raise NotFound("Organization not found.")
    organization_standing_check(organization)
    line = CreditLine.objects.filter(organization_id=organization_id).first()
    available = credit_line_get(organization_id=organization_id).available if line else 0
    loan_terms_check(
        credit_line=line, principal=principal, term_months=term_months, available=available
    )
    assert line is not None
    rows = schedule_build(
        principal=principal,
        apr_bps=line.apr_bps,
        term_months=term_months,
        first_due=first_due_resolve(first_due, timezone.localdate()),
    )
    return LoanQuote(
        principal=principal,
        apr_bps=line.apr_bps,
        term_months=term_months,
        payment=rows[0].total,
        schedule=rows,
    )


def _with_outstanding(qs: QuerySet[Loan]) -> QuerySet[Loan]:
    return qs.annotate(
        outstanding_principal=Coalesce(
            Sum("installments__principal", filter=Q(installments__status__in=UNPAID)),
            Value(0),
        )
    )


def loan_list(*, organization_id: int) -> QuerySet[Loan]:
    """The organization's loans, newest first, each with `outstanding_principal`."""
    return _with_outstanding(Loan.objects.filter(organization_id=organization_id)).order_by("-id")


def loan_get(*, organization_id: int, loan_id: int) -> Loan:
    """One of the organization's loans with `outstanding_principal` and its installments
    prefetched in order; another organization's loan is not found."""
    loan = (
        _with_outstanding(Loan.objects.filter(organization_id=organization_id, pk=loan_id))
        .prefetch_related(
            Prefetch("installments", queryset=Installment.objects.order_by("number"))
        )
        .first()
    )
    if loan is None:
        raise NotFound("Loan not found.")
    return loan


@dataclass(frozen=True)
class LendingViolation:
    organization_id: int
    detail: str


def lending_verify(limit: int = 100) -> list[LendingViolation]:
    """Every organization's credit balance is minus the principal of its unpaid
    installments (the schedule and the ledger agree), and no credit account is below the
    floor its credit line sets. Empty when sound."""
    unpaid = dict(
        Installment.objects.filter(status__in=UNPAID)
        .values("loan__organization_id")
        .annotate(total=Sum("principal"))
        .values_list("loan__organization_id", "total")
    )
    limits = dict(CreditLine.objects.values_list("organization_id", "limit"))
    found: list[LendingViolation] = []
    credit_accounts = Account.objects.filter(
        purpose=AccountPurpose.CREDIT, organization_id__isnull=False
    ).filter(Q(balance__lt=0) | Q(organization_id__in=list(unpaid) + list(limits)))
    for account in credit_accounts.values("organization_id", "balance", "floor")[:limit * 10]:
        org_id = account["organization_id"]
        owed = unpaid.get(org_id, 0)
        if account["balance"] != -owed:
            found.append(LendingViolation(
                org_id, f"credit balance {account['balance']} but unpaid principal {owed}"))
        if org_id in limits and account["floor"] != -limits[org_id]:
            found.append(LendingViolation(
                org_id, f"credit floor {account['floor']} but credit line {limits[org_id]}"))
    return found[:limit]
