"""The agent's lease read: what its node must run and stop. One function answers it,
`lease_answer`, behind the same three doors as the heartbeat (the DRF view, and the
middlewares of scheduler.api.agent_doors): after a placement every node that got work
reads its lease within a beat, and a large fleet must not need Django's request cycle
for each (on the agents' server that cycle ran leases at ~250 a second on two cores)."""

import functools
import math
from dataclasses import dataclass

from django.core.cache import caches
from django.core.cache.backends.base import BaseCache
from rest_framework.throttling import SimpleRateThrottle

from scheduler.api.agent_answers import Answer, throttled, unauthenticated
from scheduler.api.authentication import NodeRateThrottle
from scheduler.api.serializers import LeaseAssignmentSerializer
from scheduler.models import Node
from scheduler.services.agent import node_lease
from scheduler.services.nodes import node_id_authenticate

PATH = "/api/v1/agent/lease/"
# LeaseOutputSerializer's field for the time, bound once: the rest of a lease is plain
# JSON already.
_EXPIRES = LeaseAssignmentSerializer().fields["lease_expires_at"]


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


def lease_answer(authorization: str) -> Answer:
    """As DRF would answer it with NodeTokenAuthentication, IsNode and NodeRateThrottle
    (the calls' shared rate per node): 401 without a valid token of a node not disabled,
    429 over the rate, else the lease."""
    scheme, _, raw = authorization.partition(" ")
    if scheme != "Node":
        return unauthenticated("Authentication credentials were not provided.")
    node_id = node_id_authenticate(raw)
    if node_id is None:
        return unauthenticated("Invalid node token.")
    throttle: SimpleRateThrottle = NodeRateThrottle()
    throttle.cache = throttle_cache()
    if not throttle.allow_request(_Caller(Node(id=node_id)), None):  # type: ignore[arg-type]
        wait = throttle.wait()
        return throttled(None if wait is None else math.ceil(wait))
    lease = node_lease(node_id=node_id)
    return Answer(200, {
        "assignments": [
            {"id": r.id, "job_id": r.job_id, "gpu_count": r.gpu_count, "spec": r.spec,
             "max_duration_s": r.max_duration_s,
             "lease_expires_at": _EXPIRES.to_representation(r.lease_expires_at)}
            for r in lease.runs
        ],
        "kill": lease.kill,
    })
