"""Top-ups on the fake gateway: PaymentIntents, fulfilment exactly once, declines,
idempotency, debt repaid first."""

import pytest

from banking.gateway.fake import FakeGateway
from banking.models import StripeCustomer, StripeEvent, TopUp, Transfer
from banking.models.ledger import AccountPurpose, TransferKind
from banking.selectors import organization_account
from banking.services.ledger import system_account, transfer_post
from banking.services.payments import (
    stripe_event_process,
    stripe_webhook_receive,
    topup_confirm,
    topup_create,
    topup_fulfil,
    topups_sync_pending,
)
from banking.standing import organization_assert_can_spend
from banking.tasks import topups_sync_pending_task
from core.errors import DomainError
from tests.banking.payments.conftest import balance

pytestmark = pytest.mark.django_db


def test_a_top_up_creates_a_payment_intent_for_the_organizations_customer(
    make_org, fake_gateway: FakeGateway
):
    org = make_org()
    topup = topup_create(organization_id=org.pk, currency="usd", amount_cents=1000,
                         idempotency_key="t1")
    assert topup.status == TopUp.Status.PENDING
    assert topup.tokens == 33_333_333
    assert topup.payment_intent_id == "pi_fake00000001"
    assert topup.client_secret == "pi_fake00000001_secret_fake"
    pi = fake_gateway.payment_intent_retrieve(topup.payment_intent_id)
    assert (pi.amount_cents, pi.currency) == (1000, "usd")
    assert pi.metadata == {"topup_id": str(topup.pk), "organization_id": str(org.pk)}
    assert pi.customer_id == StripeCustomer.objects.get(organization=org).customer_id
    assert balance(org) == 0


def test_the_customer_is_created_once_per_organization(make_org, fake_gateway):
    org = make_org()
    first = topup_create(organization_id=org.pk, amount_cents=500, idempotency_key="a")
    second = topup_create(organization_id=org.pk, amount_cents=700, idempotency_key="b")
    customers = {
        fake_gateway.payment_intent_retrieve(t.payment_intent_id).customer_id
        for t in (first, second)
    }
    assert customers == {StripeCustomer.objects.get(organization=org).customer_id}
    assert StripeCustomer.objects.count() == 1


def test_confirming_at_once_with_a_card_credits_the_tokens(make_org, fake_gateway):
    org = make_org()
    topup = topup_create(organization_id=org.pk, amount_cents=1000,
                         payment_method="pm_card_visa", idempotency_key="t")
    assert topup.status == TopUp.Status.SUCCEEDED
    assert balance(org) == 33_333_333
    transfer = Transfer.objects.get(kind=TransferKind.TOPUP)
    assert transfer.idempotency_key == f"topup:{topup.pk}"
    assert topup.credit_transfer_id == transfer.pk
    clearing = system_account(AccountPurpose.CARD_CLEARING)
    assert sorted(transfer.entries.values_list("account_id", "amount")) == sorted(
        [(clearing.pk, -33_333_333), (organization_account(org.pk, "wallet").pk, 33_333_333)]
    )


def test_fulfilment_credits_only_once_however_often_it_runs(make_org, fake_gateway):
    org = make_org()
    topup = topup_create(organization_id=org.pk, amount_cents=300, idempotency_key="t")
    assert topup_fulfil(topup_id=topup.pk).status == TopUp.Status.PENDING
    assert balance(org) == 0
    fake_gateway.payment_intent_confirm(topup.payment_intent_id, payment_method="pm_card_visa")
    for _ in range(5):
        assert topup_fulfil(topup_id=topup.pk).status == TopUp.Status.SUCCEEDED
    assert topup_confirm(organization_id=org.pk, topup_id=topup.pk).status == "succeeded"
    assert balance(org) == 10_000_000
    assert Transfer.objects.filter(kind=TransferKind.TOPUP).count() == 1


def test_a_declined_card_credits_nothing_and_says_why(make_org, fake_gateway):
    org = make_org()
    topup = topup_create(organization_id=org.pk, amount_cents=1000,
                         payment_method="4000000000000341", idempotency_key="t")
    assert topup.status == TopUp.Status.FAILED
    assert topup.failure_code == "card_declined"
    assert topup.failure_message == "Your card was declined."
    assert topup_fulfil(topup_id=topup.pk).status == TopUp.Status.FAILED
    assert balance(org) == 0
    assert Transfer.objects.filter(kind=TransferKind.TOPUP).count() == 0


def test_a_failed_top_up_can_be_paid_with_another_card(make_org, fake_gateway):
    org = make_org()
    topup = topup_create(organization_id=org.pk, amount_cents=1000,
                         payment_method="pm_card_chargeDeclined", idempotency_key="t")
    assert topup.status == TopUp.Status.FAILED
    again = topup_confirm(organization_id=org.pk, topup_id=topup.pk,
                          payment_method="pm_card_visa")
    assert again.status == TopUp.Status.SUCCEEDED
    assert again.failure_message == ""
    assert balance(org) == 33_333_333


def test_the_same_idempotency_key_returns_the_same_top_up(make_org, fake_gateway):
    org = make_org()
    first = topup_create(organization_id=org.pk, amount_cents=1000,
                         payment_method="pm_card_visa", idempotency_key="same")
    again = topup_create(organization_id=org.pk, amount_cents=1000,
                         payment_method="pm_card_visa", idempotency_key="same")
    assert again.pk == first.pk
    assert TopUp.objects.count() == 1
    assert balance(org) == 33_333_333
    with pytest.raises(DomainError) as info:
        topup_create(organization_id=org.pk, amount_cents=2000, idempotency_key="same")
    assert info.value.code == "idempotency_conflict"


def test_a_provider_outage_leaves_the_top_up_resumable_with_the_same_key(make_org, fake_gateway):
    org = make_org()
    fake_gateway.fail_next("payment_intent_create", retryable=True)
    with pytest.raises(DomainError) as info:
        topup_create(organization_id=org.pk, amount_cents=1000, idempotency_key="k")
    assert (info.value.code, info.value.status) == ("payment_provider_unavailable", 503)
    stuck = TopUp.objects.get()
    assert (stuck.status, stuck.payment_intent_id) == ("created", None)
    resumed = topup_create(organization_id=org.pk, amount_cents=1000, idempotency_key="k")
    assert resumed.pk == stuck.pk
    assert resumed.status == TopUp.Status.PENDING
    assert resumed.payment_intent_id is not None


def test_a_payment_intent_for_another_amount_is_not_credited(make_org, fake_gateway):
    org = make_org()
    topup = topup_create(organization_id=org.pk, amount_cents=1000, idempotency_key="t")
    other = topup_create(organization_id=org.pk, amount_cents=2000, idempotency_key="u")
    fake_gateway.payment_intent_confirm(other.payment_intent_id, payment_method="pm_card_visa")
    TopUp.objects.filter(pk=topup.pk).update(payment_intent_id=None)
    with pytest.raises(DomainError) as info:
        topup_fulfil(topup_id=topup.pk, payment_intent_id=other.payment_intent_id)
    assert info.value.code == "payment_mismatch"
    assert balance(org) == 0


def test_a_top_up_repays_debt_before_the_wallet(make_org, fake_gateway):
    org = make_org()
    debt = organization_account(org.pk, AccountPurpose.DEBT)
    clearing = system_account(AccountPurpose.CARD_CLEARING)
    transfer_post(kind=TransferKind.REFUND, idempotency_key="owe",
                  legs=[(debt.pk, -4_000_000), (clearing.pk, 4_000_000)])
    with pytest.raises(DomainError) as info:
        organization_assert_can_spend(org.pk)
    assert info.value.code == "organization_owes"
    assert info.value.fields == {"owed": 4_000_000}
    topup_create(organization_id=org.pk, amount_cents=300, payment_method="pm_card_visa",
                 idempotency_key="t")
    assert balance(org, AccountPurpose.DEBT) == 0
    assert balance(org) == 6_000_000
    organization_assert_can_spend(org.pk)


def test_a_frozen_organization_cannot_top_up_or_spend(make_org, fake_gateway):
    org = make_org()
    org.status = "frozen"
    org.save()
    with pytest.raises(DomainError) as info:
        topup_create(organization_id=org.pk, amount_cents=300, idempotency_key="t")
    assert info.value.code == "organization_frozen"
    with pytest.raises(DomainError) as info:
        organization_assert_can_spend(org.pk)
    assert info.value.code == "organization_frozen"
    org.status = "delinquent"
    org.save()
    with pytest.raises(DomainError) as info:
        organization_assert_can_spend(org.pk)
    assert info.value.code == "organization_delinquent"
    assert TopUp.objects.count() == 0


def test_a_webhook_that_beats_the_recording_of_the_payment_intent_still_credits_once(
    make_org, fake_gateway
):
    """The fake delivers its events before payment_intent_create returns, as Stripe may."""
    receipts = []
    fake_gateway.on_event(lambda payload, header: receipts.append(
        stripe_webhook_receive(payload=payload, signature_header=header)))
    org = make_org()
    topup = topup_create(organization_id=org.pk, amount_cents=300,
                         payment_method="pm_card_visa", idempotency_key="t")
    assert [r.type for r in receipts] == ["charge.succeeded", "payment_intent.succeeded"]
    for event in StripeEvent.objects.filter(status="received"):
        stripe_event_process(event_pk=event.pk)
    assert topup.status == TopUp.Status.SUCCEEDED
    assert balance(org) == 10_000_000
    assert Transfer.objects.filter(kind=TransferKind.TOPUP).count() == 1


def test_the_periodic_sync_credits_top_ups_whose_webhook_was_lost(make_org, fake_gateway):
    org = make_org()
    paid = topup_create(organization_id=org.pk, amount_cents=300, idempotency_key="a")
    unpaid = topup_create(organization_id=org.pk, amount_cents=600, idempotency_key="b")
    fake_gateway.payment_intent_confirm(paid.payment_intent_id, payment_method="pm_card_visa")
    assert topups_sync_pending_task.apply(kwargs={}).get() == 0  # too young yet
    assert topups_sync_pending(older_than_s=0) == 1
    assert TopUp.objects.get(pk=paid.pk).status == "succeeded"
    assert TopUp.objects.get(pk=unpaid.pk).status == "pending"
    assert balance(org) == 10_000_000


def test_the_admin_refunds_a_top_up_and_the_tokens_go_back(make_org, fake_gateway,
                                                           admin_client):
    org = make_org()
    topup = topup_create(organization_id=org.pk, amount_cents=300,
                         payment_method="pm_card_visa", idempotency_key="t")
    response = admin_client.post("/admin/banking/topup/",
                                 {"action": "refund_in_full", "_selected_action": [topup.pk]})
    assert response.status_code == 302
    topup.refresh_from_db()
    assert (topup.refunded_cents, topup.refunded_tokens) == (300, 10_000_000)
    assert balance(org) == 0
    assert [r.amount_cents for r in fake_gateway.refunds_list(since=None)] == [300]
