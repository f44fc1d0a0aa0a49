"""POST /webhooks/stripe/ on the fake gateway: verification, storage by event id,
processing, refunds, disputes and what bad input gets."""

import json
import logging
import time

import pytest
from django.test import Client

from banking.errors import OrganizationCannotSpend
from banking.gateway.fake import FakeGateway
from banking.gateway.interface import WebhookEvent
from banking.gateway.signatures import sign_payload
from banking.models import Dispute, Hold, StripeEvent, TopUp, Transfer
from banking.models.ledger import AccountPurpose, TransferKind
from banking.selectors import organization_account, wallet_get
from banking.services.ledger import transfer_post
from banking.services.payments import stripe_events_retry, topup_create, topup_refund
from banking.standing import organization_assert_can_spend
from tests.banking.payments.conftest import FAKE_SECRET, balance

pytestmark = pytest.mark.django_db
URL = "/webhooks/stripe/"


@pytest.fixture
def post(django_capture_on_commit_callbacks):
    """POST to the webhook as Stripe would; on-commit work (the queued task, run eagerly
    where a test asks for it) runs as after a real commit."""

    def send(payload: bytes, header: str | None):
        headers = {"Stripe-Signature": header} if header is not None else {}
        with django_capture_on_commit_callbacks(execute=True):
            return Client().post(URL, data=payload, content_type="application/json",
                                 headers=headers)

    return send


@pytest.fixture
def deliveries(fake_gateway: FakeGateway) -> list[tuple[bytes, str]]:
    """What the fake would POST to our endpoint, collected instead of sent."""
    sent: list[tuple[bytes, str]] = []
    fake_gateway.on_event(lambda payload, header: sent.append((payload, header)))
    return sent


def _of_type(sent, type_):
    return [(p, h) for p, h in sent if json.loads(p)["type"] == type_]


def _pending_topup(org, fake: FakeGateway, amount_cents=1000) -> TopUp:
    topup = topup_create(organization_id=org.pk, amount_cents=amount_cents,
                         idempotency_key=f"t-{amount_cents}-{time.monotonic_ns()}")
    assert topup.payment_intent_id is not None
    fake.payment_intent_confirm(topup.payment_intent_id, payment_method="pm_card_visa")
    return topup


def test_a_signed_payment_succeeded_event_credits_the_top_up_once(
    post, make_org, fake_gateway, deliveries, eager_tasks
):
    org = make_org()
    topup = _pending_topup(org, fake_gateway)
    payload, header = _of_type(deliveries, "payment_intent.succeeded")[0]

    response = post(payload, header)

    assert response.status_code == 200
    assert response.json()["duplicate"] is False
    event = StripeEvent.objects.get()
    assert (event.type, event.status, event.attempts) == (
        "payment_intent.succeeded", "processed", 1)
    assert TopUp.objects.get(pk=topup.pk).status == "succeeded"
    assert balance(org) == 33_333_333
    for _ in range(10):
        again = post(payload, header)
        assert again.status_code == 200
        assert again.json()["duplicate"] is True
    assert StripeEvent.objects.count() == 1
    assert Transfer.objects.filter(kind=TransferKind.TOPUP).count() == 1
    assert balance(org) == 33_333_333


def test_the_webhook_stores_and_queues_but_does_not_process_inline(
    post, make_org, fake_gateway, deliveries, monkeypatch
):
    queued: list[int] = []
    monkeypatch.setattr("banking.tasks.stripe_event_process_task.apply_async",
                        lambda args, kwargs=None, **options: queued.extend(args))
    org = make_org()
    _pending_topup(org, fake_gateway)
    payload, header = _of_type(deliveries, "payment_intent.succeeded")[0]
    assert post(payload, header).status_code == 200
    event = StripeEvent.objects.get()
    assert queued == [event.pk]
    assert event.status == "received"
    assert balance(org) == 0


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda p, h: (p, None), "No timestamp"),
        (lambda p, h: (p, "garbage"), "No timestamp"),
        (lambda p, h: (p.replace(b"1000", b"9000"), h), "No signature matches"),
        (lambda p, h: (p, sign_payload(p, secret="whsec_other")), "No signature matches"),
        (lambda p, h: (p, sign_payload(p, secret=FAKE_SECRET,
                                       timestamp=int(time.time()) - 301)), "tolerance"),
    ],
    ids=["missing", "malformed-header", "tampered", "wrong-secret", "too-old"],
)
def test_a_bad_signature_is_refused_logged_and_credits_nothing(
    post, make_org, fake_gateway, deliveries, eager_tasks, caplog, mutate, message
):
    org = make_org()
    _pending_topup(org, fake_gateway)
    payload, header = mutate(*_of_type(deliveries, "payment_intent.succeeded")[0])
    with caplog.at_level(logging.WARNING, logger="suanli.payments"):
        response = post(payload, header)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_signature"
    assert message in response.json()["error"]["message"]
    assert "bad signature" in caplog.text
    assert StripeEvent.objects.count() == 0
    assert balance(org) == 0


def test_a_correctly_signed_body_that_is_not_json_is_refused(post, fake_gateway, db, caplog):
    body = b"{not json"
    with caplog.at_level(logging.WARNING, logger="suanli.payments"):
        response = post(body, sign_payload(body, secret=FAKE_SECRET))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "malformed_event"
    assert "malformed event" in caplog.text
    assert StripeEvent.objects.count() == 0


def _signed(fake: FakeGateway, type_: str, obj: dict, event_id: str = "evt_test_1"):
    return fake.signed_event(WebhookEvent(id=event_id, type=type_, created=int(time.time()),
                                          data_object=obj, livemode=False))


def test_an_event_for_an_unknown_payment_intent_is_refused_and_logged(
    post, make_org, fake_gateway, eager_tasks, caplog
):
    org = make_org()
    payload, header = _signed(fake_gateway, "payment_intent.succeeded",
                              {"id": "pi_unknown", "object": "payment_intent",
                               "amount": 1000, "currency": "usd", "metadata": {}})
    with caplog.at_level(logging.WARNING, logger="suanli.payments"):
        response = post(payload, header)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "unknown_payment"
    assert "pi_unknown" in caplog.text
    assert StripeEvent.objects.count() == 0
    assert balance(org) == 0


def test_other_event_types_are_acknowledged_and_ignored(post, fake_gateway, db, eager_tasks):
    payload, header = _signed(fake_gateway, "customer.created", {"id": "cus_1"})
    response = post(payload, header)
    assert response.status_code == 200
    assert response.json()["handled"] is False
    assert StripeEvent.objects.get().status == "ignored"


def test_a_failed_payment_event_marks_the_top_up_failed_with_the_reason(
    post, make_org, fake_gateway, deliveries, eager_tasks
):
    org = make_org()
    topup = topup_create(organization_id=org.pk, amount_cents=1000, idempotency_key="t")
    fake_gateway.payment_intent_confirm(topup.payment_intent_id,
                                        payment_method="pm_card_chargeDeclined")
    TopUp.objects.filter(pk=topup.pk).update(status="pending", failure_message="")
    payload, header = _of_type(deliveries, "payment_intent.payment_failed")[0]
    assert post(payload, header).status_code == 200
    topup.refresh_from_db()
    assert (topup.status, topup.failure_message) == ("failed", "Your card was declined.")
    assert balance(org) == 0


def test_a_refund_after_spending_takes_what_the_wallet_has_and_the_rest_is_owed(
    post, make_org, fake_gateway, deliveries, eager_tasks
):
    org, shop = make_org(), make_org()
    topup = topup_create(organization_id=org.pk, amount_cents=300,
                         payment_method="pm_card_visa", idempotency_key="t")
    assert balance(org) == 10_000_000
    transfer_post(kind=TransferKind.TRANSFER, idempotency_key="spend",
                  legs=[(organization_account(org.pk, "wallet").pk, -7_000_000),
                        (organization_account(shop.pk, "wallet").pk, 7_000_000)])

    fake_gateway.refund_create(payment_intent_id=topup.payment_intent_id,
                               idempotency_key="r")
    payload, header = _of_type(deliveries, "charge.refunded")[0]
    assert post(payload, header).status_code == 200

    assert balance(org) == 0
    assert wallet_get(organization_id=org.pk).debt == 7_000_000
    topup.refresh_from_db()
    assert (topup.refunded_cents, topup.refunded_tokens) == (300, 10_000_000)
    with pytest.raises(OrganizationCannotSpend, match="owes 7000000 tokens") as info:
        organization_assert_can_spend(org.pk)
    assert info.value.code == "organization_owes"
    for _ in range(3):  # replays and a direct re-application change nothing
        post(payload, header)
    assert Transfer.objects.filter(kind=TransferKind.REFUND).count() == 1

    topup_create(organization_id=org.pk, amount_cents=300, payment_method="pm_card_visa",
                 idempotency_key="repay")
    assert wallet_get(organization_id=org.pk).debt == 0
    assert balance(org) == 3_000_000
    organization_assert_can_spend(org.pk)


def test_partial_refunds_take_back_their_share_once_each(post, make_org, fake_gateway, deliveries,
                                                         eager_tasks):
    org = make_org()
    topup = topup_create(organization_id=org.pk, amount_cents=300,
                         payment_method="pm_card_visa", idempotency_key="t")
    topup_refund(topup_id=topup.pk, amount_cents=100)
    assert balance(org) == 10_000_000 - 3_333_334
    for payload, header in _of_type(deliveries, "charge.refunded"):
        assert post(payload, header).status_code == 200
    assert balance(org) == 10_000_000 - 3_333_334
    topup_refund(topup_id=topup.pk)
    for payload, header in _of_type(deliveries, "charge.refunded"):
        post(payload, header)
    assert balance(org) == 0
    topup.refresh_from_db()
    assert (topup.refunded_cents, topup.refunded_tokens) == (300, 10_000_000)
    assert Transfer.objects.filter(kind=TransferKind.REFUND).count() == 2
    with pytest.raises(Exception, match="1 to 0 cents"):
        topup_refund(topup_id=topup.pk)


def _dispute(fake, topup, dispute_id="dp_1", status=None, type_="charge.dispute.created"):
    obj = {"id": dispute_id, "object": "dispute", "amount": topup.amount_cents,
           "charge": topup.charge_id, "payment_intent": topup.payment_intent_id,
           "reason": "fraudulent", "status": status or "needs_response"}
    return _signed(fake, type_, obj, event_id=f"evt_{dispute_id}_{type_}_{status}")


def test_a_dispute_holds_the_disputed_tokens_and_a_won_dispute_releases_them(
    post, make_org, fake_gateway, eager_tasks
):
    org = make_org()
    topup = topup_create(organization_id=org.pk, amount_cents=300,
                         payment_method="pm_card_visa", idempotency_key="t")
    assert post(*_dispute(fake_gateway, topup)).status_code == 200
    dispute = Dispute.objects.get()
    assert dispute.hold is not None
    assert (dispute.tokens, dispute.hold.amount, dispute.reason) == (
        10_000_000, 10_000_000, "fraudulent")
    assert wallet_get(organization_id=org.pk).available == 0
    assert wallet_get(organization_id=org.pk).held == 10_000_000
    assert post(*_dispute(fake_gateway, topup)).json()["duplicate"] is True
    assert Hold.objects.count() == 1

    assert post(*_dispute(fake_gateway, topup, status="won",
                          type_="charge.dispute.closed")).status_code == 200
    assert Dispute.objects.get().status == "won"
    assert balance(org) == 10_000_000


def test_a_lost_dispute_takes_the_held_tokens_and_the_rest_is_owed(
    post, make_org, fake_gateway, eager_tasks
):
    org, shop = make_org(), make_org()
    topup = topup_create(organization_id=org.pk, amount_cents=300,
                         payment_method="pm_card_visa", idempotency_key="t")
    transfer_post(kind=TransferKind.TRANSFER, idempotency_key="spend",
                  legs=[(organization_account(org.pk, "wallet").pk, -4_000_000),
                        (organization_account(shop.pk, "wallet").pk, 4_000_000)])
    post(*_dispute(fake_gateway, topup))
    hold = Dispute.objects.get().hold
    assert hold is not None
    assert hold.amount == 6_000_000
    post(*_dispute(fake_gateway, topup, status="lost", type_="charge.dispute.closed"))
    summary = wallet_get(organization_id=org.pk)
    assert (summary.available, summary.held, summary.debt) == (0, 0, 4_000_000)
    assert organization_account(org.pk, AccountPurpose.DEBT).balance == -4_000_000


def test_a_broker_outage_does_not_fail_the_webhook_and_the_retry_task_catches_up(
    post, make_org, fake_gateway, deliveries, monkeypatch
):
    def broker_down(*args: object, **kwargs: object) -> None:
        raise ConnectionError("broker unreachable")

    monkeypatch.setattr("banking.tasks.stripe_event_process_task.apply_async", broker_down)
    org = make_org()
    topup = _pending_topup(org, fake_gateway)
    payload, header = _of_type(deliveries, "payment_intent.succeeded")[0]
    assert post(payload, header).status_code == 200
    assert StripeEvent.objects.get().status == "received"
    assert balance(org) == 0

    assert stripe_events_retry(older_than_s=0) == 1
    assert StripeEvent.objects.get().status == "processed"
    assert TopUp.objects.get(pk=topup.pk).status == "succeeded"
    assert balance(org) == 33_333_333
    assert stripe_events_retry(older_than_s=0) == 0
