"""Every row lock banking takes goes through here, so locks are always taken in one
order: organizations, then payment rows (top-ups, payouts, disputes), then holds, then
accounts; each kind by ascending primary key.

Lending serializes everything it does for one organization (origination, collection,
prepayment, write-off, credit line changes) on that organization's row, taken first;
loans and installments are only written under it, so they need no locks of their own.
Payments lock one top-up or payout row (never an organization) before its holds and
accounts."""

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from django.db import connection

from banking.models import Account, Hold, Organization, Payout, TopUp


def organizations_lock(organization_ids: Iterable[int]) -> dict[int, Organization]:
    ids = sorted(set(organization_ids))
    rows = Organization.objects.select_for_update().filter(id__in=ids).order_by("id")
    return {o.id: o for o in rows}


@dataclass(frozen=True)
class LockedAccount:
    id: int
    balance: int
    floor: int | None
    purpose: str


def accounts_lock(account_ids: Iterable[int]) -> dict[int, LockedAccount]:
    """Lock the accounts (ascending id) for the rest of the transaction and return their
    balances as read under the lock. Plain SQL: this is the posting service's hot path."""
    ids = sorted(set(account_ids))
    table = Account._meta.db_table
    sql = (
        f"SELECT id, balance, floor, purpose FROM {table} WHERE id IN "
        f"({', '.join(['%s'] * len(ids))}) ORDER BY id"
    )
    if connection.features.has_select_for_update:
        # The lock an UPDATE of the balance takes: postings on an account still queue, and
        # foreign-key checks of entries (KEY SHARE) do not wait for it, nor it for them.
        sql += " FOR NO KEY UPDATE"
    with connection.cursor() as cursor:
        cursor.execute(sql, ids)
        return {row[0]: LockedAccount(*row) for row in cursor.fetchall()}


def holds_lock(hold_ids: Iterable[int]) -> dict[int, Hold]:
    ids = sorted(set(hold_ids))
    return {h.id: h for h in Hold.objects.select_for_update().filter(id__in=ids).order_by("id")}


# Payments


def topup_lock(topup_id: int) -> TopUp | None:
    return TopUp.objects.select_for_update().filter(pk=topup_id).first()


def payout_lock(payout_id: int) -> Payout | None:
    return Payout.objects.select_for_update().filter(pk=payout_id).first()


# The ledger check

LEDGER_CHECK_LOCK_KEY = 0x1ED6E4  # pg advisory lock: one ledger check advances at a time


@contextmanager
def ledger_check_lock() -> Iterator[None]:
    """Held around a whole run of the ledger check, outside its transaction: a run must
    read the checkpoint that the run before it committed, and a repeatable-read snapshot
    taken before waiting for a transaction-scoped lock would not see it. Inside a
    transaction already open (a test's), the transaction-scoped lock instead."""
    if connection.vendor != "postgresql":
        yield
        return
    if connection.in_atomic_block:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [LEDGER_CHECK_LOCK_KEY])
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s)", [LEDGER_CHECK_LOCK_KEY])
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [LEDGER_CHECK_LOCK_KEY])
