"""A node's rate limit on the agents' calls: one rate (the `node` throttle rate,
AGENT_RATE_LIMIT, e.g. "600/min"), one counting rule, one strategy per backend.

The rule: time is cut into fixed windows of the rate's period, numbered from the epoch
(`window_of`); each call of a node counts in its window, and a call past the rate's count
is refused and changes nothing else, until the next window begins (`retry_after_s`: the
same Retry-After on every door). A node's count lives

- in Redis when there is one (`node:rate:<node id>:<window>`, expiring with its window):
  lease reads, log chunks, usage reports (`node_call_count`) and the write-behind heartbeat
  (scheduler.services.heartbeat_buffer, whose one script is composed from `COUNT_LUA`, so
  the beat stays one round trip) share it;
- else in the node's row (`beat_window`, `beats_in_window`): the synchronous heartbeat
  counts there within its one statement (scheduler.services.heartbeat_write, composed
  from `ROW_COUNTED` and `ROW_COUNT`), and so do the other calls without Redis.

A synchronous heartbeat counts in the row even when Redis is there: it is the one beat in
a token's TOKEN_TTL_S that proves the token against PostgreSQL, and a second round trip
to Redis would double the cost of the hottest path for one beat in sixty.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

import redis
from django.conf import settings
from django.db import connection, transaction

from core.sql_names import compose, compose_part
from scheduler.models import Node
from scheduler.services.node_tokens import BeatLimit

logger = logging.getLogger(__name__)

_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def node_rate() -> str:
    return str(settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["node"])  # type: ignore[index]


def node_limit() -> BeatLimit:
    """The node rate, as every backend counts it."""
    return _parsed_limit(node_rate())


@functools.lru_cache(maxsize=8)
def _parsed_limit(rate: str) -> BeatLimit:
    count, period = rate.split("/")
    return BeatLimit(beats=int(count), window_s=_PERIODS[period[0]])


def window_of(limit: BeatLimit, epoch_s: int) -> int:
    return epoch_s // limit.window_s


def retry_after_s(limit: BeatLimit, epoch_s: int) -> int:
    """Seconds until the window after the one `epoch_s` falls in."""
    return limit.window_s - epoch_s % limit.window_s


# The rule in Redis, for every script that counts: the window's key is made per node, so
# the caller needs no key of its own for it (the write-behind beat learns its node's id
# only inside its script). The key outlives its window by a second, so that a clock a
# little behind Redis's still finds it.
COUNT_LUA = """
local function node_rate_counted(node, window, beats, window_s)
  local key = 'node:rate:' .. node .. ':' .. window
  local used = redis.call('INCR', key)
  if used == 1 then redis.call('EXPIRE', key, tonumber(window_s) + 1) end
  return used <= tonumber(beats)
end
"""
# ARGV: node id, window, beats, window_s. 1 when counted within the rate, else 0.
_CALL_LUA = COUNT_LUA + """
if node_rate_counted(ARGV[1], ARGV[2], ARGV[3], ARGV[4]) then return 1 end
return 0
"""


def count_lua_args(limit: BeatLimit, epoch_s: int) -> list[int]:
    """`node_rate_counted`'s window, beats and window_s, in that order."""
    return [window_of(limit, epoch_s), limit.beats, limit.window_s]


# The rule in the node's row, `n`, for statements that lock the row first: whether this
# call counts (read before the row is written) and the row's new count.
# Parameters: %(window)s, %(beats)s.
ROW_COUNTED = compose_part(
    "(n.{Node.beat_window} <> %(window)s OR n.{Node.beats_in_window} < %(beats)s)", Node)
ROW_COUNT = compose_part(
    "{Node.beats_in_window} = CASE WHEN n.{Node.beat_window} = %(window)s"
    " THEN n.{Node.beats_in_window} + 1 ELSE 1 END, {Node.beat_window} = %(window)s", Node)


def row_count(node: Node, window: int, beats: int) -> bool:
    """ROW_COUNTED and ROW_COUNT on a locked Node in memory, for the ORM (SQLite): whether
    the call counts; the caller saves `beat_window` and `beats_in_window`."""
    counted = node.beat_window != window or node.beats_in_window < beats
    node.beats_in_window = node.beats_in_window + 1 if node.beat_window == window else 1
    node.beat_window = window
    return counted


_ROW_CALL_SQL = compose("""
WITH old AS (
    SELECT n.{Node.id} AS id, {counted} AS counted
    FROM {Node} AS n WHERE n.{Node.id} = %(node)s FOR UPDATE),
node AS (
    UPDATE {Node} AS n SET {count} FROM old WHERE n.{Node.id} = old.id)
SELECT counted FROM old
""", Node, counted=ROW_COUNTED, count=ROW_COUNT)


def node_call_count(node_id: int, *, epoch_s: int) -> int:
    """Count one call of the node's against its rate: 0 when within it, else the seconds
    until it may call again."""
    limit = node_limit()
    counted = None
    if settings.REDIS_URL:
        try:
            counted = bool(_call_script()(args=[node_id, *count_lua_args(limit, epoch_s)]))
        except redis.RedisError:  # Redis down: the call still counts, in the node's row
            logger.warning("node rate: Redis unavailable, counting in the database",
                           exc_info=True)
    if counted is None:
        counted = _row_call_count(node_id, window_of(limit, epoch_s), limit.beats)
    return 0 if counted else retry_after_s(limit, epoch_s)


@functools.cache
def _call_script() -> Any:
    return redis.Redis.from_url(settings.REDIS_URL).register_script(_CALL_LUA)


def _row_call_count(node_id: int, window: int, beats: int) -> bool:
    params = {"node": node_id, "window": window, "beats": beats}
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(_ROW_CALL_SQL, params)
            row = cursor.fetchone()
        return row is None or bool(row[0])
    with transaction.atomic():
        node = Node.objects.select_for_update().filter(pk=node_id).first()
        if node is None:  # gone since its token was checked: nothing to count against
            return True
        counted = row_count(node, window, beats)
        node.save(update_fields=["beat_window", "beats_in_window"])
        return counted
