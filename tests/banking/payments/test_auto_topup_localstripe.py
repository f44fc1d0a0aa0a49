"""Auto top-up against localstripe, a real HTTP server: crossing the threshold credits
once per interval, a declined card pauses it.

localstripe refuses the `off_session` parameter that Stripe needs for a charge with
nobody at the card, so a shim drops it on the way to localstripe (and records that it
was sent); `test_auto_topup.py` asserts the adapter sends it."""

from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from banking.gateway import get_gateway
from banking.models import AutoTopUp, TopUp, Transfer
from banking.models.ledger import TransferKind
from banking.selectors import wallet_get
from banking.services.auto_topup import auto_topup_run, auto_topup_set
from tests.stripe_server import create_card_payment_method

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.xdist_group("localstripe"),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL row locks"),
]
TOKENS_FOR_10_USD = 33_333_333


@pytest.fixture
def off_session_shim(localstripe, monkeypatch) -> list[dict[str, Any]]:
    """What the adapter sends to PaymentIntents.create, minus `off_session`."""
    sent: list[dict[str, Any]] = []
    service = get_gateway()._client.v1.payment_intents  # type: ignore[attr-defined]
    original = service.create

    def create(params: dict[str, Any], options: dict[str, Any] | None = None) -> Any:
        sent.append(dict(params))
        trimmed = {k: v for k, v in params.items() if k != "off_session"}
        return original(trimmed, options)

    monkeypatch.setattr(service, "create", create)
    return sent


def _interval_passes(org) -> None:
    AutoTopUp.objects.filter(organization=org).update(
        last_attempt_at=timezone.now() - timedelta(hours=2))


def test_crossing_the_threshold_credits_once_per_interval(make_org, localstripe,
                                                          off_session_shim):
    org = make_org()
    card = create_card_payment_method(localstripe.url, "4242424242424242")
    auto_topup_set(organization_id=org.pk, threshold=50_000_000, amount_cents=1000,
                   payment_method=card)

    first = auto_topup_run(organization_id=org.pk)
    assert first is not None and first.status == TopUp.Status.SUCCEEDED
    assert auto_topup_run(organization_id=org.pk) is None
    assert wallet_get(organization_id=org.pk).available == TOKENS_FOR_10_USD
    assert [(p["off_session"], p["confirm"], p["payment_method"]) for p in off_session_shim
            ] == [(True, True, card)]

    _interval_passes(org)
    second = auto_topup_run(organization_id=org.pk)
    assert second is not None and second.status == TopUp.Status.SUCCEEDED
    assert wallet_get(organization_id=org.pk).available == 2 * TOKENS_FOR_10_USD
    assert Transfer.objects.filter(kind=TransferKind.TOPUP,
                                   entries__account__organization=org).distinct().count() == 2


def test_a_declined_card_pauses_auto_top_up(make_org, localstripe, off_session_shim):
    org = make_org()
    card = create_card_payment_method(localstripe.url, "4000000000000341")
    auto_topup_set(organization_id=org.pk, threshold=50_000_000, amount_cents=1000,
                   payment_method=card)

    topup = auto_topup_run(organization_id=org.pk)

    assert topup is not None and topup.status == TopUp.Status.FAILED
    config = AutoTopUp.objects.get(organization=org)
    assert config.paused_at is not None and "declined" in config.paused_reason
    assert wallet_get(organization_id=org.pk).available == 0
    _interval_passes(org)
    assert auto_topup_run(organization_id=org.pk) is None
    assert TopUp.objects.filter(organization=org).count() == 1
