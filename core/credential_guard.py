"""Failed credentials cost whoever sends them, not the database and not other clients.

Two rules for every credential a door looks up (API keys, node tokens):
- a secret the database did not know is remembered as unknown for a short while
  (CREDENTIAL_NEGATIVE_CACHE_S): presenting it again is refused from the cache, with no
  query, so a client retrying a wrong token in a loop costs one query per interval;
- an address that presented CREDENTIAL_FAILURES_PER_WINDOW different unknown secrets in
  one window of CREDENTIAL_FAILURE_WINDOW_S is refused every credential (429, Retry-After)
  until the window ends, so guessing is bounded per address. Different secrets, because
  one agent misconfigured with one old token, retrying, guesses nothing; counting it
  would lock out every node behind the same NAT address.

The lookups call `credential_lookup` around their query; the doors say why a throttled
address is refused: DRF's authentication classes by `credential_check` (a DomainError
rendered as 429), the WSGI and ASGI entry points by `CredentialGuard`/`CredentialGuardASGI`,
which also set the client's address for lookups that run below any request object (the
agents' fast path). The entry points read only what this process has learnt (an address
its lookups found throttled), not the cache: the agents' heartbeats, known tokens all,
pay no extra round trip for it; a throttled address's first request to a process is
refused as an unknown credential is (401, no query), the next ones 429. Secrets are kept
only as a digest. When the cache is unreachable the guard steps aside: authentication is
not made to depend on Redis.
"""

from __future__ import annotations

import contextvars
import functools
import hashlib
import ipaddress
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

import redis
from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.base import BaseCache

from core.errors import DomainError, ErrorCode

logger = logging.getLogger("suanli.credentials")

T = TypeVar("T")

# The address of the request being served, for lookups that have no request object.
client_address_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "credential_client_address", default=None)

# The schemes whose credentials are looked up (banking.api.authentication,
# scheduler.api.authentication): a throttled address is refused only these.
CREDENTIAL_SCHEMES = ("Api-Key", "Node")

_CACHE_ERRORS = (redis.RedisError, OSError)

# Addresses this process found throttled, until when (time.monotonic()); bounded, since
# the addresses are a stranger's choice.
_throttled_here: dict[str, float] = {}
_THROTTLED_HERE_MAX = 10_000


class CredentialsThrottled(DomainError):
    code = ErrorCode.THROTTLED
    status = 429

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"Too many failed credentials from this address; try again in "
                         f"{retry_after_s} s.")
        self.retry_after_s = retry_after_s


@functools.cache
def _cache() -> BaseCache:
    """One connection per process: Django's `caches` is kept per context, and the ASGI
    door runs each request in a context of its own (as scheduler.agent_api.lease explains)."""
    return caches.create_connection("default")


def address_of(raw: str | None) -> str | None:
    """`raw` as a normalized IP address, or None when it is not one."""
    try:
        return str(ipaddress.ip_address(raw or ""))
    except ValueError:
        return None


def _digest(kind: str, secret: str) -> str:
    return hashlib.sha256(f"{kind}\x00{secret}".encode()).hexdigest()[:40]


def _window() -> tuple[int, int]:
    """The current failure window's number and the seconds left in it."""
    length = settings.CREDENTIAL_FAILURE_WINDOW_S
    now = int(time.time())
    return now // length, length - now % length


def _failures_key(address: str, window: int) -> str:
    return f"cred:fail:{address}:{window}"


def _remember_throttled(address: str, left: int) -> None:
    now = time.monotonic()
    if len(_throttled_here) >= _THROTTLED_HERE_MAX:
        for stale in [a for a, until in _throttled_here.items() if until <= now]:
            del _throttled_here[stale]
        if len(_throttled_here) >= _THROTTLED_HERE_MAX:
            _throttled_here.clear()
    _throttled_here[address] = now + left


def credential_guard_forget() -> None:
    """Forget the addresses this process found throttled (the cache keeps its own)."""
    _throttled_here.clear()


def throttled_here(address: str | None) -> int | None:
    """Seconds `address` must still wait, as far as this process knows (no I/O)."""
    if address is None:
        return None
    until = _throttled_here.get(address)
    if until is None:
        return None
    left = until - time.monotonic()
    if left <= 0:
        _throttled_here.pop(address, None)
        return None
    return max(1, round(left))


def _over_limit(address: str, failures: Any, left: int) -> bool:
    if (failures or 0) < settings.CREDENTIAL_FAILURES_PER_WINDOW:
        return False
    _remember_throttled(address, left)
    return True


def credential_wait(address: str | None) -> int | None:
    """Seconds until `address` may present credentials again, or None if it may now."""
    if address is None:
        return None
    window, left = _window()
    try:
        failures = _cache().get(_failures_key(address, window))
    except _CACHE_ERRORS:
        logger.warning("credential guard: cache unavailable", exc_info=True)
        return None
    return left if _over_limit(address, failures, left) else None


def credential_check(address: str | None) -> None:
    """Raise CredentialsThrottled when `address` may not present credentials now."""
    wait = credential_wait(address)
    if wait is not None:
        raise CredentialsThrottled(wait)


def credential_lookup(kind: str, secret: str, lookup: Callable[[], T | None], *,
                      address: str | None = None, refuse_throttled: bool = False) -> T | None:
    """What `lookup` finds for `secret` (None: unknown), unless the secret is known to be
    unknown (no query) or `address` (default: the request's) is throttled (no query; with
    `refuse_throttled`, CredentialsThrottled, read in the same cache round trip as the
    secret instead of a credential_check of its own)."""
    address = address or client_address_var.get()
    window, left = _window()
    unknown_key = f"cred:unknown:{kind}:{_digest(kind, secret)}"
    keys = [unknown_key] + ([_failures_key(address, window)] if address else [])
    try:
        known = _cache().get_many(keys)
    except _CACHE_ERRORS:
        logger.warning("credential guard: cache unavailable", exc_info=True)
        return lookup()
    if address and _over_limit(address, known.get(keys[-1]), left):
        if refuse_throttled:
            raise CredentialsThrottled(left)
        return None
    if unknown_key in known:
        return None
    found = lookup()
    if found is None:
        _failed(unknown_key, address, window)
    return found


def _failed(unknown_key: str, address: str | None, window: int) -> None:
    cache = _cache()
    try:
        cache.set(unknown_key, 1, timeout=settings.CREDENTIAL_NEGATIVE_CACHE_S)
        if address is None:
            return
        # Once per secret and address in a window: see the module's docstring.
        if cache.add(f"cred:seen:{address}:{window}:{unknown_key[-40:]}", 1,
                     timeout=settings.CREDENTIAL_FAILURE_WINDOW_S):
            key = _failures_key(address, window)
            cache.add(key, 0, timeout=settings.CREDENTIAL_FAILURE_WINDOW_S)
            cache.incr(key)
    except (*_CACHE_ERRORS, ValueError):  # ValueError: the count expired in between
        logger.warning("credential guard: failure not counted", exc_info=True)


def _throttled_body(wait: int) -> bytes:
    # The API's one error shape (core.api_errors renders the same for DRF's doors).
    return json.dumps({"error": {
        "code": str(ErrorCode.THROTTLED), "fields": {},
        "message": str(CredentialsThrottled(wait).message)}}).encode()


def _presents_credentials(authorization: str) -> bool:
    return authorization.partition(" ")[0] in CREDENTIAL_SCHEMES


StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class CredentialGuard:
    """WSGI middleware, outermost: the request's address for the lookups below, and a
    throttled address's credentials refused before any door looks them up."""

    def __init__(self, app: WSGIApp) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        address = address_of(environ.get("REMOTE_ADDR"))
        if _presents_credentials(environ.get("HTTP_AUTHORIZATION", "")):
            wait = throttled_here(address)
            if wait is not None:
                body = _throttled_body(wait)
                start_response("429 Too Many Requests", [
                    ("Content-Type", "application/json"), ("Content-Length", str(len(body))),
                    ("Retry-After", str(wait))])
                return [body]
        reset = client_address_var.set(address)
        try:
            return self.app(environ, start_response)
        finally:
            client_address_var.reset(reset)


ASGIApp = Callable[[dict[str, Any], Callable[[], Awaitable[dict[str, Any]]],
                    Callable[[dict[str, Any]], Awaitable[None]]], Awaitable[None]]


class CredentialGuardASGI:
    """The same for ASGI (config.asgi)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client = scope.get("client") or (None, None)
        address = address_of(client[0])
        authorization = next((v.decode("latin-1") for k, v in scope.get("headers", [])
                              if k.lower() == b"authorization"), "")
        if _presents_credentials(authorization):
            wait = throttled_here(address)
            if wait is not None:
                body = _throttled_body(wait)
                await send({"type": "http.response.start", "status": 429, "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"retry-after", str(wait).encode())]})
                await send({"type": "http.response.body", "body": body})
                return
        reset = client_address_var.set(address)
        try:
            await self.app(scope, receive, send)
        finally:
            client_address_var.reset(reset)
