"""Running the ledger check (banking.invariants) and moving its checkpoint: the periodic
task, `manage.py verify_ledger` and the admin's ledger-health page run it here.

A run reads one snapshot (repeatable read on PostgreSQL: balances, entries and the
checkpoint as of one instant, whatever is posted meanwhile) and, when clean and asked
to, records a checkpoint: the bounds seen at the start of an earlier run (or of this
one, with LEDGER_CHECK_SETTLE_S = 0) that is old enough for every posting that held an
id below them to have ended, and the accounts' entry sums carried up to them."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from banking.invariants import Scope, Violation, ledger_verify
from banking.locks import ledger_check_lock
from banking.models import Entry, LedgerCheckpoint, LedgerCheckpointBalance, Transfer
from core.sql_names import column, column_name, insert_into, table, value


@dataclass(frozen=True)
class CheckRun:
    violations: list[Violation]
    full: bool
    # The checkpoint this run started from and the one it recorded (None: none).
    since: LedgerCheckpoint | None
    recorded: LedgerCheckpoint | None

    @property
    def clean(self) -> bool:
        return not self.violations


def ledger_check_run(*, full: bool = False, advance: bool = True,
                     limit: int = 100) -> CheckRun:
    """Check what was posted since the last clean checkpoint (`full`: the whole ledger);
    when clean and `advance`, record a new checkpoint."""
    outermost = not connection.in_atomic_block
    with ledger_check_lock(), transaction.atomic():
        if connection.vendor == "postgresql" and outermost:
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        # Entries first: every entry of a transfer above the transfer bound is then
        # above the entry bound (a posting takes its transfer's id before its entries').
        reading = _Reading(entry=_sequence_value(Entry), transfer=_sequence_value(Transfer),
                           at=timezone.now())
        since = None if full else LedgerCheckpoint.objects.order_by("-id").first()
        settle = timedelta(seconds=settings.LEDGER_CHECK_SETTLE_S)
        scope = Scope() if since is None else Scope(
            entries_after=since.entry_bound, transfers_after=since.transfer_bound,
            entries_total=since.entries_total, settled_before=since.bounds_read_at - settle)
        violations = ledger_verify(limit, scope=scope)
        recorded = None
        if advance and not violations:
            recorded = _record(since=since, reading=reading, settle=settle)
        return CheckRun(violations=violations, full=scope.full, since=since,
                        recorded=recorded)


@dataclass(frozen=True)
class _Reading:
    entry: int
    transfer: int
    at: datetime


def _sequence_value(model: type[Transfer] | type[Entry]) -> int:
    """The highest id handed out so far, committed or not."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                f"SELECT COALESCE(pg_sequence_last_value(CAST(pg_get_serial_sequence("
                f"{value(model._meta.db_table)}, {value(column_name(model, 'id'))}) "
                f"AS regclass)), 0)")
        else:
            cursor.execute(f"SELECT COALESCE(MAX({column(model, 'id')}), 0) FROM {table(model)}")
        row = cursor.fetchone()
    return int(row[0]) if row else 0


def _record(*, since: LedgerCheckpoint | None, reading: _Reading,
            settle: timedelta) -> LedgerCheckpoint:
    """The new checkpoint: bounds from the newest reading old enough to trust (this
    run's own when nothing settles), sums carried up to its entry bound from the last
    checkpoint's (or, from none, summed anew)."""
    if since is None:
        LedgerCheckpointBalance.objects.all().delete()
    bound = _Reading(entry=0, transfer=0, at=reading.at) if since is None else _Reading(
        entry=since.entry_bound, transfer=since.transfer_bound, at=since.bounds_read_at)
    trusted: _Reading | None = reading if not settle else None
    if settle:
        older = (LedgerCheckpoint.objects.filter(created_at__lte=reading.at - settle)
                 .order_by("-id").first())
        if older is not None:
            trusted = _Reading(entry=older.entry_seen, transfer=older.transfer_seen,
                               at=older.created_at)
    if trusted is not None and trusted.entry >= bound.entry:
        carried = _carry_sums(after=bound.entry, up_to=trusted.entry)
        bound = _Reading(entry=trusted.entry, transfer=max(trusted.transfer, bound.transfer),
                         at=trusted.at)
    else:
        carried = 0
    return LedgerCheckpoint.objects.create(
        entry_bound=bound.entry, transfer_bound=bound.transfer, bounds_read_at=bound.at,
        entries_total=(since.entries_total if since else 0) + carried,
        entry_seen=reading.entry, transfer_seen=reading.transfer,
        full=since is None, created_at=reading.at)


_SUMS = table(LedgerCheckpointBalance)
_SUM = column(LedgerCheckpointBalance, "entries_total")


def _carry_sums(*, after: int, up_to: int) -> int:
    """Add the entries with after < id <= up_to to the accounts' sums; their total."""
    if up_to <= after:
        return 0
    entry_id, account, amount = (column(Entry, f) for f in ("id", "account", "amount"))
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {insert_into(LedgerCheckpointBalance, 'account', 'entries_total')} "
            f"SELECT {account}, SUM({amount}) FROM {table(Entry)} "
            f"WHERE {entry_id} > %s AND {entry_id} <= %s GROUP BY {account} "
            f"ON CONFLICT ({column(LedgerCheckpointBalance, 'account')}) "
            f"DO UPDATE SET {_SUM} = {_SUMS}.{_SUM} + EXCLUDED.{_SUM}", [after, up_to])
        cursor.execute(
            f"SELECT COALESCE(SUM({amount}), 0) FROM {table(Entry)} "
            f"WHERE {entry_id} > %s AND {entry_id} <= %s", [after, up_to])
        row = cursor.fetchone()
    return int(row[0]) if row else 0
