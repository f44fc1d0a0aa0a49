import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from banking.models import Account


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
