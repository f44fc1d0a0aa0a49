"""manage.py reconcile_stripe: nothing on a clean run, each planted mismatch reported,
non-zero exit. Payments and refunds on localstripe; transfers on the fake (localstripe
has no Connect)."""

import io
import time
from datetime import UTC, datetime

import pytest
from django.core.management import CommandError, call_command

from banking.gateway import get_gateway, reset_gateway, set_gateway_for_tests
from banking.gateway.fake import FakeGateway
from banking.models import Payout
from banking.services.payments import topup_create, topup_refund
from banking.services.payouts import (
    payout_account_set,
    payout_approve,
    payout_execute,
    payout_request,
)

pytestmark = pytest.mark.django_db


class LocalstripeWithFakeTransfers:
    """Everything on localstripe except Connect transfers, which go to a fake."""

    def __init__(self, stripe, fake: FakeGateway) -> None:
        self._stripe = stripe
        self.fake = fake

    def __getattr__(self, name):
        return getattr(self._stripe, name)

    def payout_transfer_create(self, **kwargs):
        return self.fake.payout_transfer_create(**kwargs)

    def payout_account_retrieve(self, account_id):
        return self.fake.payout_account_retrieve(account_id)

    def payout_transfers_list(self, *, since):
        return self.fake.payout_transfers_list(since=since)


@pytest.fixture
def gateway(localstripe):
    combined = LocalstripeWithFakeTransfers(get_gateway(), FakeGateway())
    set_gateway_for_tests(combined)
    yield combined
    reset_gateway()


def reconcile(since: datetime) -> str:
    out = io.StringIO()
    call_command("reconcile_stripe", since=since.isoformat(), stdout=out)
    return out.getvalue()


def test_a_clean_run_reports_nothing_and_planted_mismatches_are_each_reported(
    make_org, gateway
):
    time.sleep(1.1)  # localstripe is shared by the session: leave earlier tests' objects out
    since = datetime.now(tz=UTC)
    buyer = make_org()
    paid = topup_create(organization_id=buyer.pk, amount_cents=1000,
                        payment_method="pm_card_visa", idempotency_key="a")
    partly = topup_create(organization_id=buyer.pk, amount_cents=600,
                          payment_method="pm_card_visa", idempotency_key="b")
    topup_refund(topup_id=partly.pk, amount_cents=100)
    provider = make_org(provider=True, earned=50_000_000)
    payout_account_set(organization_id=provider.pk, stripe_account_id="acct_p1")
    payout = payout_request(organization_id=provider.pk, tokens=20_000_000)
    payout_approve(payout_id=payout.pk)
    assert payout_execute(payout_id=payout.pk).status == Payout.Status.PAID

    assert reconcile(since) == (
        "OK: 2 payments, 1 refunds, 1 transfers checked; no mismatch.\n"
    )

    # Planted: a refund made in the Stripe dashboard, never recorded in the ledger; a
    # payment nobody asked for; a transfer with no payout.
    gateway.refund_create(payment_intent_id=paid.payment_intent_id, amount_cents=250,
                          idempotency_key="dashboard-refund")
    customer = gateway.customer_create(name="Stranger", organization_id="0",
                                       idempotency_key="stranger")
    stray = gateway.payment_intent_create(customer_id=customer, amount_cents=777,
                                          currency="usd", metadata={},
                                          idempotency_key="stray",
                                          payment_method="pm_card_visa", confirm=True)
    gateway.fake.payout_transfer_create(destination_account="acct_x", amount_cents=5,
                                        currency="usd", idempotency_key="x", metadata={})

    out = io.StringIO()
    with pytest.raises(CommandError, match="3 mismatch"):
        call_command("reconcile_stripe", since=since.isoformat(), stdout=out)
    lines = out.getvalue().splitlines()
    assert lines == [
        f"MISMATCH payment_unknown {stray.id}: succeeded payment of 777 usd has no top-up",
        f"MISMATCH refund_not_recorded topup:{paid.pk}: Stripe refunded 250 cents, "
        "the ledger 0",
        "MISMATCH transfer_unknown tr_fake00000002: transfer of 5 usd has no payout",
    ]


def test_a_bad_since_is_refused(db):
    with pytest.raises(CommandError, match="not a date"):
        call_command("reconcile_stripe", since="yesterday")
