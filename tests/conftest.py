import contextlib
import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from banking.invariants import ledger_verify
from banking.models import Organization
from banking.services.customers import api_key_issue, organization_create
from banking.services.ledger import grant_post
from banking.services.payments import token_prices_seed
from scheduler.services.classes import gpu_classes_seed

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
# tests.stripe_server: one localstripe process per test session, shared by every folder
# (it writes one /tmp/localstripe.pickle), so registered here only.
pytest_plugins = ["tests.fixtures", "tests.live", "tests.stripe_server"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "no_ledger_check: the test breaks the ledger on purpose"
    )
    config.addinivalue_line("markers", "serial: runs alone, after the parallel part")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests that must not overlap with others are marked `serial`: the concurrency
    suites (dozens of connections each), live workers and browsers (grouped with
    `xdist_group`), and everything that talks to localstripe (one process per session,
    one pickle file). `make test` runs them after the parallel part, in one process:
    xdist's grouping is not honoured by every pytest/xdist pair, so it is not relied on."""
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        callspec = getattr(item, "callspec", None)
        uses_localstripe = "localstripe_url" in names or (
            callspec is not None and callspec.params.get("gut") == "localstripe"
        )
        if uses_localstripe or any(True for _ in item.iter_markers("xdist_group")):
            item.add_marker(pytest.mark.serial)


@pytest.fixture(autouse=True)
def _synchronous_heartbeats(settings: Any) -> None:
    """Heartbeats write to PostgreSQL as they arrive unless a test asks for write-behind
    (which needs a flush to be seen there): see tests/scheduler/test_heartbeat_buffer.py
    and the live suites, whose Celery worker flushes."""
    settings.AGENT_HEARTBEAT_WRITE_BEHIND = False


@pytest.fixture(autouse=True)
def _ledger_stays_sound(request: pytest.FixtureRequest) -> Iterator[None]:
    """After every test that touches the database, the ledger's invariants still hold."""
    uses_db = next(
        (f for f in ("transactional_db", "db") if f in request.fixturenames), None
    )
    if uses_db is None:
        yield
        return
    if request.node.get_closest_marker("no_ledger_check"):
        request.getfixturevalue(uses_db)
        gpu_classes_seed()
        token_prices_seed()
        yield
        return
    request.getfixturevalue(uses_db)
    # A transactional test empties every table when it ends: put the catalog and the
    # token prices back.
    gpu_classes_seed()
    token_prices_seed()
    yield
    violations = ledger_verify()
    assert violations == [], f"ledger invariants broken after the test: {violations}"


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    from banking.fiat_display import usd_price_forget

    usd_price_forget()  # the dollar price each test's database has, not the last test's
    yield
    # a test that breaks the cache on purpose leaves nothing to clear
    with contextlib.suppress(Exception):
        cache.clear()
    from core.credential_guard import credential_guard_forget

    credential_guard_forget()  # what this process learnt of throttled addresses


@pytest.fixture
def make_org(db: None) -> Callable[..., Organization]:
    counter = {"n": 0}

    def make(name: str | None = None, *, provider: bool = False, buyer: bool = True,
             tokens: int = 0, earned: int = 0) -> Organization:
        counter["n"] += 1
        org = organization_create(
            name=name or f"org-{counter['n']}-{os.urandom(3).hex()}",
            is_buyer=buyer,
            is_provider=provider,
        )
        if tokens:
            grant_post(organization_id=org.pk, amount=tokens, reason="test funds")
        if earned:
            from tests.earnings import earn

            earn(org.pk, earned)
        return org

    return make


@pytest.fixture
def org(make_org: Callable[..., Organization]) -> Organization:
    return make_org("Acme AI", tokens=0)


@pytest.fixture
def api_client_for() -> Callable[[Organization], APIClient]:
    def make(organization: Organization) -> APIClient:
        client = APIClient()
        issued = api_key_issue(organization_id=organization.pk)
        client.credentials(HTTP_AUTHORIZATION=f"Api-Key {issued.secret}")
        return client

    return make
