"""A node's rate limit at the agents' doors. The counting (one rule, one rate, a
strategy per backend) is scheduler.services.node_rate's; here it is answered: the fast
paths' 429 (`node_call_throttled`), and `NodeRateThrottle` for the DRF views, so that
every door refuses a node over its rate with the same `throttled` and Retry-After."""

from __future__ import annotations

import time
from typing import Any

from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from scheduler.agent_api.answers import Answer, throttled, unauthenticated
from scheduler.models import Node
from scheduler.services.node_rate import node_call_count, node_limit
from scheduler.services.node_tokens import BeatLimit
from scheduler.services.nodes import node_id_authenticate


def beat_limit() -> BeatLimit:
    """The node rate as the heartbeat's writers count it."""
    return node_limit()


def node_call_throttled(node_id: int) -> Answer | None:
    """Count one call of the node's against its rate: the 429 when over it, else None."""
    wait = node_call_count(node_id, epoch_s=int(time.time()))
    return throttled(wait) if wait else None


class NodeRateThrottle(BaseThrottle):
    """The node rate for the DRF views of agent calls: the same count as the fast paths'."""

    def __init__(self) -> None:
        self._wait = 0

    def allow_request(self, request: Request, view: Any) -> bool:
        if not isinstance(request.auth, Node):
            return True
        self._wait = node_call_count(request.auth.pk, epoch_s=int(time.time()))
        return self._wait == 0

    def wait(self) -> float | None:
        return self._wait or None


def node_call_admitted(authorization: str) -> int | Answer:
    """The node a call's `Node <token>` header names, counted against its rate: its id,
    or the refusal DRF's NodeTokenAuthentication, IsNode and NodeRateThrottle would give
    (401 without a valid token of a node not disabled, 429 over the rate)."""
    scheme, _, raw = authorization.partition(" ")
    if scheme != "Node":
        return unauthenticated("Authentication credentials were not provided.")
    node_id = node_id_authenticate(raw)
    if node_id is None:
        return unauthenticated("Invalid node token.")
    over_rate = node_call_throttled(node_id)
    return node_id if over_rate is None else over_rate
