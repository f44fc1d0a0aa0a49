"""Outbound webhooks: endpoints an organization registers, events emitted inside the
transaction that made them true, and deliveries signed as Stripe signs its own
(`Suanli-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">`).

A URL is checked when it is registered and again at each delivery, where it counts: it
must be https (http only to loopback in development), and in production no address it
resolves to may be private, loopback, link-local or otherwise not public. The delivery
connects to the address it checked (the TLS name stays the URL's host), so a name that
resolves differently a moment later is not followed.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import secrets
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from banking import enqueue
from banking.error_codes import WebhookErrorCode
from banking.models import (
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
    WebhookEventType,
    WebhookMessage,
)
from core.errors import DomainError, InvalidInput, NotFound

SIGNATURE_HEADER = "Suanli-Signature"
CLAIM_S = 60
MAX_ENDPOINTS = 20


class WebhookUrlRefused(DomainError):
    code: str = WebhookErrorCode.WEBHOOK_URL_REFUSED
    status = 400


class RetryableDelivery(Exception):
    """The endpoint did not take the event this time; the task tries again later."""


def signature_header(secret: str, body: bytes, at: int) -> str:
    mac = hmac.new(secret.encode(), f"{at}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={at},v1={mac}"


def signature_verify(secret: str, body: bytes, header: str, *, tolerance_s: int = 300,
                     now: float | None = None) -> bool:
    """What a receiver does (and the tests): the signature matches and is recent."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        at = int(parts["t"])
    except (KeyError, ValueError):
        return False
    expected = signature_header(secret, body, at).split("v1=", 1)[1]
    fresh = abs((now if now is not None else time.time()) - at) <= tolerance_s
    return fresh and hmac.compare_digest(expected, parts.get("v1", ""))


def _development() -> bool:
    return bool(settings.WEBHOOKS_DEVELOPMENT)


def _tls_trust() -> ssl.SSLContext | bool:
    bundle = settings.WEBHOOKS_CA_BUNDLE
    return ssl.create_default_context(cafile=bundle) if bundle else True


Resolver = Callable[[str, int], list[str]]


def _resolve(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


def url_check(url: str, *, resolve: Resolver = _resolve) -> tuple[str, str]:
    """The URL's host and the address to connect to, or WebhookUrlRefused."""
    if not isinstance(url, str) or len(url) > 500 or "\x00" in url:
        raise WebhookUrlRefused("A webhook URL is at most 500 characters.")
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme not in ("https", "http") or not host or parts.username or parts.password:
        raise WebhookUrlRefused("A webhook URL is https://host/path (no credentials in it).")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as error:
        raise WebhookUrlRefused("The URL's port is not valid.") from error
    try:
        addresses = resolve(host, port)
    except (OSError, UnicodeError) as error:
        raise WebhookUrlRefused(f"{host} does not resolve.") from error
    if not addresses:
        raise WebhookUrlRefused(f"{host} does not resolve.")
    ips = [ipaddress.ip_address(a.split("%", 1)[0]) for a in addresses]
    loopback = all(ip.is_loopback for ip in ips)
    if parts.scheme == "http" and not (_development() and loopback):
        raise WebhookUrlRefused("Webhook URLs must be https (http only to this machine in "
                                "development).")
    if not _development():
        for ip in ips:
            if not ip.is_global or ip.is_multicast:
                raise WebhookUrlRefused(f"{host} resolves to {ip}, which is not a public "
                                        "address.")
    return host, addresses[0]


@dataclass(frozen=True)
class CreatedEndpoint:
    endpoint: WebhookEndpoint
    secret: str


def _events(raw: Any) -> list[str]:
    valid = set(WebhookEventType.values)
    if (not isinstance(raw, list) or not raw or len(raw) > len(valid)
            or not all(isinstance(e, str) for e in raw)):
        raise InvalidInput("events is a list of event types.",
                           fields={"events": [f"Some of: {', '.join(sorted(valid))}."]})
    unknown = sorted(set(raw) - valid)
    if unknown:
        raise InvalidInput(f"Unknown event types: {', '.join(unknown)[:200]}.",
                           code=WebhookErrorCode.WEBHOOK_EVENT_UNKNOWN,
                           fields={"events": [f"Some of: {', '.join(sorted(valid))}."]})
    return sorted(set(raw))


def webhook_endpoint_create(*, organization_id: int, url: str, events: Any,
                            resolve: Resolver = _resolve) -> CreatedEndpoint:
    chosen = _events(events)
    url_check(url, resolve=resolve)
    with transaction.atomic():
        count = WebhookEndpoint.objects.filter(organization_id=organization_id,
                                               is_active=True).count()
        if count >= MAX_ENDPOINTS:
            raise InvalidInput(f"At most {MAX_ENDPOINTS} webhook endpoints.",
                               code=WebhookErrorCode.WEBHOOK_LIMIT)
        secret = f"whsec_{secrets.token_urlsafe(24)}"
        endpoint = WebhookEndpoint.objects.create(organization_id=organization_id, url=url,
                                                  events=chosen, secret=secret)
    return CreatedEndpoint(endpoint=endpoint, secret=secret)


def webhook_endpoint_delete(*, organization_id: int, endpoint_id: int) -> None:
    if not WebhookEndpoint.objects.filter(pk=endpoint_id, organization_id=organization_id,
                                          is_active=True).update(is_active=False):
        raise NotFound("No such webhook endpoint.")


def webhook_event_emit(*, organization_id: int, type: str, key: str,
                       data: dict[str, Any]) -> WebhookEvent | None:
    """Record that `type` happened (once per `key`) and deliver it to every endpoint that
    asked for it, after the caller's transaction commits."""
    endpoints = list(WebhookEndpoint.objects.filter(organization_id=organization_id,
                                                    is_active=True)
                     .values_list("id", "events"))
    wanted = [pk for pk, events in endpoints if type in events]
    if not wanted:
        return None
    with transaction.atomic():
        event, created = WebhookEvent.objects.get_or_create(
            key=key, defaults={"organization_id": organization_id, "type": type,
                               "payload": {"type": type, "data": data}})
        if not created:
            return event
        event.payload = {"id": f"evt_{event.pk}", **event.payload,
                         "created": int(event.created_at.timestamp())}
        event.save(update_fields=["payload"])
        messages = WebhookMessage.objects.bulk_create(
            [WebhookMessage(endpoint_id=pk, event=event) for pk in wanted])
        ids = [m.pk for m in messages]
        for pk in ids:
            enqueue.webhook_deliver(pk)
    return event


def _claim(message_id: int) -> WebhookMessage | None:
    now = timezone.now()
    claimed = WebhookMessage.objects.filter(
        Q(claimed_until__isnull=True) | Q(claimed_until__lt=now), pk=message_id,
        delivered_at__isnull=True, given_up_at__isnull=True,
    ).update(claimed_until=now + timedelta(seconds=CLAIM_S), attempts=F("attempts") + 1)
    if not claimed:
        return None
    return WebhookMessage.objects.select_related("endpoint", "event").get(pk=message_id)


def webhook_deliver(*, message_id: int, final: bool = False,
                    resolve: Resolver = _resolve) -> bool:
    """One attempt. True once delivered (now or before); RetryableDelivery when the
    endpoint should be tried again; False when it never will be."""
    message = _claim(message_id)
    if message is None:
        return WebhookMessage.objects.filter(pk=message_id, delivered_at__isnull=False).exists()
    endpoint = message.endpoint
    body = json.dumps(message.event.payload, separators=(",", ":")).encode()
    started = time.monotonic()
    status: int | None = None
    error = ""
    retry = True
    try:
        if not endpoint.is_active:
            raise WebhookUrlRefused("The endpoint was deleted.")
        host, address = url_check(endpoint.url, resolve=resolve)
        parts = urlsplit(endpoint.url)
        literal = f"[{address}]" if ":" in address else address
        netloc = literal + (f":{parts.port}" if parts.port else "")
        pinned = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
        headers = {"Content-Type": "application/json", "Host": parts.netloc,
                   "User-Agent": "Suanli-Webhooks/1",
                   SIGNATURE_HEADER: signature_header(endpoint.secret, body, int(time.time()))}
        with httpx.Client(timeout=settings.WEBHOOKS_TIMEOUT_S, follow_redirects=False,
                          verify=_tls_trust()) as http:
            response = http.post(pinned, content=body, headers=headers,
                                 extensions={"sni_hostname": host})
        status = response.status_code
        if not 200 <= status < 300:
            error = f"HTTP {status}"
    except WebhookUrlRefused as refused:
        error, retry = refused.message, False
    except (httpx.HTTPError, OSError) as failure:
        # OSError: also a CA bundle that cannot be read (ssl.SSLError is one), which is
        # the operator's to mend: the attempt is recorded and retried like any other.
        error = f"{type(failure).__name__}: {failure}"[:500]
    ok = not error
    now = timezone.now()
    WebhookDelivery.objects.create(message=message, attempt=message.attempts, status_code=status,
                                   succeeded=ok, error=error[:500],
                                   duration_ms=int((time.monotonic() - started) * 1000))
    if ok:
        WebhookMessage.objects.filter(pk=message.pk).update(delivered_at=now, claimed_until=None)
        return True
    if final or not retry:
        WebhookMessage.objects.filter(pk=message.pk).update(given_up_at=now, claimed_until=None)
        return False
    WebhookMessage.objects.filter(pk=message.pk).update(claimed_until=None)
    raise RetryableDelivery(error)
