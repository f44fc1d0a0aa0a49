import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from banking.models import Account, Entry


def test_verify_ledger_passes_on_a_sound_ledger(make_org, capsys):
    make_org(tokens=1_000)
    call_command("verify_ledger")
    assert "ledger ok" in capsys.readouterr().out


@pytest.mark.no_ledger_check
def test_verify_ledger_catches_a_corrupted_balance(make_org, capsys):
    org = make_org(tokens=1_000)
    wallet = Account.objects.get(organization=org, purpose="wallet")
    Account.objects.filter(pk=wallet.pk).update(balance=1_007)
    with pytest.raises(CommandError, match="1 violation"):
        call_command("verify_ledger")
    err = capsys.readouterr().err
    assert f"account {wallet.pk}" in err
    assert "balance 1007 but entries sum to 1000" in err


@pytest.mark.no_ledger_check
def test_verify_ledger_catches_entries_naming_a_missing_account(make_org, capsys):
    org = make_org(tokens=1_000)
    entry = Entry.objects.filter(account__organization=org).first()
    assert entry is not None
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # Undone with the test's transaction, like the entries written under it.
            cursor.execute("ALTER TABLE banking_entry DISABLE TRIGGER entry_references")
        cursor.execute(
            "INSERT INTO banking_entry (transfer_id, account_id, amount) "
            "VALUES (%s, %s, 5), (%s, %s, -5)",
            [entry.transfer_id, 10**12, entry.transfer_id, entry.account_id],
        )
    with pytest.raises(CommandError, match="violation"):
        call_command("verify_ledger")
    assert f"account {10**12}, one of which does not exist" in capsys.readouterr().err
