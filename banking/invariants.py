"""The ledger's invariants (DESIGN §4, 1-4 and 6), checked in SQL over the whole ledger."""

from dataclasses import dataclass

from django.db.models import Count, Exists, F, OuterRef, Q, Subquery, Sum, Value
from django.db.models.functions import Coalesce

from banking.models import Account, Entry, Hold, Transfer
from banking.models.ledger import AccountPurpose, TransferKind
from banking.selectors_lending import lending_verify


@dataclass(frozen=True)
class Violation:
    invariant: str
    detail: str


def ledger_verify(limit: int = 100) -> list[Violation]:
    """Every violation found (at most `limit` per invariant); empty when the ledger is sound."""
    found: list[Violation] = []

    unbalanced = (
        Entry.objects.values("transfer_id")
        .annotate(total=Sum("amount"))
        .exclude(total=0)
        .order_by("transfer_id")[:limit]
    )
    found += [
        Violation("1. transfers sum to zero", f"transfer {r['transfer_id']} sums to {r['total']}")
        for r in unbalanced
    ]
    lonely = (
        Transfer.objects.annotate(n=Count("entries")).filter(n__lt=2).values("id", "n")[:limit]
    )
    found += [
        Violation("1. transfers sum to zero", f"transfer {r['id']} has {r['n']} entries")
        for r in lonely
    ]
    # Written entries are checked by a trigger, not foreign keys (migration 0012); this
    # finds any that got past it, e.g. with the trigger disabled.
    orphans = Entry.objects.filter(
        ~Exists(Transfer.objects.filter(pk=OuterRef("transfer_id")))
        | ~Exists(Account.objects.filter(pk=OuterRef("account_id")))
    ).values("id", "transfer_id", "account_id")[:limit]
    found += [
        Violation("1. transfers sum to zero",
                  f"entry {r['id']} names transfer {r['transfer_id']} and account "
                  f"{r['account_id']}, one of which does not exist")
        for r in orphans
    ]
    grand_total = Entry.objects.aggregate(total=Coalesce(Sum("amount"), 0))["total"]
    if grand_total != 0:
        found.append(Violation("1. transfers sum to zero", f"all entries sum to {grand_total}"))

    entry_sum = Subquery(
        Entry.objects.filter(account_id=OuterRef("pk"))
        .values("account_id")
        .annotate(total=Sum("amount"))
        .values("total")
    )
    drifted = (
        Account.objects.annotate(entries_total=Coalesce(entry_sum, Value(0)))
        .exclude(balance=F("entries_total"))
        .values("id", "organization_id", "purpose", "balance", "entries_total")[:limit]
    )
    found += [
        Violation(
            "2. balance equals the sum of entries",
            f"account {r['id']} ({r['organization_id'] or 'system'}:{r['purpose']}) "
            f"balance {r['balance']} but entries sum to {r['entries_total']}",
        )
        for r in drifted
    ]

    below = Account.objects.filter(floor__isnull=False, balance__lt=F("floor")).values(
        "id", "purpose", "balance", "floor"
    )[:limit]
    found += [
        Violation(
            "3. no account below its floor",
            f"account {r['id']} ({r['purpose']}) balance {r['balance']} < floor {r['floor']}",
        )
        for r in below
    ]

    repeated = (
        Transfer.objects.values("idempotency_key")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
        .values("idempotency_key", "n")[:limit]
    )
    found += [
        Violation(
            "4. an idempotency key posts at most once",
            f"key {r['idempotency_key']!r} posted {r['n']} times",
        )
        for r in repeated
    ]

    open_holds = Subquery(
        Hold.objects.filter(organization_id=OuterRef("organization_id"), status=Hold.Status.OPEN)
        .values("organization_id")
        .annotate(total=Sum(F("amount") - F("captured") - F("released")))
        .values("total")
    )
    mismatched = (
        Account.objects.filter(purpose=AccountPurpose.HELD)
        .annotate(open_total=Coalesce(open_holds, Value(0)))
        .exclude(balance=F("open_total"))
        .values("id", "organization_id", "balance", "open_total")[:limit]
    )
    found += [
        Violation(
            "held equals the sum of open holds",
            f"organization {r['organization_id']} held {r['balance']} "
            f"but open holds total {r['open_total']}",
        )
        for r in mismatched
    ]
    closed_with_rest = Hold.objects.filter(
        ~Q(amount=F("captured") + F("released")), status=Hold.Status.CLOSED
    ).values_list("id", flat=True)[:limit]
    found += [
        Violation("held equals the sum of open holds", f"hold {h} closed with tokens left")
        for h in closed_with_rest
    ]
    found += [
        Violation("credit equals unpaid loan principal",
                  f"organization {v.organization_id}: {v.detail}")
        for v in lending_verify(limit)
    ]
    found += payable_verify(limit)
    return found


def payable_verify(limit: int = 100) -> list[Violation]:
    """6. No organization is paid out more than it earned: each payable account equals
    what was earned (`earned` transfers, less their reversals) less the tokens of its
    payouts still standing (awaiting approval, approved, processing or paid), and never
    falls below zero; what was paid out never exceeds what was earned."""
    from banking.models import Payout

    name = "6. payable balance: earned less paid out, never below zero"
    found: list[Violation] = []
    earned_kinds = Q(transfer__kind=TransferKind.EARNED) | Q(
        transfer__kind=TransferKind.REVERSAL, transfer__reverses__kind=TransferKind.EARNED)
    earned = Subquery(
        Entry.objects.filter(earned_kinds, account_id=OuterRef("pk"))
        .values("account_id").annotate(total=Sum("amount")).values("total"))
    standing = Subquery(
        Payout.objects.filter(organization_id=OuterRef("organization_id"))
        .exclude(status__in=[Payout.Status.FAILED, Payout.Status.REJECTED])
        .values("organization_id").annotate(total=Sum("tokens")).values("total"))
    paid = Subquery(
        Payout.objects.filter(organization_id=OuterRef("organization_id"),
                              status=Payout.Status.PAID)
        .values("organization_id").annotate(total=Sum("tokens")).values("total"))
    rows = (
        Account.objects.filter(purpose=AccountPurpose.PAYABLE)
        .annotate(earned=Coalesce(earned, Value(0)), standing=Coalesce(standing, Value(0)),
                  paid=Coalesce(paid, Value(0)))
        .filter(Q(balance__lt=0) | ~Q(balance=F("earned") - F("standing"))
                | Q(paid__gt=F("earned")))
        .values("organization_id", "balance", "earned", "standing", "paid")[:limit]
    )
    found += [
        Violation(name, f"organization {r['organization_id']}: payable {r['balance']}, earned "
                        f"{r['earned']}, payouts standing {r['standing']}, paid {r['paid']}")
        for r in rows
    ]
    return found
