"""Only tokens earned as a provider are paid out: top-ups and grants are spent, never
cashed out; payout accounts are checked with the gateway and a change holds payouts."""

from datetime import timedelta

import pytest
import time_machine
from django.contrib.auth.models import User
from django.core import mail
from django.utils import timezone

from banking.invariants import payable_verify
from banking.models import Hold, Membership, Payout, PayoutAccount
from banking.models.ledger import AccountPurpose
from banking.selectors import organization_account, wallet_get
from banking.services.payable import NotPayable, payable_available
from banking.services.payments import topup_create
from banking.services.payouts import (
    payout_account_set,
    payout_approve,
    payout_execute,
    payout_reject,
    payout_request,
)
from core.errors import DomainError, InvalidInput

pytestmark = pytest.mark.django_db
M = 1_000_000


def _payable(org) -> int:
    return organization_account(org.pk, AccountPurpose.PAYABLE).balance


def test_top_up_tokens_are_not_payable_and_nothing_is_held(make_org, fake_gateway):
    org = make_org(provider=True)
    topup = topup_create(organization_id=org.pk, amount_cents=1000,
                         payment_method="pm_card_visa", idempotency_key="t")
    assert wallet_get(organization_id=org.pk).available == topup.tokens == 33_333_333
    payout_account_set(organization_id=org.pk, stripe_account_id="acct_cash")
    with pytest.raises(NotPayable, match="Only 0 tokens are payable") as refused:
        payout_request(organization_id=org.pk, tokens=20 * M, idempotency_key="p")
    assert refused.value.code == "not_payable"
    assert Payout.objects.count() == 0
    assert Hold.objects.filter(organization=org).count() == 0
    assert wallet_get(organization_id=org.pk).available == 33_333_333
    assert _payable(org) == 0


def test_earnings_are_paid_and_grants_beside_them_are_not(make_org, fake_gateway):
    org = make_org(provider=True, tokens=70 * M, earned=30 * M)
    payout_account_set(organization_id=org.pk, stripe_account_id="acct_earner")
    assert payable_available(org.pk) == 30 * M
    with pytest.raises(NotPayable, match="Only 30000000 tokens"):
        payout_request(organization_id=org.pk, tokens=30 * M + 1, idempotency_key="big")
    payout = payout_request(organization_id=org.pk, tokens=30 * M, idempotency_key="ok")
    payout_approve(payout_id=payout.pk)
    assert payout_execute(payout_id=payout.pk).status == Payout.Status.PAID
    assert _payable(org) == 0
    assert wallet_get(organization_id=org.pk).available == 70 * M
    with pytest.raises(NotPayable, match="Only 0 tokens"):
        payout_request(organization_id=org.pk, tokens=10 * M, idempotency_key="again")
    assert payable_verify() == []


def test_a_rejected_or_failed_payout_gives_its_payable_tokens_back(make_org, fake_gateway):
    org = make_org(provider=True, earned=50 * M)
    payout_account_set(organization_id=org.pk, stripe_account_id="acct_ok")
    rejected = payout_request(organization_id=org.pk, tokens=20 * M, idempotency_key="r")
    assert _payable(org) == 30 * M
    payout_reject(payout_id=rejected.pk, reason="checking")
    assert _payable(org) == 50 * M
    payout_account_set(organization_id=org.pk, stripe_account_id="acct_will_fail")
    PayoutAccount.objects.filter(organization=org).update(payouts_held_until=None)
    failed = payout_request(organization_id=org.pk, tokens=20 * M, idempotency_key="f")
    payout_approve(payout_id=failed.pk)
    assert payout_execute(payout_id=failed.pk).status == Payout.Status.FAILED
    assert _payable(org) == 50 * M
    assert payable_verify() == []


def test_earnings_already_spent_are_not_payable(make_org, fake_gateway):
    """min(payable, wallet): earned 40, 30 of them spent, 10 left to cash out."""
    from banking.services.holds import hold_capture, hold_place
    from banking.services.ledger import system_account

    org = make_org(provider=True, earned=40 * M)
    hold = hold_place(organization_id=org.pk, amount=30 * M, reference="spend",
                      idempotency_key="spend", expires_at=timezone.now() + timedelta(hours=1))
    hold_capture(hold_id=hold.pk, legs=[(system_account(AccountPurpose.PLATFORM_REVENUE).pk,
                                         30 * M)], idempotency_key="spent", reference="x")
    assert payable_available(org.pk) == 10 * M
    payout_account_set(organization_id=org.pk, stripe_account_id="acct_s")
    with pytest.raises(NotPayable, match="Only 10000000 tokens"):
        payout_request(organization_id=org.pk, tokens=11 * M, idempotency_key="p")
    assert payout_request(organization_id=org.pk, tokens=10 * M, idempotency_key="q").tokens \
        == 10 * M


@pytest.mark.parametrize(("account", "match"), [
    ("acct_missing_1", "No such account"),
    ("acct_disabled_1", "charges or payouts are not enabled"),
])
def test_a_payout_account_the_gateway_does_not_confirm_is_refused(make_org, fake_gateway,
                                                                 account, match):
    org = make_org(provider=True, earned=50 * M)
    payout_account_set(organization_id=org.pk, stripe_account_id=account)
    with pytest.raises(InvalidInput, match=match) as refused:
        payout_request(organization_id=org.pk, tokens=20 * M, idempotency_key="p")
    assert refused.value.code == "payout_account_unverified"
    assert Payout.objects.count() == 0
    assert (_payable(org), wallet_get(organization_id=org.pk).available) == (50 * M, 50 * M)
    assert PayoutAccount.objects.get(organization=org).verified_at is None


def test_the_account_is_verified_once_before_the_first_payout(make_org, fake_gateway,
                                                             monkeypatch):
    org = make_org(provider=True, earned=50 * M)
    payout_account_set(organization_id=org.pk, stripe_account_id="acct_v")
    asked: list[str] = []
    real = fake_gateway.payout_account_retrieve

    def counted(account_id: str):
        asked.append(account_id)
        return real(account_id)

    monkeypatch.setattr(fake_gateway, "payout_account_retrieve", counted)
    payout_request(organization_id=org.pk, tokens=10 * M, idempotency_key="a")
    payout_request(organization_id=org.pk, tokens=10 * M, idempotency_key="b")
    assert asked == ["acct_v"]
    assert PayoutAccount.objects.get(organization=org).verified_at is not None


def test_a_changed_payout_account_holds_payouts_for_72_hours_and_emails_the_owners(
        make_org, fake_gateway, django_capture_on_commit_callbacks):
    org = make_org(provider=True, earned=50 * M)
    owner = User.objects.create_user("owner", "owner@payee.example", "x")
    Membership.objects.create(user=owner, organization=org, role=Membership.Role.OWNER)
    payout_account_set(organization_id=org.pk, stripe_account_id="acct_first")
    payout_request(organization_id=org.pk, tokens=10 * M, idempotency_key="before")
    assert mail.outbox == []  # setting the first account holds nothing
    changed_at = timezone.now()
    with django_capture_on_commit_callbacks(execute=True):
        payout_account_set(organization_id=org.pk, stripe_account_id="acct_attacker")
    assert [(m.to, m.subject) for m in mail.outbox] == [
        (["owner@payee.example"], "Your payout account was changed")]
    assert "acct_first to acct_attacker" in mail.outbox[0].body
    with pytest.raises(DomainError, match="changed recently") as refused:
        payout_request(organization_id=org.pk, tokens=10 * M, idempotency_key="during")
    assert refused.value.code == "payout_account_on_hold"
    assert Payout.objects.filter(organization=org).count() == 1
    assert _payable(org) == 40 * M
    with time_machine.travel(changed_at + timedelta(hours=71, minutes=59)), \
            pytest.raises(DomainError, match="changed recently"):
        payout_request(organization_id=org.pk, tokens=10 * M, idempotency_key="d2")
    with time_machine.travel(changed_at + timedelta(hours=72, minutes=1)):
        after = payout_request(organization_id=org.pk, tokens=10 * M, idempotency_key="after")
    assert after.destination == "acct_attacker"
    assert _payable(org) == 30 * M


@pytest.mark.no_ledger_check
def test_verify_ledger_reports_a_payout_the_payable_balance_does_not_cover(make_org):
    """A payout recorded past the payable rule (as a bug or a hand-made row would) breaks
    invariant 6, and verify_ledger says so."""
    from django.core.management import call_command
    from django.core.management.base import CommandError

    from banking.services.holds import hold_place

    org = make_org(provider=True, tokens=50 * M)
    hold = hold_place(organization_id=org.pk, amount=20 * M, reference="forged",
                      idempotency_key="forged", expires_at=timezone.now() + timedelta(days=1))
    Payout.objects.create(organization=org, tokens=20 * M, amount_cents=500, currency="usd",
                          destination="acct_x", idempotency_key="forged", hold=hold,
                          status=Payout.Status.PAID)
    assert [v.detail for v in payable_verify()] == [
        f"organization {org.pk}: payable 0, earned 0, payouts standing {20 * M}, "
        f"paid {20 * M}"]
    with pytest.raises(CommandError, match="ledger invariants broken"):
        call_command("verify_ledger")
