"""The Stripe-Signature scheme shared by every gateway."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from banking.gateway.interface import SignatureVerificationError
from banking.gateway.signatures import (
    sign_payload,
    verify_signature,
    webhook_event_parse_signed,
)

SECRET = "whsec_test"
PAYLOAD = b'{"id": "evt_1", "type": "payment_intent.succeeded", "created": 1700000000, '
PAYLOAD += b'"livemode": false, "data": {"object": {"id": "pi_1", "amount": 500}}}'
NOW = 1_800_000_000


def test_signature_is_hmac_sha256_of_timestamp_dot_payload() -> None:
    header = sign_payload(PAYLOAD, secret=SECRET, timestamp=NOW)

    expected = hmac.new(SECRET.encode(), f"{NOW}.".encode() + PAYLOAD, hashlib.sha256)
    assert header == f"t={NOW},v1={expected.hexdigest()}"


def test_a_fresh_signature_verifies_and_returns_its_timestamp() -> None:
    header = sign_payload(PAYLOAD, secret=SECRET, timestamp=NOW)

    assert verify_signature(PAYLOAD, header, secret=SECRET, now=NOW + 10) == NOW


def test_any_matching_v1_among_several_is_accepted() -> None:
    good = sign_payload(PAYLOAD, secret=SECRET, timestamp=NOW).split(",")[1]
    header = f"t={NOW},v1={'0' * 64},{good},v0=ignored"

    assert verify_signature(PAYLOAD, header, secret=SECRET, now=NOW) == NOW


def test_a_tampered_payload_is_rejected() -> None:
    header = sign_payload(PAYLOAD, secret=SECRET, timestamp=NOW)

    with pytest.raises(SignatureVerificationError, match="No signature matches"):
        verify_signature(PAYLOAD.replace(b"500", b"900"), header, secret=SECRET, now=NOW)


def test_a_wrong_secret_is_rejected() -> None:
    header = sign_payload(PAYLOAD, secret="whsec_other", timestamp=NOW)

    with pytest.raises(SignatureVerificationError, match="No signature matches"):
        verify_signature(PAYLOAD, header, secret=SECRET, now=NOW)


def test_a_signature_older_than_300_seconds_is_rejected() -> None:
    header = sign_payload(PAYLOAD, secret=SECRET, timestamp=NOW - 301)

    with pytest.raises(SignatureVerificationError, match="tolerance"):
        verify_signature(PAYLOAD, header, secret=SECRET, now=NOW)


def test_a_signature_exactly_300_seconds_old_is_accepted() -> None:
    header = sign_payload(PAYLOAD, secret=SECRET, timestamp=NOW - 300)

    assert verify_signature(PAYLOAD, header, secret=SECRET, now=NOW) == NOW - 300


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("", "No timestamp"),
        ("v1=abc", "No timestamp"),
        ("t=notanumber,v1=abc", "Malformed timestamp"),
        (f"t={NOW}", "No v1 signature"),
        (f"t={NOW},v0=abc", "No v1 signature"),
    ],
)
def test_a_malformed_header_is_rejected(header: str, message: str) -> None:
    with pytest.raises(SignatureVerificationError, match=message):
        verify_signature(PAYLOAD, header, secret=SECRET, now=NOW)


def test_an_empty_secret_never_verifies() -> None:
    header = sign_payload(PAYLOAD, secret="", timestamp=NOW)

    with pytest.raises(SignatureVerificationError, match="No webhook secret"):
        verify_signature(PAYLOAD, header, secret="", now=NOW)


def test_parse_signed_returns_a_plain_event() -> None:
    header = sign_payload(PAYLOAD, secret=SECRET)

    event = webhook_event_parse_signed(PAYLOAD, header, secret=SECRET)

    assert event.id == "evt_1"
    assert event.type == "payment_intent.succeeded"
    assert event.created == 1700000000
    assert event.livemode is False
    assert event.data_object == {"id": "pi_1", "amount": 500}


def test_parse_signed_rejects_a_signed_body_that_is_not_an_event() -> None:
    body = b'{"hello": "world"}'
    header = sign_payload(body, secret=SECRET)

    with pytest.raises(ValueError, match="not an event"):
        webhook_event_parse_signed(body, header, secret=SECRET)
