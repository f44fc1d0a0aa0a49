"""The agent's heartbeat: the API's hottest path (every node, every few seconds).

One function answers it, `heartbeat_answer` (and `heartbeat_answer_async`, the same steps
with the Redis call awaited), behind three doors that behave the same: the DRF view
(`AgentHeartbeatApi`: the API docs and Django's test client), and two middlewares in
front of Django (scheduler.api.agent_doors) that serve `POST /api/v1/agent/heartbeat/`
without Django's middleware, URL resolution and DRF's request cycle: for WSGI
(config.wsgi, what gunicorn's sync workers and `runserver` serve) and for ASGI
(config.asgi, the agents' server, gunicorn with uvicorn workers). That cycle costs
several times the heartbeat's own work (one Redis call with write-behind, see
scheduler.services.heartbeat_buffer; else one SQL statement, which also counts the beat
against the node's rate limit; bench.agent_api, docs/performance.md), and a fleet of
10,000 nodes must not need a rack of web servers to say it is alive.
"""

from __future__ import annotations

import functools
import json
import logging
from dataclasses import dataclass
from typing import Any

import redis
from django.conf import settings
from django.utils import timezone
from rest_framework.exceptions import ValidationError
from rest_framework.fields import SkipField, empty

from core.api_errors import error_body, validation_error_body
from core.errors import ErrorCode
from scheduler import enqueue
from scheduler.api.agent_answers import Answer, throttled, unauthenticated
from scheduler.api.database_threads import on_a_database_thread
from scheduler.api.serializers import HeartbeatInputSerializer
from scheduler.services.heartbeat_buffer import (
    beat_buffer_enabled,
    beat_buffer_record,
    beat_buffer_record_async,
    beat_buffer_remember,
)
from scheduler.services.inventory import node_inventory_record
from scheduler.services.node_isolation import node_isolation_record
from scheduler.services.nodes import BeatLimit, NodeToken, node_heartbeat

logger = logging.getLogger("suanli.request")

PATH = "/api/v1/agent/heartbeat/"
_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _beat_limit() -> BeatLimit:
    """From the agent API's `node` throttle rate, e.g. "600/min"."""
    return _parsed_limit(str(settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["node"]))  # type: ignore[index]


@functools.lru_cache(maxsize=8)
def _parsed_limit(rate: str) -> BeatLimit:
    count, period = rate.split("/")
    return BeatLimit(beats=int(count), window_s=_PERIODS[period[0]])


# The serializer's own fields, bound once: validating with them is the serializer's
# validation without building a serializer (and deep-copying its fields) per request.
_FIELDS = HeartbeatInputSerializer().fields


def _validated(data: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(values, errors) as HeartbeatInputSerializer(data=data) would give them."""
    plain = _plainly_valid(data)
    if plain is not None:
        return plain, {}
    if data is None:
        return {}, {"non_field_errors": ["No data provided"]}
    if not isinstance(data, dict):
        return {}, {"non_field_errors": [
            f"Invalid data. Expected a dictionary, but got {type(data).__name__}."]}
    values: dict[str, Any] = {}
    errors: dict[str, Any] = {}
    for name, f in _FIELDS.items():
        try:
            values[name] = f.run_validation(data.get(name, empty))
        except ValidationError as exc:
            errors[name] = exc.detail
        except SkipField:
            pass
    return values, errors


def _whole(value: Any) -> bool:
    return type(value) is int and value >= 0


def _plainly_valid(data: Any) -> dict[str, Any] | None:
    """The values of a heartbeat shaped as agents send it (JSON numbers, a string, lists
    of objects and of ids), exactly as the serializer's fields would clean them; None for
    anything else, which the fields themselves then judge. What agents send every ten
    seconds needs no field machinery (tests/scheduler/test_agent_doors.py checks that
    both agree on any input)."""
    if type(data) is not dict or "isolation" in data:
        return None
    free, busy = data.get("free_gpus"), data.get("busy_gpus")
    utilization = data.get("utilization", 0)
    version = data.get("agent_version", "")
    gpus, running = data.get("gpus", []), data.get("running", [])
    if not (_whole(free) and _whole(busy) and type(version) is str and "\x00" not in version
            and type(gpus) is list and type(running) is list):
        return None
    if type(utilization) not in (int, float) or not 0 <= utilization <= 1:
        return None
    if not all(type(g) is dict and all(type(k) is str for k in g) for g in gpus):
        return None
    if not all(type(r) is int for r in running):
        return None
    return {
        "free_gpus": free, "busy_gpus": busy,
        "utilization": utilization if "utilization" not in data else float(utilization),
        "agent_version": version.strip(),
        "gpus": [dict(g) for g in gpus], "running": list(running),
    }


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
    try:
        data = json.loads(body) if body else {}
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return Answer(400, error_body(ErrorCode.INVALID, f"JSON parse error - {exc}"))
    values, errors = _validated(data)
    if errors:
        return Answer(400, validation_error_body(errors))
    return BeatRequest(token, values, _beat_limit())


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
