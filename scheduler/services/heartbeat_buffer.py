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
- `node:rate:<node>:<window>`: the node's calls counted in its rate window, buffered beats
  among them (scheduler.services.node_rate);
- `hb:pending`: {<hash>: "node|status|epoch_ms|free|busy|utilization|version"}, the
  latest beat of each node not yet written, with the status Redis answered it with;
- `lease:due`: the nodes whose lease changed since they last read it
  (scheduler.services.lease_hints), which a buffered beat's answer reports.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from functools import cache
from typing import Any

import redis
from django.conf import settings
from django.db import DataError, IntegrityError
from django.db.utils import load_backend

from core.bounds import INTEGER_MAX, NUL
from core.loop_redis import loop_pipeline
from core.observability import BATCH_ITEMS_SET_ASIDE
from scheduler import enqueue
from scheduler.models import Node
from scheduler.services.heartbeat_write import Beat, heartbeats_write
from scheduler.services.node_rate import COUNT_LUA, count_lua_args, retry_after_s
from scheduler.services.node_tokens import BeatLimit, NodeToken

logger = logging.getLogger(__name__)

PENDING = "hb:pending"
LEASE_DUE = "lease:due"
# A known token is proven against PostgreSQL again (a synchronous beat) this long after
# it was last: about one beat in sixty of a fleet beating every ten seconds.
TOKEN_TTL_S = 600

# The beat is counted by the node rate's own rule (scheduler.services.node_rate), in the
# same script: one round trip. ARGV: the rule's window, beats and window_s; the token's
# hash; the beat.
_BEAT = COUNT_LUA + """
local node = redis.call('HMGET', KEYS[1], 'node', 'status')
if not node[1] then return false end
if not node_rate_counted(node[1], ARGV[1], ARGV[2], ARGV[3]) then
  return {'throttled', node[2]}
end
redis.call('HSET', KEYS[2], ARGV[4], node[1] .. '|' .. node[2] .. '|' .. ARGV[5])
return {'ok', node[2], redis.call('SISMEMBER', KEYS[3], node[1])}
"""
_BEAT_BYTES = _BEAT.encode()
_TAKE = """
local beats = redis.call('HGETALL', KEYS[1])
redis.call('DEL', KEYS[1])
return beats
"""

@dataclass(frozen=True)
class BufferedBeat:
    status: str  # the node's status as of the last flush
    retry_after_s: int = 0  # > 0: over the rate limit, nothing was buffered
    lease_due: bool = True  # the node's lease changed since the node last read it


@dataclass(frozen=True)
class FlushResult:
    taken: int  # beats taken from Redis
    written: int  # nodes updated in PostgreSQL
    dropped: int  # beats of nodes gone, disabled or with another token now, or poison
    turned_online: int
    seconds: float
    poison: int = 0  # beats no statement could write: logged, counted, dropped


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
    """beat_buffer_record for the ASGI door, batched with the other beats of its event
    loop (core.loop_redis)."""
    now = time.time()
    keys, args = _beat_call(token, free_gpus, busy_gpus, utilization, agent_version, limit, now)
    return _buffered(await loop_pipeline().script(_BEAT_BYTES, keys, args), limit, now)


def _beat_call(token: NodeToken, free_gpus: int, busy_gpus: int, utilization: float,
               agent_version: str, limit: BeatLimit, now: float) -> tuple[list[str], list[Any]]:
    value = "|".join((str(int(now * 1000)), str(max(0, free_gpus)), str(max(0, busy_gpus)),
                      repr(max(0.0, min(1.0, float(utilization)))), agent_version[:64]))
    return ([_token_key(token.hash), PENDING, LEASE_DUE],
            [*count_lua_args(limit, int(now)), token.hash, value])


def _buffered(answer: Any, limit: BeatLimit, now: float) -> BufferedBeat | None:
    if answer is None:
        return None
    if answer[0] == b"throttled":
        return BufferedBeat(status=answer[1].decode(),
                            retry_after_s=retry_after_s(limit, int(now)))
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


AGENT_VERSION_MAX = 64


def _parse_one(value: bytes) -> Beat | None:
    """One buffered beat, or None when it is not one the doors would have let in (what
    any client of this Redis could have written there): such a beat must not make the
    flush's statement fail for every node."""
    try:
        node, status, at_ms, free, busy, util, version = value.decode().split("|", 6)
        beat = (int(node), status, int(at_ms), int(free), int(busy), float(util), version)
    except ValueError:  # also UnicodeDecodeError, a missing part
        return None
    if not (0 < beat[0] <= 2**63 - 1 and 0 <= beat[2] <= 2**63 - 1
            and 0 <= beat[3] <= INTEGER_MAX and 0 <= beat[4] <= INTEGER_MAX
            and math.isfinite(beat[5]) and len(version) <= AGENT_VERSION_MAX
            and NUL not in version):
        return None
    return beat


def _parse(raw: list[bytes]) -> tuple[dict[str, Beat], int]:
    """The buffered beats that can be written, and how many could not."""
    beats, poison = {}, 0
    for key, value in zip(raw[::2], raw[1::2], strict=True):
        beat = _parse_one(value)
        if beat is None:
            poison += 1
            _drop(key, "unreadable")
            continue
        beats[key.decode("ascii", "replace")] = beat
    return beats, poison


def _drop(key: bytes | str, reason: str) -> None:
    BATCH_ITEMS_SET_ASIDE.labels("heartbeats_flush", reason).inc()
    logger.error("heartbeat flush: dropped the beat of token hash %.16s (%s)",
                 key.decode("ascii", "replace") if isinstance(key, bytes) else key, reason)


def heartbeats_flush() -> FlushResult:
    """Write every buffered beat to PostgreSQL in one statement, then tell Redis what the
    nodes' statuses are now. A beat that is not one (unreadable, out of its column's
    range) or that PostgreSQL refuses is dropped, logged and counted, and the others are
    written all the same. When the database cannot be written at all, the beats go back
    to the buffer (a newer beat of the same node, buffered meanwhile, wins)."""
    started = time.perf_counter()
    if not beat_buffer_enabled():
        return FlushResult(0, 0, 0, 0, 0.0)
    client, _, take = _scripts()
    raw = take(keys=[PENDING])
    if not raw:
        return FlushResult(0, 0, 0, 0, time.perf_counter() - started)
    beats, poison = _parse(raw)
    try:
        rows, refused = _write_isolating(beats)
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
    taken = len(raw) // 2
    return FlushResult(taken=taken, written=len(rows), dropped=taken - len(rows),
                       poison=poison + refused, turned_online=turned_online,
                       seconds=time.perf_counter() - started)


def _write_isolating(beats: dict[str, Beat]) -> tuple[list[tuple[int, str, str, str]], int]:
    """All beats in one statement; if PostgreSQL refuses a value in it (a beat the checks
    above missed), each beat in a statement of its own, dropping those refused: one bad
    beat must not keep every node's beat out of the database. (rows, beats refused)."""
    try:
        return heartbeats_write(beats), 0
    except (DataError, IntegrityError):
        logger.exception("heartbeat flush: the batch was refused; writing beat by beat")
    rows: list[tuple[int, str, str, str]] = []
    refused = 0
    for token_hash, beat in beats.items():
        try:
            rows.extend(heartbeats_write({token_hash: beat}))
        except (DataError, IntegrityError):
            refused += 1
            _drop(token_hash, "refused_by_database")
    return rows, refused
