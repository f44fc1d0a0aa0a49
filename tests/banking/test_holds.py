"""Holds: place, capture in parts, release, expire."""

from datetime import timedelta

import pytest
from django.utils import timezone

from banking.error_codes import BankingErrorCode
from banking.errors import InsufficientFunds
from banking.models import Hold, Transfer
from banking.models.ledger import AccountPurpose
from banking.selectors import organization_account, wallet_get
from banking.services.holds import (
    HoldClosed,
    HoldExceeded,
    hold_capture,
    hold_place,
    hold_release,
    holds_expire,
)
from banking.services.ledger import system_account


@pytest.fixture
def buyer(make_org):
    return make_org(tokens=1_000)


@pytest.fixture
def provider(make_org):
    return make_org(provider=True, buyer=False)


def provider_wallet(provider) -> int:
    return organization_account(provider.pk, AccountPurpose.WALLET).pk


def test_placing_a_hold_moves_tokens_from_available_to_held(buyer):
    hold = hold_place(organization_id=buyer.pk, amount=600, reference="job:1",
                      idempotency_key="h1")
    summary = wallet_get(organization_id=buyer.pk)
    assert (summary.available, summary.held) == (400, 600)
    assert hold.remaining == 600
    again = hold_place(organization_id=buyer.pk, amount=600, reference="job:1",
                       idempotency_key="h1")
    assert again.pk == hold.pk
    assert wallet_get(organization_id=buyer.pk).held == 600


def test_a_hold_beyond_the_wallet_is_refused_and_nothing_is_held(buyer):
    with pytest.raises(InsufficientFunds):
        hold_place(organization_id=buyer.pk, amount=1_001, reference="job:2",
                   idempotency_key="h2")
    assert not Hold.objects.exists()
    assert wallet_get(organization_id=buyer.pk).held == 0


def test_capture_in_parts_then_release_the_rest(buyer, provider):
    revenue = system_account(AccountPurpose.PLATFORM_REVENUE)
    hold = hold_place(organization_id=buyer.pk, amount=500, reference="job:3",
                      idempotency_key="h3")
    hold_capture(hold_id=hold.pk, legs=[(provider_wallet(provider), 90), (revenue.pk, 10)],
                 idempotency_key="c1")
    hold_capture(hold_id=hold.pk, legs=[(provider_wallet(provider), 45), (revenue.pk, 5)],
                 idempotency_key="c2")
    hold_capture(hold_id=hold.pk, legs=[(provider_wallet(provider), 45), (revenue.pk, 5)],
                 idempotency_key="c2")  # a replay captures nothing more
    hold.refresh_from_db()
    assert (hold.captured, hold.remaining) == (150, 350)
    hold_release(hold_id=hold.pk, idempotency_key="r")
    hold.refresh_from_db()
    assert hold.status == Hold.Status.CLOSED
    summary = wallet_get(organization_id=buyer.pk)
    assert (summary.available, summary.held) == (850, 0)
    assert wallet_get(organization_id=provider.pk).available == 135


def test_a_capture_beyond_the_remainder_is_refused(buyer, provider):
    hold = hold_place(organization_id=buyer.pk, amount=100, reference="j", idempotency_key="h")
    with pytest.raises(HoldExceeded, match="100 tokens left; 101 requested") as info:
        hold_capture(hold_id=hold.pk, legs=[(provider_wallet(provider), 101)],
                     idempotency_key="too-much")
    assert info.value.code == BankingErrorCode.HOLD_EXCEEDED
    assert not Transfer.objects.filter(idempotency_key="too-much").exists()
    hold.refresh_from_db()
    assert hold.captured == 0


def test_a_released_hold_can_neither_be_captured_nor_released_again(buyer, provider):
    hold = hold_place(organization_id=buyer.pk, amount=100, reference="j", idempotency_key="h")
    hold_release(hold_id=hold.pk, idempotency_key="r1")
    with pytest.raises(HoldClosed):
        hold_capture(hold_id=hold.pk, legs=[(provider_wallet(provider), 1)],
                     idempotency_key="late")
    with pytest.raises(HoldClosed):
        hold_release(hold_id=hold.pk, idempotency_key="r2", amount=1)
    assert hold_release(hold_id=hold.pk, idempotency_key="r3") is None
    assert wallet_get(organization_id=buyer.pk).available == 1_000
    assert wallet_get(organization_id=provider.pk).available == 0


def test_expired_holds_are_released_by_the_periodic_sweep_once(buyer):
    past = timezone.now() - timedelta(minutes=1)
    hold_place(organization_id=buyer.pk, amount=300, reference="j", idempotency_key="old",
               expires_at=past)
    fresh = hold_place(organization_id=buyer.pk, amount=200, reference="j",
                       idempotency_key="new")
    assert holds_expire() == 1
    assert holds_expire() == 0
    summary = wallet_get(organization_id=buyer.pk)
    assert (summary.available, summary.held) == (800, 200)
    fresh.refresh_from_db()
    assert fresh.status == Hold.Status.OPEN
