"""The incremental ledger check: what was posted since the last clean checkpoint, with
the accounts' sums carried from it; `--full` for the whole ledger. Corruption planted
in the checked past is found by --full, corruption in what is new by the incremental
run."""

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.db.models import Sum
from django.utils import timezone

from banking.invariants import CHECKS, Scope
from banking.models import Entry, LedgerCheckpoint, LedgerCheckpointBalance, Transfer
from banking.models.ledger import AccountPurpose, TransferKind
from banking.selectors import organization_account
from banking.services.ledger import grant_post, transfer_post
from banking.services.ledger_checks import ledger_check_run
from banking.tasks import ledger_check_task


@pytest.fixture(autouse=True)
def _nothing_in_flight(settings):
    """No posting runs alongside these tests: a run may trust the ids it reads itself."""
    settings.LEDGER_CHECK_SETTLE_S = 0


def _wallet(org) -> int:
    return organization_account(org.pk, AccountPurpose.WALLET).pk


def _corrupt(sql: str, params: list) -> None:
    """Write past the append-only triggers (undone with the test's transaction)."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("ALTER TABLE banking_entry DISABLE TRIGGER USER")
        cursor.execute(sql, params)
        if connection.vendor == "postgresql":
            cursor.execute("ALTER TABLE banking_entry ENABLE TRIGGER USER")


def _last_ids() -> tuple[int, int]:
    return (Entry.objects.order_by("-id").values_list("id", flat=True)[0],
            Transfer.objects.order_by("-id").values_list("id", flat=True)[0])


def test_the_first_run_checks_everything_and_the_next_only_what_is_new(make_org):
    payer, payee = make_org(tokens=1_000), make_org()
    first = ledger_check_run()
    assert first.clean and first.full and first.since is None
    assert first.recorded is not None
    assert (first.recorded.entry_bound, first.recorded.transfer_bound) == _last_ids()
    transfer_post(kind=TransferKind.TRANSFER, idempotency_key="new",
                  legs=[(_wallet(payer), -300), (_wallet(payee), 300)])
    second = ledger_check_run()
    assert second.clean and not second.full
    assert second.since == first.recorded
    assert second.recorded is not None
    assert (second.recorded.entry_bound, second.recorded.transfer_bound) == _last_ids()
    assert second.recorded.entries_total == 0
    sums = dict(LedgerCheckpointBalance.objects.values_list("account_id", "entries_total"))
    entries = dict(Entry.objects.values_list("account_id").annotate(total=Sum("amount")))
    assert sums == entries
    assert sums[_wallet(payer)] == 700


@pytest.mark.no_ledger_check
def test_corruption_in_old_rows_is_found_by_the_full_check(make_org, capsys):
    org = make_org(tokens=1_000)
    assert ledger_check_run().clean
    old = Entry.objects.get(account_id=_wallet(org))
    _corrupt("UPDATE banking_entry SET amount = amount + 5 WHERE id = %s", [old.pk])
    # What is new since the checkpoint is sound: the incremental run does not reread the
    # checked past (its sums are carried).
    assert ledger_check_run(advance=False).violations == []
    with pytest.raises(CommandError, match="violation"):
        call_command("verify_ledger", "--full")
    err = capsys.readouterr().err
    assert f"transfer {old.transfer_id} sums to 5" in err
    assert f"account {_wallet(org)} ({org.pk}:wallet) balance 1000 but entries sum to 1005" in err
    assert LedgerCheckpoint.objects.count() == 1


@pytest.mark.no_ledger_check
def test_corruption_in_new_rows_is_found_by_the_incremental_check(make_org, capsys):
    payer, payee = make_org(tokens=1_000), make_org()
    checkpoint = ledger_check_run().recorded
    moved = transfer_post(kind=TransferKind.TRANSFER, idempotency_key="later",
                          legs=[(_wallet(payer), -300), (_wallet(payee), 300)])
    _corrupt("UPDATE banking_entry SET amount = 310 WHERE transfer_id = %s AND amount = 300",
             [moved.pk])
    with pytest.raises(CommandError, match="3 violation"):
        call_command("verify_ledger")
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"VIOLATION [1. transfers sum to zero] transfer {moved.pk} sums to 10",
        "VIOLATION [1. transfers sum to zero] all entries sum to 10",
        f"VIOLATION [2. balance equals the sum of entries] account {_wallet(payee)} "
        f"({payee.pk}:wallet) balance 300 but entries sum to 310",
    ]
    # A dirty run records no checkpoint: the next one starts from the same place.
    assert list(LedgerCheckpoint.objects.all()) == [checkpoint]


@pytest.mark.no_ledger_check
def test_an_entry_added_to_a_checked_transfer_is_found_by_the_incremental_check(make_org):
    org = make_org(tokens=1_000)
    assert ledger_check_run().clean
    old = Entry.objects.get(account_id=_wallet(org))
    other = Entry.objects.get(transfer_id=old.transfer_id, amount=-old.amount)
    _corrupt("INSERT INTO banking_entry (transfer_id, account_id, amount) "
             "VALUES (%s, %s, 9), (%s, %s, -9)",
             [old.transfer_id, old.account_id, old.transfer_id, other.account_id])
    details = [v.detail for v in ledger_check_run().violations]
    added = Entry.objects.filter(transfer_id=old.transfer_id).order_by("id")[2:]
    assert [d for d in details if "after it was checked" in d] == [
        f"entry {e.pk} was added to transfer {old.transfer_id} after it was checked"
        for e in added]
    assert f"account {_wallet(org)} ({org.pk}:wallet) balance 1000 but entries sum to 1009" in (
        details)


@pytest.mark.no_ledger_check
def test_a_balance_changed_without_entries_is_found_by_the_incremental_check(make_org):
    org = make_org(tokens=1_000)
    assert ledger_check_run().clean
    from banking.models import Account
    Account.objects.filter(pk=_wallet(org)).update(balance=1_001)
    assert [v.detail for v in ledger_check_run().violations] == [
        f"account {_wallet(org)} ({org.pk}:wallet) balance 1001 but entries sum to 1000"]


def test_ids_are_trusted_only_once_postings_that_held_them_have_ended(make_org, settings,
                                                                      time_machine):
    settings.LEDGER_CHECK_SETTLE_S = 300
    org = make_org(tokens=1_000)
    time_machine.move_to(timezone.now(), tick=False)
    first = ledger_check_run().recorded
    assert first is not None
    assert (first.entry_bound, first.transfer_bound) == (0, 0)
    assert (first.entry_seen, first.transfer_seen) == _last_ids()
    grant_post(organization_id=org.pk, amount=5, reason="later")
    time_machine.shift(timedelta(seconds=301))
    second = ledger_check_run().recorded
    assert second is not None
    assert (second.entry_bound, second.transfer_bound) == (first.entry_seen,
                                                           first.transfer_seen)
    assert second.bounds_read_at == first.created_at
    assert LedgerCheckpointBalance.objects.get(account_id=_wallet(org)).entries_total == 1_000


def test_the_full_check_sums_the_accounts_anew(make_org):
    org = make_org(tokens=1_000)
    ledger_check_run()
    LedgerCheckpointBalance.objects.filter(account_id=_wallet(org)).update(entries_total=7)
    run = ledger_check_run(full=True)
    assert run.clean and run.full and run.recorded is not None and run.recorded.full
    assert LedgerCheckpointBalance.objects.get(account_id=_wallet(org)).entries_total == 1_000


def test_both_forms_run_every_check(make_org, monkeypatch):
    make_org(tokens=10)
    ran: list[tuple[str, bool]] = []

    def spied(check):
        def spy(scope: Scope, limit: int) -> list:
            ran.append((check.__name__, scope.full))
            return check(scope, limit)
        return spy

    names = [check.__name__ for check in CHECKS]
    # DESIGN §4's 1-4 and 6, and the holds' and loans' agreement with the ledger.
    assert len(names) == 7 and "payable_holds" in names
    monkeypatch.setattr("banking.invariants.CHECKS", [spied(c) for c in CHECKS])
    ledger_check_run()
    ledger_check_run()
    assert ran == [(n, True) for n in names] + [(n, False) for n in names]


def test_the_periodic_task_runs_the_incremental_check(make_org, settings):
    make_org(tokens=10)
    assert settings.CELERY_BEAT_SCHEDULE["banking.ledger_check"]["task"] == "banking.ledger_check"
    first = ledger_check_task()
    assert first == {"violations": 0, "checkpoint": LedgerCheckpoint.objects.get().pk}
    second = ledger_check_task()
    assert LedgerCheckpoint.objects.order_by("-id").values_list("pk", flat=True)[0] == (
        second["checkpoint"])
    assert LedgerCheckpoint.objects.get(pk=second["checkpoint"]).full is False


@pytest.mark.serial
@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="repeatable read, advisory lock")
def test_a_run_outside_a_transaction_reads_one_snapshot_and_lets_go_of_its_lock(make_org):
    payer, payee = make_org(tokens=1_000), make_org()
    assert ledger_check_run().clean
    transfer_post(kind=TransferKind.TRANSFER, idempotency_key="committed",
                  legs=[(_wallet(payer), -1), (_wallet(payee), 1)])
    run = ledger_check_run()
    assert run.clean and run.recorded is not None
    assert run.recorded.transfer_bound == _last_ids()[1]
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                       "AND pid = pg_backend_pid()")
        assert cursor.fetchone() == (0,)
