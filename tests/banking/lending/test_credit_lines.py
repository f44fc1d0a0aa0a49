"""Credit lines: the credit account's floor follows the limit; never below what is drawn."""

import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from banking.errors import CreditLimitBelowUsage
from banking.models import CreditLine
from banking.models.ledger import AccountPurpose
from banking.selectors import organization_account, wallet_get
from banking.selectors_lending import credit_line_get
from banking.services.lending import credit_line_set, loan_originate
from core.errors import InvalidInput, NotFound


def test_setting_a_credit_line_sets_the_credit_floor(make_org):
    org = make_org()
    line = credit_line_set(organization_id=org.pk, limit=2_000_000, apr_bps=900,
                           max_term_months=12)
    assert (line.limit, line.apr_bps, line.max_term_months) == (2_000_000, 900, 12)
    assert organization_account(org.pk, AccountPurpose.CREDIT).floor == -2_000_000
    assert wallet_get(organization_id=org.pk).credit_limit == 2_000_000
    summary = credit_line_get(organization_id=org.pk)
    assert (summary.limit, summary.used, summary.available) == (2_000_000, 0, 2_000_000)


def test_changing_a_credit_line_updates_the_one_row(make_org):
    org = make_org()
    credit_line_set(organization_id=org.pk, limit=100, apr_bps=0, max_term_months=1)
    credit_line_set(organization_id=org.pk, limit=300, apr_bps=500, max_term_months=6)
    assert CreditLine.objects.filter(organization=org).count() == 1
    assert organization_account(org.pk, AccountPurpose.CREDIT).floor == -300


def test_the_limit_cannot_go_below_what_is_drawn(borrower, bank_capacity):
    loan_originate(organization_id=borrower.pk, principal=1_500_000, term_months=6,
                   reference="block:1", pay_to_account_id=bank_capacity.pk,
                   idempotency_key="cl-1")
    with pytest.raises(CreditLimitBelowUsage, match="1500000 tokens are already drawn"):
        credit_line_set(organization_id=borrower.pk, limit=1_499_999, apr_bps=1200,
                        max_term_months=24)
    assert organization_account(borrower.pk, AccountPurpose.CREDIT).floor == -5_000_000
    credit_line_set(organization_id=borrower.pk, limit=1_500_000, apr_bps=1200,
                    max_term_months=24)
    assert credit_line_get(organization_id=borrower.pk).available == 0


@pytest.mark.parametrize(
    ("limit", "apr_bps", "term", "field"),
    [(-1, 0, 1, "limit"), (10, -5, 1, "apr_bps"), (10, 10_001, 1, "apr_bps"),
     (10, 0, 0, "max_term_months"), (10, 0, 121, "max_term_months"), (1.5, 0, 1, "limit")],
)
def test_bad_credit_lines_are_refused(make_org, limit, apr_bps, term, field):
    org = make_org()
    with pytest.raises(InvalidInput) as caught:
        credit_line_set(organization_id=org.pk, limit=limit, apr_bps=apr_bps,
                        max_term_months=term)
    assert list(caught.value.fields) == [field]
    assert not CreditLine.objects.exists()


def test_an_unknown_organization_is_not_found(db):
    with pytest.raises(NotFound):
        credit_line_set(organization_id=999_999, limit=1, apr_bps=0, max_term_months=1)


def test_the_command_sets_a_line_by_name_or_id(make_org, capsys):
    org = make_org("Lender Test Co")
    call_command("set_credit_line", "Lender Test Co", "750000", "--apr-bps", "1500",
                 "--max-term-months", "18")
    out = json.loads(capsys.readouterr().out.strip())
    assert out == {"organization_id": org.pk, "limit": 750_000, "apr_bps": 1500,
                   "max_term_months": 18}
    call_command("set_credit_line", str(org.pk), "800000")
    line = CreditLine.objects.get(organization=org)
    assert (line.limit, line.apr_bps, line.max_term_months) == (800_000, 1500, 18)


def test_the_command_refuses_clearly(make_org):
    org = make_org("Newcomer")
    with pytest.raises(CommandError, match="no organization"):
        call_command("set_credit_line", "Nobody", "10", "--apr-bps", "0",
                     "--max-term-months", "1")
    with pytest.raises(CommandError, match="--apr-bps and --max-term-months"):
        call_command("set_credit_line", "Newcomer", "10")
    with pytest.raises(CommandError, match="invalid"):
        call_command("set_credit_line", "Newcomer", "-10", "--apr-bps", "0",
                     "--max-term-months", "1")
    assert not CreditLine.objects.filter(organization=org).exists()
