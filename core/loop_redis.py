"""One asyncio Redis client per event loop, on a bounded pool that queues its callers.

A client's connections belong to the loop that made them, and a server runs one loop per
worker process, so each loop gets its own. redis-py's asyncio pool refuses a caller past
its size with MaxConnectionsError: when the loop is busy, requests in flight pile up faster
than Redis answers them, and each refusal became a 503 for a beat that would have been
answered a moment later. A blocking pool makes such a caller wait its turn for a
connection (at most REDIS_ASYNC_POOL_TIMEOUT_S, then a ConnectionError, which the doors
read as Redis being away), and bounds the connections one worker opens however many
agents are at its door.
"""

from __future__ import annotations

import asyncio
import weakref

import redis.asyncio
from django.conf import settings

_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, redis.asyncio.Redis] = (
    weakref.WeakKeyDictionary())


def loop_redis() -> redis.asyncio.Redis:
    """The running loop's client for settings.REDIS_URL."""
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None:
        pool = redis.asyncio.BlockingConnectionPool.from_url(
            settings.REDIS_URL,
            max_connections=settings.REDIS_ASYNC_POOL_SIZE,
            timeout=settings.REDIS_ASYNC_POOL_TIMEOUT_S,
        )
        client = _clients[loop] = redis.asyncio.Redis(connection_pool=pool)
    return client
