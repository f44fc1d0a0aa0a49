"""Payouts on the fake gateway (localstripe has no Connect transfers): hold on request,
approval, execution exactly once, failure releases the hold, sweeps."""

from datetime import timedelta

import pytest
from django.utils import timezone

from banking.gateway import GatewayError
from banking.models import Hold, Payout
from banking.models.ledger import AccountPurpose
from banking.selectors import wallet_get
from banking.services.holds import holds_expire
from banking.services.ledger import system_account
from banking.services.payable import NotPayable
from banking.services.payouts import (
    payout_account_set,
    payout_approve,
    payout_execute,
    payout_reject,
    payout_request,
    payouts_resume,
    payouts_sweep,
)
from core.errors import DomainError

pytestmark = pytest.mark.django_db
M = 1_000_000


@pytest.fixture
def provider(make_org):
    org = make_org(provider=True, buyer=False, earned=100 * M)
    payout_account_set(organization_id=org.pk, stripe_account_id="acct_provider1")
    return org


def _captured(django_capture_on_commit_callbacks, fn, **kwargs):
    with django_capture_on_commit_callbacks(execute=True):
        return fn(**kwargs)


def test_a_payout_request_holds_the_tokens_and_waits_for_approval(provider, fake_gateway):
    payout = payout_request(organization_id=provider.pk, tokens=40 * M, idempotency_key="p")
    assert payout.status == Payout.Status.PENDING_APPROVAL
    assert (payout.amount_cents, payout.currency, payout.destination) == (
        1000, "usd", "acct_provider1")
    summary = wallet_get(organization_id=provider.pk)
    assert (summary.available, summary.held) == (60 * M, 40 * M)
    assert fake_gateway.payout_transfers_list(since=None) == []


def test_approved_twice_is_executed_once_and_captured_into_payout_clearing(
    provider, fake_gateway, eager_tasks, django_capture_on_commit_callbacks
):
    payout = payout_request(organization_id=provider.pk, tokens=40 * M, idempotency_key="p")
    for _ in range(2):
        _captured(django_capture_on_commit_callbacks, payout_approve, payout_id=payout.pk)
    payout_execute(payout_id=payout.pk)
    payout.refresh_from_db()
    assert payout.status == Payout.Status.PAID
    transfers = fake_gateway.payout_transfers_list(since=None)
    assert [(t.destination, t.amount_cents, t.id) for t in transfers] == [
        ("acct_provider1", 1000, payout.stripe_transfer_id)
    ]
    summary = wallet_get(organization_id=provider.pk)
    assert (summary.available, summary.held) == (60 * M, 0)
    assert system_account(AccountPurpose.PAYOUT_CLEARING).balance == 40 * M
    assert Hold.objects.get(pk=payout.hold_id).status == "closed"


def test_a_failed_transfer_releases_the_hold_and_shows_the_reason(make_org, fake_gateway):
    org = make_org(provider=True, earned=50 * M)
    payout_account_set(organization_id=org.pk, stripe_account_id="acct_will_fail")
    payout = payout_request(organization_id=org.pk, tokens=20 * M, idempotency_key="p")
    payout_approve(payout_id=payout.pk)
    payout = payout_execute(payout_id=payout.pk)
    assert payout.status == Payout.Status.FAILED
    assert payout.failure_message == "No such destination: 'acct_will_fail'"
    assert wallet_get(organization_id=org.pk).available == 50 * M
    assert wallet_get(organization_id=org.pk).held == 0


def test_a_gateway_error_releases_the_hold(provider, fake_gateway):
    payout = payout_request(organization_id=provider.pk, tokens=20 * M, idempotency_key="p")
    payout_approve(payout_id=payout.pk)
    fake_gateway.fail_next("payout_transfer_create", message="Account closed.")
    payout = payout_execute(payout_id=payout.pk)
    assert (payout.status, payout.failure_message) == ("failed", "Account closed.")
    assert wallet_get(organization_id=provider.pk).available == 100 * M


def test_an_outage_puts_the_payout_back_to_approved_for_a_retry(provider, fake_gateway):
    payout = payout_request(organization_id=provider.pk, tokens=20 * M, idempotency_key="p")
    payout_approve(payout_id=payout.pk)
    fake_gateway.fail_next("payout_transfer_create", retryable=True)
    with pytest.raises(GatewayError):
        payout_execute(payout_id=payout.pk)
    payout.refresh_from_db()
    assert (payout.status, payout.attempts) == ("approved", 1)
    assert wallet_get(organization_id=provider.pk).held == 20 * M
    assert payout_execute(payout_id=payout.pk).status == "paid"
    assert len(fake_gateway.payout_transfers_list(since=None)) == 1


def test_a_payout_left_processing_by_a_crash_is_resumed_without_paying_twice(
    provider, fake_gateway
):
    payout = payout_request(organization_id=provider.pk, tokens=20 * M, idempotency_key="p")
    payout_approve(payout_id=payout.pk)
    # the worker made the transfer, then died before recording it
    fake_gateway.payout_transfer_create(
        destination_account="acct_provider1", amount_cents=500, currency="usd",
        idempotency_key=f"payout:{payout.pk}",
        metadata={"payout_id": str(payout.pk), "organization_id": str(provider.pk)},
    )
    Payout.objects.filter(pk=payout.pk).update(status="processing")
    assert payout_execute(payout_id=payout.pk).status == "processing"  # not claimed twice
    assert payouts_resume(stuck_after_s=0) == 1
    payout.refresh_from_db()
    assert payout.status == "paid"
    assert len(fake_gateway.payout_transfers_list(since=None)) == 1


def test_a_rejected_payout_returns_the_tokens(provider, fake_gateway):
    payout = payout_request(organization_id=provider.pk, tokens=20 * M, idempotency_key="p")
    payout = payout_reject(payout_id=payout.pk, reason="Looks wrong")
    assert (payout.status, payout.failure_message) == ("rejected", "Looks wrong")
    assert payout_execute(payout_id=payout.pk).status == "rejected"
    assert wallet_get(organization_id=provider.pk).available == 100 * M
    assert fake_gateway.payout_transfers_list(since=None) == []


def test_small_payouts_are_approved_and_executed_automatically(
    provider, fake_gateway, eager_tasks, settings, django_capture_on_commit_callbacks
):
    settings.PAYOUT_AUTO_APPROVE_BELOW_TOKENS = 30 * M
    payout = _captured(django_capture_on_commit_callbacks, payout_request,
                       organization_id=provider.pk, tokens=20 * M, idempotency_key="p")
    payout.refresh_from_db()
    assert payout.status == Payout.Status.PAID
    big = payout_request(organization_id=provider.pk, tokens=30 * M, idempotency_key="q")
    assert big.status == Payout.Status.PENDING_APPROVAL


@pytest.mark.parametrize(
    ("tokens", "error", "code"),
    [
        (9_999_999, DomainError, "payout_below_minimum"),
        (100 * M + 1, NotPayable, "not_payable"),
    ],
)
def test_bad_payouts_are_refused_with_nothing_held(provider, fake_gateway, tokens, error, code):
    with pytest.raises(error) as info:
        payout_request(organization_id=provider.pk, tokens=tokens, idempotency_key="p")
    assert info.value.code == code
    assert Payout.objects.count() == 0
    assert wallet_get(organization_id=provider.pk).held == 0


def test_a_buyer_only_organization_cannot_cash_out(make_org, fake_gateway):
    buyer = make_org(tokens=50 * M)
    with pytest.raises(DomainError) as info:
        payout_request(organization_id=buyer.pk, tokens=20 * M)
    assert (info.value.code, info.value.status) == ("not_a_provider", 403)
    assert Hold.objects.count() == 0


def test_a_payout_needs_a_payout_account(make_org, fake_gateway):
    org = make_org(provider=True, earned=50 * M)
    with pytest.raises(DomainError) as info:
        payout_request(organization_id=org.pk, tokens=20 * M)
    assert info.value.code == "payout_account_missing"
    with pytest.raises(DomainError, match="acct_"):
        payout_account_set(organization_id=org.pk, stripe_account_id="bank-123")


def test_the_same_key_requests_one_payout(provider, fake_gateway):
    first = payout_request(organization_id=provider.pk, tokens=20 * M, idempotency_key="p")
    again = payout_request(organization_id=provider.pk, tokens=20 * M, idempotency_key="p")
    assert again.pk == first.pk
    assert wallet_get(organization_id=provider.pk).held == 20 * M
    with pytest.raises(DomainError) as info:
        payout_request(organization_id=provider.pk, tokens=30 * M, idempotency_key="p")
    assert info.value.code == "idempotency_conflict"


def test_the_daily_sweep_cashes_out_what_is_above_the_threshold_once_a_day(
    provider, make_org, fake_gateway
):
    payout_account_set(organization_id=provider.pk, stripe_account_id="acct_provider1",
                       auto_payout_threshold=30 * M)
    low = make_org(provider=True, earned=35 * M)
    payout_account_set(organization_id=low.pk, stripe_account_id="acct_low",
                       auto_payout_threshold=30 * M)
    made = payouts_sweep()
    assert [(p.organization_id, p.tokens, p.is_sweep) for p in made] == [
        (provider.pk, 70 * M, True)
    ]
    assert payouts_sweep() == []  # the wallet is at the threshold now
    assert Payout.objects.count() == 1


def test_a_payout_whose_hold_expired_is_failed_without_calling_the_provider(
    provider, fake_gateway
):
    payout = payout_request(organization_id=provider.pk, tokens=20 * M, idempotency_key="p")
    Hold.objects.filter(pk=payout.hold_id).update(expires_at=timezone.now() - timedelta(1))
    assert holds_expire() == 1
    payout_approve(payout_id=payout.pk)
    payout = payout_execute(payout_id=payout.pk)
    assert payout.status == "failed"
    assert "no longer held" in payout.failure_message
    assert fake_gateway.payout_transfers_list(since=None) == []
    assert wallet_get(organization_id=provider.pk).available == 100 * M


def test_a_broker_outage_does_not_fail_the_approval_and_resume_executes_it(
    provider, fake_gateway, monkeypatch, django_capture_on_commit_callbacks
):
    def broker_down(*args: object, **kwargs: object) -> None:
        raise ConnectionError("broker unreachable")

    monkeypatch.setattr("banking.tasks.payout_execute_task.apply_async", broker_down)
    payout = payout_request(organization_id=provider.pk, tokens=20 * M, idempotency_key="p")
    _captured(django_capture_on_commit_callbacks, payout_approve, payout_id=payout.pk)
    payout.refresh_from_db()
    assert payout.status == "approved"
    assert payouts_resume(stuck_after_s=0) == 1
    payout.refresh_from_db()
    assert payout.status == "paid"
