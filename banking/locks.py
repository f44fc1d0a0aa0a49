"""Every row lock banking takes goes through here, so locks are always taken in one
order: payment rows (top-ups, payouts, disputes) before holds before accounts, each kind
by ascending primary key."""

from collections.abc import Iterable

from banking.models import Account, Hold, Payout, TopUp


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


# Payments


def topup_lock(topup_id: int) -> TopUp | None:
    return TopUp.objects.select_for_update().filter(pk=topup_id).first()


def payout_lock(payout_id: int) -> Payout | None:
    return Payout.objects.select_for_update().filter(pk=payout_id).first()
