"""Timings of one agent, shared by its node loop and its runs."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AgentConfig:
    """How often the agent talks to the server and how patiently it waits.

    ``heartbeat_s`` is only the interval used until the server answers a heartbeat with
    its own ``next_heartbeat_s``. The lease is read when a heartbeat's answer says it
    changed (``lease_due``), and at least every ``lease_at_least_s`` whatever it says.
    Besides, unless ``lease_wait_s`` is 0, the agent holds a lease wait open on the server
    (``POST agent/lease/?wait=S``) that is answered as soon as the lease changes, so work
    starts without waiting for the next beat; the beats are the fallback when the server
    holds no waits.
    """

    heartbeat_s: float = 5.0
    lease_at_least_s: float = 60.0
    lease_wait_s: int = 30
    # How long to leave the push alone after a server said it holds no waits.
    lease_push_retry_s: float = 60.0
    usage_interval_s: float = 2.0
    kill_grace_s: float = 10.0
    backoff_base_s: float = 1.0
    backoff_cap_s: float = 30.0
    http_timeout_s: float = 10.0


LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


def plain_http_refusal(server: str, *, insecure_http: bool) -> str | None:
    """Why the agent will not talk to `server`, or None. The node token travels in every
    request: over plain http it is readable by anyone on the path, so only a server on
    this machine (the embedded demo, tests) is spoken to in clear unless the operator
    says so with --insecure-http."""
    from urllib.parse import urlsplit

    parts = urlsplit(server)
    if parts.scheme == "https":
        return None
    if parts.scheme != "http":
        return f"--server must be an https:// URL, not {server!r}"
    if insecure_http or (parts.hostname or "") in LOOPBACK_HOSTS:
        return None
    return (
        f"refusing plain http:// to {parts.hostname}: the node token would travel in clear; "
        "use https:// (or --insecure-http on a network you trust)"
    )
