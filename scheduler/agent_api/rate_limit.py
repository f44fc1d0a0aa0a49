"""A node's rate limit at the agents' doors. The counting (one rule, one rate, a
strategy per backend) is scheduler.services.node_rate's; here it is answered: the fast
paths' 429 (`node_call_throttled`), and `NodeRateThrottle` for the DRF views, so that
every door refuses a node over its rate with the same `throttled` and Retry-After."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from scheduler.agent_api.answers import Answer, throttled, unauthenticated
from scheduler.models import Node
from scheduler.services.node_rate import node_call_count, node_limit
from scheduler.services.node_tokens import BeatLimit, NodeToken, node_token_lookup
from scheduler.services.nodes import node_id_by_token

T = TypeVar("T")


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
    return node_call_found(authorization, node_id_by_token, lambda node_id: node_id)


def node_call_found(authorization: str, find: Callable[[NodeToken], T | None],
                    node_of: Callable[[T], int]) -> T | Answer:
    """node_call_admitted with what `find` reads for the token (None: no node not disabled
    has it) in place of the node's id: a door that needs more of the node's rows than its
    id reads them in the token's own statement. Behind the credential guard as any token."""
    scheme, _, raw = authorization.partition(" ")
    if scheme != "Node":
        return unauthenticated("Authentication credentials were not provided.")
    token = NodeToken.parse(raw)
    found = node_token_lookup(token, lambda: find(token)) if token is not None else None
    if found is None:
        return unauthenticated("Invalid node token.")
    over_rate = node_call_throttled(node_of(found))
    return found if over_rate is None else over_rate
