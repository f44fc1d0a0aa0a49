"""Reads. Every organization-facing read is scoped to one organization."""

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from django.db.models import BigIntegerField, QuerySet, Sum
from django.db.models.expressions import RawSQL
from django.db.models.functions import TruncDate
from django.db.models.query import ModelIterable
from django.utils import timezone

from banking.models import (
    Account,
    ApiKey,
    AuditEvent,
    Entry,
    Invitation,
    Membership,
    Organization,
)
from banking.models.ledger import AccountPurpose, TransferKind
from banking.models.payments import Payout, PayoutAccount, TopUp
from core.errors import NotFound
from core.sql_names import column


def organization_account_ids(organization_id: int) -> dict[str, int]:
    ids = dict(
        Account.objects.filter(organization_id=organization_id).values_list("purpose", "id")
    )
    if AccountPurpose.WALLET not in ids:
        raise NotFound(f"Organization {organization_id} has no accounts.")
    return ids


def organization_account(organization_id: int, purpose: str) -> Account:
    account = Account.objects.filter(organization_id=organization_id, purpose=purpose).first()
    if account is None:
        raise NotFound(f"Organization {organization_id} has no {purpose} account.")
    return account


@dataclass(frozen=True)
class WalletSummary:
    available: int
    held: int
    credit_limit: int
    credit_used: int
    debt: int

    @property
    def owed(self) -> int:
        """Everything the organization owes: credit drawn plus unpaid debt."""
        return self.credit_used + self.debt


def wallet_get(*, organization_id: int) -> WalletSummary:
    rows = {
        a.purpose: a
        for a in Account.objects.filter(organization_id=organization_id).only(
            "purpose", "balance", "floor"
        )
    }
    if AccountPurpose.WALLET not in rows:
        raise NotFound("This organization has no wallet.")
    credit = rows.get(AccountPurpose.CREDIT)
    debt = rows.get(AccountPurpose.DEBT)
    return WalletSummary(
        available=rows[AccountPurpose.WALLET].balance,
        held=rows[AccountPurpose.HELD].balance if AccountPurpose.HELD in rows else 0,
        credit_limit=-(credit.floor or 0) if credit else 0,
        credit_used=-credit.balance if credit else 0,
        debt=max(0, -debt.balance) if debt else 0,
    )


# Where each part of the statement's merged read names its account, and its alias
# (StatementQuerySet._merged_slice).
_ACCOUNT_MARK, _PART = "statement_account_id", "statement_part"


class StatementQuerySet(QuerySet[Entry]):
    """An organization's entries (scoped by the organization, as any other read), whose
    ordered slices are read one account at a time and merged.

    A page of the statement is the newest rows of a few accounts (an organization has one
    per purpose). Read as one set, PostgreSQL finds them either by every entry of the
    organization, sorted (a bitmap scan: as slow as the organization is large), or by
    walking the whole ledger backwards along the transfer index until the page is full (as
    slow as the organization is small next to the others). Read per account, each is a
    backward walk of the (account, transfer) index that stops after the slice's last row:
    the page costs the same at any depth of the ledger and for an organization of any
    size. The slice of the merge is the slice of the whole, since each of the whole's
    first `n` rows is among the first `n` of its own account.

    Anything but an ordered slice of model instances (an iterator, a count, a lookup of
    one transfer, values) is read as the plain queryset it also is."""

    # The organization's accounts the statement reads; none: an ordinary queryset.
    statement_accounts: tuple[int, ...] = ()

    def _clone(self) -> "StatementQuerySet":
        clone: StatementQuerySet = super()._clone()  # type: ignore[misc]
        clone.statement_accounts = self.statement_accounts
        return clone

    def _fetch_all(self) -> None:
        if self._result_cache is None and self._reads_per_account():
            self._result_cache = self._merged_slice()
        super()._fetch_all()

    def _reads_per_account(self) -> bool:
        query = self.query
        ordering = [o.lstrip("-") if isinstance(o, str) else None for o in query.order_by]
        # The merge is the whole's slice only in a total order: one that ends on the id.
        # The rows are then read again by id with their select_related alone, so a slice
        # of anything more (annotations, deferred columns) is read as it was asked.
        return (bool(self.statement_accounts) and query.high_mark is not None
                and bool(ordering) and ordering[-1] == "id" and None not in ordering
                and not query.combinator and not query.distinct
                and not query.select_for_update and self._iterable_class is ModelIterable
                and not query.annotations and not query.extra
                and query.deferred_loading == (frozenset(), True))

    def _merged_slice(self) -> list[Entry]:
        low, high = self.query.low_mark, self.query.high_mark
        assert high is not None
        whole = self.all()
        whole.statement_accounts = ()
        whole.query.clear_limits()
        ordering = [str(o) for o in self.query.order_by]
        keys = [o.lstrip("-") for o in ordering]
        # First the slice's ids, from the entries alone (the joins of the filters aside):
        # joined to transfers, PostgreSQL may merge-join along the transfers' primary key
        # from its far end instead of probing it once per row. One part per account, in
        # which the account is a constant, not a member of a list: PostgreSQL plans each
        # by that account's own statistics and walks the (account, transfer) index in the
        # slice's order, stopping at the slice's end. (A LATERAL part over a list of
        # accounts is planned for an average account: past a few dozen rows it sorts the
        # whole account.) The part is compiled once and repeated with each account: a
        # UNION of querysets compiled each part again, as much time as the read itself.
        part = (whole.filter(account_id=RawSQL(_ACCOUNT_MARK, [], BigIntegerField()))
                .values_list(*keys)[:high])
        part_sql, part_params = part.query.sql_with_params()
        head, mark, tail = part_sql.partition(f"({_ACCOUNT_MARK})")
        if not mark or _ACCOUNT_MARK in tail:
            return list(whole[low:high])
        at = head.count("%s")
        params: list[Any] = []
        for account in self.statement_accounts:
            params += [*part_params[:at], account, *part_params[at:]]
        order = ", ".join(f"{_PART}.{column(Entry, key)} {'DESC' if o[0] == '-' else 'ASC'}"
                          for o, key in zip(ordering, keys, strict=True))
        parts = " UNION ALL ".join([f"({head}%s{tail})"] * len(self.statement_accounts))
        picked = RawSQL(f"SELECT {_PART}.{column(Entry, 'id')} FROM ({parts}) AS {_PART} "
                        f"ORDER BY {order} LIMIT %s OFFSET %s", [*params, high - low, low])
        # Then the rows by id alone, in the same statement: with the filters again,
        # PostgreSQL may intersect the ids with every entry of the account. The ids are
        # the filtered slice already.
        rows = Entry.objects.using(self.db).filter(id__in=picked).order_by(*ordering)
        related = self.query.select_related
        if related is True:
            return list(rows.select_related())
        return list(rows.select_related(*_related_paths(related)) if related else rows)


def _related_paths(tree: dict[str, Any], prefix: str = "") -> list[str]:
    """`select_related`'s names, from the nested dict a query keeps them in."""
    paths = []
    for name, below in tree.items():
        paths += _related_paths(below, f"{prefix}{name}__") if below else [f"{prefix}{name}"]
    return paths


def statement_list(
    *,
    organization_id: int,
    kinds: list[str] | None = None,
    date_from: date | None = None,
    date_to: date | None = None,
    purposes: list[str] | None = None,
) -> QuerySet[Entry]:
    """The organization's entries, newest first, with their transfer. Its slices (pages)
    are read per account (`StatementQuerySet`)."""
    accounts = Account.objects.filter(organization_id=organization_id)
    if purposes:
        accounts = accounts.filter(purpose__in=purposes)
    qs = (
        StatementQuerySet(model=Entry)
        .filter(account__organization_id=organization_id)
        .select_related("transfer", "account")
        .order_by("-transfer_id", "-id")
    )
    qs.statement_accounts = tuple(accounts.order_by("id").values_list("id", flat=True))
    if purposes:
        qs = qs.filter(account__purpose__in=purposes)
    if kinds:
        qs = qs.filter(transfer__kind__in=kinds)
    if date_from:
        qs = qs.filter(transfer__created_at__date__gte=date_from)
    if date_to:
        qs = qs.filter(transfer__created_at__date__lte=date_to)
    return qs


def transfer_entries_get(*, organization_id: int, transfer_id: int) -> list[Entry]:
    """The organization's entries of one transfer, with the transfer; NotFound when it has
    none (another organization's transfer is not there for it). Index probes only: the
    (account, transfer) index, once per account of the organization."""
    if not 0 < transfer_id < 2**63:  # a path's digits, bounded by the column
        raise NotFound(f"Transfer {transfer_id} not found.")
    accounts = list(Account.objects.filter(organization_id=organization_id)
                    .values_list("id", flat=True))
    entries = list(Entry.objects.filter(account_id__in=accounts, transfer_id=transfer_id)
                   .select_related("transfer", "account").order_by("id"))
    if not entries:
        raise NotFound(f"Transfer {transfer_id} not found.")
    return entries


def organization_get(*, organization_id: int) -> Organization:
    org = Organization.objects.filter(pk=organization_id).first()
    if org is None:
        raise NotFound("Organization not found.")
    return org


# What an organization spends: tokens leaving its wallet or its held account for good, to
# pay for compute (captured usage, block purchases) or to repay a loan. Holds and releases
# only move tokens between its own accounts; payouts are cash-outs, not spending.
SPEND_KINDS = (TransferKind.CAPTURE, TransferKind.PURCHASE, TransferKind.INSTALLMENT)


def spend_per_day(
    *, organization_id: int, days: int = 30, today: date | None = None
) -> list[tuple[date, int]]:
    """Tokens spent on each of the last `days` days (UTC), oldest first, zeros included."""
    today = today or timezone.now().date()
    first = today - timedelta(days=days - 1)
    totals = dict(
        Entry.objects.filter(
            account__organization_id=organization_id,
            account__purpose__in=[AccountPurpose.WALLET, AccountPurpose.HELD],
            amount__lt=0,
            transfer__kind__in=SPEND_KINDS,
            transfer__created_at__date__gte=first,
            transfer__created_at__date__lte=today,
        )
        .annotate(day=TruncDate("transfer__created_at"))
        .values("day")
        .annotate(total=Sum("amount"))
        .values_list("day", "total")
    )
    return [
        (first + timedelta(days=i), -(totals.get(first + timedelta(days=i)) or 0))
        for i in range(days)
    ]


EARNING_KINDS = (TransferKind.CAPTURE, TransferKind.YIELD)


def earnings_per_day(
    *, organization_id: int, days: int = 30, today: date | None = None
) -> list[tuple[date, int]]:
    """Tokens a provider earned into its wallet each day (usage and availability yield),
    oldest first, zeros included."""
    today = today or timezone.now().date()
    first = today - timedelta(days=days - 1)
    totals = dict(
        Entry.objects.filter(
            account__organization_id=organization_id,
            account__purpose=AccountPurpose.WALLET,
            amount__gt=0,
            transfer__kind__in=EARNING_KINDS,
            transfer__created_at__date__gte=first,
            transfer__created_at__date__lte=today,
        )
        .annotate(day=TruncDate("transfer__created_at"))
        .values("day")
        .annotate(total=Sum("amount"))
        .values_list("day", "total")
    )
    return [
        (first + timedelta(days=i), totals.get(first + timedelta(days=i)) or 0)
        for i in range(days)
    ]


def membership_list(*, organization_id: int) -> QuerySet[Membership]:
    """The organization's members with their user, in the order they joined."""
    return (
        Membership.objects.filter(organization_id=organization_id)
        .select_related("user")
        .order_by("id")
    )


def invitation_list(*, organization_id: int) -> QuerySet[Invitation]:
    """The organization's open invitations (addresses that have not signed up yet)."""
    return Invitation.objects.filter(organization_id=organization_id,
                                     accepted_at=None).order_by("id")


def invitation_open_get(*, invitation_id: int) -> Invitation | None:
    return (Invitation.objects.filter(pk=invitation_id, accepted_at=None)
            .select_related("organization", "invited_by").first())


def invitation_open_exists(*, email: str) -> bool:
    return Invitation.objects.filter(email=email.strip().lower(), accepted_at=None).exists()


def membership_get(*, user_id: int, organization_id: int) -> Membership | None:
    return (
        Membership.objects.filter(user_id=user_id, organization_id=organization_id)
        .select_related("organization")
        .first()
    )


def user_membership_list(*, user_id: int) -> QuerySet[Membership]:
    """Every organization a user belongs to, in the order they joined."""
    return (
        Membership.objects.filter(user_id=user_id).select_related("organization").order_by("id")
    )


def api_key_list(*, organization_id: int) -> QuerySet[ApiKey]:
    return (
        ApiKey.objects.filter(organization_id=organization_id)
        .select_related("created_by")
        .order_by("-created_at")
    )


# Payments


def topup_list(*, organization_id: int) -> QuerySet[TopUp]:
    return TopUp.objects.filter(organization_id=organization_id).order_by("-id")


def topup_get(*, organization_id: int, topup_id: int) -> TopUp:
    topup = TopUp.objects.filter(organization_id=organization_id, pk=topup_id).first()
    if topup is None:
        raise NotFound("Top-up not found.")
    return topup


def payout_list(*, organization_id: int) -> QuerySet[Payout]:
    return Payout.objects.filter(organization_id=organization_id).order_by("-id")


def payout_account_get(*, organization_id: int) -> PayoutAccount | None:
    return PayoutAccount.objects.filter(organization_id=organization_id).first()



def audit_event_list(*, organization_id: int) -> QuerySet[AuditEvent]:
    return AuditEvent.objects.filter(organization_id=organization_id).order_by("-created_at",
                                                                               "-id")
