"""Fixtures for payments: the fake gateway installed for a test, a localstripe-backed
StripeGateway configured through settings, Celery run eagerly, and small helpers."""

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from banking.gateway import reset_gateway, set_gateway_for_tests
from banking.gateway.fake import FakeGateway
from banking.models import Organization
from banking.models.ledger import AccountPurpose
from banking.selectors import organization_account
from config.celery import app as celery_app
from tests.stripe_server import LOCALSTRIPE_SECRET_KEY

FAKE_SECRET = "whsec_payments_tests"


@pytest.fixture
def fake_gateway() -> Iterator[FakeGateway]:
    fake = FakeGateway(webhook_secret=FAKE_SECRET)
    set_gateway_for_tests(fake)
    try:
        yield fake
    finally:
        reset_gateway()


@dataclass(frozen=True)
class LocalStripe:
    url: str
    webhook_secret: str


@pytest.fixture
def localstripe(localstripe_url: str, settings) -> Iterator[LocalStripe]:
    """get_gateway() is a StripeGateway on localstripe, chosen by settings as in prod."""
    secret = f"whsec_{uuid.uuid4().hex}"
    settings.STRIPE_SECRET_KEY = LOCALSTRIPE_SECRET_KEY
    settings.STRIPE_API_BASE = localstripe_url
    settings.STRIPE_WEBHOOK_SECRET = secret
    reset_gateway()
    try:
        yield LocalStripe(url=localstripe_url, webhook_secret=secret)
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
