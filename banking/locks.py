"""Every row lock banking takes goes through here, so locks are always taken in one
order: organizations, then holds, then accounts; each kind by ascending primary key.

Lending serializes everything it does for one organization (origination, collection,
prepayment, write-off, credit line changes) on that organization's row, taken first;
loans and installments are only written under it, so they need no locks of their own."""

from collections.abc import Iterable

from banking.models import Account, Hold, Organization


def organizations_lock(organization_ids: Iterable[int]) -> dict[int, Organization]:
    ids = sorted(set(organization_ids))
    rows = Organization.objects.select_for_update().filter(id__in=ids).order_by("id")
    return {o.id: o for o in rows}


def accounts_lock(account_ids: Iterable[int]) -> dict[int, Account]:
    ids = sorted(set(account_ids))
    rows = (
        Account.objects.select_for_update()
        .filter(id__in=ids)
        .order_by("id")
        .only("id", "balance", "floor", "organization_id", "purpose")
    )
    return {a.id: a for a in rows}


def holds_lock(hold_ids: Iterable[int]) -> dict[int, Hold]:
    ids = sorted(set(hold_ids))
    return {h.id: h for h in Hold.objects.select_for_update().filter(id__in=ids).order_by("id")}
