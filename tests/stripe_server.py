"""Run localstripe (a fake Stripe server) for tests.

``localstripe_server()`` starts ``python -m localstripe --from-scratch --port <free>`` as
a child process, waits until it answers, yields its base URL and kills it afterwards.
The ``localstripe_url`` fixture (session scope) wraps it, and ``localstripe`` points
the payment gateway at it for one test; the repo-wide conftest registers this module as
a plugin.

localstripe quirks worth knowing: it keeps all state in memory and rewrites
``/tmp/localstripe.pickle`` after every write (``--from-scratch`` only skips *loading*
it); webhooks registered through ``/_config/webhooks/<id>`` are process-wide and are
sent about one second after the event; any ``sk_...`` key is accepted.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest

LOCALSTRIPE_SECRET_KEY = "sk_test_suanli_localstripe"
_STARTUP_TIMEOUT_SECONDS = 20.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers(base_url: str) -> bool:
    request = urllib.request.Request(
        f"{base_url}/v1/customers?limit=1",
        headers={"Authorization": f"Bearer {LOCALSTRIPE_SECRET_KEY}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=1) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


@contextmanager
def localstripe_server() -> Iterator[str]:
    """Start a fresh localstripe process; yield ``http://127.0.0.1:<port>``."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in finally
    process = subprocess.Popen(
        [sys.executable, "-m", "localstripe", "--from-scratch", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        deadline = time.monotonic() + _STARTUP_TIMEOUT_SECONDS
        while not _answers(base_url):
            if process.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                output = log.read().decode("utf-8", "replace")
                raise RuntimeError(f"localstripe did not start on port {port}:\n{output}")
            time.sleep(0.05)
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _post(url: str, data: bytes, content_type: str, secret_key: str | None) -> dict[str, Any]:
    headers = {"Content-Type": content_type}
    if secret_key:
        headers["Authorization"] = f"Bearer {secret_key}"
    request = urllib.request.Request(url, data=data, headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=5) as response:
        body = response.read()
    return dict(json.loads(body)) if body else {}


def register_webhook(
    base_url: str, *, webhook_id: str, url: str, secret: str, events: list[str] | None = None
) -> None:
    """Make localstripe POST every event (or only ``events``) to ``url``, signed with
    ``secret``. Registrations are process-wide and last until localstripe stops."""
    body: dict[str, Any] = {"url": url, "secret": secret}
    if events is not None:
        body["events"] = events
    _post(
        f"{base_url}/_config/webhooks/{urllib.parse.quote(webhook_id)}",
        json.dumps(body).encode("utf-8"),
        "application/json",
        None,
    )


def create_card_payment_method(
    base_url: str, card_number: str, *, secret_key: str = LOCALSTRIPE_SECRET_KEY
) -> str:
    """Create a card PaymentMethod from raw test card details (what Stripe.js does in a
    browser); return its ``pm_...`` id. localstripe wants exactly number, exp_month,
    exp_year and cvc."""
    form = urllib.parse.urlencode(
        {
            "type": "card",
            "card[number]": card_number,
            "card[exp_month]": "12",
            "card[exp_year]": "2034",
            "card[cvc]": "123",
        }
    ).encode("ascii")
    created = _post(
        f"{base_url}/v1/payment_methods", form, "application/x-www-form-urlencoded", secret_key
    )
    return str(created["id"])


LOCALSTRIPE_PUBLISHABLE_KEY = "pk_test_suanli_localstripe"


def create_card_token(base_url: str, card_number: str) -> str:
    """What Stripe.js does with a card Element in the buyer's browser: trade the card
    details, authenticated by the publishable key alone, for a one-use ``tok_...``."""
    form = urllib.parse.urlencode(
        {
            "card[number]": card_number,
            "card[exp_month]": "12",
            "card[exp_year]": "2034",
            "card[cvc]": "123",
            "key": LOCALSTRIPE_PUBLISHABLE_KEY,
        }
    ).encode("ascii")
    created = _post(f"{base_url}/v1/tokens", form, "application/x-www-form-urlencoded", None)
    return str(created["id"])


def authenticate_payment(base_url: str, payment_intent_id: str, client_secret: str) -> None:
    """What Stripe.js does when the buyer passes the issuer's 3-D Secure check."""
    _post(
        f"{base_url}/v1/payment_intents/{payment_intent_id}/_authenticate?success=true",
        json.dumps({"key": LOCALSTRIPE_PUBLISHABLE_KEY, "client_secret": client_secret}).encode(),
        "application/json",
        None,
    )


@pytest.fixture(scope="session")
def localstripe_url() -> Iterator[str]:
    """Base URL of a localstripe process shared by the whole test session."""
    with localstripe_server() as base_url:
        yield base_url


@dataclass(frozen=True)
class LocalStripe:
    url: str
    webhook_secret: str
    publishable_key: str = LOCALSTRIPE_PUBLISHABLE_KEY

    @property
    def stripe_js_url(self) -> str:
        """localstripe's stand-in for Stripe.js, for pages opened in a test browser."""
        return f"{self.url}/js.stripe.com/v3/"


@pytest.fixture
def localstripe(localstripe_url: str, settings: Any) -> Iterator[LocalStripe]:
    """get_gateway() is a StripeGateway on localstripe, chosen by settings as in prod."""
    from banking.gateway import reset_gateway

    secret = f"whsec_{uuid.uuid4().hex}"
    settings.STRIPE_SECRET_KEY = LOCALSTRIPE_SECRET_KEY
    settings.STRIPE_API_BASE = localstripe_url
    settings.STRIPE_WEBHOOK_SECRET = secret
    reset_gateway()
    try:
        yield LocalStripe(url=localstripe_url, webhook_secret=secret)
    finally:
        reset_gateway()
