"""StripeGateway specifics: error mapping, pagination, what localstripe lacks, and
get_gateway()'s choice between Stripe and the fake."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest

import banking.gateway as gateway_module
from banking.gateway import get_gateway, reset_gateway, set_gateway_for_tests, stripe_adapter
from banking.gateway.fake import FakeGateway
from banking.gateway.interface import CardDeclined, GatewayError, PaymentGateway
from banking.gateway.stripe_adapter import StripeGateway
from tests.gateway.conftest import unique_key
from tests.stripe_server import LOCALSTRIPE_SECRET_KEY, free_port


class _CannedServer(ThreadingHTTPServer):
    status: int
    body: dict[str, object]


class _CannedHandler(BaseHTTPRequestHandler):
    server: _CannedServer

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length", "0") or "0")
        self.rfile.read(length)
        body = json.dumps(self.server.body).encode()
        self.send_response(self.server.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = _answer
    do_POST = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def canned() -> Iterator[_CannedServer]:
    """A server that answers every request with one status and JSON body."""
    server = _CannedServer(("127.0.0.1", 0), _CannedHandler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def _gateway_for(server: _CannedServer) -> StripeGateway:
    host, port = server.server_address[:2]
    return StripeGateway("sk_test_x", "whsec_x", f"http://{host!s}:{port}", max_network_retries=0)


@pytest.mark.parametrize(
    ("status", "error", "code", "retryable"),
    [
        (429, {"type": "invalid_request_error", "message": "Too many"}, "rate_limited", True),
        (500, {"type": "api_error", "message": "Boom"}, "provider_error", True),
        (503, {"type": "api_error", "message": "Down"}, "provider_error", True),
        (400, {"type": "idempotency_error", "message": "Keys..."}, "idempotency_conflict", False),
        (
            401,
            {"type": "invalid_request_error", "message": "Bad key"},
            "authentication_failed",
            False,
        ),
        (
            400,
            {"type": "invalid_request_error", "code": "parameter_missing", "message": "No"},
            "parameter_missing",
            False,
        ),
        (
            404,
            {"type": "invalid_request_error", "code": "resource_missing", "message": "No such"},
            "resource_missing",
            False,
        ),
    ],
)
def test_stripe_errors_become_gateway_errors(
    canned: _CannedServer, status: int, error: dict[str, str], code: str, retryable: bool
) -> None:
    canned.status = status
    canned.body = {"error": error}

    with pytest.raises(GatewayError, match=re.escape(error["message"])) as info:
        _gateway_for(canned).payment_intent_retrieve("pi_1")

    assert type(info.value) is GatewayError
    assert info.value.code == code
    assert info.value.retryable is retryable


def test_a_card_error_outside_a_payment_intent_is_card_declined(canned: _CannedServer) -> None:
    canned.status = 402
    canned.body = {"error": {"type": "card_error", "code": "card_declined", "message": "Nope."}}

    with pytest.raises(CardDeclined, match=r"Nope\.") as info:
        _gateway_for(canned).customer_create(name="x", organization_id="1", idempotency_key="k")

    assert info.value.retryable is False


def test_an_unreachable_server_is_a_retryable_connection_error() -> None:
    gateway = StripeGateway(
        "sk_test_x", "whsec_x", f"http://127.0.0.1:{free_port()}", max_network_retries=0
    )

    with pytest.raises(GatewayError) as info:
        gateway.payment_intent_retrieve("pi_1")

    assert info.value.code == "connection_error"
    assert info.value.retryable is True


def test_localstripe_rejects_a_non_secret_key(localstripe_url: str) -> None:
    gateway = StripeGateway("pk_test_public", "whsec_x", localstripe_url, max_network_retries=0)

    with pytest.raises(GatewayError, match="Unauthorized") as info:
        gateway.customer_create(name="x", organization_id="1", idempotency_key=unique_key())

    assert info.value.code == "authentication_failed"


def test_localstripe_has_no_connect_transfers(localstripe_url: str) -> None:
    """localstripe 1.15 has no /v1/transfers: payouts are tested on the fake only."""
    gateway = StripeGateway(LOCALSTRIPE_SECRET_KEY, "whsec_x", localstripe_url)

    with pytest.raises(GatewayError, match="404") as info:
        gateway.payout_transfer_create(
            destination_account="acct_1",
            amount_cents=100,
            currency="usd",
            idempotency_key=unique_key(),
            metadata={},
        )

    assert info.value.retryable is False


def test_lists_follow_every_page(localstripe_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stripe_adapter, "_LIST_PAGE_SIZE", 2)
    gateway = StripeGateway(LOCALSTRIPE_SECRET_KEY, "whsec_x", localstripe_url)
    customer_id = gateway.customer_create(
        name="Pages", organization_id="1", idempotency_key=unique_key()
    )
    since = int(time.time())
    created = {
        gateway.payment_intent_create(
            customer_id=customer_id,
            amount_cents=100 + i,
            currency="usd",
            metadata={},
            idempotency_key=unique_key(),
            payment_method="pm_card_visa",
            confirm=True,
        ).id
        for i in range(5)
    }

    listed = {p.id for p in gateway.payments_succeeded_list(since=since)}

    assert created <= listed


def test_stripe_gateway_satisfies_the_protocol() -> None:
    assert isinstance(StripeGateway("sk_test_x", "whsec_x"), PaymentGateway)


@pytest.fixture
def fresh_gateway_module() -> Iterator[None]:
    reset_gateway()
    yield
    reset_gateway()


def _settings(monkeypatch: pytest.MonkeyPatch, **values: str) -> None:
    monkeypatch.setattr("django.conf.settings", SimpleNamespace(**values))


@pytest.mark.usefixtures("fresh_gateway_module")
def test_get_gateway_without_a_secret_key_is_one_process_wide_fake(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _settings(monkeypatch, STRIPE_SECRET_KEY="", STRIPE_WEBHOOK_SECRET="", STRIPE_API_BASE="")

    first = get_gateway()

    assert isinstance(first, FakeGateway)
    assert get_gateway() is first


@pytest.mark.usefixtures("fresh_gateway_module")
def test_get_gateway_with_a_secret_key_is_stripe(monkeypatch: pytest.MonkeyPatch) -> None:
    _settings(
        monkeypatch,
        STRIPE_SECRET_KEY="sk_test_x",
        STRIPE_WEBHOOK_SECRET="whsec_x",
        STRIPE_API_BASE="http://127.0.0.1:1",
    )

    assert isinstance(get_gateway(), StripeGateway)


@pytest.mark.usefixtures("fresh_gateway_module")
def test_set_gateway_for_tests_overrides_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    _settings(monkeypatch, STRIPE_SECRET_KEY="sk_test_x")
    fake = FakeGateway()

    set_gateway_for_tests(fake)

    assert get_gateway() is fake
    set_gateway_for_tests(None)
    assert isinstance(get_gateway(), StripeGateway)
    assert gateway_module._override is None
