"""Lending: credit lines, loans, installments (DESIGN §3 "Financed block").

Money moves only through the posting service:

* origination    credit -P            -> pay_to +P            (kind `loan`)
* installment    wallet -(p+i)        -> credit +p, interest_income +i   (kind `installment`)
* write-off      write_offs -rest     -> credit +rest         (kind `write_off`)

Interest is income only when it is paid. Every service here runs in one money
transaction and takes the organization's row lock first (`organizations_lock`), so all
lending for one organization is serialized; then the accounts, in ascending id order.
A caller composing `loan_originate` into a larger transaction (the financed-block purchase)
should call it before it posts other transfers, to keep that lock order.

Rounding: see `banking.amortization` (the only place lending rounds).

Prepayment rule (`loan_prepay`): installments are paid oldest first, each in full.
Without an amount, or with an amount at least the payoff, the loan is repaid in full for
its payoff: every installment already due (due date today or earlier) with its interest,
plus the principal of every installment not yet due, whose interest is waived
(`Installment.interest_waived`). With a smaller amount, as many whole installments as it
covers are paid in order at their scheduled amounts (paying a future installment early
charges its scheduled interest); the rest of the amount is not taken.
"""

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from banking.amortization import MAX_APR_BPS, MAX_TERM_MONTHS, ScheduleRow, annuity_schedule
from banking.audit import audit_record
from banking.errors import CreditLimitBelowUsage, IdempotencyConflict, InsufficientFunds, LoanClosed
from banking.locks import accounts_lock, organizations_lock
from banking.models import (
    Account,
    AuditAction,
    CreditLine,
    Installment,
    Loan,
    LoanPrepayment,
    Organization,
)
from banking.models.ledger import AccountPurpose, Transfer, TransferKind
from banking.selectors import organization_account_ids
from banking.selectors_lending import (
    UNPAID,
    first_due_resolve,
    loan_terms_check,
    organization_standing_check,
    schedule_build,
)
from banking.services.ledger import MAX_KEY_LENGTH, system_account, transfer_post
from banking.services.transactions import money_transaction
from core.errors import DomainError, InvalidInput, NotFound

__all__ = [
    "CollectionResult",
    "annuity_schedule",
    "credit_line_set",
    "installments_collect",
    "loan_originate",
    "loan_prepay",
    "loan_write_off",
]

logger = logging.getLogger(__name__)

OPEN_LOAN = (Loan.Status.ACTIVE, Loan.Status.OVERDUE)


def _whole(value: object, name: str, *, low: int, high: int | None = None) -> int:
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or value < low
        or (high is not None and value > high)
    ):
        bound = f"from {low} to {high}" if high is not None else f"at least {low}"
        raise InvalidInput(
            f"{name} must be a whole number {bound}.", fields={name: [f"A whole number {bound}."]}
        )
    return value


def _key(value: str) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_KEY_LENGTH - 32:
        raise InvalidInput(
            "An idempotency key of 1 to 223 characters is required.",
            fields={"idempotency_key": ["Required, at most 223 characters."]},
        )
    return value


def _organization_locked(organization_id: int) -> Organization:
    organization = organizations_lock([organization_id]).get(organization_id)
    if organization is None:
        raise NotFound("Organization not found.")
    return organization


# Credit lines


@money_transaction
def credit_line_set(
    *, organization_id: int, limit: int, apr_bps: int, max_term_months: int
) -> CreditLine:
    """Create or change an organization's credit line and set its credit account's floor
    to `-limit`. A limit below the principal already drawn is refused
    (`credit_limit_below_usage`); existing loans keep their own rate and term."""
    _whole(limit, "limit", low=0)
    _whole(apr_bps, "apr_bps", low=0, high=MAX_APR_BPS)
    _whole(max_term_months, "max_term_months", low=1, high=MAX_TERM_MONTHS)
    _organization_locked(organization_id)
    credit_id = organization_account_ids(organization_id)[AccountPurpose.CREDIT]
    credit = accounts_lock([credit_id])[credit_id]
    used = -credit.balance
    if limit < used:
        raise CreditLimitBelowUsage(
            f"{used} tokens are already drawn on this credit line; the limit cannot go below.",
            fields={"limit": [f"At least {used}."], "used": used},
        )
    Account.objects.filter(pk=credit_id).update(floor=-limit, updated_at=timezone.now())
    line, _ = CreditLine.objects.update_or_create(
        organization_id=organization_id,
        defaults={"limit": limit, "apr_bps": apr_bps, "max_term_months": max_term_months},
    )
    audit_record(action=AuditAction.CREDIT_LINE_SET, organization_id=organization_id,
                 target=f"credit_line:{line.pk}",
                 detail={"limit": limit, "apr_bps": apr_bps, "max_term_months": max_term_months})
    return line


# Origination


@money_transaction
def loan_originate(
    *,
    organization_id: int,
    principal: int,
    term_months: int,
    reference: str,
    pay_to_account_id: int,
    idempotency_key: str,
    first_due: date | None = None,
) -> Loan:
    """Lend `principal` tokens on the organization's credit line, paid to
    `pay_to_account_id`, repaid in `term_months` monthly installments (the schedule of
    `annuity_schedule` at the line's rate, first due on `first_due`, by default one month
    from today). The same key returns the same loan and posts nothing.

    Refused, with nothing posted: `no_credit_line`, `term_exceeds_credit_line`,
    `credit_limit_exceeded`, `organization_delinquent`, `organization_frozen`, `invalid`."""
    _key(idempotency_key)
    organization = _organization_locked(organization_id)
    existing = Loan.objects.filter(idempotency_key=idempotency_key).first()
    if existing is not None:
        same = (existing.organization_id, existing.principal, existing.term_months,
                existing.reference, existing.pay_to_account_id) == (
            organization_id, principal, term_months, reference[:255], pay_to_account_id)
        if not same:
            raise IdempotencyConflict(
                "This idempotency key was already used for a different loan.",
                fields={"idempotency_key": [idempotency_key]},
            )
        return existing
    organization_standing_check(organization)
    line = CreditLine.objects.filter(organization_id=organization_id).first()
    credit_id = organization_account_ids(organization_id)[AccountPurpose.CREDIT]
    if pay_to_account_id == credit_id:
        raise InvalidInput("A loan cannot be paid to the credit account it is drawn on.")
    accounts = accounts_lock([credit_id, pay_to_account_id])
    if pay_to_account_id not in accounts:
        raise NotFound(f"Unknown account {pay_to_account_id}.")
    credit = accounts[credit_id]
    available = credit.balance - (credit.floor or 0)
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
    loan = Loan.objects.create(
        organization_id=organization_id,
        principal=principal,
        apr_bps=line.apr_bps,
        term_months=term_months,
        reference=reference[:255],
        idempotency_key=idempotency_key,
        pay_to_account_id=pay_to_account_id,
    )
    loan.disbursed_transfer = transfer_post(
        kind=TransferKind.LOAN,
        idempotency_key=f"loan-disburse:{idempotency_key}",
        legs=[(credit_id, -principal), (pay_to_account_id, principal)],
        reference=f"loan:{loan.pk}",
        memo=f"Loan of {principal} tokens over {term_months} months for {reference}"[:500],
    )
    loan.save(update_fields=["disbursed_transfer", "updated_at"])
    Installment.objects.bulk_create(
        [
            Installment(
                loan=loan,
                number=row.number,
                due_date=row.due_date,
                principal=row.principal,
                interest=row.interest,
            )
            for row in rows
        ]
    )
    return loan


# Paying installments


def _installments_pay(
    *,
    organization_id: int,
    plan: Sequence[tuple[Installment, bool]],
    idempotency_key: str,
    reference: str,
    memo: str,
) -> Transfer:
    """Debit the wallet for `plan` (installment, waive its interest) in one transfer and
    mark them paid. The caller holds the organization's lock."""
    principal = sum(inst.principal for inst, _ in plan)
    interest = sum(0 if waive else inst.interest for inst, waive in plan)
    ids = organization_account_ids(organization_id)
    wallet_id, credit_id = ids[AccountPurpose.WALLET], ids[AccountPurpose.CREDIT]
    income_id = system_account(AccountPurpose.INTEREST_INCOME).pk
    wallet = accounts_lock([wallet_id, credit_id, income_id])[wallet_id]
    if wallet.balance < principal + interest:
        raise InsufficientFunds(
            f"Not enough tokens in the wallet: {wallet.balance} available, "
            f"{principal + interest} needed.",
            fields={"available": wallet.balance, "needed": principal + interest},
        )
    legs = [(wallet_id, -(principal + interest))]
    if principal:
        legs.append((credit_id, principal))
    if interest:
        legs.append((income_id, interest))
    transfer = transfer_post(
        kind=TransferKind.INSTALLMENT,
        idempotency_key=idempotency_key,
        legs=legs,
        reference=reference,
        memo=memo[:500],
    )
    now = timezone.now()
    for waive in (False, True):
        Installment.objects.filter(pk__in=[i.pk for i, w in plan if w == waive]).update(
            status=Installment.Status.PAID, paid_transfer=transfer, paid_at=now,
            interest_waived=waive,
        )
    return transfer


def _loans_refresh(loan_ids: set[int]) -> None:
    """Each open loan's status from its installments: paid when none is unpaid, overdue
    while one is overdue, else active."""
    for loan in Loan.objects.filter(pk__in=loan_ids, status__in=OPEN_LOAN):
        unpaid = loan.installments.filter(status__in=UNPAID)
        if not unpaid.exists():
            status = Loan.Status.PAID
        elif unpaid.filter(status=Installment.Status.OVERDUE).exists():
            status = Loan.Status.OVERDUE
        else:
            status = Loan.Status.ACTIVE
        if status != loan.status:
            Loan.objects.filter(pk=loan.pk).update(status=status, updated_at=timezone.now())


def _standing_refresh(organization: Organization, today: date) -> str:
    """An active organization with an installment unpaid for more than
    `LENDING_GRACE_DAYS` days after its due date becomes delinquent; a delinquent one
    with nothing overdue any more (no unpaid installment due before today) becomes active
    again. A frozen organization stays frozen. The caller holds its lock."""
    unpaid = Installment.objects.filter(
        loan__organization_id=organization.pk,
        loan__status__in=OPEN_LOAN,
        status__in=UNPAID,
    )
    status = organization.status
    grace_end = today - timedelta(days=settings.LENDING_GRACE_DAYS)
    if status == Organization.Status.ACTIVE and unpaid.filter(due_date__lt=grace_end).exists():
        status = Organization.Status.DELINQUENT
    elif status == Organization.Status.DELINQUENT and not unpaid.filter(
        Q(status=Installment.Status.OVERDUE) | Q(due_date__lt=today)
    ).exists():
        status = Organization.Status.ACTIVE
    if status != organization.status:
        Organization.objects.filter(pk=organization.pk).update(
            status=status, updated_at=timezone.now()
        )
        logger.info("organization %s is now %s", organization.pk, status)
        organization.status = status
    return status


@dataclass
class CollectionResult:
    paid: int = 0
    tokens: int = 0
    newly_overdue: int = 0
    delinquent: list[int] = field(default_factory=list)
    reinstated: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)


def installments_collect(*, today: date | None = None) -> CollectionResult:
    """Collect every installment due on or before `today` (default: today), oldest first,
    one organization per transaction. An installment is debited from the wallet only if
    the wallet covers it whole (key `installment:<id>`); the first one it cannot cover is
    marked overdue with every later one, so payments always go to the oldest debt first.
    Then each organization's standing is refreshed (`_standing_refresh`). Safe to run
    twice: a paid installment is never collected again."""
    today = today or timezone.localdate()
    organization_ids = list(
        Installment.objects.filter(
            status__in=UNPAID, due_date__lte=today, loan__status__in=OPEN_LOAN
        )
        .order_by("loan__organization_id")
        .values_list("loan__organization_id", flat=True)
        .distinct()
    )
    result = CollectionResult()
    for organization_id in organization_ids:
        try:
            _collect_for_organization(organization_id=organization_id, today=today,
                                      result=result)
        except DomainError:
            logger.exception("collecting installments of organization %s", organization_id)
            result.failed.append(organization_id)
    return result


@money_transaction
def _collect_for_organization(
    *, organization_id: int, today: date, result: CollectionResult
) -> None:
    organization = _organization_locked(organization_id)
    was = organization.status
    due = list(
        Installment.objects.filter(
            loan__organization_id=organization_id,
            loan__status__in=OPEN_LOAN,
            status__in=UNPAID,
            due_date__lte=today,
        ).order_by("due_date", "loan_id", "number")
    )
    ids = organization_account_ids(organization_id)
    wallet_id = ids[AccountPurpose.WALLET]
    locked = accounts_lock(
        [wallet_id, ids[AccountPurpose.CREDIT], system_account(AccountPurpose.INTEREST_INCOME).pk]
    )
    available = locked[wallet_id].balance
    paid = tokens = overdue = 0
    paying = True
    for inst in due:
        amount = inst.principal + inst.interest
        if paying and amount <= available:
            _installments_pay(
                organization_id=organization_id,
                plan=[(inst, False)],
                idempotency_key=f"installment:{inst.pk}",
                reference=f"loan:{inst.loan_id}",
                memo=f"Installment {inst.number} of loan #{inst.loan_id}, due {inst.due_date}",
            )
            available -= amount
            paid += 1
            tokens += amount
            continue
        paying = False
        if inst.status == Installment.Status.DUE:
            Installment.objects.filter(pk=inst.pk).update(status=Installment.Status.OVERDUE)
            overdue += 1
    _loans_refresh({inst.loan_id for inst in due})
    now = _standing_refresh(organization, today)
    # Counted only once the transaction body got this far (a retry starts again).
    result.paid += paid
    result.tokens += tokens
    result.newly_overdue += overdue
    if now != was and now == Organization.Status.DELINQUENT:
        result.delinquent.append(organization_id)
    if now != was and now == Organization.Status.ACTIVE:
        result.reinstated.append(organization_id)


# Prepayment and write-off


@money_transaction
def loan_prepay(
    *,
    organization_id: int,
    loan_id: int,
    amount: int | None = None,
    idempotency_key: str,
) -> LoanPrepayment:
    """Pay a loan ahead of its schedule from the organization's wallet (see the module
    docstring for the rule). Overdue installments are paid first, so a prepayment cures
    a delinquency. The same key returns the first prepayment and posts nothing. Another
    organization's loan is not found."""
    _key(idempotency_key)
    if amount is not None:
        _whole(amount, "amount", low=1)
    organization = _organization_locked(organization_id)
    existing = LoanPrepayment.objects.filter(idempotency_key=idempotency_key).first()
    if existing is not None:
        if existing.loan_id != loan_id or existing.requested_amount != amount or (
            Loan.objects.get(pk=existing.loan_id).organization_id != organization_id
        ):
            raise IdempotencyConflict(
                "This idempotency key was already used for a different prepayment.",
                fields={"idempotency_key": [idempotency_key]},
            )
        return existing
    loan = Loan.objects.filter(pk=loan_id, organization_id=organization_id).first()
    if loan is None:
        raise NotFound("Loan not found.")
    if loan.status not in OPEN_LOAN:
        raise LoanClosed(f"Loan #{loan.pk} is {loan.status}; there is nothing to pay.")
    today = timezone.localdate()
    unpaid = list(loan.installments.filter(status__in=UNPAID).order_by("number"))
    payoff = sum(i.principal + (i.interest if i.due_date <= today else 0) for i in unpaid)
    plan: list[tuple[Installment, bool]]
    if amount is None or amount >= payoff:
        plan = [(i, i.due_date > today) for i in unpaid]
    else:
        plan, left = [], amount
        for inst in unpaid:
            if inst.principal + inst.interest > left:
                break
            plan.append((inst, False))
            left -= inst.principal + inst.interest
        if not plan:
            nxt = unpaid[0].principal + unpaid[0].interest
            raise InvalidInput(
                f"The amount must cover at least the next installment, {nxt} tokens "
                f"(or leave it out to repay the whole loan, {payoff} tokens).",
                fields={"amount": [f"At least {nxt}."], "payoff": payoff},
            )
    transfer = _installments_pay(
        organization_id=organization_id,
        plan=plan,
        idempotency_key=f"loan-prepay:{idempotency_key}",
        reference=f"loan:{loan.pk}",
        memo=f"Prepayment of loan #{loan.pk}: installments "
        + ", ".join(str(i.number) for i, _ in plan),
    )
    prepayment = LoanPrepayment.objects.create(
        loan=loan,
        idempotency_key=idempotency_key,
        requested_amount=amount,
        principal=sum(i.principal for i, _ in plan),
        interest=sum(0 if waive else i.interest for i, waive in plan),
        transfer=transfer,
    )
    _loans_refresh({loan.pk})
    _standing_refresh(organization, today)
    return prepayment


@money_transaction
def loan_write_off(*, loan_id: int, memo: str = "") -> Loan:
    """Give up on a loan: its unpaid principal moves from write-offs to the credit account
    (the organization no longer owes it) and every unpaid installment is written off.
    Unpaid interest was never booked, so there is none to write off. The organization's
    standing is left as it is; an operator decides when it may borrow again."""
    found = Loan.objects.filter(pk=loan_id).values_list("organization_id", flat=True).first()
    if found is None:
        raise NotFound("Loan not found.")
    _organization_locked(found)
    loan = Loan.objects.get(pk=loan_id)
    if loan.status not in OPEN_LOAN:
        raise LoanClosed(f"Loan #{loan.pk} is {loan.status}; there is nothing to write off.")
    unpaid = loan.installments.filter(status__in=UNPAID)
    rest = sum(unpaid.values_list("principal", flat=True))
    if rest:
        credit_id = organization_account_ids(loan.organization_id)[AccountPurpose.CREDIT]
        loan.written_off_transfer = transfer_post(
            kind=TransferKind.WRITE_OFF,
            idempotency_key=f"loan-write-off:{loan.pk}",
            legs=[(system_account(AccountPurpose.WRITE_OFFS).pk, -rest), (credit_id, rest)],
            reference=f"loan:{loan.pk}",
            memo=(memo or f"Write-off of loan #{loan.pk}")[:500],
        )
    unpaid.update(status=Installment.Status.WRITTEN_OFF)
    loan.status = Loan.Status.WRITTEN_OFF
    loan.save(update_fields=["status", "written_off_transfer", "updated_at"])
    audit_record(action=AuditAction.LOAN_WRITTEN_OFF, organization_id=loan.organization_id,
                 target=f"loan:{loan.pk}", detail={"principal": rest, "memo": memo[:200]})
    return loan


def schedule_rows_of(loan: Loan) -> list[ScheduleRow]:
    """A loan's stored schedule as plain rows (the shape `annuity_schedule` returns)."""
    return [
        ScheduleRow(number=i.number, due_date=i.due_date, principal=i.principal,
                    interest=i.interest)
        for i in loan.installments.order_by("number")
    ]


@dataclass(frozen=True)
class PrincipalRepayment:
    repaid: int
    transfer: Transfer | None


def loan_principal_outstanding(loan: Loan, *, today: date | None = None) -> int:
    """The principal of the installments not yet due: what a repayment on the buyer's
    behalf (a financed block's sell-back) can repay. Installments already due stay owed
    as scheduled."""
    today = today or timezone.localdate()
    return sum(loan.installments.filter(status=Installment.Status.DUE, due_date__gt=today)
               .values_list("principal", flat=True))


@money_transaction
def loan_principal_repay(*, loan_id: int, amount: int, from_account_id: int,
                         idempotency_key: str, reference: str) -> PrincipalRepayment:
    """Repay up to `amount` of a loan's principal not yet due from `from_account_id` (the
    bank, crediting a sell-back), and re-compute the rest of the schedule exactly: the
    remaining installments keep their due dates and get the annuity schedule of the
    principal still owed over their number (whole tokens, the last installment absorbing
    rounding; `banking.amortization`). Installments left with nothing to pay are marked
    paid by this transfer, their interest waived. Returns what was repaid (0 when nothing
    is owed ahead). The caller holds the organization's lock (taken again here)."""
    loan = Loan.objects.filter(pk=loan_id).first()
    if loan is None:
        raise NotFound("Loan not found.")
    _organization_locked(loan.organization_id)
    if loan.status not in OPEN_LOAN:
        return PrincipalRepayment(0, None)
    today = timezone.localdate()
    ahead = list(loan.installments.select_for_update().filter(
        status=Installment.Status.DUE, due_date__gt=today).order_by("number"))
    owed = sum(i.principal for i in ahead)
    repaid = min(max(0, amount), owed)
    if not repaid:
        return PrincipalRepayment(0, None)
    credit_id = organization_account_ids(loan.organization_id)[AccountPurpose.CREDIT]
    transfer = transfer_post(
        kind=TransferKind.INSTALLMENT, idempotency_key=f"loan-repay:{idempotency_key}",
        legs=[(from_account_id, -repaid), (credit_id, repaid)],
        reference=reference, memo=f"{repaid} tokens of loan #{loan.pk}'s principal repaid "
                                  "by a sell-back")
    left = owed - repaid
    rows: list[ScheduleRow] = []
    if left:
        for term in range(len(ahead), 0, -1):
            try:
                rows = annuity_schedule(principal=left, apr_bps=loan.apr_bps, term_months=term,
                                        first_due=ahead[0].due_date)
                break
            except ValueError:
                continue  # too few tokens for this many installments: spread over fewer
    now = timezone.now()
    for inst, row in zip(ahead, rows, strict=False):
        Installment.objects.filter(pk=inst.pk).update(principal=row.principal,
                                                      interest=row.interest)
    Installment.objects.filter(pk__in=[i.pk for i in ahead[len(rows):]]).update(
        status=Installment.Status.PAID, paid_transfer=transfer, paid_at=now,
        interest_waived=True)
    _loans_refresh({loan.pk})
    return PrincipalRepayment(repaid, transfer)
