"""Lending: admin-approved credit lines, loans drawn on them, and their installments.

The money itself lives in the ledger: an organization's `credit` account has floor
`-limit` and balance `-principal owed`. These rows are the contract (who owes what, when);
every change to them is made by `banking.services.lending` under the organization's lock.
"""

from django.db import models

from banking.models.customers import Organization
from banking.models.ledger import Transfer


class CreditLine(models.Model):
    organization = models.OneToOneField(
        Organization, on_delete=models.PROTECT, related_name="credit_line"
    )
    limit = models.BigIntegerField(help_text="Most principal the organization may owe, tokens.")
    apr_bps = models.PositiveIntegerField(help_text="Yearly interest in basis points: 1200 = 12 %.")
    max_term_months = models.PositiveSmallIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["organization_id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(limit__gte=0), name="credit_line_limit_gte_0"
            ),
            models.CheckConstraint(
                condition=models.Q(apr_bps__lte=10_000), name="credit_line_apr_at_most_100pct"
            ),
            models.CheckConstraint(
                condition=models.Q(max_term_months__gte=1, max_term_months__lte=120),
                name="credit_line_term_1_to_120",
            ),
        ]

    def __str__(self) -> str:
        return f"credit line of {self.organization_id}: {self.limit} at {self.apr_bps} bps"


class LoanStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    OVERDUE = "overdue", "Overdue"
    PAID = "paid", "Paid"
    WRITTEN_OFF = "written_off", "Written off"


class Loan(models.Model):
    Status = LoanStatus

    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="loans")
    principal = models.BigIntegerField()
    apr_bps = models.PositiveIntegerField()
    term_months = models.PositiveSmallIntegerField()
    status = models.CharField(max_length=16, choices=LoanStatus.choices, default=LoanStatus.ACTIVE)
    reference = models.CharField(
        max_length=255, blank=True, help_text='What it financed, e.g. "block:12".'
    )
    idempotency_key = models.CharField(max_length=255, unique=True)
    pay_to_account = models.ForeignKey(
        "banking.Account", on_delete=models.PROTECT, related_name="+",
        help_text="Where the principal was paid (the seller, e.g. bank capacity).",
    )
    disbursed_transfer = models.OneToOneField(
        Transfer, null=True, blank=True, on_delete=models.PROTECT, related_name="disbursed_loan",
        help_text="Set in the transaction that creates the loan.",
    )
    written_off_transfer = models.OneToOneField(
        Transfer, null=True, blank=True, on_delete=models.PROTECT, related_name="written_off_loan"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["organization", "status"])]
        constraints = [
            models.CheckConstraint(condition=models.Q(principal__gt=0), name="loan_principal_gt_0"),
            models.CheckConstraint(
                condition=models.Q(term_months__gte=1), name="loan_term_gte_1"
            ),
        ]

    def __str__(self) -> str:
        return f"loan #{self.pk} {self.reference} ({self.status})"


class InstallmentStatus(models.TextChoices):
    DUE = "due", "Due"
    OVERDUE = "overdue", "Overdue"
    PAID = "paid", "Paid"
    WRITTEN_OFF = "written_off", "Written off"


class Installment(models.Model):
    """One row of a loan's schedule. `principal` and `interest` are the scheduled amounts;
    `interest_waived` is set when the loan was repaid in full before this installment was
    due (its principal was paid, its interest was not charged)."""

    Status = InstallmentStatus

    loan = models.ForeignKey(Loan, on_delete=models.PROTECT, related_name="installments")
    number = models.PositiveSmallIntegerField()
    due_date = models.DateField()
    principal = models.BigIntegerField()
    interest = models.BigIntegerField()
    status = models.CharField(
        max_length=16, choices=InstallmentStatus.choices, default=InstallmentStatus.DUE
    )
    interest_waived = models.BooleanField(default=False)
    paid_transfer = models.ForeignKey(
        Transfer, null=True, blank=True, on_delete=models.PROTECT, related_name="paid_installments"
    )
    paid_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["loan_id", "number"]
        indexes = [models.Index(fields=["status", "due_date"])]
        constraints = [
            models.UniqueConstraint(fields=["loan", "number"], name="installment_unique_number"),
            models.CheckConstraint(
                condition=models.Q(principal__gte=0, interest__gte=0),
                name="installment_amounts_gte_0",
            ),
            models.CheckConstraint(
                condition=(
                    models.Q(status="paid", paid_transfer__isnull=False, paid_at__isnull=False)
                    | (~models.Q(status="paid") & models.Q(paid_transfer__isnull=True))
                ),
                name="installment_paid_has_transfer",
            ),
        ]

    def __str__(self) -> str:
        return f"loan #{self.loan_id} installment {self.number} due {self.due_date}"

    @property
    def amount_charged(self) -> int:
        return self.principal + (0 if self.interest_waived else self.interest)


class LoanPrepayment(models.Model):
    """A prepayment asked for by the borrower, kept under its idempotency key so that a
    retried request returns the first result."""

    loan = models.ForeignKey(Loan, on_delete=models.PROTECT, related_name="prepayments")
    idempotency_key = models.CharField(max_length=255, unique=True)
    requested_amount = models.BigIntegerField(null=True, blank=True)
    principal = models.BigIntegerField()
    interest = models.BigIntegerField()
    transfer = models.OneToOneField(Transfer, on_delete=models.PROTECT, related_name="prepayment")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"prepayment #{self.pk} of loan #{self.loan_id}"

    @property
    def amount(self) -> int:
        return self.principal + self.interest
