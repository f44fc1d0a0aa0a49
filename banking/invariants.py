"""The ledger's invariants (DESIGN §4, 1-4 and 6, and the holds' and loans' agreement with it),
each checked by one function of `CHECKS`, in one of two scopes: the whole ledger, or what
was posted after the last clean checkpoint (banking.models.checks) with the accounts'
entry sums carried from it. Both forms run every check.

A check is `def check(scope: Scope, limit: int) -> list[Violation]`, reporting at most
`limit` violations per invariant; to add an invariant, write one and append it to
`CHECKS`. Reads only: banking.services.ledger_checks runs the checks in one snapshot and
advances the checkpoint."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection
from django.db.models import F, OuterRef, Q, Subquery, Sum, Value
from django.db.models.functions import Coalesce

from banking.models import Account, Entry, Hold, LedgerCheckpointBalance, Transfer
from banking.models.ledger import AccountPurpose, TransferKind
from banking.selectors_lending import lending_verify
from core.sql_names import column, table


@dataclass(frozen=True)
class Violation:
    invariant: str
    detail: str


@dataclass(frozen=True)
class Scope:
    """The rows a check reads. The whole ledger by default; after a checkpoint, entries
    with id > entries_after and transfers with id > transfers_after, the accounts' sums
    up to it read from LedgerCheckpointBalance and their grand total from entries_total.
    Entries above the bound that belong to a transfer below it are those of postings in
    flight when the checkpoint was taken, created after `settled_before`; any other is
    a row written since into the checked past."""

    entries_after: int = 0
    transfers_after: int = 0
    entries_total: int = 0
    settled_before: datetime | None = None

    @property
    def full(self) -> bool:
        return self.settled_before is None


Check = Callable[[Scope, int], list[Violation]]

_E, _T, _A = table(Entry), table(Transfer), table(Account)
_E_ID, _E_AMOUNT = column(Entry, "id"), column(Entry, "amount")
_E_TRANSFER, _E_ACCOUNT = column(Entry, "transfer"), column(Entry, "account")
_T_ID, _A_ID = column(Transfer, "id"), column(Account, "id")


def _rows(sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return list(cursor.fetchall())


SUM_ZERO = "1. transfers sum to zero"


def transfers_sum_to_zero(scope: Scope, limit: int) -> list[Violation]:
    """Every transfer in scope has two entries or more summing to zero; every entry in
    scope names a transfer and an account that exist; all entries sum to zero."""
    found: list[Violation] = []
    unbalanced = _rows(
        f"SELECT t.{_T_ID}, COUNT(e.{_E_ID}), COALESCE(SUM(e.{_E_AMOUNT}), 0) FROM {_T} t "
        f"LEFT JOIN {_E} e ON e.{_E_TRANSFER} = t.{_T_ID} AND e.{_E_ID} > %s "
        f"WHERE t.{_T_ID} > %s GROUP BY t.{_T_ID} "
        f"HAVING COUNT(e.{_E_ID}) < 2 OR COALESCE(SUM(e.{_E_AMOUNT}), 0) <> 0 "
        f"ORDER BY t.{_T_ID} LIMIT %s",
        [scope.entries_after, scope.transfers_after, limit])
    found += [Violation(SUM_ZERO, f"transfer {t} sums to {total}")
              for t, n, total in unbalanced if n >= 2]
    found += [Violation(SUM_ZERO, f"transfer {t} has {n} entries")
              for t, n, _total in unbalanced if n < 2]
    # Written entries are checked by a trigger, not foreign keys (migration 0012); this
    # finds any that got past it, e.g. with the trigger disabled.
    orphans = _rows(
        f"SELECT e.{_E_ID}, e.{_E_TRANSFER}, e.{_E_ACCOUNT} FROM {_E} e WHERE e.{_E_ID} > %s "
        f"AND (NOT EXISTS (SELECT 1 FROM {_T} t WHERE t.{_T_ID} = e.{_E_TRANSFER}) "
        f"OR NOT EXISTS (SELECT 1 FROM {_A} a WHERE a.{_A_ID} = e.{_E_ACCOUNT})) "
        f"ORDER BY e.{_E_ID} LIMIT %s", [scope.entries_after, limit])
    found += [Violation(SUM_ZERO, f"entry {e} names transfer {t} and account {a}, one of "
                                  "which does not exist") for e, t, a in orphans]
    if not scope.full:
        late = _rows(
            f"SELECT e.{_E_ID}, e.{_E_TRANSFER} FROM {_E} e JOIN {_T} t "
            f"ON t.{_T_ID} = e.{_E_TRANSFER} WHERE e.{_E_ID} > %s AND t.{_T_ID} <= %s "
            f"AND t.{column(Transfer, 'created_at')} < %s ORDER BY e.{_E_ID} LIMIT %s",
            [scope.entries_after, scope.transfers_after, scope.settled_before, limit])
        found += [Violation(SUM_ZERO, f"entry {e} was added to transfer {t} after it was "
                                      "checked") for e, t in late]
    [(since,)] = _rows(f"SELECT COALESCE(SUM({_E_AMOUNT}), 0) FROM {_E} WHERE {_E_ID} > %s",
                       [scope.entries_after])
    grand_total = scope.entries_total + since
    if grand_total != 0:
        found.append(Violation(SUM_ZERO, f"all entries sum to {grand_total}"))
    return found


def balances_match_entries(scope: Scope, limit: int) -> list[Violation]:
    """Every account's balance is the sum of its entries: those up to the checkpoint as
    summed there, and those after it."""
    carried = "0"
    join = ""
    if not scope.full:
        sums = table(LedgerCheckpointBalance)
        carried = f"COALESCE(c.{column(LedgerCheckpointBalance, 'entries_total')}, 0)"
        join = (f"LEFT JOIN {sums} c "
                f"ON c.{column(LedgerCheckpointBalance, 'account')} = a.{_A_ID} ")
    total = f"({carried} + COALESCE(n.total, 0))"
    balance = column(Account, "balance")
    drifted = _rows(
        f"SELECT a.{_A_ID}, a.{column(Account, 'organization')}, a.{column(Account, 'purpose')}, "
        f"a.{balance}, {total} FROM {_A} a {join}"
        f"LEFT JOIN (SELECT {_E_ACCOUNT} AS account_id, SUM({_E_AMOUNT}) AS total FROM {_E} "
        f"WHERE {_E_ID} > %s GROUP BY {_E_ACCOUNT}) n ON n.account_id = a.{_A_ID} "
        f"WHERE a.{balance} <> {total} ORDER BY a.{_A_ID} LIMIT %s",
        [scope.entries_after, limit])
    return [
        Violation("2. balance equals the sum of entries",
                  f"account {a} ({org or 'system'}:{purpose}) balance {bal} but entries sum "
                  f"to {summed}")
        for a, org, purpose, bal, summed in drifted
    ]


def floors_hold(scope: Scope, limit: int) -> list[Violation]:
    below = Account.objects.filter(floor__isnull=False, balance__lt=F("floor")).values(
        "id", "purpose", "balance", "floor"
    ).order_by("id")[:limit]
    return [
        Violation(
            "3. no account below its floor",
            f"account {r['id']} ({r['purpose']}) balance {r['balance']} < floor {r['floor']}",
        )
        for r in below
    ]


def keys_post_once(scope: Scope, limit: int) -> list[Violation]:
    """No idempotency key of a transfer in scope is on any other transfer."""
    key = column(Transfer, "idempotency_key")
    repeated = _rows(
        f"SELECT t.{key}, COUNT(*) FROM {_T} t JOIN {_T} u ON u.{key} = t.{key} "
        f"WHERE t.{_T_ID} > %s GROUP BY t.{key} HAVING COUNT(*) > 1 "
        f"ORDER BY t.{key} LIMIT %s", [scope.transfers_after, limit])
    return [Violation("4. an idempotency key posts at most once",
                      f"key {k!r} posted {n} times") for k, n in repeated]


def held_matches_holds(scope: Scope, limit: int) -> list[Violation]:
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
    found = [
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
    return found


def credit_matches_loans(scope: Scope, limit: int) -> list[Violation]:
    return [
        Violation("credit equals unpaid loan principal",
                  f"organization {v.organization_id}: {v.detail}")
        for v in lending_verify(limit)
    ]


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


def payable_holds(scope: Scope, limit: int) -> list[Violation]:
    """Invariant 6 over every payable account, whatever the scope: the payable balances
    are few (one per organization) and a payout can make an old one wrong."""
    return payable_verify(limit)


CHECKS: list[Check] = [
    transfers_sum_to_zero,
    balances_match_entries,
    floors_hold,
    keys_post_once,
    held_matches_holds,
    credit_matches_loans,
    payable_holds,
]


def ledger_verify(limit: int = 100, *, scope: Scope | None = None) -> list[Violation]:
    """Every violation found by every check (at most `limit` per invariant), over the
    whole ledger unless a scope is given; empty when the ledger is sound."""
    scope = scope or Scope()
    found: list[Violation] = []
    for check in CHECKS:
        found += check(scope, limit)
    return found
