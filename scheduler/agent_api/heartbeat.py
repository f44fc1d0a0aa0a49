"""The agent's heartbeat: the API's hottest path (every node, every few seconds).

One function answers it, `heartbeat_answer` (and `heartbeat_answer_async`, the same steps
with the Redis call awaited), behind two doors that behave the same: the DRF view
(`AgentHeartbeatApi`: the API docs, Django's test client, the site's WSGI server), and the
middleware in front of Django on the agents' server (scheduler.agent_api.doors, around
config.asgi, gunicorn with uvicorn workers), which serves `POST agent/heartbeat/` without
Django's middleware, URL resolution and DRF's request cycle. Both validate the body with
scheduler.agent_api.bodies before anything is written or buffered. That cycle costs
several times the heartbeat's own work (one Redis call with write-behind, see
scheduler.services.heartbeat_buffer; else one SQL statement, which also counts the beat
against the node's rate limit; bench.agent_api, docs/performance.md), and a fleet of
10,000 nodes must not need a rack of web servers to say it is alive.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import redis
from django.conf import settings
from django.utils import timezone

from scheduler import enqueue
from scheduler.agent_api.answers import Answer, throttled, unauthenticated
from scheduler.agent_api.bodies import heartbeat_values
from scheduler.agent_api.database_threads import on_a_database_thread
from scheduler.agent_api.rate_limit import beat_limit
from scheduler.services.heartbeat_buffer import (
    beat_buffer_enabled,
    beat_buffer_record,
    beat_buffer_record_async,
    beat_buffer_remember,
)
from scheduler.services.heartbeat_write import node_heartbeat
from scheduler.services.inventory import node_inventory_record
from scheduler.services.node_isolation import node_isolation_record
from scheduler.services.node_tokens import BeatLimit, NodeToken

logger = logging.getLogger("suanli.request")


@dataclass(frozen=True)
class BeatRequest:
    """A heartbeat that passed every check made without I/O."""

    token: NodeToken
    values: dict[str, Any]
    limit: BeatLimit


def heartbeat_read(authorization: str, body: bytes) -> Answer | BeatRequest:
    """The Authorization header's token and the body's values, or the refusal of either."""
    scheme, _, raw = authorization.partition(" ")
    if scheme != "Node" or not raw:
        return unauthenticated("Authentication credentials were not provided."
                                if not authorization else "Invalid node token.")
    token = NodeToken.parse(raw)
    if token is None:
        return unauthenticated("Invalid node token.")
    values = heartbeat_values(body)
    if isinstance(values, Answer):
        return values
    return BeatRequest(token, values, beat_limit())


def heartbeat_answer(authorization: str, body: bytes) -> Answer:
    read = heartbeat_read(authorization, body)
    if isinstance(read, Answer):
        return read
    write_behind = beat_buffer_enabled()
    if write_behind and "isolation" not in read.values:
        try:
            buffered = beat_buffer_record(read.token, limit=read.limit, **_beat_values(read))
        except redis.RedisError:  # Redis down: the beat still counts, the synchronous way
            logger.warning("heartbeat buffer unavailable", exc_info=True)
            write_behind, buffered = False, None
        if buffered is not None:
            return _accepted(buffered.status, buffered.retry_after_s, buffered.lease_due)
    return heartbeat_settle(read, write_behind=write_behind)


async def heartbeat_answer_async(authorization: str, body: bytes) -> Answer:
    """heartbeat_answer for the ASGI door: the Redis call awaited, the synchronous way
    (PostgreSQL) in a thread."""
    read = heartbeat_read(authorization, body)
    if isinstance(read, Answer):
        return read
    write_behind = beat_buffer_enabled()
    if write_behind and "isolation" not in read.values:
        try:
            buffered = await beat_buffer_record_async(read.token, limit=read.limit,
                                                      **_beat_values(read))
        except redis.RedisError:
            logger.warning("heartbeat buffer unavailable", exc_info=True)
            write_behind, buffered = False, None
        if buffered is not None:
            return _accepted(buffered.status, buffered.retry_after_s, buffered.lease_due)
    return await on_a_database_thread(heartbeat_settle, read, write_behind=write_behind)


def _beat_values(read: BeatRequest) -> dict[str, Any]:
    d = read.values
    return {"free_gpus": d["free_gpus"], "busy_gpus": d["busy_gpus"],
            "utilization": d["utilization"], "agent_version": d["agent_version"]}


def heartbeat_settle(read: BeatRequest, *, write_behind: bool) -> Answer:
    """The synchronous heartbeat: no write-behind, or a token Redis does not know yet (this
    proves it)."""
    result = node_heartbeat(token=read.token, limit=read.limit, **_beat_values(read))
    if result is None:
        return unauthenticated("Invalid node token.")
    if "isolation" in read.values and not result.retry_after_s:
        node_isolation_record(node_id=result.node_id, isolation=read.values["isolation"])
    if read.values.get("gpus") and not result.retry_after_s:
        node_inventory_record(node_id=result.node_id, gpus=read.values["gpus"])
    if write_behind and not result.retry_after_s:
        beat_buffer_remember(read.token, node_id=result.node_id, status=result.status)
    if result.freed_capacity:
        enqueue.placement_run()
    return _accepted(result.status, result.retry_after_s)


def _accepted(status: str, retry_after_s: int, lease_due: bool = True) -> Answer:
    """A beat answered from PostgreSQL always says the lease is due: only Redis keeps
    lease hints (scheduler.services.lease_hints)."""
    if retry_after_s:
        return throttled(retry_after_s)
    server_time = timezone.now().isoformat().replace("+00:00", "Z")
    return Answer(200, {"status": status,
                        "next_heartbeat_s": settings.SCHEDULER_HEARTBEAT_INTERVAL_S,
                        "lease_due": lease_due, "server_time": server_time})
