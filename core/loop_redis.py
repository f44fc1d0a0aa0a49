"""Redis for the agents' ASGI doors: one client per event loop, and one pipeline per loop
that sends together every command its requests are waiting on.

A client's connections belong to the loop that made them, and a server runs one loop per
worker process, so each loop gets its own, on a blocking pool: redis-py's default pool
refuses a caller past its size (MaxConnectionsError), and each refused beat went the
synchronous way, a PostgreSQL write per beat, when the fleet was busiest.

A bounded pool alone does not carry a fleet, though: when the loop is busy, a reply sits
unread until the loop comes round to it, so a connection carries about one command per
turn of the loop, and a turn is longest exactly when thousands of agents are at the door.
`LoopPipeline` sends all the commands waiting at that moment in one round trip on one of a
few connections (its lanes), so the commands a turn carries grow with the load instead.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import weakref
from typing import Any

import redis.asyncio
from django.conf import settings
from redis.exceptions import NoScriptError

_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, redis.asyncio.Redis] = (
    weakref.WeakKeyDictionary())
_pipelines: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LoopPipeline] = (
    weakref.WeakKeyDictionary())

# One round trip carries at most this many commands: a reply of a few hundred short
# answers is read in one turn, and a flood waits in the queue, not in one huge reply.
BATCH_MAX = 512


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


def loop_pipeline() -> LoopPipeline:
    """The running loop's pipeline, on its client."""
    loop = asyncio.get_running_loop()
    pipeline = _pipelines.get(loop)
    if pipeline is None:
        pipeline = _pipelines[loop] = LoopPipeline(loop_redis(),
                                                   lanes=settings.REDIS_ASYNC_LANES)
    return pipeline


class LoopPipeline:
    """Commands queued by the loop's requests, sent in batches of up to BATCH_MAX on at
    most `lanes` connections at once; each caller awaits its own reply, or the error of
    its command (a Redis that cannot be reached fails every command of the batch)."""

    def __init__(self, client: redis.asyncio.Redis, *, lanes: int) -> None:
        self.client = client
        self.lanes = max(1, lanes)
        self.running = 0
        self.queued: list[tuple[tuple[Any, ...], asyncio.Future[Any]]] = []

    async def call(self, *command: Any) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.queued.append((command, future))
        if self.running < self.lanes:
            self.running += 1
            asyncio.get_running_loop().create_task(self._drain())
        return await future

    async def script(self, body: bytes, keys: list[str], args: list[Any]) -> Any:
        """EVALSHA of a Lua script by its hash; the script is loaded when Redis lacks it."""
        sha = _script_sha(body)
        try:
            return await self.call("EVALSHA", sha, len(keys), *keys, *args)
        except NoScriptError:
            await self.call("SCRIPT LOAD", body)
            return await self.call("EVALSHA", sha, len(keys), *keys, *args)

    async def _drain(self) -> None:
        try:
            while self.queued:
                batch, self.queued = self.queued[:BATCH_MAX], self.queued[BATCH_MAX:]
                live = [(command, future) for command, future in batch if not future.done()]
                if not live:
                    continue
                pipe = self.client.pipeline(transaction=False)
                for command, _ in live:
                    pipe.execute_command(*command)
                try:
                    replies = await pipe.execute(raise_on_error=False)
                except (redis.RedisError, OSError) as failed:
                    replies = [failed] * len(live)
                for (_, future), reply in zip(live, replies, strict=True):
                    if future.done():  # its caller went away meanwhile
                        continue
                    if isinstance(reply, Exception):
                        future.set_exception(reply)
                    else:
                        future.set_result(reply)
        finally:
            self.running -= 1



@functools.cache
def _script_sha(body: bytes) -> str:
    return hashlib.sha1(body).hexdigest()  # Redis names a script by its SHA-1
