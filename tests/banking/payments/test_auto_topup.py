"""Auto top-up: below the threshold the saved card is charged off-session, at most once
per interval, credited exactly once through the top-up path; a declined card or an
authentication request pauses it and tells the owners."""

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from banking.gateway.stripe_adapter import StripeGateway
from banking.models import AutoTopUp, Membership, TopUp, Transfer
from banking.models.ledger import TransferKind
from banking.selectors import wallet_get
from banking.services.auto_topup import auto_topup_run, auto_topup_set, auto_topups_due
from banking.services.customers import membership_add
from core.errors import InvalidInput

pytestmark = pytest.mark.django_db
TOKENS_FOR_10_USD = 33_333_333


@pytest.fixture
def owned(make_org, django_user_model):
    org = make_org()
    owner = django_user_model.objects.create_user("cfo@auto.example", "cfo@auto.example", "x")
    membership_add(organization_id=org.pk, user=owner, role=Membership.Role.OWNER)
    return org


def _interval_passes(org) -> None:
    AutoTopUp.objects.filter(organization=org).update(
        last_attempt_at=timezone.now() - timedelta(hours=2))


def test_below_the_threshold_the_card_is_charged_once_per_interval(
        owned, fake_gateway, settings, django_capture_on_commit_callbacks):
    settings.AUTO_TOPUP_MIN_INTERVAL_S = 3600
    auto_topup_set(organization_id=owned.pk, threshold=50_000_000, amount_cents=1000,
                   payment_method="pm_card_visa")
    assert auto_topups_due() == [owned.pk]

    with django_capture_on_commit_callbacks(execute=True):
        topup = auto_topup_run(organization_id=owned.pk)
    assert topup is not None and topup.status == TopUp.Status.SUCCEEDED
    assert wallet_get(organization_id=owned.pk).available == TOKENS_FOR_10_USD
    assert [m.subject for m in mail.outbox] == ["Suanli: auto top-up of $10.00"]
    assert mail.outbox[0].to == ["cfo@auto.example"]
    assert mail.outbox[0].body == (
        "Your wallet fell below 50,000,000 tokens (\u2248 $15.00), so your saved card was "
        "charged $10.00 for 33,333,333 tokens.")

    # still below the threshold, but within the interval: nothing more
    assert auto_topup_run(organization_id=owned.pk) is None
    assert auto_topups_due() == []
    assert Transfer.objects.filter(kind=TransferKind.TOPUP).count() == 1

    _interval_passes(owned)
    second = auto_topup_run(organization_id=owned.pk)
    assert second is not None and second.pk != topup.pk
    assert wallet_get(organization_id=owned.pk).available == 2 * TOKENS_FOR_10_USD
    assert Transfer.objects.filter(kind=TransferKind.TOPUP).count() == 2
    # above the threshold: nothing, whatever the interval
    auto_topup_set(organization_id=owned.pk, threshold=1_000, amount_cents=1000,
                   payment_method="pm_card_visa")
    _interval_passes(owned)
    assert auto_topup_run(organization_id=owned.pk) is None
    assert TopUp.objects.filter(organization=owned).count() == 2


def test_a_declined_card_pauses_auto_top_up_and_tells_the_owners(
        owned, fake_gateway, django_capture_on_commit_callbacks):
    auto_topup_set(organization_id=owned.pk, threshold=50_000_000, amount_cents=1000,
                   payment_method="pm_card_chargeDeclined")
    with django_capture_on_commit_callbacks(execute=True):
        topup = auto_topup_run(organization_id=owned.pk)
    assert topup is not None and topup.status == TopUp.Status.FAILED
    config = AutoTopUp.objects.get(organization=owned)
    assert config.paused_at is not None
    assert config.paused_reason == "The card was declined (Your card was declined.)"
    assert [m.subject for m in mail.outbox] == ["Suanli: auto top-up is paused"]
    assert wallet_get(organization_id=owned.pk).available == 0

    _interval_passes(owned)
    assert auto_topup_run(organization_id=owned.pk) is None  # paused: not tried again
    assert TopUp.objects.filter(organization=owned).count() == 1
    # saving the settings again resumes it
    auto_topup_set(organization_id=owned.pk, threshold=50_000_000, amount_cents=1000,
                   payment_method="pm_card_visa")
    assert AutoTopUp.objects.get(organization=owned).paused_at is None
    assert auto_topups_due() == [owned.pk]


@pytest.mark.parametrize(("field", "kwargs"), [
    ("threshold", {"threshold": 0}),
    ("threshold", {"threshold": 10**16}),
    ("amount_cents", {"amount_cents": 10}),
    ("amount_cents", {"amount_cents": 10**9}),
    ("payment_method", {"payment_method": "card\x00"}),
])
def test_hostile_settings_are_refused_and_nothing_is_saved(owned, field, kwargs):
    values = {"threshold": 1_000, "amount_cents": 1000, "payment_method": "pm_card_visa",
              **kwargs}
    with pytest.raises(InvalidInput):
        auto_topup_set(organization_id=owned.pk, **values)
    assert AutoTopUp.objects.count() == 0


def test_the_stripe_adapter_charges_off_session_with_the_saved_card(monkeypatch):
    gateway = StripeGateway("sk_test_x", "whsec_x", "http://127.0.0.1:9", max_network_retries=0)
    sent: dict[str, object] = {}

    def create(params, options):
        sent.update(params=params, options=options)
        return {"id": "pi_1", "status": "succeeded", "amount": 1000, "currency": "usd",
                "customer": "cus_1", "metadata": params["metadata"]}

    monkeypatch.setattr(gateway._client.v1.payment_intents, "create", create)
    pi = gateway.payment_intent_create(customer_id="cus_1", amount_cents=1000, currency="usd",
                                       metadata={"topup_id": "1"}, idempotency_key="k",
                                       payment_method="pm_saved", confirm=True,
                                       off_session=True)
    assert pi.status == "succeeded"
    params = sent["params"]
    assert isinstance(params, dict)
    assert (params["off_session"], params["confirm"], params["payment_method"],
            params["customer"]) == (
        True, True, "pm_saved", "cus_1")
    with pytest.raises(ValueError, match="off_session=True needs confirm=True"):
        gateway.payment_intent_create(customer_id="cus_1", amount_cents=1000, currency="usd",
                                      metadata={}, idempotency_key="k2",
                                      payment_method="pm_saved", off_session=True)
