"""The fast path's URLs, read from the URLconf (scheduler/api/urls.py names them): the
doors answer exactly what the DRF views are mounted at, wherever config/urls.py mounts
them."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from django.urls import resolve, reverse

HEARTBEAT_VIEW = "agent-heartbeat"
LEASE_VIEW = "agent-lease"


@dataclass(frozen=True)
class AgentPaths:
    heartbeat: str
    lease: str
    routes: dict[str, str]  # path -> its route pattern, as the request metrics label it


@functools.cache
def agent_paths() -> AgentPaths:
    heartbeat, lease = reverse(HEARTBEAT_VIEW), reverse(LEASE_VIEW)
    return AgentPaths(heartbeat=heartbeat, lease=lease,
                      routes={p: resolve(p).route for p in (heartbeat, lease)})
