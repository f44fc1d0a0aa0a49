"""Fixtures for payments: the fake gateway installed for a test, Celery run eagerly,
and small helpers (`localstripe` itself comes from tests.stripe_server)."""

from collections.abc import Iterator

import pytest

from banking.gateway import reset_gateway, set_gateway_for_tests
from banking.gateway.fake import FakeGateway
from banking.models import Organization
from banking.models.ledger import AccountPurpose
from banking.selectors import organization_account
from config.celery import app as celery_app

FAKE_SECRET = "whsec_payments_tests"


@pytest.fixture
def fake_gateway() -> Iterator[FakeGateway]:
    fake = FakeGateway(webhook_secret=FAKE_SECRET)
    set_gateway_for_tests(fake)
    try:
        yield fake
    finally:
        reset_gateway()


@pytest.fixture
def eager_tasks(settings) -> None:
    """CELERY_TASK_ALWAYS_EAGER for this test: the Celery app reads Django's settings
    through, so webhook processing and payout execution run on commit, in process."""
    settings.CELERY_TASK_ALWAYS_EAGER = True
    assert celery_app.conf.task_always_eager is True


def balance(org: Organization, purpose: str = AccountPurpose.WALLET) -> int:
    return organization_account(org.pk, purpose).balance
