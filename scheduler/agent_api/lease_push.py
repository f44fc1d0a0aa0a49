"""Lease push: an agent holds `POST agent/lease/?wait=S` open on the agents' server and is
answered as soon as its node's lease changes (work placed, canceled or lost), or after S
seconds with `{"changed": false}`. Without it a node learns of new work at its next beat's
lease hint, seconds later; with it, within the time a Redis message takes.

Long-poll rather than a WebSocket or an event stream: it is a plain request the agent
already knows how to send, retry and authenticate, through any proxy, and a wait that
ends re-arms with the node's current lease read in the same answer.

How a wait is woken: a change marks its nodes in Redis's `lease:due` set and publishes
their ids on `lease:changed` (scheduler.services.lease_hints). Each worker process keeps
one pub/sub subscription and a map of the nodes waiting in it, so an idle wait is an
asyncio event: no thread, no database connection, no Redis connection of its own. A wait
checks the node's mark after registering, so a change that committed between the node's
last lease read and its wait is not missed. A second wait from the same node closes the
first (the node restarted, or a proxy kept the old request open), in whichever process it
waits: the new wait is announced on the same channel.

Only the ASGI door (config.asgi) waits; the WSGI door and the DRF view refuse `wait` with
`lease_push_unavailable`, as does the ASGI door while Redis is unreachable, and agents then
rely on heartbeats' hints and their one-minute floor.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio

from core.api_errors import error_body
from core.loop_redis import loop_pipeline, loop_redis
from scheduler.agent_api.answers import Answer, unauthenticated
from scheduler.agent_api.database_threads import on_a_database_thread
from scheduler.error_codes import SchedulerErrorCode
from scheduler.services.heartbeat_buffer import LEASE_DUE, beat_buffer_enabled
from scheduler.services.lease_hints import LEASE_CHANGED_CHANNEL, WAIT_PREFIX
from scheduler.services.nodes import node_id_authenticate

logger = logging.getLogger(__name__)

ASGIReceive = Callable[[], Awaitable[dict[str, Any]]]
LeaseRead = Callable[[str], Answer]


def push_unavailable() -> Answer:
    return Answer(503, error_body(
        SchedulerErrorCode.LEASE_PUSH_UNAVAILABLE,
        "This server does not hold lease waits now; read the lease when a heartbeat says "
        "it is due.",
    ), {"Retry-After": "60"})


@dataclass(eq=False)
class _Wait:
    token: str
    woken: asyncio.Event = field(default_factory=asyncio.Event)
    superseded: bool = False


class _Waiters:
    """The nodes waiting in this process's event loop, and the one subscription that wakes
    them."""

    def __init__(self) -> None:
        self.by_node: dict[int, _Wait] = {}
        self.listening: asyncio.Task[None] | None = None
        self.subscribed = asyncio.Event()

    def ensure_listening(self) -> None:
        if self.listening is None or self.listening.done():
            self.subscribed.clear()
            self.listening = asyncio.get_running_loop().create_task(self._listen())

    async def _listen(self) -> None:
        delay = 0.5
        while True:
            try:
                pubsub = loop_redis().pubsub()
                await pubsub.subscribe(LEASE_CHANGED_CHANNEL)
                self.subscribed.set()
                delay = 0.5
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        self._deliver(message["data"])
            except asyncio.CancelledError:
                raise
            except Exception:  # Redis gone: waits end now, agents fall back to hints
                logger.warning("lease push: subscription lost, retrying in %.1fs", delay,
                               exc_info=True)
            self.subscribed.clear()
            for wait in self.by_node.values():
                wait.woken.set()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)

    def _deliver(self, data: bytes) -> None:
        text = data.decode("ascii", "replace")
        if text.startswith(WAIT_PREFIX):  # a node began a wait, perhaps in another process
            node, _, token = text[len(WAIT_PREFIX):].partition(":")
            wait = self.by_node.get(int(node)) if node.isdigit() else None
            if wait is not None and wait.token != token:
                wait.superseded = True
                wait.woken.set()
            return
        for part in text.split(","):
            wait = self.by_node.get(int(part)) if part.isdigit() else None
            if wait is not None:
                wait.woken.set()


# One registry per event loop: uvicorn runs one loop per worker process, tests their own.
_registries: dict[asyncio.AbstractEventLoop, _Waiters] = {}


def _waiters() -> _Waiters:
    loop = asyncio.get_running_loop()
    registry = _registries.get(loop)
    if registry is None:
        for old in [lp for lp in _registries if lp.is_closed()]:
            del _registries[old]
        registry = _registries[loop] = _Waiters()
    return registry


def waiting_count() -> int:
    """Lease waits held open in the running event loop (for tests and metrics)."""
    return len(_waiters().by_node)


async def lease_wait(authorization: str, seconds: int, receive: ASGIReceive,
                     read: LeaseRead) -> Answer | None:
    """Answer the lease read once the node's lease changes, or `{"changed": false}` after
    `seconds`. None when the agent hung up meanwhile (nothing to answer)."""
    if not beat_buffer_enabled():
        return push_unavailable()
    scheme, _, raw = authorization.partition(" ")
    if scheme != "Node":
        return unauthenticated("Authentication credentials were not provided.")
    node_id = await on_a_database_thread(node_id_authenticate, raw)
    if node_id is None:
        return unauthenticated("Invalid node token.")
    registry = _waiters()
    registry.ensure_listening()
    try:
        await asyncio.wait_for(registry.subscribed.wait(), timeout=2.0)
        wait = _Wait(token=uuid.uuid4().hex)
        older = registry.by_node.get(node_id)
        if older is not None:
            older.superseded = True
            older.woken.set()
        registry.by_node[node_id] = wait
        # Batched with the loop's other commands: a fleet starts its waits all at once.
        commands = loop_pipeline()
        _, due = await asyncio.gather(
            commands.call("PUBLISH", LEASE_CHANGED_CHANNEL, f"{WAIT_PREFIX}{node_id}:{wait.token}"),
            commands.call("SISMEMBER", LEASE_DUE, str(node_id)))
    except (TimeoutError, redis.RedisError):
        _forget(registry, node_id, None)
        return push_unavailable()
    try:
        if not due:
            hung_up = await _wait_or_hang_up(wait.woken, receive, seconds)
            if hung_up:
                return None
            if wait.superseded:
                return Answer(200, {"changed": False, "superseded": True})
            if not wait.woken.is_set():
                return Answer(200, {"changed": False})
            if not registry.subscribed.is_set():
                return push_unavailable()
    finally:
        _forget(registry, node_id, wait)
    answer = await on_a_database_thread(read, authorization)
    if answer.status == 200:
        answer.body["changed"] = True
    return answer


def _forget(registry: _Waiters, node_id: int, wait: _Wait | None) -> None:
    if wait is None or registry.by_node.get(node_id) is wait:
        registry.by_node.pop(node_id, None)


async def _wait_or_hang_up(woken: asyncio.Event, receive: ASGIReceive, seconds: int) -> bool:
    """Wait for the event, the timeout, or the client's hang-up; True on a hang-up."""
    event = asyncio.ensure_future(woken.wait())
    hang_up = asyncio.ensure_future(_disconnected(receive))
    try:
        done, _ = await asyncio.wait({event, hang_up}, timeout=seconds,
                                     return_when=asyncio.FIRST_COMPLETED)
        return hang_up in done and event not in done
    finally:
        for task in (event, hang_up):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


async def _disconnected(receive: ASGIReceive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
