"""Webhooks: localstripe posts a signed event to a local listener and the gateway
accepts it; tampering, a wrong secret and an old timestamp are refused."""

from __future__ import annotations

import json
import queue
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from banking.gateway.fake import FakeGateway
from banking.gateway.interface import SignatureVerificationError
from banking.gateway.signatures import sign_payload
from banking.gateway.stripe_adapter import StripeGateway
from tests.gateway.conftest import unique_key
from tests.stripe_server import LOCALSTRIPE_SECRET_KEY, register_webhook

Delivery = tuple[bytes, str]


class _Listener(ThreadingHTTPServer):
    deliveries: queue.Queue[Delivery]


class _Handler(BaseHTTPRequestHandler):
    server: _Listener

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.server.deliveries.put((body, self.headers.get("Stripe-Signature", "")))
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def listener() -> Iterator[_Listener]:
    server = _Listener(("127.0.0.1", 0), _Handler)
    server.deliveries = queue.Queue()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def _wait_for(deliveries: queue.Queue[Delivery], *, event_type: str, object_id: str) -> Delivery:
    """localstripe sends webhooks ~1 s after the event, to every registered endpoint:
    skip deliveries of other tests' objects."""
    deadline = time.monotonic() + 10
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"no {event_type} webhook for {object_id}")
        payload, header = deliveries.get(timeout=remaining)
        body = json.loads(payload)
        if body["type"] == event_type and body["data"]["object"]["id"] == object_id:
            return payload, header


def test_localstripe_webhook_for_a_succeeded_payment_is_accepted(
    localstripe_url: str, listener: _Listener
) -> None:
    secret = f"whsec_{uuid.uuid4().hex}"
    host, port = listener.server_address[:2]
    register_webhook(
        localstripe_url,
        webhook_id=f"gateway-tests-{uuid.uuid4().hex}",
        url=f"http://{host!s}:{port}/webhooks/stripe/",
        secret=secret,
        events=["payment_intent.succeeded"],
    )
    gateway = StripeGateway(LOCALSTRIPE_SECRET_KEY, secret, localstripe_url, max_network_retries=0)
    customer_id = gateway.customer_create(
        name="Webhook Co", organization_id="1", idempotency_key=unique_key()
    )
    pi = gateway.payment_intent_create(
        customer_id=customer_id,
        amount_cents=1999,
        currency="usd",
        metadata={"topup_id": "55"},
        idempotency_key=unique_key(),
    )
    gateway.payment_intent_confirm(pi.id, payment_method="pm_card_visa")

    payload, header = _wait_for(
        listener.deliveries, event_type="payment_intent.succeeded", object_id=pi.id
    )
    event = gateway.webhook_event_parse(payload, header)

    assert event.id.startswith("evt_")
    assert event.type == "payment_intent.succeeded"
    assert event.livemode is False
    assert event.data_object["id"] == pi.id
    assert event.data_object["amount"] == 1999
    assert event.data_object["status"] == "succeeded"
    assert event.data_object["metadata"] == {"topup_id": "55"}

    tampered = payload.replace(b'"amount": 1999', b'"amount": 9999')
    assert tampered != payload
    with pytest.raises(SignatureVerificationError, match="No signature matches"):
        gateway.webhook_event_parse(tampered, header)

    wrong_secret = StripeGateway(LOCALSTRIPE_SECRET_KEY, "whsec_wrong", localstripe_url)
    with pytest.raises(SignatureVerificationError, match="No signature matches"):
        wrong_secret.webhook_event_parse(payload, header)

    stale = sign_payload(payload, secret=secret, timestamp=int(time.time()) - 301)
    with pytest.raises(SignatureVerificationError, match="tolerance"):
        gateway.webhook_event_parse(payload, stale)


def test_fake_gateway_delivers_signed_events_that_it_accepts() -> None:
    fake = FakeGateway(webhook_secret="whsec_fake_test")
    deliveries: list[Delivery] = []
    fake.on_event(lambda payload, header: deliveries.append((payload, header)))
    customer_id = fake.customer_create(name="Fake Co", organization_id="2", idempotency_key="c")

    pi = fake.payment_intent_create(
        customer_id=customer_id,
        amount_cents=300,
        currency="usd",
        metadata={},
        idempotency_key="p",
        payment_method="pm_card_visa",
        confirm=True,
    )

    events = [fake.webhook_event_parse(payload, header) for payload, header in deliveries]
    assert [e.type for e in events] == ["charge.succeeded", "payment_intent.succeeded"]
    assert events[1].data_object["id"] == pi.id
    assert events[1].data_object["status"] == "succeeded"
    assert events == fake.events
    payload, header = deliveries[1]
    with pytest.raises(SignatureVerificationError, match="No signature matches"):
        fake.webhook_event_parse(payload.replace(b"300", b"900"), header)
    with pytest.raises(SignatureVerificationError, match="No signature matches"):
        FakeGateway(webhook_secret="whsec_other").webhook_event_parse(payload, header)
    stale_payload, stale_header = fake.signed_event(events[1], timestamp=int(time.time()) - 301)
    with pytest.raises(SignatureVerificationError, match="tolerance"):
        fake.webhook_event_parse(stale_payload, stale_header)


def test_fake_gateway_reports_a_declined_payment_as_payment_failed() -> None:
    fake = FakeGateway()
    customer_id = fake.customer_create(name="Fake Co", organization_id="2", idempotency_key="c")

    fake.payment_intent_create(
        customer_id=customer_id,
        amount_cents=300,
        currency="usd",
        metadata={},
        idempotency_key="p",
        payment_method="pm_card_chargeDeclined",
        confirm=True,
    )

    assert [e.type for e in fake.events] == ["payment_intent.payment_failed"]
    failed = fake.events[0].data_object
    assert failed["last_payment_error"] == {
        "code": "card_declined",
        "message": "Your card was declined.",
    }
