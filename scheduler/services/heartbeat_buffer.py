"""Write-behind heartbeats: at fleet scale, a beat is acknowledged from Redis and written
to PostgreSQL with everybody else's, in one statement a second (`heartbeats_flush`).

A heartbeat moves no money and says only "alive at t": writing each one as its own
PostgreSQL transaction costs the database a commit per node every ten seconds, which caps
the agent API below its goal (bench.agent_api; docs/performance.md). Batched, a thousand
beats cost one statement. What the synchronous heartbeat does (the node turns online, its leases are
extended, a heartbeat row per minute is kept) is what the flush does, with the time each
beat arrived, at most AGENT_HEARTBEAT_FLUSH_S later. Each agent's first beat (and any beat
whose token Redis does not know) goes the synchronous way, which also proves the token.

Redis holds, per node token (keyed by its SHA-256, never the token):
- `hb:tok:<hash>`: {node, status}: whose token it is, filled on a synchronous beat for
  TOKEN_TTL_S; a flush that finds another status writes it there, one that finds the
  node gone or disabled deletes it, so a retired token stops working within a flush
  (and `node_retire` deletes it at once);
- `hb:rate:<hash>:<window>`: beats counted in the node's rate window;
- `hb:pending`: {<hash>: "node|status|epoch_ms|free|busy|utilization|version"}, the
  latest beat of each node not yet written, with the status Redis answered it with;
- `lease:due`: the nodes whose lease changed since they last read it
  (scheduler.services.lease_hints), which a buffered beat's answer reports.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import weakref
from dataclasses import dataclass
from functools import cache
from typing import Any

import redis
import redis.asyncio
from django.conf import settings
from django.db import connection, transaction
from django.db.utils import load_backend

from core.sql_names import compose, insert_into
from scheduler import enqueue
from scheduler.models import Assignment, Node, NodeHeartbeat
from scheduler.services.node_tokens import BeatLimit, NodeToken

logger = logging.getLogger(__name__)

PENDING = "hb:pending"
LEASE_DUE = "lease:due"
# A known token is proven against PostgreSQL again (a synchronous beat) this long after
# it was last: about one beat in sixty of a fleet beating every ten seconds.
TOKEN_TTL_S = 600

_BEAT = """
local node = redis.call('HMGET', KEYS[1], 'node', 'status')
if not node[1] then return false end
local used = redis.call('INCR', KEYS[2])
if used == 1 then redis.call('EXPIRE', KEYS[2], ARGV[2]) end
if used > tonumber(ARGV[1]) then return {'throttled', node[2]} end
redis.call('HSET', KEYS[3], ARGV[3], node[1] .. '|' .. node[2] .. '|' .. ARGV[4])
return {'ok', node[2], redis.call('SISMEMBER', KEYS[4], node[1])}
"""
_TAKE = """
local beats = redis.call('HGETALL', KEYS[1])
redis.call('DEL', KEYS[1])
return beats
"""

# One statement for every beat taken: the same effects as the synchronous heartbeat
# (scheduler.services.nodes._HEARTBEAT_SQL), for many nodes, each at its own beat's time.
# Only a node whose token is still the one that beat, and that is not disabled, counts.
# `old` carries each beat's values, so that nothing joins the beats again: the planner
# cannot know how many rows `old` holds, and a nested loop over the beats per node would
# make the flush quadratic.
_FLUSH_SQL = compose("""
WITH v AS (
    SELECT node_id, hash, to_timestamp(at_ms / 1000.0) AS at, free, busy, util, version
    FROM jsonb_to_recordset(%(beats)s::jsonb)
         AS v(node_id bigint, hash text, at_ms bigint, free int, busy int, util float8,
              version text)),
old AS (
    SELECT n.{Node.id} AS id, n.{Node.status} AS status, v.hash, v.at, v.free, v.busy,
           v.util, v.version
    FROM {Node} AS n
    JOIN v ON v.node_id = n.{Node.id} AND v.hash = n.{Node.token_hash}
    WHERE n.{Node.status} <> {Node.Status.DISABLED}
    ORDER BY n.{Node.id} FOR UPDATE OF n),
node AS (
    UPDATE {Node} AS n SET
        {Node.status} = CASE WHEN n.{Node.is_approved}
                                  AND n.{Node.status} IN ({Node.Status.OFFLINE},
                                                          {Node.Status.PENDING})
                      THEN {Node.Status.ONLINE} ELSE n.{Node.status} END,
        {Node.last_heartbeat_at} = GREATEST(old.at, n.{Node.last_heartbeat_at}),
        {Node.utilization} = old.util, {Node.agent_version} = old.version
    FROM old
    WHERE n.{Node.id} = old.id
    RETURNING n.{Node.id} AS id, n.{Node.status} AS status, old.status AS was, old.hash),
leases AS (
    UPDATE {Assignment} AS a
    SET {Assignment.lease_expires_at} = old.at + make_interval(secs => %(timeout)s)
    FROM old
    WHERE a.{Assignment.node} = old.id
      AND a.{Assignment.state} IN ({Assignment.State.PLACED}, {Assignment.State.RUNNING})
      AND (a.{Assignment.lease_expires_at} IS NULL
           OR a.{Assignment.lease_expires_at} < old.at + make_interval(secs => %(timeout)s))),
beat AS (
    INSERT INTO {beats}
    SELECT old.id, date_trunc('minute', old.at), old.free, old.busy FROM old
    ON CONFLICT ({NodeHeartbeat.node}, {NodeHeartbeat.at}) DO NOTHING)
SELECT id, status, was, hash FROM node
""", Node, Assignment, NodeHeartbeat,
    beats=insert_into(NodeHeartbeat, "node", "at", "free_gpus", "busy_gpus"))


@dataclass(frozen=True)
class BufferedBeat:
    status: str  # the node's status as of the last flush
    retry_after_s: int = 0  # > 0: over the rate limit, nothing was buffered
    lease_due: bool = True  # the node's lease changed since the node last read it


@dataclass(frozen=True)
class FlushResult:
    taken: int  # beats taken from Redis
    written: int  # nodes updated in PostgreSQL
    dropped: int  # beats of nodes gone, disabled or with another token now
    turned_online: int
    seconds: float


def beat_buffer_enabled() -> bool:
    return bool(settings.AGENT_HEARTBEAT_WRITE_BEHIND and settings.REDIS_URL
                and _vendor(settings.DATABASES["default"]["ENGINE"]) == "postgresql")


@cache
def _vendor(engine: str) -> str:
    """The backend's vendor, read from its class: `connection.vendor` in the ASGI door's
    event loop builds a connection object for each request (each has a context of its
    own), a twentieth of a heartbeat's time."""
    return str(load_backend(engine).DatabaseWrapper.vendor)


@cache
def _scripts() -> tuple[redis.Redis, Any, Any]:
    client = redis.Redis.from_url(settings.REDIS_URL)
    return client, client.register_script(_BEAT), client.register_script(_TAKE)


def buffer_client() -> redis.Redis:
    return _scripts()[0]


def _token_key(token_hash: str) -> str:
    return f"hb:tok:{token_hash}"


def beat_buffer_record(
    token: NodeToken, *, free_gpus: int, busy_gpus: int, utilization: float,
    agent_version: str, limit: BeatLimit,
) -> BufferedBeat | None:
    """Count the beat and keep it for the next flush, in one Redis call. None when Redis
    does not know the token (the caller then beats the synchronous way)."""
    _, beat, _ = _scripts()
    now = time.time()
    keys, args = _beat_call(token, free_gpus, busy_gpus, utilization, agent_version, limit, now)
    return _buffered(beat(keys=keys, args=args), limit, now)


async def beat_buffer_record_async(
    token: NodeToken, *, free_gpus: int, busy_gpus: int, utilization: float,
    agent_version: str, limit: BeatLimit,
) -> BufferedBeat | None:
    """beat_buffer_record for the ASGI door, on an asyncio Redis client."""
    beat = _async_beat_script()
    now = time.time()
    keys, args = _beat_call(token, free_gpus, busy_gpus, utilization, agent_version, limit, now)
    return _buffered(await beat(keys=keys, args=args), limit, now)


def _async_beat_script() -> Any:
    """The beat script on an asyncio client of the running event loop (a client's
    connections belong to the loop that made them; a server has one loop per worker)."""
    loop = asyncio.get_running_loop()
    script = _async_scripts.get(loop)
    if script is None:
        script = redis.asyncio.Redis.from_url(settings.REDIS_URL).register_script(_BEAT)
        _async_scripts[loop] = script
    return script


_async_scripts: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


def _beat_call(token: NodeToken, free_gpus: int, busy_gpus: int, utilization: float,
               agent_version: str, limit: BeatLimit, now: float) -> tuple[list[str], list[Any]]:
    window = int(now) // limit.window_s
    value = "|".join((str(int(now * 1000)), str(max(0, free_gpus)), str(max(0, busy_gpus)),
                      repr(max(0.0, min(1.0, float(utilization)))), agent_version[:64]))
    return ([_token_key(token.hash), f"hb:rate:{token.hash[:32]}:{window}", PENDING, LEASE_DUE],
            [limit.beats, limit.window_s + 1, token.hash, value])


def _buffered(answer: Any, limit: BeatLimit, now: float) -> BufferedBeat | None:
    if answer is None:
        return None
    if answer[0] == b"throttled":
        return BufferedBeat(status=answer[1].decode(),
                            retry_after_s=limit.window_s - int(now) % limit.window_s)
    return BufferedBeat(status=answer[1].decode(), lease_due=bool(answer[2]))


def beat_buffer_remember(token: NodeToken, *, node_id: int, status: str) -> None:
    client, _, _ = _scripts()
    key = _token_key(token.hash)
    pipe = client.pipeline(transaction=False)
    pipe.hset(key, mapping={"node": node_id, "status": status})
    pipe.expire(key, TOKEN_TTL_S)
    pipe.execute()


def beat_buffer_forget(token_hash: str) -> None:
    """The token must stop working now (its node is retired or disabled)."""
    if token_hash and settings.REDIS_URL:
        _scripts()[0].delete(_token_key(token_hash))


Beat = tuple[int, str, int, int, int, float, str]  # node, status, epoch ms, free, busy, ...


def _parse(raw: list[bytes]) -> dict[str, Beat]:
    beats = {}
    for key, value in zip(raw[::2], raw[1::2], strict=True):
        node, status, at_ms, free, busy, util, version = value.decode().split("|", 6)
        beats[key.decode()] = (int(node), status, int(at_ms), int(free), int(busy),
                               float(util), version)
    return beats


def heartbeats_flush() -> FlushResult:
    """Write every buffered beat to PostgreSQL in one statement, then tell Redis what the
    nodes' statuses are now. Beats that could not be written go back to the buffer (a
    newer beat of the same node, buffered meanwhile, wins)."""
    started = time.perf_counter()
    if not beat_buffer_enabled():
        return FlushResult(0, 0, 0, 0, 0.0)
    client, _, take = _scripts()
    raw = take(keys=[PENDING])
    if not raw:
        return FlushResult(0, 0, 0, 0, time.perf_counter() - started)
    beats = _parse(raw)
    try:
        rows = _write(beats)
    except Exception:
        restore = client.pipeline(transaction=False)
        for key, value in zip(raw[::2], raw[1::2], strict=True):
            restore.hsetnx(PENDING, key, value)
        restore.execute()
        raise
    written = {row_hash: status for _node_id, status, _was, row_hash in rows}
    update = client.pipeline(transaction=False)
    for token_hash, beat in beats.items():
        if token_hash not in written:
            update.delete(_token_key(token_hash))
        elif written[token_hash] != beat[1]:
            update.hset(_token_key(token_hash), "status", written[token_hash])
    if len(update):
        update.execute()
    turned_online = sum(1 for _, status, was, _ in rows
                        if status == Node.Status.ONLINE and was != Node.Status.ONLINE)
    if turned_online:
        enqueue.placement_run()
    return FlushResult(taken=len(beats), written=len(rows), dropped=len(beats) - len(rows),
                       turned_online=turned_online, seconds=time.perf_counter() - started)


@transaction.atomic
def _write(beats: dict[str, Beat]) -> list[tuple[int, str, str, str]]:
    # One JSON text for all the beats: PostgreSQL reads it faster than the driver can
    # write seven arrays of thousands of values.
    rows = json.dumps([
        {"node_id": node, "hash": token_hash, "at_ms": at_ms, "free": free, "busy": busy,
         "util": util, "version": version}
        for token_hash, (node, _status, at_ms, free, busy, util, version) in beats.items()
    ])
    with connection.cursor() as cursor:
        cursor.execute(_FLUSH_SQL, {"beats": rows, "timeout": settings.SCHEDULER_NODE_TIMEOUT_S})
        return [tuple(row) for row in cursor.fetchall()]
