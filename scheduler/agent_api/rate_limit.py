"""A node's rate limit on the agents' calls: one rate (the `node` throttle rate,
AGENT_RATE_LIMIT, e.g. "600/min") and one place that holds a call to it.

Heartbeats count against it where they are written, so that a beat over the limit costs
one round trip and no more: in the node's row with the synchronous write
(scheduler.services.nodes), in Redis with the write-behind buffer
(scheduler.services.heartbeat_buffer); both read the limit from `beat_limit`. Every other
agent call (lease reads, log chunks, usage reports) counts in DRF's throttle cache, per
node: `node_call_throttled` for the fast path, `NodeRateThrottle` for the DRF views,
which share the same keys."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.base import BaseCache
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

from scheduler.agent_api.answers import Answer, throttled
from scheduler.models import Node
from scheduler.services.node_tokens import BeatLimit

_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def node_rate() -> str:
    return str(settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["node"])  # type: ignore[index]


def beat_limit() -> BeatLimit:
    """The node rate as the heartbeat's writers count it."""
    return _parsed_limit(node_rate())


@functools.lru_cache(maxsize=8)
def _parsed_limit(rate: str) -> BeatLimit:
    count, period = rate.split("/")
    return BeatLimit(beats=int(count), window_s=_PERIODS[period[0]])


class NodeRateThrottle(SimpleRateThrottle):
    """The node rate for the DRF views of agent calls."""

    scope = "node"

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        if isinstance(request.auth, Node):
            return self.cache_format % {"scope": self.scope, "ident": request.auth.pk}
        return None


@functools.cache
def throttle_cache() -> BaseCache:
    """The cache DRF's throttles count in, one per process. Django's own `caches` is kept
    per context, and the ASGI door reads leases in a context copied per request: through
    it, every read would open a new Redis connection."""
    return caches.create_connection("default")


@dataclass(frozen=True)
class _Caller:
    """What NodeRateThrottle reads of a request: the node it authenticated."""

    auth: Node


def node_call_throttled(node_id: int) -> Answer | None:
    """Count one call of the node's against its rate: the 429 when over it, else None."""
    throttle: SimpleRateThrottle = NodeRateThrottle()
    throttle.cache = throttle_cache()
    if throttle.allow_request(_Caller(Node(id=node_id)), None):  # type: ignore[arg-type]
        return None
    wait = throttle.wait()
    return throttled(None if wait is None else math.ceil(wait))
