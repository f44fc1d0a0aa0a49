"""The token ledger: double entry, append-only, integer tokens.

Balances are denormalized on `Account` and kept in step by `banking.ledger` only.
`Transfer` and `Entry` rows are never updated or deleted; PostgreSQL triggers refuse it.
"""

import pgtrigger
from django.db import models

from banking.models.customers import Organization


class AccountPurpose(models.TextChoices):
    # per organization
    WALLET = "wallet", "Wallet"
    HELD = "held", "Held"
    CREDIT = "credit", "Credit"
    DEBT = "debt", "Debt"
    # What the organization may cash out (earned as a provider, less paid out); a memo of
    # the wallet kept against `payable_issued`, never spent from.
    PAYABLE = "payable", "Payable"
    # system
    CARD_CLEARING = "card_clearing", "Card clearing"
    PLATFORM_REVENUE = "platform_revenue", "Platform revenue"
    BANK_CAPACITY = "bank_capacity", "Bank capacity"
    LENDING = "lending", "Lending"
    INTEREST_INCOME = "interest_income", "Interest income"
    PAYOUT_CLEARING = "payout_clearing", "Payout clearing"
    WRITE_OFFS = "write_offs", "Write-offs"
    PROMOTIONS = "promotions", "Promotions"
    PAYABLE_ISSUED = "payable_issued", "Payable issued"


ORGANIZATION_PURPOSES = (
    AccountPurpose.WALLET,
    AccountPurpose.HELD,
    AccountPurpose.CREDIT,
    AccountPurpose.DEBT,
    AccountPurpose.PAYABLE,
)
SYSTEM_PURPOSES = tuple(p for p in AccountPurpose if p not in ORGANIZATION_PURPOSES)


@pgtrigger.register(
    # Entries name accounts by id, checked when they are written (migration 0012), not by
    # a foreign key: so an account, once opened, is never deleted nor renumbered.
    pgtrigger.Protect(name="account_never_deleted", operation=pgtrigger.Delete),
    pgtrigger.Protect(name="account_id_fixed", operation=pgtrigger.Update,
                      condition=pgtrigger.AnyChange("id")),
)
class Account(models.Model):
    Purpose = AccountPurpose

    organization = models.ForeignKey(
        Organization, null=True, blank=True, on_delete=models.PROTECT, related_name="accounts"
    )
    purpose = models.CharField(max_length=32, choices=AccountPurpose.choices)
    balance = models.BigIntegerField(default=0)
    floor = models.BigIntegerField(
        null=True, blank=True, help_text="Lowest allowed balance; empty means unbounded."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "purpose"], name="account_one_per_org_purpose"
            ),
            models.UniqueConstraint(
                fields=["purpose"],
                condition=models.Q(organization__isnull=True),
                name="account_one_system_per_purpose",
            ),
            models.CheckConstraint(
                condition=models.Q(floor__isnull=True) | models.Q(balance__gte=models.F("floor")),
                name="account_balance_not_below_floor",
            ),
        ]

    def __str__(self) -> str:
        owner = self.organization.name if self.organization is not None else "system"
        return f"{owner}:{self.purpose}"


class TransferKind(models.TextChoices):
    GRANT = "grant", "Promotional grant"
    TOPUP = "topup", "Card top-up"
    REFUND = "refund", "Card refund"
    HOLD = "hold", "Hold"
    CAPTURE = "capture", "Capture"
    RELEASE = "release", "Release"
    REVERSAL = "reversal", "Reversal"
    PAYOUT = "payout", "Payout"
    PURCHASE = "purchase", "Purchase"
    SELL_BACK = "sell_back", "Sell-back"
    YIELD = "yield", "Availability yield"
    ADVANCE = "advance", "Advance"
    LOAN = "loan", "Loan disbursement"
    INSTALLMENT = "installment", "Installment"
    WRITE_OFF = "write_off", "Write-off"
    SLA_CREDIT = "sla_credit", "SLA credit"
    ADJUSTMENT = "adjustment", "Adjustment"
    TRANSFER = "transfer", "Transfer"
    EARNED = "earned", "Earned (payable)"


@pgtrigger.register(
    pgtrigger.Protect(name="transfer_append_only", operation=pgtrigger.Update | pgtrigger.Delete)
)
class Transfer(models.Model):
    Kind = TransferKind

    kind = models.CharField(max_length=32, choices=TransferKind.choices)
    # Unique by the constraint below: unique=True would add a second, pattern-matching
    # index that no query uses and every posting writes.
    idempotency_key = models.CharField(max_length=255)
    request_hash = models.CharField(max_length=64)
    reference = models.CharField(max_length=255, blank=True)
    memo = models.CharField(max_length=500, blank=True)
    # At most one reversal per transfer: a unique index over the reversals only, not one
    # that every ordinary transfer adds its NULL to.
    reverses = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="reversed_by",
        db_index=False,
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-id"]
        # References are looked up whole, never by prefix: a plain index (db_index=True
        # would add a second, pattern-matching one, written by every posting for nothing).
        indexes = [models.Index(fields=["reference"], name="transfer_reference")]
        constraints = [
            models.UniqueConstraint(fields=["idempotency_key"], name="transfer_key_unique"),
            models.UniqueConstraint(
                fields=["reverses"], condition=models.Q(reverses__isnull=False),
                name="transfer_reversed_once",
            )
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.kind} {self.reference}".strip()


@pgtrigger.register(
    pgtrigger.Protect(name="entry_append_only", operation=pgtrigger.Update | pgtrigger.Delete)
)
class Entry(models.Model):
    # Neither reference is a database foreign key: a trigger checks both once per INSERT
    # statement (migration 0012), where foreign keys check and lock the referenced row once
    # per entry, 4,000 checks for a batch of 1,000 transfers. Transfers and accounts are
    # never deleted (their triggers refuse it), so there is no lock to take.
    transfer = models.ForeignKey(Transfer, on_delete=models.PROTECT, related_name="entries",
                                 db_constraint=False)
    # No index of its own: the (account, transfer) index below serves every account lookup,
    # and one index fewer is cheaper on the batch form's hot path.
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="entries",
                                db_index=False, db_constraint=False)
    amount = models.BigIntegerField()

    class Meta:
        ordering = ["id"]
        verbose_name_plural = "entries"
        indexes = [models.Index(fields=["account", "transfer"])]
        constraints = [
            models.CheckConstraint(condition=~models.Q(amount=0), name="entry_amount_nonzero")
        ]

    def __str__(self) -> str:
        return f"{self.account} {self.amount:+d}"


class Hold(models.Model):
    """Tokens set aside from a wallet for a purpose (a job, a payout). Captured in parts,
    the rest released. `captured + released` never exceeds `amount`."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        CLOSED = "closed", "Closed"

    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="holds")
    amount = models.BigIntegerField()
    captured = models.BigIntegerField(default=0)
    released = models.BigIntegerField(default=0)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.OPEN)
    reference = models.CharField(max_length=255, blank=True, db_index=True)
    idempotency_key = models.CharField(max_length=255, unique=True)
    place_transfer = models.OneToOneField(
        Transfer, on_delete=models.PROTECT, related_name="placed_hold"
    )
    expires_at = models.DateTimeField(db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(condition=models.Q(amount__gt=0), name="hold_amount_positive"),
            models.CheckConstraint(
                condition=models.Q(captured__gte=0)
                & models.Q(released__gte=0)
                & models.Q(amount__gte=models.F("captured") + models.F("released")),
                name="hold_within_amount",
            ),
        ]

    def __str__(self) -> str:
        return f"hold #{self.pk} {self.reference}"

    @property
    def remaining(self) -> int:
        return self.amount - self.captured - self.released
