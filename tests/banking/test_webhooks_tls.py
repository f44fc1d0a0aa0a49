"""Deliveries over real TLS: a receiver on this machine (loopback, allowed in development
only) serves https with a certificate made for the test; the delivery trusts that CA
through WEBHOOKS_CA_BUNDLE, and a receiver it cannot trust gets nothing."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import ssl
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import trustme

from banking.models import WebhookDelivery, WebhookMessage
from banking.services.webhooks import (
    SIGNATURE_HEADER,
    RetryableDelivery,
    webhook_deliver,
    webhook_endpoint_create,
    webhook_event_emit,
)
from banking.tasks import webhook_deliver_task


class TlsReceiver:
    """An https server on 127.0.0.1 answering 200 to every POST; keeps what it was sent."""

    def __init__(self, cert: trustme.LeafCert) -> None:
        self.received: list[tuple[str, bytes, dict[str, str]]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.received.append((self.path, body, dict(self.headers.items())))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(context)
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        # a handshake the client aborts is an SSLError in accept(), which the server
        # drops: the receiver then simply records nothing
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"https://localhost:{self.httpd.server_address[1]}/hook"


@pytest.fixture
def development(settings):
    settings.WEBHOOKS_DEVELOPMENT = True
    return settings


@pytest.fixture
def trusted_ca(settings, tmp_path: Path) -> trustme.CA:
    ca = trustme.CA()
    bundle = tmp_path / "webhook-ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    settings.WEBHOOKS_CA_BUNDLE = str(bundle)
    return ca


@pytest.fixture
def receivers() -> Iterator[list[TlsReceiver]]:
    started: list[TlsReceiver] = []
    yield started
    for receiver in started:
        receiver.httpd.shutdown()
        receiver.httpd.server_close()


def endpoint_with_event(org_id: int, url: str) -> tuple[str, WebhookMessage]:
    created = webhook_endpoint_create(organization_id=org_id, url=url,
                                      events=["job.succeeded"])
    event = webhook_event_emit(organization_id=org_id, type="job.succeeded", key="job:7",
                               data={"object": {"id": 7, "state": "succeeded"}})
    assert event is not None
    return created.secret, WebhookMessage.objects.get(event=event)


def test_a_receiver_with_a_trusted_certificate_gets_one_signed_post(org, development,
                                                                   trusted_ca, receivers):
    receiver = TlsReceiver(trusted_ca.issue_cert("localhost"))
    receivers.append(receiver)
    secret, message = endpoint_with_event(org.pk, receiver.url)
    assert webhook_deliver(message_id=message.pk) is True
    assert webhook_deliver(message_id=message.pk) is True  # delivered already: not sent again
    [(path, body, headers)] = receiver.received
    assert path == "/hook"
    assert headers["Host"] == f"localhost:{receiver.httpd.server_address[1]}"
    assert json.loads(body)["data"] == {"object": {"id": 7, "state": "succeeded"}}
    # the receiver's own check, written from the documented format, not our helper
    match = re.fullmatch(r"t=(\d+),v1=([0-9a-f]{64})", headers[SIGNATURE_HEADER])
    assert match is not None
    at, mac = int(match[1]), match[2]
    assert abs(time.time() - at) < 60
    assert hmac.compare_digest(mac, hmac.new(secret.encode(), f"{at}.".encode() + body,
                                             hashlib.sha256).hexdigest())
    [attempt] = WebhookDelivery.objects.all()
    assert (attempt.status_code, attempt.succeeded, attempt.error) == (200, True, "")
    message.refresh_from_db()
    assert message.delivered_at is not None and message.given_up_at is None


def _one_failed_attempt_left_to_retry(message: WebhookMessage,
                                      receiver: TlsReceiver) -> WebhookDelivery:
    """Nothing reached the receiver, one failed attempt is recorded, and the message is
    neither delivered nor given up: the next retry may claim it."""
    message.refresh_from_db()
    assert (message.delivered_at, message.given_up_at, message.claimed_until) == (None, None,
                                                                                 None)
    [attempt] = WebhookDelivery.objects.all()
    assert (attempt.status_code, attempt.succeeded) == (None, False)
    assert receiver.received == []
    return attempt


@pytest.mark.parametrize("untrusted", ["unknown CA", "another name", "default trust"])
def test_a_receiver_whose_certificate_is_not_trusted_gets_nothing_and_is_retried(
        org, development, trusted_ca, receivers, settings, untrusted):
    if untrusted == "unknown CA":
        cert = trustme.CA().issue_cert("localhost")
    elif untrusted == "another name":  # the name checked is the URL's, not the address's
        cert = trusted_ca.issue_cert("hooks.example.com", "127.0.0.1")
    else:  # without the setting, a private CA is not trusted
        cert = trusted_ca.issue_cert("localhost")
        settings.WEBHOOKS_CA_BUNDLE = None
    receiver = TlsReceiver(cert)
    receivers.append(receiver)
    _secret, message = endpoint_with_event(org.pk, receiver.url)
    with pytest.raises(RetryableDelivery, match="CERTIFICATE_VERIFY_FAILED"):
        webhook_deliver(message_id=message.pk)
    attempt = _one_failed_attempt_left_to_retry(message, receiver)
    assert "CERTIFICATE_VERIFY_FAILED" in attempt.error


@pytest.mark.parametrize("bundle", ["missing", "not a certificate"])
def test_a_ca_bundle_that_cannot_be_read_is_a_failed_attempt_retried(
        org, development, trusted_ca, receivers, settings, tmp_path, bundle):
    receiver = TlsReceiver(trusted_ca.issue_cert("localhost"))
    receivers.append(receiver)
    _secret, message = endpoint_with_event(org.pk, receiver.url)
    broken = tmp_path / "broken.pem"
    if bundle == "not a certificate":
        broken.write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    settings.WEBHOOKS_CA_BUNDLE = str(broken)
    with pytest.raises(RetryableDelivery):
        webhook_deliver(message_id=message.pk)
    attempt = _one_failed_attempt_left_to_retry(message, receiver)
    assert attempt.error


def test_the_task_retries_an_untrusted_receiver_until_it_gives_up(org, development,
                                                                 trusted_ca, receivers,
                                                                 monkeypatch):
    receiver = TlsReceiver(trustme.CA().issue_cert("localhost"))
    receivers.append(receiver)
    _secret, message = endpoint_with_event(org.pk, receiver.url)
    # apply() runs each retry in this process at once, the countdown skipped; a retry it
    # propagated as an exception would end the chain at the first
    monkeypatch.setitem(webhook_deliver_task.app.conf, "task_eager_propagates", False)
    assert webhook_deliver_task.apply(args=[message.pk]).get() is False
    attempts = list(WebhookDelivery.objects.order_by("attempt"))
    assert [a.attempt for a in attempts] == list(range(1, webhook_deliver_task.max_retries + 2))
    assert not any(a.succeeded for a in attempts)
    assert all("CERTIFICATE_VERIFY_FAILED" in a.error for a in attempts)
    message.refresh_from_db()
    assert message.delivered_at is None and message.given_up_at is not None
    assert receiver.received == []
