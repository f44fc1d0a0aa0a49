"""FakeGateway behaviour that localstripe cannot show: idempotency, payouts, injected
failures, determinism and thread safety."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from banking.gateway.fake import FakeGateway
from banking.gateway.interface import GatewayError, PaymentGateway


@pytest.fixture
def fake() -> FakeGateway:
    return FakeGateway(clock=lambda: 1_800_000_000)


def _customer(fake: FakeGateway) -> str:
    return fake.customer_create(name="Acme", organization_id="1", idempotency_key="cus-1")


def test_fake_satisfies_the_protocol(fake: FakeGateway) -> None:
    assert isinstance(fake, PaymentGateway)


def test_ids_are_deterministic(fake: FakeGateway) -> None:
    customer_id = _customer(fake)
    pi = fake.payment_intent_create(
        customer_id=customer_id, amount_cents=100, currency="usd", metadata={}, idempotency_key="p"
    )

    assert customer_id == "cus_fake00000001"
    assert pi.id == "pi_fake00000001"
    assert pi.created == 1_800_000_000


@pytest.mark.parametrize("payment_method", ["pm_card_visa", "4242424242424242"])
def test_succeeding_test_cards(fake: FakeGateway, payment_method: str) -> None:
    pi = fake.payment_intent_create(
        customer_id=_customer(fake),
        amount_cents=100,
        currency="usd",
        metadata={},
        idempotency_key="p",
        payment_method=payment_method,
        confirm=True,
    )

    assert pi.status == "succeeded"


@pytest.mark.parametrize(
    "payment_method",
    [
        "pm_card_chargeDeclined",
        "pm_card_visa_chargeDeclined",
        "4000000000000002",
        "4000000000000341",
    ],
)
def test_declining_test_cards(fake: FakeGateway, payment_method: str) -> None:
    pi = fake.payment_intent_create(
        customer_id=_customer(fake),
        amount_cents=100,
        currency="usd",
        metadata={},
        idempotency_key="p",
        payment_method=payment_method,
        confirm=True,
    )

    assert pi.status == "requires_payment_method"
    assert pi.failure_message == "Your card was declined."


def test_a_declined_payment_can_be_retried_with_another_card(fake: FakeGateway) -> None:
    pi = fake.payment_intent_create(
        customer_id=_customer(fake),
        amount_cents=100,
        currency="usd",
        metadata={},
        idempotency_key="p",
        payment_method="4000000000000002",
        confirm=True,
    )

    retried = fake.payment_intent_confirm(pi.id, payment_method="pm_card_visa")

    assert retried.status == "succeeded"
    assert retried.failure_message is None


def test_an_unknown_payment_method_is_an_error(fake: FakeGateway) -> None:
    pi = fake.payment_intent_create(
        customer_id=_customer(fake),
        amount_cents=100,
        currency="usd",
        metadata={},
        idempotency_key="p",
    )

    with pytest.raises(GatewayError, match="No such PaymentMethod"):
        fake.payment_intent_confirm(pi.id, payment_method="pm_unknown")


def test_same_idempotency_key_returns_the_first_result(fake: FakeGateway) -> None:
    customer_id = _customer(fake)
    first = fake.payment_intent_create(
        customer_id=customer_id,
        amount_cents=100,
        currency="usd",
        metadata={},
        idempotency_key="same",
    )

    again = fake.payment_intent_create(
        customer_id=customer_id,
        amount_cents=100,
        currency="usd",
        metadata={},
        idempotency_key="same",
    )

    assert again == first
    assert _customer(fake) == customer_id
    assert len(fake.payments_succeeded_list(since=None)) == 0


def test_same_idempotency_key_with_other_parameters_is_a_conflict(fake: FakeGateway) -> None:
    customer_id = _customer(fake)
    fake.payment_intent_create(
        customer_id=customer_id,
        amount_cents=100,
        currency="usd",
        metadata={},
        idempotency_key="same",
    )

    with pytest.raises(GatewayError, match="same parameters") as info:
        fake.payment_intent_create(
            customer_id=customer_id,
            amount_cents=200,
            currency="usd",
            metadata={},
            idempotency_key="same",
        )

    assert info.value.code == "idempotency_conflict"
    assert info.value.retryable is False


def test_refunds_cannot_exceed_the_payment(fake: FakeGateway) -> None:
    pi = fake.payment_intent_create(
        customer_id=_customer(fake),
        amount_cents=1000,
        currency="usd",
        metadata={},
        idempotency_key="p",
        payment_method="pm_card_visa",
        confirm=True,
    )
    fake.refund_create(payment_intent_id=pi.id, amount_cents=600, idempotency_key="r1")

    with pytest.raises(GatewayError, match=r"greater than the unrefunded amount \(400\)"):
        fake.refund_create(payment_intent_id=pi.id, amount_cents=401, idempotency_key="r2")
    rest = fake.refund_create(payment_intent_id=pi.id, idempotency_key="r3")

    assert rest.amount_cents == 400
    assert (
        fake.refund_create(
            payment_intent_id=pi.id, amount_cents=600, idempotency_key="r1"
        ).amount_cents
        == 600
    )
    assert [r.amount_cents for r in fake.refunds_list(since=None)] == [600, 400]


def test_payout_transfer_is_paid(fake: FakeGateway) -> None:
    transfer = fake.payout_transfer_create(
        destination_account="acct_provider1",
        amount_cents=12_345,
        currency="USD",
        idempotency_key="payout-1",
        metadata={"payout_id": "1"},
    )

    assert transfer.status == "paid"
    assert transfer.id == "tr_fake00000001"
    assert transfer.amount_cents == 12_345
    assert transfer.currency == "usd"
    assert transfer.destination == "acct_provider1"
    assert transfer.failure_message is None
    assert fake.payout_transfers_list(since=None) == [transfer]


def test_payout_transfer_to_a_failing_destination_fails_with_a_message(
    fake: FakeGateway,
) -> None:
    transfer = fake.payout_transfer_create(
        destination_account="acct_will_fail",
        amount_cents=500,
        currency="usd",
        idempotency_key="payout-2",
        metadata={},
    )

    assert transfer.status == "failed"
    assert transfer.id == ""
    assert transfer.failure_message == "No such destination: 'acct_will_fail'"
    assert fake.payout_transfers_list(since=None) == []


def test_payout_transfer_replayed_with_its_key_pays_once(fake: FakeGateway) -> None:
    def pay() -> object:
        return fake.payout_transfer_create(
            destination_account="acct_p",
            amount_cents=500,
            currency="usd",
            idempotency_key="payout-3",
            metadata={"payout_id": "3"},
        )

    first = pay()

    again = pay()

    assert again == first
    assert len(fake.payout_transfers_list(since=None)) == 1


@pytest.mark.parametrize("retryable", [True, False])
def test_fail_next_fails_exactly_one_call_and_changes_nothing(
    fake: FakeGateway, retryable: bool
) -> None:
    fake.fail_next("payout_transfer_create", retryable=retryable, message="bank is down")

    with pytest.raises(GatewayError, match="bank is down") as info:
        fake.payout_transfer_create(
            destination_account="acct_p",
            amount_cents=1,
            currency="usd",
            idempotency_key="k",
            metadata={},
        )
    transfer = fake.payout_transfer_create(
        destination_account="acct_p",
        amount_cents=1,
        currency="usd",
        idempotency_key="k",
        metadata={},
    )

    assert info.value.retryable is retryable
    assert transfer.status == "paid"
    assert len(fake.payout_transfers_list(since=None)) == 1


def test_fail_next_refuses_an_unknown_operation(fake: FakeGateway) -> None:
    with pytest.raises(ValueError, match="Unknown gateway operation"):
        fake.fail_next("payout_create")


def test_concurrent_calls_with_one_key_create_one_payment_intent(fake: FakeGateway) -> None:
    customer_id = _customer(fake)
    barrier = threading.Barrier(16)

    def create(_: int) -> str:
        barrier.wait()
        return fake.payment_intent_create(
            customer_id=customer_id,
            amount_cents=100,
            currency="usd",
            metadata={},
            idempotency_key="storm",
            payment_method="pm_card_visa",
            confirm=True,
        ).id

    with ThreadPoolExecutor(max_workers=16) as pool:
        ids = set(pool.map(create, range(16)))

    assert ids == {"pi_fake00000001"}
    assert len(fake.payments_succeeded_list(since=None)) == 1
    assert len(fake.charges_list(since=None)) == 1
